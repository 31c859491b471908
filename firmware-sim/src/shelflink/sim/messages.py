"""A store's simulated step as the v1 device messages its devices would publish.

Messages are built with ``seq=0``: the sequence number is the publishing
client's to draw (:meth:`with_seq`), at the moment it publishes.
"""

from __future__ import annotations

import math

import numpy as np

from shelflink.device import (
    DeviceIdentity,
    DeviceKind,
    FridgeReading,
    GoodsReceipt,
    Sale,
    ShelfReading,
)
from shelflink.device.models import DataMessage
from shelflink.sim._version import __version__
from shelflink.sim.backroom import Delivery, serial_code
from shelflink.sim.layout import StoreLayout
from shelflink.sim.step import StoreStep

FIRMWARE = f"sim-{__version__}"


def identities(layout: StoreLayout, tick_s: int) -> list[DeviceIdentity]:
    """Every device of a store, shelves first; ``interval_ms`` is in simulated time."""
    interval = tick_s * 1000
    store = layout.store_id
    return [
        *(
            DeviceIdentity(store, s.device_id, DeviceKind.SHELF, FIRMWARE, s.lanes, interval)
            for s in layout.shelves
        ),
        *(
            DeviceIdentity(store, f.device_id, DeviceKind.FRIDGE, FIRMWARE, None, interval)
            for f in layout.fridges
        ),
        *(
            DeviceIdentity(store, t, DeviceKind.SCANNER, FIRMWARE, None, interval)
            for t in (*layout.tills, layout.receiving)
        ),
    ]


def with_seq(message: DataMessage, seq: int) -> DataMessage:
    # model_copy skips validation, which the message passed when it was built.
    return message.model_copy(update={"seq": seq})


def step_messages(
    layout: StoreLayout, step: StoreStep, currency: str, deliveries: list[Delivery]
) -> dict[str, list[DataMessage]]:
    """Per device id, its messages of this step in publishing order."""
    out: dict[str, list[DataMessage]] = {d: [] for d in layout.device_ids()}
    ts = step.ts.tolist()
    for d, shelf in enumerate(layout.shelves):
        grams = step.grams[:, shelf.start : shelf.stop].tolist()
        board = step.board_c[:, d].tolist()
        online = step.shelf_online[:, d].tolist()
        messages = out[shelf.device_id]
        for row, stamp in enumerate(ts):
            if not online[row]:
                continue
            values = [None if math.isnan(g) else g for g in grams[row]]
            messages.append(
                ShelfReading(
                    device=shelf.device_id, seq=0, ts=stamp, grams=values, board_c=board[row]
                )
            )
    for f, fridge in enumerate(layout.fridges):
        messages = out[fridge.device_id]
        for row, stamp in enumerate(ts):
            if not step.fridge_online[row, f]:
                continue
            messages.append(
                FridgeReading(
                    device=fridge.device_id,
                    seq=0,
                    ts=stamp,
                    cabinet_c=float(step.cabinet_c[row, f]),
                    evaporator_c=float(step.evaporator_c[row, f]),
                    door_open=bool(step.door_open[row, f]),
                    compressor_on=bool(step.compressor_on[row, f]),
                    defrost_on=bool(step.defrost_on[row, f]),
                )
            )
    gtins = [s.gtin for s in layout.skus]
    sales = step.sales
    for i in range(len(sales)):
        till = layout.tills[int(sales.till[i])]
        out[till].append(
            Sale(
                device=till,
                seq=0,
                ts=int(sales.ts[i]),
                gtin=gtins[int(sales.sku[i])],
                serial=serial_code(layout.store_index, int(sales.serial[i])),
                qty=1,
                unit_price_minor=int(sales.price_minor[i]),
                currency=currency,
                receipt_id=f"{layout.store_id}-r{int(sales.receipt[i]):08d}",
            )
        )
    goods = step.goods
    for i in np.argsort(goods.ts, kind="stable").tolist():
        out[layout.receiving].append(
            GoodsReceipt(
                device=layout.receiving,
                seq=0,
                ts=int(goods.ts[i]),
                gtin=gtins[int(goods.sku[i])],
                serial=serial_code(layout.store_index, int(goods.serial[i])),
                qty=1,
                delivery_ref=deliveries[int(goods.delivery[i])].ref,
            )
        )
    return out
