"""From a store's delivery weekdays to the two figures the policy needs.

An order placed today arrives ``lead_time_days`` later. It is a regular order
when that day is one of the store's delivery weekdays; either way it has to
last until the next delivery after its arrival, which is the review period.
"""

from __future__ import annotations

import numpy as np

from shelflink.cloud.planning.inputs import AnyInts, BoolArray, IntArray


def delivery_schedule(
    delivery_weekdays: BoolArray, lead_time_days: AnyInts, order_weekday: int
) -> tuple[BoolArray, IntArray]:
    """``(order_today, review_days)`` per store.

    ``delivery_weekdays`` is ``(stores, 7)``, Monday first (ISO weekday 1 is
    column 0); ``order_weekday`` is today's weekday, 0 = Monday.
    """
    if delivery_weekdays.ndim != 2 or delivery_weekdays.shape[1] != 7:
        raise ValueError("delivery_weekdays must have shape (stores, 7)")
    if not np.all(delivery_weekdays.any(axis=1)):
        raise ValueError("every store needs at least one delivery weekday")
    stores = np.arange(delivery_weekdays.shape[0])
    arrival = (order_weekday + np.asarray(lead_time_days, dtype=np.int64)) % 7
    order_today = delivery_weekdays[stores, arrival]
    ahead = np.arange(1, 8)
    # ahead_delivers[i, k - 1]: store i delivers k days after the arrival.
    ahead_delivers = delivery_weekdays[stores[:, np.newaxis], (arrival[:, np.newaxis] + ahead) % 7]
    review_days: IntArray = ahead[np.argmax(ahead_delivers, axis=1)]
    return order_today, review_days
