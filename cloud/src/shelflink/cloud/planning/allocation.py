"""Fair share: dividing a dealer's short warehouse stock of a SKU among its stores.

When the stores of a dealer ask for more cases of a SKU than the warehouse
holds, cases go one at a time to the store with the fewest days of cover,
cover being ``(position + units allocated so far) / forecast per day``. That
is the distribution trade's "fair share": it equalises days of cover after
allocation as far as whole cases allow, so a store about to run dry is served
before one that merely asked for a lot. Expedited pairs (a stock-out risk)
are served before all others; among them the same rule applies. A store never
gets more than it asked for, and the warehouse never ships more cases than
it holds; when demand exceeds stock, every whole case is shipped.

Vectorised, the case-by-case rule is a sort: every requested case becomes a
row keyed by the cover its store would have before receiving it; a store's
keys increase with each further case, so taking the first ``stock // pack``
rows of each SKU in key order is exactly the one-case-at-a-time greedy
choice. Ties go to the lower pair index, then to the store's earlier case.
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
    warehouse_units: IntArray,
) -> IntArray:
    """Cases allocated per pair.

    Per pair (``(pairs,)``): ``requested_cases``, ``sku`` (index into the SKU
    arrays), ``position`` in units, ``forecast_per_day``, ``priority``
    (served first). Per SKU: ``case_pack`` and ``warehouse_units``.
    """
    skus = case_pack.shape[0]
    requested_total = np.bincount(sku, weights=requested_cases, minlength=skus).astype(np.int64)
    available = warehouse_units // case_pack
    short = requested_total > available
    allocated = requested_cases.copy()
    contested = np.flatnonzero(short[sku] & (requested_cases > 0))
    if contested.size == 0:
        return allocated

    counts = requested_cases[contested]
    row_pair = np.repeat(contested, counts)
    first_row = np.cumsum(counts) - counts
    nth_case = np.arange(row_pair.shape[0]) - np.repeat(first_row, counts)
    row_sku = sku[row_pair]
    units_before = position[row_pair] + nth_case * case_pack[row_sku]
    cover = units_before / np.maximum(forecast_per_day[row_pair], MIN_RATE)
    # lexsort is stable: equal keys keep row order, i.e. pair index then nth case.
    order = np.lexsort((cover, ~priority[row_pair], row_sku))
    sorted_sku = row_sku[order]
    group_start = np.searchsorted(sorted_sku, sorted_sku, side="left")
    rank = np.arange(sorted_sku.shape[0]) - group_start
    taken = order[rank < available[sorted_sku]]
    allocated[contested] = 0
    allocated += np.bincount(row_pair[taken], minlength=allocated.shape[0])
    return allocated
