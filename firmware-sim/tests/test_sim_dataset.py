"""The Parquet data set: deterministic to the byte, schema as documented, truth consistent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from shelflink.sim import bench_dataset, write_dataset
from shelflink.sim.schema import SCHEMAS

MIX = {"convenience": 1.0}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dataset")
    write_dataset(2, 2.5, 3, out, profile_mix=MIX, fault_rate=1.0)
    return out


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_writes_the_same_bytes(dataset: Path, tmp_path: Path) -> None:
    write_dataset(2, 2.5, 3, tmp_path, profile_mix=MIX, fault_rate=1.0)
    assert files(tmp_path) == files(dataset)


def test_another_seed_writes_other_data(dataset: Path, tmp_path: Path) -> None:
    write_dataset(2, 2.5, 4, tmp_path, profile_mix=MIX, fault_rate=1.0)
    ours, theirs = files(dataset), files(tmp_path)
    assert ours.keys() == theirs.keys()
    assert ours["readings.parquet"] != theirs["readings.parquet"]
    assert ours["sales.parquet"] != theirs["sales.parquet"]


def test_adding_a_store_leaves_the_others_unchanged(dataset: Path, tmp_path: Path) -> None:
    write_dataset(3, 2.5, 3, tmp_path, profile_mix=MIX, fault_rate=1.0)
    for name in ("readings", "sales", "labels", "fridge_readings", "faults"):
        two = pq.read_table(dataset / f"{name}.parquet")
        three = pq.read_table(tmp_path / f"{name}.parquet")
        first_two = three.filter(pc.is_in(three["store"], two["store"].unique()))
        assert first_two.equals(two), name


def test_every_file_has_its_documented_schema(dataset: Path) -> None:
    description = json.loads((dataset / "dataset.json").read_text())
    assert description["dataset_version"] == 1
    for name, schema in SCHEMAS.items():
        path = dataset / f"{name}.parquet"
        assert pq.read_schema(path).remove_metadata().equals(schema), name
        assert pq.ParquetFile(path).metadata.num_rows == description["rows"][name]
    documented = (Path(__file__).resolve().parents[2] / "docs" / "datasets.md").read_text()
    for name, schema in SCHEMAS.items():
        assert f"`{name}.parquet`" in documented, name
        for field in schema:
            assert f"`{field.name}`" in documented, f"{name}.{field.name}"


def test_labels_agree_with_readings_and_stockout_intervals(dataset: Path) -> None:
    keys = ["store", "device", "lane", "ts"]
    labels_t = pq.read_table(dataset / "labels.parquet")
    readings_t = pq.read_table(dataset / "readings.parquet")
    joined = readings_t.select([*keys, "true_units"]).join(
        labels_t.select([*keys, "true_units", "stock_out", "minutes_to_stockout"]),
        keys,
        right_suffix="_label",
    )
    assert joined.num_rows == readings_t.num_rows
    assert pc.all(pc.equal(joined["true_units"], joined["true_units_label"])).as_py()
    out = pc.equal(labels_t["true_units"], 0)
    assert pc.all(pc.equal(out, labels_t["stock_out"])).as_py()
    minutes = labels_t["minutes_to_stockout"]
    assert pc.all(pc.equal(pc.equal(minutes, 0.0), out)).as_py()
    assert labels_t["stock_out"].to_numpy().any()
    stockouts = pq.read_table(dataset / "stockouts.parquet").to_pylist()
    assert stockouts
    # Only the rows at interval boundaries are needed; building a dict of all is slow.
    bounds = [s["start_ts"] for s in stockouts] + [s["end_ts"] for s in stockouts if s["end_ts"]]
    at_bounds = labels_t.filter(pc.is_in(labels_t["ts"], pa.array(bounds, labels_t["ts"].type)))
    index = {
        (r["store"], r["device"], r["lane"], r["ts"]): r["true_units"]
        for r in at_bounds.to_pylist()
    }
    for s in stockouts:
        lane = (s["store"], s["device"], s["lane"])
        assert index[(*lane, s["start_ts"])] == 0
        if s["end_ts"] is not None:
            assert index[(*lane, s["end_ts"])] > 0
            assert s["minutes"] == (s["end_ts"] - s["start_ts"]).total_seconds() / 60


def test_lane_totals_balance_and_sales_are_one_serialised_unit_each(dataset: Path) -> None:
    for row in pq.read_table(dataset / "lane_totals.parquet").to_pylist():
        assert row["initial"] + row["restocked"] == row["on_shelf"] + row["sold"] + row["shrink"]
    sales = pq.read_table(dataset / "sales.parquet")
    assert pc.all(pc.equal(sales["qty"], 1)).as_py()
    pairs = set(zip(sales["gtin"].to_pylist(), sales["serial"].to_pylist(), strict=True))
    assert len(pairs) == sales.num_rows
    received = pq.read_table(dataset / "goods_receipts.parquet")
    assert received.num_rows > 0
    assert np.all(pc.greater(sales["ts"], sales["picked_ts"]).to_numpy())


def test_offline_devices_leave_gaps_in_the_readings(dataset: Path) -> None:
    faults = pq.read_table(dataset / "faults.parquet").to_pylist()
    offline = [f for f in faults if f["kind"] == "offline" and "shelf" in f["device"]]
    assert offline, "fault_rate 1.0 over 2.5 days makes some"
    readings = pq.read_table(dataset / "readings.parquet", columns=["device", "ts"])
    for fault in offline:
        mask = pc.and_(
            pc.equal(readings["device"], fault["device"]),
            pc.and_(
                pc.greater_equal(readings["ts"], fault["start_ts"]),
                pc.less(readings["ts"], fault["end_ts"]),
            ),
        )
        assert not pc.any(mask).as_py()


def test_progress_is_reported_up_to_the_total(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    write_dataset(
        2, 0.5, 1, tmp_path, profile_mix={"kiosk": 1.0}, progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1][0] == calls[-1][1] == 2 * 720
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_bench_reports_store_days_per_second() -> None:
    figures = bench_dataset(1, 0.25, profile="kiosk", write=True)
    assert figures["store_days"] == 0.25 and figures["store_days_per_s"] > 0
    assert bench_dataset(1, 0.25, profile="kiosk", write=False)["wrote_parquet"] is False
