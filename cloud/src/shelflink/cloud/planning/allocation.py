"""Fair share: dividing a dealer's short warehouse stock of a SKU among its stores.

When the stores of a dealer ask for more cases of a SKU than the warehouse
holds, stock goes to the store with the fewest days of cover, cover being
``(position + units allocated so far) / forecast per day``. That is the
distribution trade's "fair share": it equalises days of cover after
allocation as far as whole cases allow, so a store about to run dry is served
before one that merely asked for a lot. Expedited pairs (a stock-out risk)
are served before all others; among them the same rule applies.

Every allocation must be orderable, so a store's first allocation of a SKU
is a block of the SKU's minimum order in cases (at least one) and each
further case comes one at a time. Walking these increments in fair-share
order, an increment that fits what is left is taken; one that does not is
skipped, and with a skipped block the store's further cases. A store never
gets more than it asked for, the warehouse never ships more cases than it
holds, and stock stays behind only when no store can take a whole orderable
amount of it: less than a block while some store got nothing, none while
some store holding its block got less than asked.

Vectorised, the walk is a sort: every increment becomes a row keyed by the
cover its store would have before receiving it; a store's keys increase with
each further case, so its rows come in their own order. All blocks of a SKU
have the same size and what is left only shrinks, so once a block does not
fit no later block does: the walk takes the longest run of rows whose
running total fits, then, from the rows after it, the single cases of stores
that hold their block, in key order, as many as the remainder allows. Ties
go to the lower pair index, then to the store's earlier increment.
"""

from __future__ import annotations

import numpy as np

from shelflink.cloud.planning.inputs import BoolArray, FloatArray, IntArray

# A pair that asks for stock has a forecast above zero; this floor only keeps
# the division defined if a caller passes a zero forecast anyway.
MIN_RATE = 1e-9


def allocate_fair_share(
    *,
    requested_cases: IntArray,
    sku: IntArray,
    position: IntArray,
    forecast_per_day: FloatArray,
    priority: BoolArray,
    case_pack: IntArray,
    min_order_cases: IntArray,
    warehouse_units: IntArray,
) -> IntArray:
    """Cases allocated per pair: 0, or at least the SKU's minimum order.

    Per pair (``(pairs,)``): ``requested_cases``, ``sku`` (index into the SKU
    arrays), ``position`` in units, ``forecast_per_day``, ``priority``
    (served first). Per SKU: ``case_pack``, ``min_order_cases`` (a value below
    1 counts as 1) and ``warehouse_units``. A request between 0 and the
    minimum could never be ordered and is refused with a ``ValueError``.
    """
    skus = case_pack.shape[0]
    block = np.maximum(min_order_cases, 1)
    pair_block = block[sku]
    if np.any((requested_cases > 0) & (requested_cases < pair_block)):
        raise ValueError("requested_cases must be 0 or at least the SKU's minimum order")
    requested_total = np.bincount(sku, weights=requested_cases, minlength=skus).astype(np.int64)
    available = warehouse_units // case_pack
    short = requested_total > available
    allocated = requested_cases.copy()
    contested = np.flatnonzero(short[sku] & (requested_cases > 0))
    if contested.size == 0:
        return allocated

    # One row for the block, then one per further case.
    first_size = pair_block[contested]
    counts = requested_cases[contested] - first_size + 1
    row_pair = np.repeat(contested, counts)
    first_row = np.cumsum(counts) - counts
    nth = np.arange(row_pair.shape[0]) - np.repeat(first_row, counts)
    is_block = nth == 0
    row_block = np.repeat(first_size, counts)
    size = np.where(is_block, row_block, 1)
    cases_before = np.where(is_block, 0, row_block + nth - 1)
    row_sku = sku[row_pair]
    units_before = position[row_pair] + cases_before * case_pack[row_sku]
    cover = units_before / np.maximum(forecast_per_day[row_pair], MIN_RATE)
    # lexsort is stable: equal keys keep row order, i.e. pair index then increment.
    order = np.lexsort((cover, ~priority[row_pair], row_sku))
    sorted_sku = row_sku[order]
    sorted_pair = row_pair[order]
    sorted_size = size[order]
    sorted_block = is_block[order]
    sku_start = np.searchsorted(sorted_sku, np.arange(skus), side="left")

    running = _running_total_within_sku(sorted_size, sku_start, sorted_sku)
    in_run = running <= available[sorted_sku]
    left = available - np.bincount(
        sorted_sku, weights=np.where(in_run, sorted_size, 0), minlength=skus
    ).astype(np.int64)
    holds_block = np.zeros(allocated.shape[0], dtype=np.bool_)
    holds_block[sorted_pair[in_run & sorted_block]] = True
    # Past the run, no block fits any more; only a holder's single cases can.
    extra = ~in_run & ~sorted_block & holds_block[sorted_pair]
    extra_rank = _running_total_within_sku(extra.astype(np.int64), sku_start, sorted_sku)
    taken = in_run | (extra & (extra_rank <= left[sorted_sku]))

    allocated[contested] = 0
    allocated += np.bincount(
        sorted_pair[taken], weights=sorted_size[taken], minlength=allocated.shape[0]
    ).astype(np.int64)
    return allocated


def _running_total_within_sku(
    values: IntArray, sku_start: IntArray, sorted_sku: IntArray
) -> IntArray:
    """Inclusive running sum of ``values`` restarted at each SKU's first row."""
    running = np.cumsum(values)
    before_sku = np.concatenate(([0], running))[sku_start]
    result: IntArray = running - before_sku[sorted_sku]
    return result
