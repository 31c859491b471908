"""All lanes of one store: robust counts, depletion, sales, shrink and the model's features.

:class:`LaneFeatureState` is a running fold over a store's shelf readings and
till scans, vectorised over lanes with numpy (index i is the i-th lane of the
planogram). It does no I/O and reads no clock: every time comes from the
events, so a replay of a data set computes exactly what the live gateway did.
Formulas and caps of every feature are in docs/stream.md.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shelflink.stream.feature_names import FEATURE_CAPS, FEATURE_NAMES
from shelflink.stream.hour_profile import HourProfile
from shelflink.stream.lane_events import LaneEvent, LaneEventKind, LaneFlags
from shelflink.stream.lane_spec import LaneSpec
from shelflink.stream.load_cell import CountChanges, LoadCellTuning, UnitCounter
from shelflink.stream.planogram import Planogram
from shelflink.stream.store_calendar import hour_of_week_angles, local_hour_index, local_ms
from shelflink.stream.time_buckets import BucketRing
from shelflink.stream.watermark import Admission, AdmissionCounts, InOrderGate

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

MS_PER_MIN = 60_000
MS_PER_HOUR = 3_600_000
BUCKET_MS = 5 * MS_PER_MIN
REMOVED, SOLD, READINGS = 0, 1, 2  # channels of the bucket ring
RING_BUCKETS = 300  # 25 h: the 24 h windows, lagged for shrink, plus the hour being folded
EWMA_TAU_H = 6.0
# Scans come after the pick (the walk to the till): removals are compared with
# the sales of a window this much later.
SHRINK_LAG_BUCKETS = 6
# An hour is folded into the profile once this much of the next one has passed,
# so that the last removals of the hour have been confirmed.
FOLD_GRACE_MS = 10 * MS_PER_MIN
HORIZON_H = 169  # a week and the rest of the current hour
RECENT_RESTOCK_MS = MS_PER_HOUR
MAX_EVENTS = 10_000
_MISSING = -1  # "never" for per-lane times
# Every feature is floored at 0, the angles at -1, and capped (feature_names).
_FLOOR = np.array(
    [-1.0 if n.endswith(("_sin", "_cos")) else 0.0 for n in FEATURE_NAMES], dtype=np.float32
)
_CEIL = np.array([FEATURE_CAPS[n] for n in FEATURE_NAMES], dtype=np.float32)


class LaneFeatureState:
    """All lanes of one store, vectorised over lanes with numpy (index i = position in `lanes`)."""

    def __init__(
        self,
        lanes: Sequence[LaneSpec],
        *,
        utc_offset_min: int = 0,
        stale_after_ms: int = 5 * MS_PER_MIN,
        tuning: LoadCellTuning | None = None,
    ) -> None:
        self.planogram = Planogram(lanes)
        self.lanes: tuple[LaneSpec, ...] = self.planogram.lanes
        self.utc_offset_min = utc_offset_min
        self.stale_after_ms = stale_after_ms
        n = len(self.lanes)
        self.counter = UnitCounter(self.planogram.unit_g, self.planogram.capacity, tuning)
        self.device_gate: InOrderGate[str] = InOrderGate()
        self.lane_counts = AdmissionCounts()  # per lane reading, from observe_lanes
        self.unknown_devices = 0  # readings of shelves not in the planogram
        self.unmatched_sales = 0  # units sold of products on no configured lane
        self.events_dropped = 0  # events pushed out of the bounded queue undrained
        self.clock_ms: int | None = None  # latest event time seen
        self._lane_ts = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        self._last_usable = np.full(n, _MISSING, dtype=np.int64)
        self._last_restock = np.full(n, _MISSING, dtype=np.int64)
        self._ewma = np.zeros(n)  # removals per hour, as of _ewma_ts
        self._ewma_ts = np.zeros(n, dtype=np.int64)
        # Channels: units removed, units sold, usable readings (an hour's coverage).
        self.buckets = BucketRing(3, n, BUCKET_MS, RING_BUCKETS)
        self.profile = HourProfile(n)
        self._folded_hour: int | None = None
        self._events: deque[LaneEvent] = deque()

    # -- input -------------------------------------------------------------------

    def index_of(self, device: str) -> I64:
        """Lane indices of one shelf device, in lane order."""
        return self.planogram.index_of(device)

    def observe_shelf(
        self, device: str, ts_ms: int, grams: Sequence[float | None], board_c: float
    ) -> Admission:
        """One shelf reading as it comes off the wire; in order per device or dropped."""
        admission = self.device_gate.admit(device, ts_ms)
        if admission is not Admission.ACCEPTED:
            return admission
        idx = self.planogram.index_of(device)
        if idx.shape[0] == 0:
            self.unknown_devices += 1
            return admission
        slots = self.planogram.slots_of(device)
        # None (a dropout) becomes NaN; lanes the message lacks read as dropouts.
        measured = np.asarray(grams, dtype=np.float64)
        values = np.full(idx.shape[0], np.nan)
        present = slots < measured.shape[0]
        values[present] = measured[slots[present]]
        self.observe_lanes(ts_ms, idx, values, np.full(idx.shape[0], float(board_c)))
        return admission

    def observe_lanes(
        self, ts_ms: int, idx: np.ndarray, grams: np.ndarray, board_c: np.ndarray
    ) -> None:
        """Readings of many lanes (any devices, each at most once) taken at ``ts_ms``.

        NaN in ``grams`` is a dropout. A lane whose latest reading is as new or
        newer is skipped and counted (duplicate or late): lane state only moves
        forward.
        """
        index = np.asarray(idx, dtype=np.int64)
        last = self._lane_ts[index]
        fresh = last < ts_ms
        n_fresh = int(np.count_nonzero(fresh))
        if n_fresh < index.shape[0]:
            self.lane_counts.duplicate += int(np.count_nonzero(last == ts_ms))
            self.lane_counts.late += int(np.count_nonzero(last > ts_ms))
            index = index[fresh]
            grams = np.asarray(grams)[fresh]
            board_c = np.asarray(board_c)[fresh] if np.ndim(board_c) else board_c
        self.lane_counts.accepted += n_fresh
        if n_fresh == 0:
            return
        self._lane_ts[index] = ts_ms
        self._advance(ts_ms)
        # Full-width inputs: NaN marks lanes this batch does not read.
        g = np.full(len(self.lanes), np.nan)
        g[index] = grams
        temp = np.full(len(self.lanes), self.counter.tuning.reference_c)
        temp[index] = board_c
        changes = self.counter.update(ts_ms, g, temp)
        usable = self.counter.usable
        np.copyto(self._last_usable, ts_ms, where=usable)
        self.buckets.add_all(READINGS, ts_ms, usable)
        self._apply(changes, ts_ms)

    def observe_sale(self, ts_ms: int, gtin: str, qty: int = 1) -> None:
        """A till scan; a product on several lanes is credited to each in equal parts."""
        lanes = self.planogram.lanes_of_gtin(gtin)
        if lanes.shape[0] == 0:
            self.unmatched_sales += qty
            return
        self._advance(ts_ms)
        self.buckets.add(SOLD, ts_ms, lanes, np.full(lanes.shape[0], qty / lanes.shape[0]))

    # -- output ------------------------------------------------------------------

    def units(self) -> I64:
        """Current robust units estimate per lane (0 for a lane never read)."""
        return self.counter.counts()

    def features(self, now_ms: int) -> F32:
        """The model's inputs at ``now_ms``: float32 ``(lanes, len(FEATURE_NAMES))``, finite."""
        cols = self._feature_columns(now_ms)
        out = np.empty((len(self.lanes), len(FEATURE_NAMES)), dtype=np.float32)
        for j, name in enumerate(FEATURE_NAMES):
            out[:, j] = cols[name]
        np.nan_to_num(out, copy=False, nan=0.0, posinf=float(_CEIL.max()), neginf=0.0)
        np.clip(out, _FLOOR, _CEIL, out=out)
        return out

    def expected_minutes_to_empty(self, now_ms: int) -> F64:
        """Minutes until each lane runs out at its learnt hour-of-day removal profile.

        Bins the profile has not learnt yet use the lane's EWMA removal rate.
        0 for an empty lane, inf when no depletion is expected within a week.
        """
        local = local_ms(now_ms, self.utc_offset_min)
        per_hour = self.profile.ahead(local, HORIZON_H, self._ewma_at(now_ms))
        units = self.units().astype(np.float64)
        cum = np.cumsum(per_hour, axis=1)
        reach = cum >= units[:, None]
        found = reach.any(axis=1) & (units > 0)
        j = np.argmax(reach, axis=1)
        rows = np.arange(units.shape[0])
        before = np.where(j > 0, cum[rows, np.maximum(j - 1, 0)], 0.0)
        left_min = 60.0 - (local % MS_PER_HOUR) / MS_PER_MIN
        start = np.where(j > 0, left_min + (j - 1) * 60.0, 0.0)
        length = np.where(j > 0, 60.0, left_min)
        rate = per_hour[rows, j]
        with np.errstate(divide="ignore", invalid="ignore"):
            inside = np.where(rate > 0, (units - before) / rate, 0.0)
        minutes = np.where(found, start + inside * length, np.inf)
        out: F64 = np.where(units <= 0, 0.0, minutes)
        return out

    def lane_flags(self) -> LaneFlags:
        """Per-lane flags at the store's latest event time."""
        now = self.clock_ms if self.clock_ms is not None else 0
        never = self._last_usable == _MISSING
        restocked = (self._last_restock != _MISSING) & (
            now - self._last_restock <= RECENT_RESTOCK_MS
        )
        return LaneFlags(
            stuck=self.counter.stuck.copy(),
            stale=never | (now - self._last_usable > self.stale_after_ms),
            never_seen=never,
            restocked_recently=restocked,
            empty=self.units() == 0,
        )

    def drain_lane_events(self) -> list[LaneEvent]:
        """Events since the previous call, oldest first (at most the last 10,000)."""
        out = list(self._events)
        self._events.clear()
        return out

    # -- internals ---------------------------------------------------------------

    def _advance(self, ts_ms: int) -> None:
        if self.clock_ms is not None and ts_ms <= self.clock_ms:
            return
        first = self.clock_ms is None
        self.clock_ms = ts_ms
        self.buckets.advance(ts_ms)
        done = local_hour_index(ts_ms - FOLD_GRACE_MS, self.utc_offset_min) - 1
        if first or self._folded_hour is None:
            # The first hour is partial: folding it would read as a quiet hour.
            self._folded_hour = local_hour_index(ts_ms, self.utc_offset_min)
            return
        start = max(self._folded_hour + 1, done - 23)
        for hour in range(start, done + 1):
            self._fold_hour(hour)
        self._folded_hour = max(self._folded_hour, done)

    def _fold_hour(self, hour: int) -> None:
        end_utc = (hour + 1) * MS_PER_HOUR - self.utc_offset_min * MS_PER_MIN - 1
        span = MS_PER_HOUR // BUCKET_MS
        removed = self._window(REMOVED, end_utc, span)
        readings = self._window(READINGS, end_utc, span)
        # A lane counts for the hour if it was read for at least half as often
        # as the best-read lane: an hour half offline would look like a quiet one.
        covered = (readings > 0) & (readings >= 0.5 * readings.max(initial=0.0))
        self.profile.fold(hour % 24, removed, covered)

    def _window(self, channel: int, now_ms: int, span: int, lag: int = 0) -> F64:
        return self.buckets.window_sum(channel, now_ms, span, lag)

    def _ewma_at(self, now_ms: int) -> F64:
        age_h = np.maximum(now_ms - self._ewma_ts, 0) / MS_PER_HOUR
        out: F64 = self._ewma * np.exp(-age_h / EWMA_TAU_H)
        return out

    def _apply(self, changes: CountChanges, ts_ms: int) -> None:
        if changes.index.shape[0]:
            down = changes.delta < 0
            if down.any():
                lanes, units, ts = changes.index[down], -changes.delta[down], changes.since_ms[down]
                # At most two times here: this reading's and the one before.
                for t in set(ts.tolist()):
                    at = ts == t
                    self.buckets.add(REMOVED, int(t), lanes[at], units[at].astype(np.float64))
                age_h = np.maximum(ts - self._ewma_ts[lanes], 0) / MS_PER_HOUR
                self._ewma[lanes] = (
                    self._ewma[lanes] * np.exp(-age_h / EWMA_TAU_H) + units / EWMA_TAU_H
                )
                self._ewma_ts[lanes] = np.maximum(ts, self._ewma_ts[lanes])
            up = ~down
            self._last_restock[changes.index[up]] = changes.since_ms[up]
            for i, delta, ts in zip(
                changes.index.tolist(),
                changes.delta.tolist(),
                changes.since_ms.tolist(),
                strict=True,
            ):
                kind = LaneEventKind.RESTOCK if delta > 0 else LaneEventKind.REMOVAL
                self._push(kind, i, ts, abs(delta))
        for i in changes.stuck_started.tolist():
            self._push(LaneEventKind.STUCK_STARTED, i, ts_ms, 0)
        for i in changes.stuck_ended.tolist():
            self._push(LaneEventKind.STUCK_ENDED, i, ts_ms, 0)

    def _push(self, kind: LaneEventKind, i: int, ts_ms: int, units: int) -> None:
        if len(self._events) >= MAX_EVENTS:
            self._events.popleft()
            self.events_dropped += 1
        spec = self.lanes[i]
        after = max(int(self.counter.confirmed[i]), 0)
        self._events.append(LaneEvent(kind, i, spec.device, spec.lane, ts_ms, units, after))

    def _feature_columns(self, now_ms: int) -> dict[str, F64]:
        units = self.units().astype(np.float64)
        capacity = self.planogram.capacity.astype(np.float64)
        per_hour = MS_PER_HOUR // BUCKET_MS
        removed_3h = self._window(REMOVED, now_ms, 3 * per_hour) / 3.0
        ewma = self._ewma_at(now_ms)
        # Shrink: per product, units removed (lagged for the walk to the till)
        # that no scan accounts for, split over its lanes by what each lost.
        removed_lagged = self._window(REMOVED, now_ms, 24 * per_hour, SHRINK_LAG_BUCKETS)
        sold_24h = self._window(SOLD, now_ms, 24 * per_hour)
        group = self.planogram.group
        groups = self.planogram.groups
        shrink_group = np.maximum(
            np.bincount(group, weights=removed_lagged, minlength=groups)
            - np.bincount(group, weights=sold_24h, minlength=groups),
            0.0,
        )
        shrink = self.planogram.share_by_group(removed_lagged, shrink_group)
        since_restock = np.where(
            self._last_restock == _MISSING,
            np.inf,
            (now_ms - self._last_restock) / MS_PER_HOUR,
        )
        hour_sin, hour_cos, dow_sin, dow_cos = hour_of_week_angles(now_ms, self.utc_offset_min)
        local = local_ms(now_ms, self.utc_offset_min)
        ahead = self.profile.ahead(local, 4, ewma)
        left = 1.0 - (local % MS_PER_HOUR) / MS_PER_HOUR
        expected_3h = ahead[:, :3].sum(axis=1) + ahead[:, 3] * (1.0 - left)
        h0 = (local // MS_PER_HOUR) % 24
        with np.errstate(divide="ignore", invalid="ignore"):
            linear = np.where(removed_3h > 0, units / removed_3h * 60.0, np.inf)
        linear = np.where(units <= 0, 0.0, linear)
        age_min = np.where(
            self._last_usable == _MISSING, np.inf, (now_ms - self._last_usable) / MS_PER_MIN
        )
        ones = np.ones(units.shape[0])
        return {
            "units": units,
            "fill_fraction": units / capacity,
            "capacity": capacity,
            "depletion_per_h_1h": self._window(REMOVED, now_ms, per_hour),
            "depletion_per_h_3h": removed_3h,
            "depletion_per_h_24h": self._window(REMOVED, now_ms, 24 * per_hour) / 24.0,
            "depletion_per_h_ewma": ewma,
            "sales_per_h_3h": self._window(SOLD, now_ms, 3 * per_hour) / 3.0,
            "sales_per_h_24h": sold_24h / 24.0,
            "shrink_units_24h": shrink,
            "hours_since_restock": since_restock,
            "hour_sin": ones * hour_sin,
            "hour_cos": ones * hour_cos,
            "dow_sin": ones * dow_sin,
            "dow_cos": ones * dow_cos,
            "expected_removals_3h": expected_3h,
            "profile_days": self.profile.days[:, h0].astype(np.float64),
            "minutes_to_empty_linear": linear,
            "minutes_to_empty_profile": self.expected_minutes_to_empty(now_ms),
            "stuck": self.counter.stuck.astype(np.float64),
            "data_age_min": age_min,
        }
