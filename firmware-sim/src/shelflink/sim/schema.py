"""The data set's Parquet schemas, and its small descriptive tables.

docs/datasets.md describes every column; a change of a schema here is a
change of the data set's version (``DATASET_VERSION``) and of that page.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from shelflink.sim.catalog import Sku
from shelflink.sim.layout import StoreLayout

DATASET_VERSION = 1

# Store and device names repeat on every row; Parquet's dictionary encoding
# stores them once per row group, and readers get plain strings (columns of
# differing Arrow dictionaries would not join or concatenate).
NAME = pa.string()
TS = pa.timestamp("ms", tz="UTC")


def _schema(*columns: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in columns])


_STORE = ("store", NAME)
_DEVICE = ("device", NAME)
_LANE = ("lane", pa.int16())

SCHEMAS: dict[str, pa.Schema] = {
    "stores": _schema(
        ("store", pa.string()),
        ("profile", pa.string()),
        ("lanes", pa.int32()),
        ("shelves", pa.int32()),
        ("fridges", pa.int32()),
        ("tills", pa.int32()),
        ("peak_customers_per_h", pa.float64()),
        ("open_hour", pa.float64()),
        ("close_hour", pa.float64()),
    ),
    "skus": _schema(
        ("gtin", pa.string()),
        ("name", pa.string()),
        ("category", pa.string()),
        ("unit_g", pa.float64()),
        ("price_minor", pa.int64()),
        ("min_resale_minor", pa.int64()),
        ("case_pack", pa.int32()),
        ("cold_chain", pa.bool_()),
    ),
    "devices": _schema(
        ("store", pa.string()),
        ("device", pa.string()),
        ("kind", pa.string()),
        ("lanes", pa.int32()),
        ("fridge", pa.string()),
    ),
    "lanes": _schema(
        ("store", pa.string()),
        ("device", pa.string()),
        _LANE,
        ("gtin", pa.string()),
        ("capacity", pa.int32()),
        ("unit_g", pa.float64()),
        ("cold_chain", pa.bool_()),
        ("expected_units_per_day", pa.float64()),
    ),
    "readings": _schema(
        _STORE,
        _DEVICE,
        _LANE,
        ("ts", TS),
        ("grams", pa.float32()),
        ("board_c", pa.float32()),
        ("true_units", pa.int32()),
    ),
    "fridge_readings": _schema(
        _STORE,
        _DEVICE,
        ("ts", TS),
        ("cabinet_c", pa.float32()),
        ("evaporator_c", pa.float32()),
        ("door_open", pa.bool_()),
        ("compressor_on", pa.bool_()),
        ("defrost_on", pa.bool_()),
        ("true_cabinet_c", pa.float32()),
    ),
    "labels": _schema(
        _STORE,
        _DEVICE,
        _LANE,
        ("ts", TS),
        ("true_units", pa.int32()),
        ("stock_out", pa.bool_()),
        ("minutes_to_stockout", pa.float32()),
    ),
    "sales": _schema(
        _STORE,
        _DEVICE,
        ("ts", TS),
        ("gtin", pa.string()),
        ("serial", pa.string()),
        ("qty", pa.int32()),
        ("unit_price_minor", pa.int64()),
        ("currency", pa.string()),
        ("receipt_id", pa.string()),
        ("lane_device", NAME),
        ("lane", pa.int16()),
        ("picked_ts", TS),
    ),
    "receipts": _schema(
        _STORE,
        _DEVICE,
        ("receipt_id", pa.string()),
        ("ts", TS),
        ("items", pa.int32()),
        ("total_minor", pa.int64()),
        ("currency", pa.string()),
    ),
    "goods_receipts": _schema(
        _STORE,
        _DEVICE,
        ("ts", TS),
        ("gtin", pa.string()),
        ("serial", pa.string()),
        ("qty", pa.int32()),
        ("delivery_ref", pa.string()),
        ("injected", pa.bool_()),
    ),
    "restocks": _schema(_STORE, _DEVICE, _LANE, ("ts", TS), ("units", pa.int32())),
    "stockouts": _schema(
        _STORE,
        _DEVICE,
        _LANE,
        ("start_ts", TS),
        ("end_ts", TS),
        ("minutes", pa.float64()),
    ),
    "lane_totals": _schema(
        _STORE,
        _DEVICE,
        _LANE,
        ("initial", pa.int64()),
        ("restocked", pa.int64()),
        ("sold", pa.int64()),
        ("shrink", pa.int64()),
        ("lost", pa.int64()),
        ("on_shelf", pa.int64()),
    ),
    "promotions": _schema(
        _STORE,
        _DEVICE,
        _LANE,
        ("gtin", pa.string()),
        ("start_ts", TS),
        ("end_ts", TS),
        ("multiplier", pa.float64()),
        ("price_minor", pa.int64()),
    ),
    "faults": _schema(
        _STORE,
        ("device", pa.string()),
        ("kind", pa.string()),
        ("lane", pa.int16()),
        ("start_ts", TS),
        ("end_ts", TS),
    ),
}


def catalog_table(catalog: Sequence[Sku]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "gtin": s.gtin,
                "name": s.name,
                "category": s.category,
                "unit_g": s.unit_g,
                "price_minor": s.price_minor,
                "min_resale_minor": s.min_resale_minor,
                "case_pack": s.case_pack,
                "cold_chain": s.cold_chain,
            }
            for s in catalog
        ],
        schema=SCHEMAS["skus"],
    )


def layout_tables(layout: StoreLayout, lane_demand: npt.NDArray[np.float64]) -> dict[str, pa.Table]:
    """The store's rows of the stores, devices and lanes tables."""
    p = layout.profile
    store = {
        "store": layout.store_id,
        "profile": p.name,
        "lanes": layout.lanes,
        "shelves": len(layout.shelves),
        "fridges": len(layout.fridges),
        "tills": len(layout.tills),
        "peak_customers_per_h": p.peak_customers_per_h,
        "open_hour": p.open_hour,
        "close_hour": p.close_hour,
    }
    devices = [
        *(
            {
                "store": layout.store_id,
                "device": s.device_id,
                "kind": "shelf",
                "lanes": s.lanes,
                "fridge": None if s.fridge is None else layout.fridges[s.fridge].device_id,
            }
            for s in layout.shelves
        ),
        *(
            {
                "store": layout.store_id,
                "device": f.device_id,
                "kind": "fridge",
                "lanes": None,
                "fridge": None,
            }
            for f in layout.fridges
        ),
        *(
            {
                "store": layout.store_id,
                "device": t,
                "kind": "scanner",
                "lanes": None,
                "fridge": None,
            }
            for t in (*layout.tills, layout.receiving)
        ),
    ]
    lanes = [
        {
            "store": layout.store_id,
            "device": layout.shelves[int(layout.lane_device[i])].device_id,
            "lane": int(layout.lane_slot[i]),
            "gtin": layout.skus[int(layout.lane_sku[i])].gtin,
            "capacity": int(layout.capacity[i]),
            "unit_g": float(layout.unit_g[i]),
            "cold_chain": bool(layout.lane_fridge[i] >= 0),
            "expected_units_per_day": float(lane_demand[i]),
        }
        for i in range(layout.lanes)
    ]
    return {
        "stores": pa.Table.from_pylist([store], schema=SCHEMAS["stores"]),
        "devices": pa.Table.from_pylist(devices, schema=SCHEMAS["devices"]),
        "lanes": pa.Table.from_pylist(lanes, schema=SCHEMAS["lanes"]),
    }
