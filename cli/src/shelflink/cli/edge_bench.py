"""``shelflink bench edge``: the edge's cost inside a gateway, for a big store.

A store of 400 lanes (20 shelves × 20 lanes) and 10 fridges, one reading a
minute per device, scripted with customer removals, restocks and noisy load
cells. Three figures:

- readings per second through the whole edge path (feature update, one
  batched inference per tick, lane alerts, cold-chain rules, event records)
  on one core, messages built beforehand so that decoding is not counted;
- inference latency per tick: all lanes in one batched call, against one
  call per lane (the baseline: what a naive integration would do);
- the resident memory of a real gateway process (``shelflink gateway run``)
  with this store's config and the model loaded, read from the kernel.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shelflink.device import DeviceKind, DeviceMessage, FridgeReading, ShelfReading
from shelflink.device.gtin import make_gtin
from shelflink.device.sequence import SequenceStore
from shelflink.edge.stockout_model import StockoutModel, default_model_path
from shelflink.gateway.config import GatewayConfig
from shelflink.gateway.edge_runner import EdgeRunner
from shelflink.gateway.events import EventFactory

STORE = "benchedge"
SHELVES, LANES_PER_SHELF, FRIDGES = 20, 20, 10
START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC, a Monday


def edge_bench_config(root: Path, health_port: int = 0) -> GatewayConfig:
    """The benchmark store: 400 lanes on 20 shelves, 10 fridges."""
    shelves = [
        {
            "id": f"{STORE}-shelf-{s:02d}",
            "kind": DeviceKind.SHELF,
            "lanes": [
                {
                    "gtin": make_gtin(f"40000{s:02d}{lane:05d}"),
                    "unit_g": 150.0 + 17.0 * ((s * LANES_PER_SHELF + lane) % 23),
                    "capacity": 12 + (lane % 4) * 6,
                }
                for lane in range(LANES_PER_SHELF)
            ],
        }
        for s in range(SHELVES)
    ]
    fridges = [{"id": f"{STORE}-fridge-{f:02d}", "kind": DeviceKind.FRIDGE} for f in range(FRIDGES)]
    return GatewayConfig.model_validate(
        {
            "store_id": STORE,
            "gateway_id": f"gw-{STORE}",
            "buffer": {"path": root / "buffer.sqlite"},
            "dead_letter": {"path": root / "dead_letter.sqlite"},
            "sequence": {"state_dir": root / "sequences"},
            "health": {"port": health_port},
            "devices": shelves + fridges,
            "log_format": "text",
        }
    )


def scripted_messages(config: GatewayConfig, minutes: int, seed: int = 0) -> list[DeviceMessage]:
    """Readings of every device for ``minutes`` ticks: removals, restocks, noise, fridges."""
    rng = np.random.default_rng(seed)
    shelves = [d for d in config.devices if d.kind is DeviceKind.SHELF]
    fridges = [d for d in config.devices if d.kind is DeviceKind.FRIDGE]
    unit_g = [np.array([lane.unit_g for lane in d.lanes]) for d in shelves]
    capacity = [np.array([lane.capacity for lane in d.lanes]) for d in shelves]
    units = [c.copy() for c in capacity]
    tare = [rng.normal(0, 8, len(c)) for c in capacity]
    messages: list[DeviceMessage] = []
    seq = 0
    for minute in range(minutes):
        ts = START_MS + minute * 60_000
        for s, device in enumerate(shelves):
            taken = rng.poisson(0.03, len(units[s]))
            units[s] = np.maximum(units[s] - taken, 0)
            refill = (units[s] < 3) & (rng.random(len(units[s])) < 0.02)
            units[s] = np.where(refill, capacity[s], units[s])
            grams = units[s] * unit_g[s] + tare[s] + rng.normal(0, 1.5, len(units[s]))
            messages.append(
                ShelfReading(
                    device=device.id,
                    seq=seq,
                    ts=ts,
                    board_c=24.0,
                    grams=[round(float(g), 1) for g in grams],
                )
            )
            seq += 1
        for f, device in enumerate(fridges):
            cycle = (minute + 7 * f) % 30
            messages.append(
                FridgeReading(
                    device=device.id,
                    seq=seq,
                    ts=ts,
                    cabinet_c=round(3.0 + cycle / 15.0 + float(rng.normal(0, 0.05)), 2),
                    evaporator_c=-6.0 if cycle < 12 else 2.0,
                    door_open=bool(rng.random() < 0.05),
                    compressor_on=cycle < 12,
                    defrost_on=False,
                )
            )
            seq += 1
    return messages


def _percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1000.0, q))


def measure_throughput(
    config: GatewayConfig, messages: list[DeviceMessage], state_dir: Path
) -> dict[str, Any]:
    events = EventFactory(config.gateway_id, SequenceStore(state_dir / "edge-bench.seq"))
    edge = EdgeRunner(config, events)
    edge.model = StockoutModel.load(edge.model_path)
    readings = sum(len(m.grams) if isinstance(m, ShelfReading) else 1 for m in messages)
    started = time.perf_counter()
    for message in messages:
        edge.observe(message)
    elapsed = time.perf_counter() - started
    return {
        "readings": readings,
        "seconds": elapsed,
        "readings_per_s": readings / elapsed,
        "ticks": edge.counters.ticks,
        "events": edge.pending_events(),
    }


def measure_inference(
    model: StockoutModel, lanes: int, ticks: int, seed: int = 0
) -> dict[str, float]:
    """Per-tick latency: one batched call for all lanes vs one call per lane."""
    from shelflink.stream.lanes import FEATURE_NAMES

    rng = np.random.default_rng(seed)
    batched: list[float] = []
    per_lane: list[float] = []
    for _ in range(ticks):
        x = rng.normal(0, 1, (lanes, len(FEATURE_NAMES))).astype(np.float32)
        x = np.abs(x)  # features are counts, rates and times: non-negative mostly
        t0 = time.perf_counter()
        model.predict(x)
        t1 = time.perf_counter()
        model.predict_each(x)
        t2 = time.perf_counter()
        batched.append(t1 - t0)
        per_lane.append(t2 - t1)
    return {
        "infer_p50_ms": _percentile_ms(batched, 50),
        "infer_p99_ms": _percentile_ms(batched, 99),
        "per_lane_p50_ms": _percentile_ms(per_lane, 50),
        "per_lane_p99_ms": _percentile_ms(per_lane, 99),
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _model_loaded(port: int) -> bool:
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()  # 503: degraded (no store broker on purpose), the body still tells
    except OSError:
        return False  # not listening yet
    return bool(json.loads(raw).get("edge", {}).get("model"))


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def measure_gateway_rss(root: Path, *, edge: bool = True, timeout_s: float = 60.0) -> float:
    """Start ``shelflink gateway run`` for the benchmark store; its RSS once the model is in.

    With ``edge=False`` the same gateway runs without its edge: the baseline
    that tells what the model and the features cost.
    """
    import tomli_w

    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = edge_bench_config(root, health_port=port)
    path = root / "gateway.toml"
    data = config.model_dump(mode="json", exclude_none=True)
    # No broker on purpose: the gateway retries its link and the figure is its own.
    data["broker"]["url"] = f"mqtt://127.0.0.1:{_free_port()}"
    data["edge"]["enabled"] = edge
    path.write_text(tomli_w.dumps(data))
    process = subprocess.Popen(
        [sys.executable, "-m", "shelflink.cli.main", "gateway", "run", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the gateway exited with {process.returncode}")
            if _model_loaded(port) if edge else _listening(port):
                if not edge:
                    time.sleep(1.0)  # let start-up settle as the edge case's model load does
                return _rss_mb(process.pid)
            time.sleep(0.2)
        raise RuntimeError("the gateway did not report a loaded model in time")
    finally:
        process.terminate()
        process.wait(timeout=30)


def bench_edge(
    minutes: int = 120,
    infer_ticks: int = 200,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    say = progress or (lambda _: None)
    # One core, as a store box would give the edge: the figure must not lean on a second one.
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory(prefix="shelflink-edge-bench-") as tmp:
        root = Path(tmp)
        config = edge_bench_config(root)
        say(f"scripting {minutes} minutes of a {SHELVES * LANES_PER_SHELF}-lane store")
        messages = scripted_messages(config, minutes)
        say("features + inference + rules")
        throughput = measure_throughput(config, messages, root)
        say(f"inference latency over {infer_ticks} ticks")
        model = StockoutModel.load(default_model_path())
        latency = measure_inference(model, SHELVES * LANES_PER_SHELF, infer_ticks)
        say("resident memory of a gateway process with the model loaded")
        rss = measure_gateway_rss(root / "rss")
        rss_bare = measure_gateway_rss(root / "rss-bare", edge=False)
    return {
        "lanes": SHELVES * LANES_PER_SHELF,
        "fridges": FRIDGES,
        **throughput,
        **latency,
        "rss_mb": rss,
        "rss_without_edge_mb": rss_bare,
        "model": model.info.version,
        "quantization": model.info.quantization,
    }
