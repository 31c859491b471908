"""Training and test data without a broker: simulate stores and write Parquet.

Stores are simulated one after another, a day at a time; the lane readings of
a day go to disk as soon as they exist, event tables once per store. Labels
("minutes until the next stock-out") look into the future, so they are
written after a store's last day, from the true units kept in memory (two
bytes per lane and tick). Same arguments, same package version: the same
bytes in every file (docs/simulator.md says what that guarantee covers).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from shelflink.sim._version import __version__
from shelflink.sim.catalog import build_catalog
from shelflink.sim.clock import DEFAULT_START, SimClock
from shelflink.sim.config import SimConfig
from shelflink.sim.fleet import build_store
from shelflink.sim.ground_truth import (
    NO_STOCKOUT,
    StockoutIntervals,
    stockout_carry,
    ticks_to_stockout,
)
from shelflink.sim.profiles import PROFILES
from shelflink.sim.schema import DATASET_VERSION, SCHEMAS, catalog_table, layout_tables
from shelflink.sim.store import StoreSim
from shelflink.sim.tables import StoreTables

# Called with (store-ticks done, store-ticks in total) after each simulated store-day.
ProgressFn = Callable[[int, int], None]

I64 = npt.NDArray[np.int64]

# zstd: a third smaller than snappy at the same speed for these tables.
COMPRESSION = "zstd"

# Tables written store by store (everything but the brand-wide catalog).
_PER_STORE = [name for name in SCHEMAS if name != "skus"]


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    out: Path
    stores: int
    days: float
    seed: int
    profiles: dict[str, str]  # store id -> profile name
    rows: dict[str, int] = field(default_factory=dict)


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth a Parquet dictionary: names, codes and small counts. Measured
    values, timestamps and unique ids are not, and trying costs a quarter of the
    write time before Parquet gives up on them."""
    unique = {"serial", "receipt_id"}
    return [
        f.name
        for f in schema
        if f.name not in unique
        and not pa.types.is_floating(f.type)
        and not pa.types.is_timestamp(f.type)
    ]


def _statistics_columns(schema: pa.Schema) -> list[str]:
    """Min/max statistics where readers filter (which store, lane, time), not on
    measured values, where computing them costs a fifth of the write time."""
    keys = {"store", "device", "lane", "ts", "start_ts", "receipt_id", "gtin"}
    return [f.name for f in schema if f.name in keys]


class _Writers:
    """One Parquet writer per table; empty pieces are skipped, so a file has no
    empty row groups, but every file exists (with its schema) even if empty."""

    def __init__(self, out: Path) -> None:
        self.rows = dict.fromkeys(_PER_STORE, 0)
        self._writers = {
            name: pq.ParquetWriter(
                out / f"{name}.parquet",
                SCHEMAS[name],
                compression=COMPRESSION,
                use_dictionary=_dictionary_columns(SCHEMAS[name]),
                write_statistics=_statistics_columns(SCHEMAS[name]),
            )
            for name in _PER_STORE
        }

    def write(self, name: str, table: pa.Table) -> None:
        if table.num_rows:
            self._writers[name].write_table(table)
            self.rows[name] += table.num_rows

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


def write_dataset(
    stores: int,
    days: float,
    seed: int,
    out: Path,
    *,
    profile_mix: Mapping[str, float] | None = None,
    config: SimConfig | None = None,
    start: datetime = DEFAULT_START,
    fault_rate: float = 0.0,
    progress: ProgressFn | None = None,
) -> DatasetSummary:
    """Simulate ``stores`` stores for ``days`` days and write the data set into ``out``.

    ``profile_mix`` weighs the store profiles (default: a quarter kiosks, half
    convenience stores, a quarter supermarkets); ``fault_rate`` is the mean
    number of injected faults per shelf or fridge device and day (0: none).
    """
    if stores < 1:
        raise ValueError("simulate at least one store")
    config = config or SimConfig()
    clock = SimClock.starting(start, config.tick_s)
    total = round(days * clock.ticks_per_day)
    if total < 1:
        raise ValueError("simulate at least one tick")
    out.mkdir(parents=True, exist_ok=True)
    catalog = build_catalog(seed, config.catalog_size, config.cold_fraction)
    pq.write_table(catalog_table(catalog), out / "skus.parquet", compression=COMPRESSION)
    writers = _Writers(out)
    profiles: dict[str, str] = {}
    try:
        for index in range(stores):
            sim = build_store(
                seed,
                index,
                clock,
                catalog=catalog,
                profile_mix=profile_mix,
                config=config,
                fault_rate=fault_rate,
                horizon_ticks=total,
            )
            profiles[sim.layout.store_id] = sim.layout.profile.name

            def report(done: int, index: int = index) -> None:
                if progress is not None:
                    progress(index * total + done, stores * total)

            _write_store(sim, total, writers, report)
    finally:
        writers.close()
    rows = {"skus": len(catalog), **writers.rows}
    summary = DatasetSummary(out, stores, days, seed, profiles, rows)
    _write_description(summary, config, clock, profile_mix, fault_rate)
    return summary


def _write_store(
    sim: StoreSim, total: int, writers: _Writers, report: Callable[[int], None]
) -> None:
    layout, clock = sim.layout, sim.clock
    tables = StoreTables(layout, sim.config.currency)
    for name, table in layout_tables(layout, sim.lane_demand).items():
        writers.write(name, table)
    units_by_day: list[npt.NDArray[np.int16]] = []
    ts_by_day: list[I64] = []
    sales, receipts, goods, restocks, stockouts = [], [], [], [], []
    done = 0
    while done < total:
        step = sim.advance(min(clock.ticks_per_day, total - done))
        writers.write("readings", tables.readings(step))
        writers.write("fridge_readings", tables.fridge_readings(step))
        sales.append(tables.sales(step.sales))
        receipts.append(tables.receipts(step.receipts))
        goods.append(tables.goods_receipts(step.goods, sim.deliveries))
        restocks.append(tables.restocks(step.restocks))
        stockouts.append(step.stockouts)
        # Lanes hold at most a few dozen units: int16 keeps a year of a
        # supermarket's truth in memory for the labels.
        units_by_day.append(step.units.astype(np.int16))
        ts_by_day.append(step.ts)
        done += len(step)
        report(done)
    for name, pieces in (
        ("sales", sales),
        ("receipts", receipts),
        ("goods_receipts", goods),
        ("restocks", restocks),
    ):
        writers.write(name, pa.concat_tables(pieces))
    closed = [*stockouts, sim.tracker.still_open()]
    writers.write(
        "stockouts",
        tables.stockouts(
            StockoutIntervals(
                np.concatenate([s.lane for s in closed]),
                np.concatenate([s.start_ms for s in closed]),
                np.concatenate([s.end_ms for s in closed]),
            )
        ),
    )
    # Labels look ahead: carry "next stock-out" backwards over the days first.
    carries = [np.full(layout.lanes, NO_STOCKOUT, dtype=np.int64)]
    for units in reversed(units_by_day[1:]):
        carries.append(stockout_carry(units.astype(np.int64), carries[-1]))
    carries.reverse()
    for units, ts, carry in zip(units_by_day, ts_by_day, carries, strict=True):
        wide = units.astype(np.int64)
        writers.write(
            "labels", tables.labels(ts, wide, ticks_to_stockout(wide, carry), clock.tick_s)
        )
    writers.write("lane_totals", tables.lane_totals(sim.ledger))
    writers.write("promotions", tables.promotions(sim.promotions, sim.now_ms))
    writers.write("faults", tables.faults(sim.faults))


def _write_description(
    summary: DatasetSummary,
    config: SimConfig,
    clock: SimClock,
    profile_mix: Mapping[str, float] | None,
    fault_rate: float,
) -> None:
    description: dict[str, Any] = {
        "dataset_version": DATASET_VERSION,
        "generator": f"shelflink-sim {__version__}",
        "seed": summary.seed,
        "stores": summary.stores,
        "days": summary.days,
        "start_ms": clock.start_ms,
        "tick_s": clock.tick_s,
        "currency": config.currency,
        "profile_mix": dict(sorted(profile_mix.items())) if profile_mix else None,
        "fault_rate": fault_rate,
        "profiles": summary.profiles,
        "rows": summary.rows,
    }
    text = json.dumps(description, indent=2, sort_keys=True) + "\n"
    (summary.out / "dataset.json").write_text(text, encoding="utf-8")


def bench_dataset(
    stores: int = 4,
    days: float = 5.0,
    *,
    seed: int = 0,
    profile: str = "convenience",
    write: bool = True,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Time the data set generator on one profile; returns its figures.

    With ``write`` the full data set is written to a temporary folder (and
    removed); without it only the model runs, which isolates Parquet's share.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {sorted(PROFILES)}")
    mix = {profile: 1.0}
    config = SimConfig()
    started = time.perf_counter()
    if write:
        with tempfile.TemporaryDirectory(prefix="shelflink-bench-") as folder:
            write_dataset(stores, days, seed, Path(folder), profile_mix=mix, progress=progress)
    else:
        clock = SimClock.starting(DEFAULT_START, config.tick_s)
        catalog = build_catalog(seed, config.catalog_size, config.cold_fraction)
        total = round(days * clock.ticks_per_day)
        for index in range(stores):
            sim = build_store(seed, index, clock, catalog=catalog, profile=profile, config=config)
            done = 0
            while done < total:
                done += len(sim.advance(min(clock.ticks_per_day, total - done)))
                if progress is not None:
                    progress(index * total + done, stores * total)
    seconds = time.perf_counter() - started
    lanes = PROFILES[profile].lanes
    store_days = stores * days
    return {
        "profile": profile,
        "lanes_per_store": lanes,
        "tick_s": config.tick_s,
        "stores": stores,
        "days": days,
        "store_days": store_days,
        "wrote_parquet": write,
        "seconds": seconds,
        "store_days_per_s": store_days / seconds,
        "lane_readings_per_s": store_days * lanes * (86_400 / config.tick_s) / seconds,
    }
