"""The edge benchmark's measuring parts on a few minutes of a big store."""

from __future__ import annotations

from pathlib import Path

from shelflink.cli.edge_bench import (
    edge_bench_config,
    measure_inference,
    measure_throughput,
    scripted_messages,
)
from shelflink.device import ShelfReading
from shelflink.edge.stockout_model import StockoutModel, default_model_path


def test_edge_bench_feeds_every_reading_and_ticks_once_a_minute(tmp_path: Path) -> None:
    config = edge_bench_config(tmp_path)
    messages = scripted_messages(config, minutes=5)
    lanes = sum(len(m.grams) for m in messages if isinstance(m, ShelfReading))
    assert lanes == 5 * 400
    figures = measure_throughput(config, messages, tmp_path)
    assert figures["readings"] == lanes + 5 * 10  # lane readings plus fridge readings
    # A tick fires when event time reaches a minute boundary: the readings sit on
    # the boundaries of minutes 0..4, so five ticks.
    assert figures["ticks"] == 5
    # The first tick reports what is on every shelf: 20 shelf_units events at least.
    assert figures["events"] >= 20


def test_batched_and_per_lane_inference_are_both_measured() -> None:
    model = StockoutModel.load(default_model_path())
    figures = measure_inference(model, lanes=40, ticks=3)
    assert set(figures) == {"infer_p50_ms", "infer_p99_ms", "per_lane_p50_ms", "per_lane_p99_ms"}
    assert all(v > 0 for v in figures.values())
