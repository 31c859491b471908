"""The cold-chain rules of one fridge, evaluated on each reading as it arrives.

Two feature states watch the fridge: ``raw`` sees every accepted reading (the
sensor checks, the door, the compressor and defrost flags), ``trusted`` only
the readings that no sensor fault has flagged (the temperature rules). So a
dead or jumping sensor can neither raise nor clear a temperature alarm.

Each alarm is a transition: raised once when its condition is proven, cleared
once when the fridge is back (temperatures with a hysteresis), never repeated
while it stands. The thresholds and their reasons are in docs/cold-chain.md.
"""

from __future__ import annotations

import datetime as dt

from shelflink.edge.cold_chain_alarm import CRITICAL_KINDS, Alarm, AlarmKind, Detail
from shelflink.edge.cold_chain_config import ColdChainConfig, ProductClass
from shelflink.edge.cold_chain_day import ColdChainDay, DayRecord, day_start_ms, utc_day
from shelflink.stream.fridge_features import MS_PER_MIN, FridgeFeatureState, FridgeSample

ONE_DAY = dt.timedelta(days=1)


def _at(cabinet_c: float) -> Detail:
    # Readings arrive as float32 values: 3.880000114440918 is 3.88 on the sensor.
    return {"cabinet_c": round(cabinet_c, 2)}


class FridgeRules:
    """The rule state of one fridge. :meth:`observe` returns what one reading changed."""

    def __init__(self, device: str, config: ColdChainConfig) -> None:
        self.device = device
        self.config = config
        self.product_class_name = config.fridges.get(device, config.default_class)
        self.product: ProductClass = config.classes[self.product_class_name]
        self.raw = self._features(config)
        self.trusted = self._features(config)
        self.active: dict[AlarmKind, Alarm] = {}
        self.faulty_readings = 0
        self._last_trusted: FridgeSample | None = None
        self._previous_c: float | None = None  # the cabinet of the reading before
        self._off_warm_ms = 0  # compressor off, cabinet above cut-in, no defrost
        self._day: DayRecord | None = None

    def observe(self, sample: FridgeSample) -> tuple[list[Alarm], list[ColdChainDay]] | None:
        """Alarms raised or cleared and days closed by ``sample``; ``None`` if it was refused."""
        if not self.raw.observe(sample):
            return None
        alarms: list[Alarm] = []
        faulty = self._sensor(sample, alarms)
        yesterday = self._roll_day(sample)
        if faulty:
            self.faulty_readings += 1
            self._today().exclude()
        else:
            self.trusted.observe(sample)
            self._last_trusted = sample
            self._book(sample, yesterday)
        self._defrost(sample, alarms)
        if not faulty:
            self._temperature(sample, alarms)
        self._door(sample, alarms)
        if not faulty:
            self._compressor(sample, alarms)
        closed = None if yesterday is None else yesterday.summary()
        return alarms, [] if closed is None else [closed]

    @staticmethod
    def _features(config: ColdChainConfig) -> FridgeFeatureState:
        return FridgeFeatureState(
            window_min=config.window_min,
            slope_min=config.compressor_rise_window_min,
            spread_min=config.flat_line_min,
            max_gap_min=config.max_gap_min,
        )

    def open_day(self) -> ColdChainDay | None:
        """The summary of the day still being recorded, as it stands."""
        return None if self._day is None else self._day.summary()

    # -- transitions -----------------------------------------------------------

    def _raise(self, alarms: list[Alarm], kind: AlarmKind, ts_ms: int, detail: Detail) -> None:
        if kind in self.active:
            return
        alarm = Alarm(self.device, kind, True, ts_ms, kind in CRITICAL_KINDS, detail)
        self.active[kind] = alarm
        alarms.append(alarm)

    def _clear(self, alarms: list[Alarm], kind: AlarmKind, ts_ms: int, detail: Detail) -> None:
        if self.active.pop(kind, None) is None:
            return
        alarms.append(Alarm(self.device, kind, False, ts_ms, kind in CRITICAL_KINDS, detail))

    # -- the daily record --------------------------------------------------------

    def _today(self) -> DayRecord:
        assert self._day is not None  # _roll_day runs first on every reading
        return self._day

    def _roll_day(self, sample: FridgeSample) -> DayRecord | None:
        """Open the reading's day; return the day it ends, if it ends one."""
        day = utc_day(sample.ts_ms)
        previous = self._day
        if previous is not None and previous.day == day:
            return None
        self._day = DayRecord(self.device, day, self.product.max_c)
        return previous

    def _book(self, sample: FridgeSample, yesterday: DayRecord | None) -> None:
        today = self._today()
        credit = self.trusted.last_credit_ms
        before_midnight = day_start_ms(today.day) - (sample.ts_ms - credit)
        if before_midnight > 0:
            # The reading stands for time that began before midnight: that part
            # belongs to the day before, which stays open until this reading is booked.
            credit -= before_midnight
            if yesterday is not None and yesterday.day == today.day - ONE_DAY:
                yesterday.carry(sample.cabinet_c, before_midnight)
        today.add(sample.cabinet_c, credit)

    # -- the rules ---------------------------------------------------------------

    def _sensor(self, sample: FridgeSample, alarms: list[Alarm]) -> bool:
        """Flag the reading as faulty (flat line or impossible jump) and move SENSOR_FAULT."""
        cfg = self.config
        # A tolerance below any sensor's resolution: float32 readings of 4.01 and 4.00
        # differ by 0.00999..., and that still counts as "within 0.01 °C".
        band = cfg.flat_line_spread_c + 1e-6
        spread = span = 0.0
        previous, self._previous_c = self._previous_c, sample.cabinet_c
        # A flat window ends with two readings within the band: skip the window
        # scan on the (nearly every) reading that moved.
        flat = previous is not None and abs(sample.cabinet_c - previous) <= band
        if flat:
            spread, span, count = self.raw.cabinet_spread()
            flat = count >= 3 and span >= cfg.flat_line_min and spread <= band
        trusted = self._last_trusted
        jump = 0.0
        minutes = 1.0
        if trusted is not None:
            jump = sample.cabinet_c - trusted.cabinet_c
            # A cabinet cannot change faster than jump_c_per_min; after a silence it
            # may have moved further, so the allowance grows with the time since the
            # last trusted reading. A reading within reach of it ends a jump fault.
            minutes = max(1.0, (sample.ts_ms - trusted.ts_ms) / MS_PER_MIN)
        jump_fault = abs(jump) > cfg.jump_c_per_min * minutes
        if flat or jump_fault:
            cause = "flat_line" if flat else "jump"
            detail: Detail = {"cause": cause, **_at(sample.cabinet_c)}
            if flat:
                detail |= {"spread_c": round(spread, 4), "minutes": round(span, 1)}
            else:
                detail |= {"jump_c": round(jump, 2), "minutes": round(minutes, 1)}
            self._raise(alarms, AlarmKind.SENSOR_FAULT, sample.ts_ms, detail)
            return True
        self._clear(alarms, AlarmKind.SENSOR_FAULT, sample.ts_ms, _at(sample.cabinet_c))
        return False

    def _suppressed_by_defrost(self) -> bool:
        raw, cfg = self.raw, self.config
        last = raw.last
        assert last is not None
        if last.defrost_on:
            return raw.defrost_run_min <= cfg.defrost_max_min
        return raw.minutes_since_defrost_end <= cfg.defrost_grace_min

    def _defrost(self, sample: FridgeSample, alarms: list[Alarm]) -> None:
        kind = AlarmKind.DEFROST_OVERRUN
        minutes = self.raw.defrost_run_min
        if sample.defrost_on and minutes > self.config.defrost_max_min:
            detail: Detail = {"defrost_min": round(minutes, 1), **_at(sample.cabinet_c)}
            self._raise(alarms, kind, sample.ts_ms, detail)
        elif not sample.defrost_on:
            self._clear(alarms, kind, sample.ts_ms, _at(sample.cabinet_c))

    def _temperature(self, sample: FridgeSample, alarms: list[Alarm]) -> None:
        product, cfg, ts = self.product, self.config, sample.ts_ms
        cabinet = sample.cabinet_c
        base: Detail = {**_at(cabinet), "product_class": self.product_class_name}
        above = self.trusted.minutes_above(product.max_c)
        if above > product.max_minutes_above and not self._suppressed_by_defrost():
            detail = base | {"limit_c": product.max_c, "minutes_above": round(above, 1)}
            self._raise(alarms, AlarmKind.TEMPERATURE_HIGH, ts, detail)
        elif cabinet <= product.max_c - cfg.clear_hysteresis_c:
            self._clear(alarms, AlarmKind.TEMPERATURE_HIGH, ts, base | {"limit_c": product.max_c})
        if product.min_c is None:
            return
        below = self.trusted.minutes_below(product.min_c)
        if below > product.max_minutes_below:
            detail = base | {"limit_c": product.min_c, "minutes_below": round(below, 1)}
            self._raise(alarms, AlarmKind.TEMPERATURE_LOW, ts, detail)
        elif cabinet >= product.min_c + cfg.clear_hysteresis_c:
            self._clear(alarms, AlarmKind.TEMPERATURE_LOW, ts, base | {"limit_c": product.min_c})

    def _door(self, sample: FridgeSample, alarms: list[Alarm]) -> None:
        minutes = self.raw.door_open_run_min
        if sample.door_open and minutes > self.config.door_open_max_min:
            detail: Detail = {"door_open_min": round(minutes, 1), **_at(sample.cabinet_c)}
            self._raise(alarms, AlarmKind.DOOR_OPEN, sample.ts_ms, detail)
        elif not sample.door_open:
            self._clear(alarms, AlarmKind.DOOR_OPEN, sample.ts_ms, _at(sample.cabinet_c))

    def _compressor(self, sample: FridgeSample, alarms: list[Alarm]) -> None:
        cfg, cut_in, ts = self.config, self.product.cut_in_c, sample.ts_ms
        cabinet = sample.cabinet_c
        warm = cabinet > cut_in
        if warm and not sample.compressor_on and not sample.defrost_on:
            self._off_warm_ms += self.trusted.last_credit_ms
        else:
            self._off_warm_ms = 0
        kind = AlarmKind.COMPRESSOR_FAILURE
        base: Detail = {**_at(cabinet), "cut_in_c": cut_in}
        off_min = self._off_warm_ms / MS_PER_MIN
        if off_min > cfg.compressor_off_max_min:
            detail = base | {"cause": "not_running", "minutes_off_warm": round(off_min, 1)}
            self._raise(alarms, kind, ts, detail)
        elif warm and self.trusted.compressor_on_run_min >= cfg.compressor_rise_window_min:
            rise = self.trusted.rate_of_rise()
            if rise >= cfg.compressor_rise_c_per_min:
                on_min = round(self.trusted.compressor_on_run_min, 1)
                detail = base | {
                    "cause": "not_cooling",
                    "rise_c_per_min": round(rise, 3),
                    "minutes_running": on_min,
                }
                self._raise(alarms, kind, ts, detail)
        elif cabinet <= cut_in - cfg.clear_hysteresis_c:
            self._clear(alarms, kind, ts, base)
