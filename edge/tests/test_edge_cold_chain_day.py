"""The daily record: minutes above the limit, MKT by hand, midnight, sensor faults left out."""

from __future__ import annotations

import datetime as dt

import pytest

from shelflink.edge.cold_chain import ColdChainConfig, ColdChainDay, ColdChainMonitor
from shelflink.stream.fridge_features import FridgeSample

DAY1 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MIN = 60_000
FRIDGE = "s0001-fridge-01"


def sample(ts_ms: int, cabinet_c: float, compressor: bool = False) -> FridgeSample:
    return FridgeSample(FRIDGE, ts_ms, cabinet_c, -5.0, False, compressor, False)


def feed(monitor: ColdChainMonitor, samples: list[FridgeSample]) -> list[ColdChainDay]:
    days: list[ColdChainDay] = []
    for s in samples:
        days.extend(monitor.observe(s).days)
    return days


def test_a_day_with_a_warm_hour_computed_by_hand() -> None:
    # 1440 readings, one a minute: 3.0 and 5.0 °C in turn, except 12:00-12:59 when
    # the cabinet reads 9.0 and 7.0 in turn (the compressor running flat out).
    readings = []
    for m in range(1440):
        warm = 720 <= m < 780
        temp = (7.0 if m % 2 else 9.0) if warm else (5.0 if m % 2 else 3.0)
        readings.append(sample(DAY1 + m * MIN, temp, compressor=warm))
    monitor = ColdChainMonitor(ColdChainConfig())
    assert feed(monitor, readings) == []  # the day is still open
    [day] = feed(monitor, [sample(DAY1 + 1440 * MIN, 4.0)])  # the first reading of Jan 2
    # ΔH/R = 10 000 K; exp(-10000/T) for 3, 5, 7, 9 °C (276.15 ... 282.15 K):
    #   1.876030e-16, 2.434002e-16, 3.146209e-16, 4.052041e-16
    # mean = (690 × 1.876030 + 690 × 2.434002 + 30 × 3.146209 + 30 × 4.052041) e-16 / 1440
    #      = 2.215187e-16; -ln(mean) = 36.046024; 10000 / 36.046024 = 277.42310 K
    # MKT = 4.27310 °C, against an arithmetic mean of 4.1667 °C.
    assert day.mkt_c == pytest.approx(4.27310, abs=1e-5)
    assert day == ColdChainDay(
        device=FRIDGE,
        day=dt.date(2024, 1, 1),
        samples=1440,
        minutes_above_limit=30.0,  # the 30 readings at 9.0 °C
        mkt_c=day.mkt_c,
        min_c=3.0,
        max_c=9.0,
        limit_c=8.0,
        excluded_samples=0,
    )
    [still_open] = monitor.open_days()
    assert still_open.day == dt.date(2024, 1, 2) and still_open.samples == 1


def test_minutes_before_midnight_belong_to_the_day_before() -> None:
    monitor = ColdChainMonitor(ColdChainConfig())
    # A reading every 10 minutes, all above the limit, from 22:05 to 00:05.
    start = DAY1 + (22 * 60 + 5) * MIN
    readings = [sample(start + i * 10 * MIN, 9.0 + 0.2 * (i % 2), True) for i in range(13)]
    [day1] = feed(monitor, readings)
    # 22:05 is the first reading (nothing known before it); 11 more until 23:55
    # stand for 10 minutes each, and the reading at 00:05 for 23:55-00:05: half of it
    # is January 1st.
    assert day1.day == dt.date(2024, 1, 1) and day1.samples == 12
    assert day1.minutes_above_limit == pytest.approx(115.0)
    [day2] = monitor.open_days()
    assert day2.samples == 1 and day2.minutes_above_limit == pytest.approx(5.0)


def test_readings_of_a_faulty_sensor_are_left_out_of_the_record() -> None:
    monitor = ColdChainMonitor(ColdChainConfig())
    readings = [sample(DAY1 + m * MIN, 4.0 + 0.1 * (m % 3)) for m in range(60)]
    readings[30] = sample(DAY1 + 30 * MIN, 40.0)  # an impossible spike
    feed(monitor, readings)
    [day] = monitor.open_days()
    assert day.samples == 59 and day.excluded_samples == 1
    assert day.max_c == pytest.approx(4.2) and day.minutes_above_limit == 0.0
