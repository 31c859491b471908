"""The cold-chain rules on real simulator output: quiet on healthy fridges, loud on faulty ones.

Data sets are small (a few stores, two or three simulated days) but real:
defrost cycles every 8 hours, doors opened by simulated customers, injected
compressor failures and doors left ajar, written by ``write_dataset``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from shelflink.edge.cold_chain import ColdChainConfig, ColdChainMonitor
from shelflink.edge.cold_chain_day import utc_day
from shelflink.edge.cold_chain_replay import (
    ColdChainReplay,
    detection_summary,
    load_faults,
    load_fridge_samples,
    replay_cold_chain,
)
from shelflink.sim import write_dataset
from shelflink.stream.fridge_features import FridgeSample


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cold-chain-healthy")
    mix = {"kiosk": 1.0, "convenience": 1.0, "supermarket": 1.0}
    write_dataset(stores=3, days=3, seed=3, out=out, profile_mix=mix)
    return out


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cold-chain-faulty")
    write_dataset(stores=4, days=2, seed=5, out=out, fault_rate=3.0)
    return out


def test_healthy_fridges_through_defrosts_and_customers_raise_no_alarm(healthy: Path) -> None:
    samples = load_fridge_samples(healthy)
    # The data set really holds what could fool the rules: about three defrosts a
    # day per fridge, customers opening doors, and defrosts that warm the air.
    per_fridge: dict[str, list[bool]] = {}
    for s in sorted(samples, key=lambda s: s.ts_ms):
        per_fridge.setdefault(s.device, []).append(s.defrost_on)
    for flags in per_fridge.values():
        starts = sum(1 for a, b in itertools.pairwise(flags) if b and not a)
        assert 8 <= starts + flags[0] <= 10  # 3 days × 3 defrosts
    assert sum(s.door_open for s in samples) > 1000
    assert max(s.cabinet_c for s in samples if s.defrost_on) > 7.0

    replay = replay_cold_chain(healthy)
    assert replay.alarms == []
    counters = replay.counters
    assert (counters.late, counters.duplicates, counters.sensor_faulty) == (0, 0, 0)
    # Two full UTC days closed per fridge (the third is still open), all within limits.
    assert len(replay.days) == 2 * len(per_fridge)
    for day in replay.days:
        assert day.samples == 1440 and day.excluded_samples == 0
        assert 3.5 < day.mkt_c < 5.0 and day.mkt_c >= day.min_c
        assert day.minutes_above_limit < 15.0  # a few defrost minutes, on record


@pytest.fixture(scope="module")
def faulty_replay(faulty: Path) -> ColdChainReplay:
    return replay_cold_chain(faulty)


def test_injected_faults_raise_the_matching_alarm_within_the_fault(
    faulty: Path, faulty_replay: ColdChainReplay
) -> None:
    faults = load_faults(faulty)
    kinds = Counter(f.kind for f in faults)
    assert kinds["compressor_failure"] >= 5 and kinds["door_ajar"] >= 5
    replay = faulty_replay
    summary = detection_summary(replay)
    print("\ndetection on simulator faults (minutes from the fault's start):")
    for kind, row in summary.items():
        print(f"  {kind}: " + ", ".join(f"{k}={v:.1f}" for k, v in row.items()))
    for kind in ("door_ajar", "compressor_failure"):
        assert summary[kind]["eligible"] >= 4
        assert summary[kind]["detected"] == summary[kind]["eligible"]
    missed = [d.fault for d in replay.detections if not d.detected]
    assert missed == []
    # A door left ajar reports open on every reading: 15 minutes, then the alarm.
    assert summary["door_ajar"]["delay_max_min"] <= ColdChainConfig().door_open_max_min + 1.5
    # A dead compressor is found by the minutes it stays off once the cabinet is
    # past its cut-in, before the product's own limit is crossed for long.
    assert summary["compressor_failure"]["delay_max_min"] < 90.0
    # Every alarm raised is explained by a fault of its fridge (offline faults excepted).
    assert replay.unexplained == []


def test_duplicated_deliveries_change_no_alarm(faulty: Path) -> None:
    samples = sorted(load_fridge_samples(faulty), key=lambda s: s.ts_ms)

    def alarms(
        stream: list[FridgeSample],
    ) -> tuple[list[tuple[str, str, bool, int]], ColdChainMonitor]:
        monitor = ColdChainMonitor(ColdChainConfig())
        out = []
        for s in stream:
            out += [(a.device, a.kind.value, a.raised, a.ts_ms) for a in monitor.observe(s).alarms]
        return out, monitor

    once, _ = alarms(list(samples))
    # Every 7th reading delivered twice (a QoS 1 redelivery); after every 11th, the
    # reading its fridge sent before it arrives again, late.
    noisy: list[FridgeSample] = []
    previous: dict[str, FridgeSample] = {}
    for i, s in enumerate(samples):
        noisy.append(s)
        if i % 7 == 0:
            noisy.append(s)
        if i % 11 == 0 and s.device in previous:
            noisy.append(previous[s.device])
        previous[s.device] = s
    twice, monitor = alarms(noisy)
    assert twice == once and once
    counters = monitor.counters()
    assert counters.duplicates == len(range(0, len(samples), 7))
    assert counters.late > 1000
    assert counters.late + counters.duplicates == len(noisy) - len(samples)


def test_day_records_show_the_failures(faulty_replay: ColdChainReplay, faulty: Path) -> None:
    replay = faulty_replay
    closed = {(d.device, d.day): d for d in replay.days}
    checked = 0
    for f in replay.faults:
        day = utc_day(f.start_ms)
        if f.kind != "compressor_failure" or f.minutes < 90 or utc_day(f.end_ms) != day:
            continue
        record = closed.get((f.device, day))
        if record is not None:
            # A dead compressor for 90 minutes or more leaves its mark on the day's
            # record (how much depends on the room and the doors: at night, little).
            assert record.minutes_above_limit > 0.0 and record.max_c > record.limit_c
            checked += 1
    assert checked >= 3
    fridge_rows = pq.read_table(faulty / "fridge_readings.parquet", columns=["device"]).num_rows
    assert replay.counters.accepted == fridge_rows
