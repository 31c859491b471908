"""Cold-chain rules on scripted traces with known answers, one reading a minute.

Every trace carries a little sensor noise (a real sensor always has some), so
only the traces that mean to flat-line do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from shelflink.edge.cold_chain import (
    Alarm,
    AlarmKind,
    ColdChainConfig,
    ColdChainMonitor,
    ColdChainUpdate,
)
from shelflink.stream.fridge_features import FridgeSample

T0 = 1_704_103_200_000  # 2024-01-01 10:00 UTC
MIN = 60_000
FRIDGE = "s0001-fridge-01"


def noise(minute: int) -> float:
    return ((minute * 7) % 5 - 2) * 0.02  # -0.04 .. +0.04, never flat for 3 minutes


@dataclass
class Trace:
    """Feeds a monitor minute by minute and remembers at which minute each alarm moved."""

    monitor: ColdChainMonitor = field(default_factory=lambda: ColdChainMonitor(ColdChainConfig()))
    device: str = FRIDGE
    minute: int = 0
    alarms: list[tuple[int, Alarm]] = field(default_factory=list)

    def run(
        self,
        temps: Iterable[float],
        *,
        door: bool = False,
        compressor: bool = False,
        defrost: bool = False,
        noisy: bool = True,
    ) -> None:
        for temp in temps:
            cabinet = round(temp + (noise(self.minute) if noisy else 0.0), 2)
            update = self.monitor.observe(
                FridgeSample(
                    self.device, T0 + self.minute * MIN, cabinet, -5.0, door, compressor, defrost
                )
            )
            self.alarms.extend((self.minute, a) for a in update.alarms)
            self.minute += 1

    def steady(self, minutes: int, temp: float = 4.0) -> None:
        self.run([temp] * minutes)

    def moves(self) -> list[tuple[int, str, bool]]:
        return [(m, a.kind.value, a.raised) for m, a in self.alarms]


def ramp(start: float, end: float, minutes: int) -> list[float]:
    return [start + (end - start) * i / (minutes - 1) for i in range(minutes)]


def test_warm_for_longer_than_allowed_raises_once_and_clears_with_hysteresis() -> None:
    trace = Trace()
    trace.steady(10)
    trace.run(ramp(3.4, 9.4, 6), door=True)  # warm stock loaded with the door open
    trace.run(ramp(9.4, 8.9, 45), compressor=True)  # the compressor struggles to pull down
    # Above 8 °C from minute 14 (8.2 °C), which stands for minutes 13-14: the run
    # is 30 minutes at minute 43 (not more than allowed) and 31 at minute 44.
    assert trace.moves() == [(44, "temperature_high", True)]
    alarm = trace.alarms[0][1]
    assert alarm.critical and alarm.detail["minutes_above"] == 31.0
    assert alarm.detail["limit_c"] == 8.0 and alarm.detail["product_class"] == "chilled"
    # Under the limit but inside the 0.5 °C hysteresis: still standing, not repeated.
    trace.run([7.8] * 5, compressor=True)
    assert [a.kind for a in trace.monitor.active()] == [AlarmKind.TEMPERATURE_HIGH]
    trace.run([7.2] * 3, compressor=True)
    assert trace.moves()[1:] == [(66, "temperature_high", False)]
    assert trace.monitor.active() == []


def test_a_normal_defrost_cycle_does_not_alarm_even_above_the_limit() -> None:
    # A defrost that keeps the air above 8 °C for 36 minutes in all, 24 of them
    # after the heater stopped (minute 80), then cools down: expected, no alarm.
    def script(trace: Trace, defrost_flag: bool) -> None:
        trace.steady(60)
        heating = ramp(4.0, 9.0, 10) + [9.0 + 0.05 * i for i in range(10)]
        trace.run(heating, defrost=defrost_flag)  # the 20-minute defrost
        trace.run([9.5] * 20, compressor=True)  # still warm while the coil refreezes
        trace.run(ramp(9.5, 4.0, 15), compressor=True)
        trace.steady(120)

    trace = Trace()
    script(trace, defrost_flag=True)
    assert trace.moves() == []
    # The very same temperatures without the defrost flag are an excursion (and a
    # compressor that stayed off while warm).
    control = Trace()
    script(control, defrost_flag=False)
    assert ("temperature_high", True) in {(k, r) for _, k, r in control.moves()}


def test_a_defrost_that_overruns_alarms_and_stops_suppressing() -> None:
    trace = Trace()
    trace.steady(30)
    trace.run(ramp(4.0, 9.0, 10) + [9.0 + 0.05 * i for i in range(50)], defrost=True)
    # Defrost readings from minute 30: its 46th minute (minute 75) is past the 45
    # allowed. The air has been above 8 °C since minute 38 (38 minutes): no longer
    # excused, so the temperature alarm comes with it.
    assert trace.moves() == [(75, "defrost_overrun", True), (75, "temperature_high", True)]
    overrun = trace.alarms[0][1]
    assert overrun.detail["defrost_min"] == 46.0 and not overrun.critical
    trace.run([9.0] * 2, compressor=True)
    assert (90, "defrost_overrun", False) in trace.moves()


def test_a_flat_lined_sensor_is_a_fault_and_cannot_raise_a_temperature_alarm() -> None:
    trace = Trace()
    trace.steady(30)
    trace.run(ramp(4.4, 7.6, 4), compressor=True)
    # A dead sensor stuck at 9.00 °C from minute 34 (the compressor keeps running).
    trace.run([9.0] * 60, compressor=True, noisy=False)
    # 31 identical readings span 30 minutes: the fault is proven at minute 64.
    assert trace.moves() == [(64, "sensor_fault", True)]
    fault = trace.alarms[0][1]
    assert fault.detail["cause"] == "flat_line" and fault.detail["minutes"] == 30.0
    # Minutes 34..63 were trusted until then: 30 minutes above 8 °C, not more than
    # allowed. From minute 64 on the readings are ignored, so no temperature alarm.
    assert trace.monitor.counters().sensor_faulty == 30
    trace.steady(10)
    assert trace.moves()[1:] == [(94, "sensor_fault", False)]


def test_an_impossible_jump_is_a_fault_and_the_reading_is_ignored() -> None:
    trace = Trace()
    trace.steady(30)
    trace.run([35.0])  # +31 °C in one minute: no cabinet can do that
    trace.steady(40)
    assert trace.moves() == [(30, "sensor_fault", True), (31, "sensor_fault", False)]
    detail = trace.alarms[0][1].detail
    jump = detail["jump_c"]
    assert detail["cause"] == "jump" and isinstance(jump, float) and jump > 30
    assert trace.monitor.counters().sensor_faulty == 1


def test_after_a_silence_a_larger_change_is_plausible() -> None:
    trace = Trace()
    trace.steady(30)
    trace.minute += 3  # the fridge was silent for three minutes
    trace.run([12.0])  # +8 °C in 4 minutes: possible with the door wide open
    assert trace.moves() == []


def test_a_door_left_open_alarms_but_customers_do_not() -> None:
    trace = Trace()
    for _ in range(60):  # busy hour: door opened in every other minute
        trace.run([4.0], door=True)
        trace.run([4.0])
    assert trace.moves() == []
    trace.run([4.0] * 20, door=True)  # minutes 120..139: left open
    trace.run([4.0])
    # Minute 120 stands for 119-120; at minute 135 the door has been open 16 minutes.
    assert trace.moves() == [(135, "door_open", True), (140, "door_open", False)]
    assert trace.alarms[0][1].detail["door_open_min"] == 16.0


def test_a_compressor_that_does_not_start_is_found_before_the_product_is_warm() -> None:
    trace = Trace()
    trace.steady(30)
    trace.run(ramp(4.0, 12.0, 81))  # warms 0.1 °C/min, compressor never reported running
    moves = trace.moves()
    # Above the 6 °C cut-in from minute 51 (6.0 exactly at 50): the 11th warm
    # minute with the compressor off is minute 61, at 7.1 °C, well before 8 °C.
    assert moves[0] == (61, "compressor_failure", True)
    assert trace.alarms[0][1].detail["cause"] == "not_running"
    assert trace.alarms[0][1].critical
    # The temperature alarm follows 30 minutes above 8 °C later.
    assert moves[1][1:] == ("temperature_high", True)
    trace.run(ramp(12.0, 4.0, 20), compressor=True)
    cleared = {k for _, k, raised in trace.moves() if not raised}
    assert cleared == {"compressor_failure", "temperature_high"}


def test_a_compressor_that_runs_but_does_not_cool_is_found() -> None:
    trace = Trace()
    trace.steady(30)
    trace.run(ramp(6.2, 8.2, 41), compressor=True)  # running, yet +0.05 °C/min
    # Running 20 minutes with a rise of 0.05 °C/min: minute 49 is the 20th minute.
    assert trace.moves()[0] == (49, "compressor_failure", True)
    detail = trace.alarms[0][1].detail
    rise = detail["rise_c_per_min"]
    assert detail["cause"] == "not_cooling" and isinstance(rise, float) and rise >= 0.05


def test_a_running_compressor_pulling_down_and_a_defrost_are_not_failures() -> None:
    trace = Trace()
    trace.steady(30)
    trace.run(ramp(7.5, 6.1, 30), compressor=True)  # warm, running, cooling slowly
    trace.run([7.0] * 20, defrost=True)  # warm and off, but defrosting
    trace.run(ramp(7.0, 4.0, 10), compressor=True)
    assert trace.moves() == []


def test_too_cold_for_chilled_food() -> None:
    trace = Trace()
    trace.steady(10)
    trace.run(ramp(3.0, -2.0, 6))  # a thermostat stuck cold: below -1 °C from minute 15
    trace.steady(35, -2.5)
    trace.run(ramp(-2.5, 4.0, 8))  # back above -0.5 °C (limit + hysteresis) at minute 54
    assert trace.moves() == [(45, "temperature_low", True), (54, "temperature_low", False)]
    assert not trace.alarms[0][1].critical


def test_each_fridge_is_judged_by_its_own_class() -> None:
    config = ColdChainConfig(fridges={"s0001-fridge-02": "frozen"})
    monitor = ColdChainMonitor(config)
    chilled = Trace(monitor, "s0001-fridge-01")
    frozen = Trace(monitor, "s0001-fridge-02")
    # The same -12 °C is too warm for a freezer and too cold for a chilled fridge.
    frozen.steady(20, -20.0)
    frozen.run(ramp(-20.0, -12.0, 9))  # above -15 °C from minute 26
    frozen.run([-12.0] * 40, compressor=True)
    chilled.steady(20, 4.0)
    chilled.run(ramp(4.0, -12.0, 9))  # below -1 °C from minute 23
    chilled.steady(40, -12.0)
    assert frozen.moves() == [(56, "temperature_high", True)]
    assert chilled.moves() == [(53, "temperature_low", True)]
    assert [(a.device, a.kind) for a in monitor.active()] == [
        ("s0001-fridge-01", AlarmKind.TEMPERATURE_LOW),
        ("s0001-fridge-02", AlarmKind.TEMPERATURE_HIGH),
    ]


def test_late_and_duplicate_readings_are_dropped_counted_and_change_nothing() -> None:
    monitor = ColdChainMonitor(ColdChainConfig())
    trace = Trace(monitor)
    trace.steady(10)
    late = FridgeSample(FRIDGE, T0 + 5 * MIN, 30.0, -5.0, True, False, False)
    again = FridgeSample(FRIDGE, T0 + 9 * MIN, 30.0, -5.0, True, False, False)
    assert monitor.observe(late) == ColdChainUpdate(accepted=False)
    assert monitor.observe(again) == ColdChainUpdate(accepted=False)
    counters = monitor.counters()
    assert (counters.accepted, counters.late, counters.duplicates) == (10, 1, 1)
    trace.steady(1)
    assert trace.moves() == []  # the 30 °C readings never reached the rules
    features = monitor.features(FRIDGE)
    assert features is not None and features.door_open_run_min == 0.0
    assert monitor.features("s0001-fridge-99") is None
