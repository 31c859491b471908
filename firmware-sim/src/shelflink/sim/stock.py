"""Units moving between a limited supply and ordered requests.

The same arithmetic serves customers taking from a lane (supply: the lane's
units, requests: picks in the order customers come) and staff refilling lanes
from the backroom (supply: the SKU's backroom units, requests: the lanes' gaps
in lane order). Between two restocks nothing is added to a lane, so what each
pick gets is ``min(cum, supply) - min(cum - request, supply)`` over the
running total ``cum`` of its lane: a vectorised form of "first come, first
served" that needs no per-tick loop.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


def group_exclusive_cumsum(group: I64, values: I64) -> I64:
    """For each element, the sum of ``values`` of earlier elements of the same group."""
    if group.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(group, kind="stable")
    g = group[order]
    v = values[order]
    inclusive = np.cumsum(v)
    new_run = np.empty(g.shape[0], dtype=bool)
    new_run[0] = True
    np.not_equal(g[1:], g[:-1], out=new_run[1:])
    run = np.cumsum(new_run) - 1
    before_run = (inclusive - v)[new_run]
    out = np.empty_like(v)
    out[order] = inclusive - v - before_run[run]
    return out


def allocate(supply: I64, group: I64, request: I64) -> I64:
    """Grant requests in the given order from ``supply[group]``, each as far as it lasts."""
    if group.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    before = group_exclusive_cumsum(group, request)
    available = supply[group]
    granted: I64 = np.minimum(before + request, available) - np.minimum(before, available)
    return granted


def restock_gaps(stock: I64, capacity: I64, min_gap: float) -> I64:
    """Units each lane needs to be full, or 0 where staff would not bother yet."""
    gap = capacity - stock
    worth_it = gap >= np.maximum(1, np.ceil(min_gap * capacity))
    needed: I64 = np.where(worth_it, gap, 0).astype(np.int64)
    return needed
