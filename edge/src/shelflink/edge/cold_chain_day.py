"""One fridge's daily cold-chain record: minutes above its limit, mean kinetic temperature.

Days are UTC days of the readings' timestamps. Only trusted readings (not
flagged by a sensor fault) count; the faulty ones are counted as excluded. A
reading's credited minutes that fall before midnight are booked to the day
before (whose summary is made only after that), so a day holds at most its own 1440
minutes. Minutes above the limit
are what the air measured, defrost included: the record says what happened,
the alarms decide what was expected.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from shelflink.edge.mkt import mean_kinetic_temperature

MS_PER_DAY: Final = 86_400_000
MS_PER_MIN: Final = 60_000
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()


def utc_day(ts_ms: int) -> dt.date:
    """The UTC calendar day of an epoch-millisecond timestamp."""
    return dt.date.fromordinal(_EPOCH_ORDINAL + ts_ms // MS_PER_DAY)


def day_start_ms(day: dt.date) -> int:
    return (day.toordinal() - _EPOCH_ORDINAL) * MS_PER_DAY


@dataclass(frozen=True, slots=True)
class ColdChainDay:
    """One fridge's UTC day: trusted readings, minutes above ``limit_c``, MKT, min and max (°C)."""

    device: str
    day: dt.date
    samples: int
    minutes_above_limit: float
    mkt_c: float
    min_c: float
    max_c: float
    limit_c: float
    excluded_samples: int = 0  # readings dropped by an active sensor fault


class DayRecord:
    """Accumulates one fridge's open day; :meth:`summary` turns it into a :class:`ColdChainDay`."""

    __slots__ = ("_above_ms", "_excluded", "_temps", "day", "device", "limit_c")

    def __init__(self, device: str, day: dt.date, limit_c: float) -> None:
        self.device = device
        self.day = day
        self.limit_c = limit_c
        self._temps: list[float] = []
        self._above_ms = 0
        self._excluded = 0

    def add(self, cabinet_c: float, credit_ms: int) -> None:
        """A trusted reading of this day, standing for ``credit_ms`` of it."""
        self._temps.append(cabinet_c)
        if cabinet_c > self.limit_c:
            self._above_ms += credit_ms

    def carry(self, cabinet_c: float, ms: int) -> None:
        """The part before midnight of the interval a reading of the next day stands for."""
        if cabinet_c > self.limit_c:
            self._above_ms += ms

    def exclude(self) -> None:
        self._excluded += 1

    def summary(self) -> ColdChainDay | None:
        """The day's summary; ``None`` when it had no trusted reading (nothing to summarise)."""
        if not self._temps:
            return None
        return ColdChainDay(
            device=self.device,
            day=self.day,
            samples=len(self._temps),
            minutes_above_limit=self._above_ms / MS_PER_MIN,
            mkt_c=mean_kinetic_temperature(self._temps),
            min_c=min(self._temps),
            max_c=max(self._temps),
            limit_c=self.limit_c,
            excluded_samples=self._excluded,
        )
