"""Replay a simulated data set's fridge readings through the cold-chain rules; score the alarms.

The simulator writes what every fridge reported (``fridge_readings.parquet``)
and which faults it injected (``faults.parquet``). Fed in time order, as a
gateway would see them, the readings should raise the matching alarm within
each fault long enough to be provable, and no alarm that no fault explains:

- ``door_ajar`` → ``door_open``; ``compressor_failure`` → ``compressor_failure``;
- a fault is *eligible* when it lasts at least the minutes given for its kind
  (a compressor that fails for ten minutes leaves a cabinet that has not even
  warmed past its cut-in) and its fridge was not offline during it;
- an alarm is *explained* when it is raised during a fault of its fridge (other
  than ``offline``) or within ``tail_min`` after it ends (a warm cabinet takes
  a while to cool down once the compressor is back).

Run ``python -m shelflink.edge.cold_chain_replay <data set folder>`` for the
figures in docs/cold-chain.md.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pyarrow.parquet as pq

from shelflink.edge.cold_chain import (
    Alarm,
    AlarmKind,
    ColdChainConfig,
    ColdChainCounters,
    ColdChainDay,
    ColdChainMonitor,
)
from shelflink.stream.fridge_features import MS_PER_MIN, FridgeSample

ALARM_OF_FAULT: Final[Mapping[str, AlarmKind]] = {
    "door_ajar": AlarmKind.DOOR_OPEN,
    "compressor_failure": AlarmKind.COMPRESSOR_FAILURE,
}
DEFAULT_MIN_FAULT_MIN: Final[Mapping[str, float]] = {"door_ajar": 20.0, "compressor_failure": 90.0}


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """One injected fault: ``start_ms`` inclusive, ``end_ms`` exclusive."""

    device: str
    kind: str
    start_ms: int
    end_ms: int

    @property
    def minutes(self) -> float:
        return (self.end_ms - self.start_ms) / MS_PER_MIN


@dataclass(frozen=True, slots=True)
class FaultDetection:
    """Whether (and how fast) the alarm matching one eligible fault was raised."""

    fault: FaultWindow
    detected: bool
    delay_min: float | None  # from the fault's start to the raising reading; 0 if already standing
    already_active: bool = False


@dataclass(frozen=True, slots=True)
class ColdChainReplay:
    alarms: list[Alarm]
    days: list[ColdChainDay]
    counters: ColdChainCounters
    detections: list[FaultDetection]
    unexplained: list[Alarm]
    faults: list[FaultWindow] = field(default_factory=list)


def load_fridge_samples(folder: Path) -> list[FridgeSample]:
    """The fridge readings of a data set, in the order the data set holds them."""
    table = pq.read_table(folder / "fridge_readings.parquet")
    names = ("cabinet_c", "evaporator_c", "door_open", "compressor_on", "defrost_on")
    devices = table.column("device").to_pylist()
    ts = table.column("ts").cast("int64").to_pylist()
    values = [table.column(name).to_pylist() for name in names]
    return [FridgeSample(*row) for row in zip(devices, ts, *values, strict=True)]


def load_faults(folder: Path) -> list[FaultWindow]:
    """The injected faults of a data set's fridge controllers (shelf faults are left out)."""
    devices = pq.read_table(folder / "devices.parquet", columns=["device", "kind"]).to_pylist()
    fridges = {d["device"] for d in devices if d["kind"] == "fridge"}
    rows = pq.read_table(folder / "faults.parquet").to_pylist()
    return [
        FaultWindow(
            r["device"],
            r["kind"],
            round(r["start_ts"].timestamp() * 1000),
            round(r["end_ts"].timestamp() * 1000),
        )
        for r in rows
        if r["device"] in fridges
    ]


def _active_intervals(
    alarms: list[Alarm], end_ms: int
) -> dict[tuple[str, AlarmKind], list[tuple[int, int]]]:
    intervals: dict[tuple[str, AlarmKind], list[tuple[int, int]]] = {}
    open_at: dict[tuple[str, AlarmKind], int] = {}
    for alarm in alarms:
        key = (alarm.device, alarm.kind)
        if alarm.raised:
            open_at[key] = alarm.ts_ms
        elif key in open_at:
            intervals.setdefault(key, []).append((open_at.pop(key), alarm.ts_ms))
    for key, start in open_at.items():
        intervals.setdefault(key, []).append((start, end_ms + 1))
    return intervals


def replay_cold_chain(
    folder: Path,
    config: ColdChainConfig | None = None,
    *,
    min_fault_min: Mapping[str, float] = DEFAULT_MIN_FAULT_MIN,
    tail_min: float = 60.0,
) -> ColdChainReplay:
    """Feed every fridge reading of the data set in ``folder`` to a monitor; score the alarms."""
    monitor = ColdChainMonitor(config or ColdChainConfig())
    samples = sorted(load_fridge_samples(folder), key=lambda s: s.ts_ms)
    alarms: list[Alarm] = []
    days: list[ColdChainDay] = []
    for sample in samples:
        update = monitor.observe(sample)
        alarms.extend(update.alarms)
        days.extend(update.days)
    faults = load_faults(folder)
    end_ms = samples[-1].ts_ms if samples else 0
    intervals = _active_intervals(alarms, end_ms)
    offline: dict[str, list[FaultWindow]] = {}
    for f in faults:
        if f.kind == "offline":
            offline.setdefault(f.device, []).append(f)
    detections: list[FaultDetection] = []
    for f in faults:
        kind = ALARM_OF_FAULT.get(f.kind)
        if kind is None or f.minutes < min_fault_min.get(f.kind, 0.0):
            continue
        if any(o.start_ms < f.end_ms and f.start_ms < o.end_ms for o in offline.get(f.device, [])):
            continue
        hits = [
            (a, b)
            for a, b in intervals.get((f.device, kind), [])
            if a < f.end_ms and f.start_ms < b
        ]
        if not hits:
            detections.append(FaultDetection(f, False, None))
            continue
        raised = min(a for a, _ in hits)
        before = raised < f.start_ms
        delay = 0.0 if before else (raised - f.start_ms) / MS_PER_MIN
        detections.append(FaultDetection(f, True, delay, already_active=before))
    tail_ms = round(tail_min * MS_PER_MIN)
    explaining = [f for f in faults if f.kind != "offline"]
    unexplained = [
        a
        for a in alarms
        if a.raised
        and not any(
            f.device == a.device and f.start_ms <= a.ts_ms < f.end_ms + tail_ms for f in explaining
        )
    ]
    return ColdChainReplay(alarms, days, monitor.counters(), detections, unexplained, faults)


def detection_summary(replay: ColdChainReplay) -> dict[str, dict[str, float]]:
    """Per fault kind: eligible faults, detected ones, delays (minutes) of fresh detections."""
    summary: dict[str, dict[str, float]] = {}
    for kind in ALARM_OF_FAULT:
        mine = [d for d in replay.detections if d.fault.kind == kind]
        delays = [d.delay_min for d in mine if d.delay_min is not None and not d.already_active]
        row: dict[str, float] = {"eligible": len(mine), "detected": sum(d.detected for d in mine)}
        if delays:
            row |= {
                "delay_min_min": min(delays),
                "delay_median_min": statistics.median(delays),
                "delay_max_min": max(delays),
            }
        summary[kind] = row
    return summary


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(
            "usage: python -m shelflink.edge.cold_chain_replay <data set folder>", file=sys.stderr
        )
        return 2
    replay = replay_cold_chain(Path(argv[0]))
    print(f"readings: {replay.counters.accepted} from {replay.counters.fridges} fridges")
    print(
        f"alarms raised: {sum(a.raised for a in replay.alarms)}, "
        f"unexplained by a fault: {len(replay.unexplained)}"
    )
    for kind, row in detection_summary(replay).items():
        figures = ", ".join(f"{k}={v:g}" for k, v in row.items())
        print(f"{kind}: {figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
