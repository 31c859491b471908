"""``shelflink bench gateway``: readings per second one gateway process accepts.

The whole intake path of a real gateway — the contract's JSON decode and
checks, the registry, sequence bookkeeping and the durable buffer's commit —
fed in-process with device JSON for a store of 50 shelves × 8 lanes (400
lanes), so the figure is the gateway's and not a broker's. The ceiling is a
raw SQLite ``executemany`` of the same rows into the same schema, in the same
run. Peak memory is the process's maximum resident set.
"""

from __future__ import annotations

import asyncio
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from shelflink.device import DeviceKind, ShelfReading
from shelflink.device.batch import to_batch_item
from shelflink.device.gtin import make_gtin
from shelflink.device.sequence import SequenceStore
from shelflink.gateway.buffer import DurableBuffer
from shelflink.gateway.buffer_bench import raw_executemany
from shelflink.gateway.buffer_record import Record, record_of
from shelflink.gateway.config import GatewayConfig
from shelflink.gateway.dead_letter import DeadLetterStore
from shelflink.gateway.intake import Intake
from shelflink.gateway.registry import DeviceRegistry
from shelflink.gateway.sequence_tracker import SequenceTracker

STORE = "bench"


def bench_config(root: Path, devices: int, lanes: int) -> GatewayConfig:
    planogram = [
        {"gtin": make_gtin(f"400000001{i:03d}"), "unit_g": 300.0 + i, "capacity": 24}
        for i in range(lanes)
    ]
    return GatewayConfig.model_validate(
        {
            "store_id": STORE,
            "gateway_id": f"gw-{STORE}",
            "buffer": {"path": root / "buffer.sqlite", "max_bytes": 2 << 30},
            "dead_letter": {"path": root / "dead_letter.sqlite"},
            "sequence": {"state_dir": root / "sequences"},
            "devices": [
                {"id": f"{STORE}-shelf-{d:02d}", "kind": DeviceKind.SHELF, "lanes": planogram}
                for d in range(devices)
            ],
        }
    )


def _grams(seq: int, lanes: int) -> list[float | None]:
    return [1000.0 + (seq * 7 + lane * 13) % 900 for lane in range(lanes)]


class _Payloads:
    """Device JSON from templates: building it per message (or pydantic models)
    would bill the devices' encoding to the gateway."""

    VARIANTS = 16

    def __init__(self, lanes: int) -> None:
        self._grams = [
            ",".join(f"{g:.1f}" for g in _grams(v, lanes)).encode() for v in range(self.VARIANTS)
        ]

    def payload(self, device: str, seq: int, ts: int) -> bytes:
        return (
            b'{"v":1,"type":"shelf.reading","device":"%s","seq":%d,"ts":%d,"grams":[%s],"board_c":21.5}'
            % (device.encode(), seq, ts, self._grams[seq % self.VARIANTS])
        )


async def _intake_run(config: GatewayConfig, messages: int, lanes: int) -> dict[str, Any]:
    devices = [d.id for d in config.devices]
    topics = [f"shelflink/v1/{STORE}/{d}/telemetry" for d in devices]
    settled = 0

    def on_settled() -> None:
        nonlocal settled
        settled += 1

    buffer = DurableBuffer(config.buffer.path, max_bytes=config.buffer.max_bytes)
    dead_letters = DeadLetterStore(config.dead_letter.path)
    async with buffer, dead_letters:
        now = time.time_ns() // 1_000_000
        intake = Intake(
            DeviceRegistry(config), SequenceTracker(), buffer, dead_letters,
            config.limits.limits(), lambda: now,
            SequenceStore(config.sequence.state_dir / "gateway.seq"),
        )  # fmt: skip
        payloads = _Payloads(lanes)
        began = time.perf_counter()
        for i in range(messages):
            d = i % len(devices)
            payload = payloads.payload(devices[d], i // len(devices), now)
            await intake.receive(topics[d], payload, on_settled)
        await intake.drain()
        elapsed = time.perf_counter() - began
        stats = buffer.stats()
    accepted = sum(intake.counters.accepted.values())
    if accepted != messages or settled != messages:
        raise RuntimeError(f"bench lost messages: {accepted} accepted, {settled} settled")
    return {
        "readings_per_s": round(messages / elapsed),
        "lane_values_per_s": round(messages * lanes / elapsed),
        "seconds": round(elapsed, 3),
        "commits": stats.commits,
    }


def _same_rows(config: GatewayConfig, messages: int, lanes: int) -> list[Record]:
    devices = [d.id for d in config.devices]
    rows = []
    for i in range(messages):
        d = i % len(devices)
        reading = ShelfReading(
            device=devices[d], seq=i // len(devices), ts=1,
            grams=_grams(i // len(devices) % _Payloads.VARIANTS, lanes), board_c=21.5,
        )  # fmt: skip
        item = to_batch_item(reading)
        assert item is not None
        rows.append(record_of(item))
    return rows


def bench_gateway(messages: int = 200_000, devices: int = 50, lanes: int = 8) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="shelflink-bench-gw-") as tmp:
        root = Path(tmp)
        config = bench_config(root, devices, lanes)
        ours = asyncio.run(_intake_run(config, messages, lanes))
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows = _same_rows(config, messages, lanes)
        ceiling = raw_executemany(root / "ceiling.sqlite", rows, "FULL", per_transaction=5000)
    return {
        "messages": messages,
        "devices": devices,
        "lanes": devices * lanes,
        "gateway": ours,
        "sqlite_ceiling": ceiling,
        "readings_per_s": ours["readings_per_s"],
        "sqlite_ceiling_per_s": ceiling["rows_per_s"],
        "rss_mb": round(rss_mb, 1),
    }
