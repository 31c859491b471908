"""Each lane's removals by hour of day, learnt across days (an EWMA per hourly bin).

A store's demand has a shape: a morning rush, a lunch peak, nights closed.
Linear extrapolation of the last hours cannot see the rush coming nor the
night's pause; the profile can. Hour ``h`` of a lane is folded in once the
hour is over, only if the lane had usable readings in it (a stuck or offline
hour says nothing about demand).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]

HOURS = 24


class HourProfile:
    """``lanes × 24`` expected removals per hour of (local) day."""

    def __init__(self, lanes: int, *, alpha: float = 0.3) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = alpha
        self.rate = np.zeros((lanes, HOURS))
        self.days = np.zeros((lanes, HOURS), dtype=np.int64)

    def fold(self, hour_of_day: int, removed: F64, covered: Bool) -> None:
        """Fold one finished hour's removals into the lanes that were ``covered``."""
        h = hour_of_day % HOURS
        first = covered & (self.days[:, h] == 0)
        blended = (1.0 - self.alpha) * self.rate[:, h] + self.alpha * removed
        self.rate[:, h] = np.where(first, removed, np.where(covered, blended, self.rate[:, h]))
        self.days[:, h] += covered

    def ahead(self, local_ms: int, hours: int, fallback_per_h: F64) -> F64:
        """Expected removals per lane for each of the next ``hours`` hours from ``local_ms``.

        Column j covers hour j of the horizon; column 0 only the rest of the
        current hour. Bins never learnt use ``fallback_per_h``.
        """
        hour_ms = 3_600_000
        h0 = (local_ms // hour_ms) % HOURS
        left = 1.0 - (local_ms % hour_ms) / hour_ms
        cols = (h0 + np.arange(hours)) % HOURS
        rate = np.where(self.days[:, cols] > 0, self.rate[:, cols], fallback_per_h[:, None])
        rate[:, 0] *= left
        out: F64 = rate
        return out
