"""Grams to whole units per lane: tare and drift learnt online, stuck cells, hysteresis.

A cell reads ``units * unit_g + offset(board_c) + noise``, where the offset is
the lane's tare error plus a temperature drift, both unknown and different per
lane. :class:`UnitCounter` keeps, per lane and vectorised over lanes:

- an offset model ``a + b * (board_c - 25)`` fitted by exponentially weighted
  least squares on the residual ``grams - units * unit_g`` of readings taken
  while the count is steady (a ridge term keeps ``b`` near 0 until the board
  temperature has varied enough to show it);
- the count, which moves only to a *clean* level: a reading (or, failing
  that, the median of the last three) within ``clean_g`` of a whole number of
  units other than the current one. A hand on the shelf or a half-placed item
  is not clean and leaves the count alone; noise never reaches the next level,
  so it never flips the count;
- a *confirmed* count, which follows the count once it has held for
  ``confirm_readings`` usable readings: restocks and removals are the steps of
  the confirmed count, so a single odd reading never becomes an event;
- a stuck detector: a live cell always shows noise, so ``stuck_after``
  identical values (to the 0.1 g resolution) in a row mean the cell stopped
  measuring. Its readings are ignored (the count is held) until the value
  changes;
- anchors for the offset's whole-unit ambiguity: for light units the tare
  error can be near half a unit, so the first reading can be one unit off. A
  confirmed count above capacity or below zero, or restocks that keep ending
  exactly one unit below capacity (staff fill lanes to capacity), move the
  offset by one unit when the prior on the tare error (sd 8 g, plus the drift's
  spread at the board's temperature) says the moved offset is plausible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class LoadCellTuning:
    """What the counter assumes about the cells; defaults match the shelves in the field."""

    noise_g: float = 1.5  # standard deviation of one reading
    tare_sd_g: float = 8.0  # spread of the per-lane zero error
    drift_sd_g_per_c: float = 0.6  # spread of the per-lane drift coefficient
    reference_c: float = 25.0  # calibration temperature of the cells
    identical_g: float = 0.05  # half the 0.1 g resolution: "the same value"
    stuck_after: int = 6  # identical readings in a row that mean a stuck cell
    confirm_readings: int = 2  # readings a new count must hold to become an event
    learn_readings: float = 720.0  # memory of the offset fit, in readings (12 h at 1/min)
    restock_evidence: float = 3.0  # log-odds one restock ending at capacity - 1 adds

    def __post_init__(self) -> None:
        if self.stuck_after < 2:
            raise ValueError("stuck_after must be at least 2")
        if self.confirm_readings < 1:
            raise ValueError("confirm_readings must be at least 1")
        if self.learn_readings < 2:
            raise ValueError("learn_readings must be at least 2")


@dataclass(frozen=True, slots=True, eq=False)
class CountChanges:
    """What one batch of readings changed: confirmed steps and stuck transitions."""

    index: I64  # lanes whose confirmed count changed
    delta: I64  # the change (positive: restock)
    since_ms: I64  # when the new count was first read
    stuck_started: I64
    stuck_ended: I64


def _median3(a: F64, b: F64, c: F64) -> F64:
    out: F64 = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    return out


class UnitCounter:
    """Robust unit counts of many lanes; index i is lane i of ``unit_g``/``capacity``.

    Counts are held as float64 whole numbers (``units``, ``confirmed``) so that
    the hot path never converts; :meth:`counts` gives them as integers.
    """

    SOLVE_EVERY = 16  # batches between two solutions of the offset fit

    def __init__(self, unit_g: F64, capacity: I64, tuning: LoadCellTuning | None = None) -> None:
        t = tuning or LoadCellTuning()
        self.tuning = t
        n = unit_g.shape[0]
        self.unit_g = unit_g.astype(np.float64)
        self._per_unit = 1.0 / self.unit_g
        self.capacity = capacity.astype(np.float64)
        # A level is clean within 0.3 of a unit at most, and never looser than
        # noise plus a little of the unit (a heavy unit's packaging varies more).
        clean_g = np.minimum(0.3 * self.unit_g, 8.0 * t.noise_g + 0.05 * self.unit_g)
        self._clean_units = clean_g / self.unit_g
        self._decay = 1.0 - 1.0 / t.learn_readings
        self._ridge = (t.noise_g / t.drift_sd_g_per_c) ** 2
        self._batches = 0

        self.seen = np.zeros(n, dtype=bool)
        self._all_seen = n == 0
        self.units = np.zeros(n)
        self.confirmed = np.zeros(n)
        self.held = np.zeros(n, dtype=np.int64)  # usable readings at the current count
        self.since_ms = np.zeros(n, dtype=np.int64)  # first reading at the current count
        self.stuck = np.zeros(n, dtype=bool)
        self.last_raw = np.full(n, np.nan)
        self.same_run = np.zeros(n, dtype=np.int64)
        # The median filter: three slots written in turn, so each lane's slots
        # hold its three latest readings (in units) in some order.
        self.window = np.zeros((3, n))
        self.usable = np.zeros(n, dtype=bool)  # lanes the last batch read usably
        self.offset_a = np.zeros(n)  # offset at the reference temperature, g
        self.offset_b = np.zeros(n)  # drift, g/°C
        # Exponentially weighted sums of the offset fit: weight, x, y, x², x·y.
        self.sums = np.zeros((5, n))
        self.restock_evidence = np.zeros(n)

    def counts(self) -> I64:
        """The current count of every lane (never below 0)."""
        out: I64 = np.maximum(self.units, 0.0).astype(np.int64)
        return out

    def offset_at(self, index: I64, board_c: F64) -> F64:
        """The learnt offset (g) of lanes ``index`` at board temperature ``board_c``."""
        x = board_c - self.tuning.reference_c
        out: F64 = self.offset_a[index] + self.offset_b[index] * x
        return out

    def _prior_sd(self, board_c: F64) -> F64:
        t = self.tuning
        x = board_c - t.reference_c
        out: F64 = np.sqrt(t.tare_sd_g**2 + (t.drift_sd_g_per_c * x) ** 2)
        return out

    def update(self, ts_ms: int, grams: F64, board_c: F64) -> CountChanges:
        """Fold in one reading per lane, all taken at ``ts_ms``; full-width arrays.

        ``grams[i]`` is NaN where lane i has no reading in this batch (a dropout
        or simply not part of it): its state is left as it was. Working on all
        lanes with masks costs about the same as on a few, since numpy's cost
        per call dominates at a store's lane counts; hence also the few calls.
        The caller guarantees that event time only moves forward per lane.
        """
        t = self.tuning
        valid = np.isfinite(grams)
        same = np.abs(grams - self.last_raw) <= t.identical_g
        run = np.where(same, self.same_run + 1, valid)
        np.copyto(self.same_run, run, where=valid)
        np.copyto(self.last_raw, grams, where=valid)
        was_stuck = self.stuck
        # A dropout says nothing about the cell: it keeps its state.
        now_stuck = np.where(valid, self.same_run >= t.stuck_after, was_stuck)
        self.stuck = now_stuck
        empty = np.zeros(0, dtype=np.int64)
        stuck_started = stuck_ended = empty
        flips = now_stuck != was_stuck
        if np.count_nonzero(flips):
            stuck_started = np.flatnonzero(flips & now_stuck)
            stuck_ended = np.flatnonzero(flips & was_stuck)

        usable = valid & ~now_stuck
        self.usable = usable
        if not self._all_seen:
            usable = self._start_fresh(ts_ms, usable, grams, board_c)

        temp_x = board_c - t.reference_c
        x_units = (grams - self.offset_a - self.offset_b * temp_x) * self._per_unit
        slot = self._batches % 3
        self._batches += 1
        np.copyto(self.window[slot], x_units, where=usable)
        nearest = np.rint(x_units)
        clean = np.abs(x_units - nearest) <= self._clean_units
        current = self.units
        candidate = np.where(clean & usable, nearest, current)
        unclear = usable & ~clean
        if np.count_nonzero(unclear):
            # Not near any count (a hand on the shelf, an item half placed): the
            # median of the last three readings decides, or the count holds.
            median = _median3(self.window[0], self.window[1], self.window[2])
            n_med = np.rint(median)
            settled = unclear & (np.abs(median - n_med) <= self._clean_units)
            candidate = np.where(settled, n_med, candidate)
        changed = candidate != current
        confirmed = self.confirmed
        self.units = candidate
        self.held = np.where(changed, 1, self.held + usable)
        previous_since = self.since_ms
        self.since_ms = np.where(changed, ts_ms, previous_since)

        # Any steady reading within half a unit of the count teaches the offset,
        # clean or not: a drift that pushed readings off clean levels must be
        # learnt back, not frozen out.
        learn = usable & (nearest == current) & ~changed
        self._learn(learn, grams - current * self.unit_g, temp_x)

        # A pending count that moves on to a third level, rather than back to the
        # confirmed one, was real: a spike returns, a busy lane keeps moving.
        moved_on = changed & (current != confirmed) & (candidate != confirmed)
        confirm = (self.held >= t.confirm_readings) & (candidate != confirmed)
        commit = moved_on | confirm
        if not np.count_nonzero(commit):
            return CountChanges(empty, empty, empty, stuck_started, stuck_ended)
        # The two sets are disjoint: a lane that moved on holds its new count for
        # one reading only, below any confirm_readings that lets a count be pending.
        lanes = np.flatnonzero(commit)
        early = moved_on[lanes]
        level = np.where(early, current[lanes], candidate[lanes])
        since = np.where(early, previous_since[lanes], self.since_ms[lanes])
        delta = level - confirmed[lanes]
        self.confirmed[lanes] = level
        self._anchor(lanes, level, delta, board_c[lanes])
        return CountChanges(lanes, delta.astype(np.int64), since, stuck_started, stuck_ended)

    # -- internals ---------------------------------------------------------------

    def _start_fresh(self, ts_ms: int, usable: Bool, grams: F64, board_c: F64) -> Bool:
        """Start lanes read for the first time; returns ``usable`` without them."""
        fresh = usable & ~self.seen
        if not np.count_nonzero(fresh):
            return usable
        lanes = np.flatnonzero(fresh)
        g, temp = grams[lanes], board_c[lanes]
        w = self.unit_g[lanes]
        # The count that needs the smallest tare error, within the lane's capacity.
        units = np.clip(np.rint(g / w), 0, self.capacity[lanes])
        self.seen[lanes] = True
        self._all_seen = bool(self.seen.all())
        self.units[lanes] = units
        self.confirmed[lanes] = units
        self.held[lanes] = 1
        self.since_ms[lanes] = ts_ms
        self.window[:, lanes] = units
        x = temp - self.tuning.reference_c
        residual = g - units * w
        self.sums[:, lanes] = np.stack([np.ones_like(x), x, residual, x * x, x * residual])
        self.offset_b[lanes] = 0.0
        self.offset_a[lanes] = residual
        out: Bool = usable & ~fresh
        return out

    def _learn(self, learn: Bool, residual: F64, temp_x: F64) -> None:
        """Accumulate one reading of the lanes in ``learn`` into the offset fit."""
        x = np.where(learn, temp_x, 0.0)
        y = np.where(learn, residual, 0.0)
        s = self.sums
        s *= np.where(learn, self._decay, 1.0)
        s[0] += learn
        s[1] += x
        s[2] += y
        s[3] += x * x
        s[4] += x * y
        # The offset moves with the board's temperature over hours: solving the
        # fit every few batches follows it as well as solving it every time.
        if self._batches % self.SOLVE_EVERY == 0:
            self._solve()

    def _solve(self) -> None:
        sw, sx, sy, sxx, sxy = self.sums
        fitted = sw > 0
        with np.errstate(divide="ignore", invalid="ignore"):  # lanes never read: 0/0
            mx = sx / sw
            my = sy / sw
            # Ridge towards no drift: with the board's temperature barely moving, a
            # free slope would chase noise.
            b = (sxy - sx * my) / (sxx - sx * mx + self._ridge)
        self.offset_b = np.where(fitted, b, self.offset_b)
        self.offset_a = np.where(fitted, my - b * mx, self.offset_a)

    def _shift(self, lanes: I64, k: F64) -> None:
        """The true count is ``k`` lower than believed: move the offset up by k units."""
        grams = k * self.unit_g[lanes]
        self.offset_a[lanes] += grams
        self.sums[2, lanes] += grams * self.sums[0, lanes]
        self.sums[4, lanes] += grams * self.sums[1, lanes]
        self.units[lanes] -= k
        self.confirmed[lanes] -= k
        self.window[:, lanes] -= k
        self.restock_evidence[lanes] = 0.0

    def _anchor(self, lanes: I64, level: F64, delta: F64, board_c: F64) -> None:
        cap = self.capacity[lanes]
        w = self.unit_g[lanes]
        sd = self._prior_sd(board_c)
        offset = self.offset_at(lanes, board_c)
        k = np.where(level > cap, level - cap, np.where(level < 0, level, 0.0))
        plausible = np.abs(offset + k * w) <= 4.0 * sd
        hard = (k != 0) & plausible
        if np.count_nonzero(hard):
            self._shift(lanes[hard], k[hard])
        restock = (delta > 0) & ~hard
        if not np.count_nonzero(restock):
            return
        r_lanes, r_cap, r_level = lanes[restock], cap[restock], level[restock]
        step = self.tuning.restock_evidence
        evidence = self.restock_evidence[r_lanes] + np.where(
            r_level == r_cap - 1, step, np.where(r_level == r_cap, -step, 0.0)
        )
        evidence = np.clip(evidence, -3.0 * step, 3.0 * step)
        self.restock_evidence[r_lanes] = evidence
        # Log prior ratio of the offset one unit lower against the current one.
        o, rw, rsd = offset[restock], w[restock], sd[restock]
        prior = (o * o - (o - rw) ** 2) / (2.0 * rsd * rsd)
        up = (r_level == r_cap - 1) & (evidence + prior > 0.0)
        if np.count_nonzero(up):
            self._shift(r_lanes[up], np.full(int(up.sum()), -1.0))
