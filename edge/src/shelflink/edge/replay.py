"""Replay a simulated data set through the gateway's lane features, with labels.

Every reading and every till scan of a store goes through
:class:`shelflink.stream.lanes.LaneFeatureState` in time order, exactly as the
gateway would feed it; at sampled ticks the feature matrix of all lanes is
taken, next to the truth of the data set (``labels.parquet``). The model is
trained and evaluated on these rows, so it sees what the gateway computes.

A row is **usable** for the stock-out risk when the lane is not already empty
(an empty lane is the rule-based ``out_of_stock`` event, not a prediction)
and its label is known: a row whose horizon runs past the end of the data set
with no stock-out seen is right-censored and left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shelflink.stream.lanes import FEATURE_NAMES, LaneFeatureState, LaneSpec

HORIZON_MIN = 180
MINUTE_MS = 60_000

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ReplayOptions:
    """Which ticks become rows.

    ``step_min``: minutes between sampled ticks (every tick still updates the
    features). ``warmup_min``: ticks before this much history are not sampled;
    rates and daily profiles need history, and a real gateway has it.
    """

    step_min: int = 5
    warmup_min: int = 720
    horizon_min: int = HORIZON_MIN


@dataclass(frozen=True)
class ReplayedRows:
    """Sampled rows of every lane of a data set (one row per lane and sampled tick).

    ``lane`` numbers the data set's lanes (``lane_ids[lane]`` is ``(store,
    device, lane)``); ``stockout_lane``/``stockout_ts_ms`` are every stock-out
    (a tick whose lane went from units to none) after the warm-up, at full
    tick resolution, for lead times.
    """

    features: npt.NDArray[np.float32]
    lane: npt.NDArray[np.int64]
    ts_ms: npt.NDArray[np.int64]
    true_units: npt.NDArray[np.int32]
    minutes_to_stockout: npt.NDArray[np.float32]
    usable: npt.NDArray[np.bool_]
    label: npt.NDArray[np.bool_]
    profile: npt.NDArray[np.str_]
    lane_ids: tuple[tuple[str, str, int], ...]
    stockout_lane: npt.NDArray[np.int64]
    stockout_ts_ms: npt.NDArray[np.int64]
    horizon_min: int

    def __len__(self) -> int:
        return int(self.lane.size)


def concatenate(parts: list[ReplayedRows]) -> ReplayedRows:
    """Rows of several data sets as one (lane numbers shifted to stay distinct)."""
    if not parts:
        raise ValueError("nothing to concatenate")
    offsets = np.cumsum([0] + [len(p.lane_ids) for p in parts[:-1]])
    return ReplayedRows(
        features=np.concatenate([p.features for p in parts]),
        lane=np.concatenate([p.lane + o for p, o in zip(parts, offsets, strict=True)]),
        ts_ms=np.concatenate([p.ts_ms for p in parts]),
        true_units=np.concatenate([p.true_units for p in parts]),
        minutes_to_stockout=np.concatenate([p.minutes_to_stockout for p in parts]),
        usable=np.concatenate([p.usable for p in parts]),
        label=np.concatenate([p.label for p in parts]),
        profile=np.concatenate([p.profile for p in parts]),
        lane_ids=tuple(lane for p in parts for lane in p.lane_ids),
        stockout_lane=np.concatenate(
            [p.stockout_lane + o for p, o in zip(parts, offsets, strict=True)]
        ),
        stockout_ts_ms=np.concatenate([p.stockout_ts_ms for p in parts]),
        horizon_min=parts[0].horizon_min,
    )


def _ms(column: pa.ChunkedArray) -> npt.NDArray[np.int64]:
    return np.asarray(column.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy())


def _store_table(path: Path, store: str, columns: list[str]) -> pa.Table:
    # Row groups are a store-day or a store, so the filter skips other stores' data.
    return pq.read_table(path, columns=columns, filters=[("store", "=", store)])


@dataclass
class _StoreReplay:
    store: str
    lanes: list[LaneSpec]
    options: ReplayOptions
    dataset: Path

    def lane_index(self, table: pa.Table) -> npt.NDArray[np.int64]:
        """Position in ``lanes`` of every row's (device, lane)."""
        devices = pc.dictionary_encode(table.column("device")).combine_chunks()
        names = devices.dictionary.to_pylist()
        width = max(spec.lane for spec in self.lanes) + 1
        lookup = np.full((len(names), width), -1, dtype=np.int64)
        code = {name: i for i, name in enumerate(names)}
        for position, spec in enumerate(self.lanes):
            if spec.device in code:
                lookup[code[spec.device], spec.lane] = position
        lanes = table.column("lane").to_numpy().astype(np.int64)
        index: npt.NDArray[np.int64] = lookup[
            devices.indices.to_numpy(), np.minimum(lanes, width - 1)
        ]
        if np.any(index < 0) or np.any(lanes >= width):
            raise ValueError(f"{self.store}: rows of a lane that lanes.parquet does not list")
        return index

    def run(self) -> dict[str, Any]:
        n_lanes = len(self.lanes)
        labels = _store_table(
            self.dataset / "labels.parquet",
            self.store,
            ["device", "lane", "ts", "true_units", "minutes_to_stockout"],
        )
        label_ts = _ms(labels.column("ts"))
        ticks = np.unique(label_ts)
        tick_of = np.searchsorted(ticks, label_ts)
        where = tick_of * n_lanes + self.lane_index(labels)
        units = np.full(ticks.size * n_lanes, -1, dtype=np.int32)
        units[where] = labels.column("true_units").to_numpy()
        minutes = np.full(ticks.size * n_lanes, np.nan, dtype=np.float32)
        minutes[where] = labels.column("minutes_to_stockout").to_numpy(zero_copy_only=False)
        units_grid = units.reshape(ticks.size, n_lanes)
        minutes_grid = minutes.reshape(ticks.size, n_lanes)

        readings = _store_table(
            self.dataset / "readings.parquet",
            self.store,
            ["device", "lane", "ts", "grams", "board_c"],
        )
        reading_ts = _ms(readings.column("ts"))
        order = np.argsort(reading_ts, kind="stable")
        reading_ts = reading_ts[order]
        reading_lane = self.lane_index(readings)[order]
        grams = readings.column("grams").to_numpy(zero_copy_only=False).astype(np.float64)[order]
        board_c = readings.column("board_c").to_numpy().astype(np.float64)[order]
        bounds = np.searchsorted(reading_ts, ticks, side="right")

        sales = _store_table(self.dataset / "sales.parquet", self.store, ["ts", "gtin", "qty"])
        sale_ts = _ms(sales.column("ts"))
        sale_order = np.argsort(sale_ts, kind="stable")
        sale_ts = sale_ts[sale_order]
        gtins = sales.column("gtin").to_pylist()
        sale_gtin = [gtins[i] for i in sale_order]
        sale_qty = sales.column("qty").to_numpy()[sale_order]

        start_ms = int(ticks[0])
        step_ms = self.options.step_min * MINUTE_MS
        first_sample = start_ms + self.options.warmup_min * MINUTE_MS
        state = LaneFeatureState(self.lanes)
        sampled: list[int] = []
        features: list[npt.NDArray[np.float32]] = []
        next_sale = 0
        done = 0
        for k, now in enumerate(ticks.tolist()):
            # Scans stamped up to this tick are in before its readings: the gateway
            # sees both streams as they arrive.
            while next_sale < sale_ts.size and sale_ts[next_sale] <= now:
                state.observe_sale(
                    int(sale_ts[next_sale]), sale_gtin[next_sale], int(sale_qty[next_sale])
                )
                next_sale += 1
            upto = int(bounds[k])
            if upto > done:
                state.observe_lanes(
                    now, reading_lane[done:upto], grams[done:upto], board_c[done:upto]
                )
                done = upto
            if now >= first_sample and (now - start_ms) % step_ms == 0:
                sampled.append(k)
                features.append(np.asarray(state.features(now), dtype=np.float32))

        went_empty = (units_grid[1:] == 0) & (units_grid[:-1] > 0)
        out_tick, out_lane = np.nonzero(went_empty)
        out_ts = ticks[out_tick + 1]
        after_warmup = out_ts >= first_sample
        picks = np.asarray(sampled, dtype=np.int64)
        return {
            "features": (
                np.concatenate(features)
                if features
                else np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
            ),
            "lane": np.tile(np.arange(n_lanes, dtype=np.int64), picks.size),
            "ts_ms": np.repeat(ticks[picks], n_lanes).astype(np.int64),
            "true_units": units_grid[picks].reshape(-1),
            "minutes": minutes_grid[picks].reshape(-1),
            "stockout_lane": out_lane[after_warmup].astype(np.int64),
            "stockout_ts_ms": out_ts[after_warmup].astype(np.int64),
        }


def read_lanes(dataset: Path) -> dict[str, list[LaneSpec]]:
    """Each store's lanes, in the order of ``lanes.parquet``."""
    table = pq.read_table(
        dataset / "lanes.parquet", columns=["store", "device", "lane", "gtin", "unit_g", "capacity"]
    )
    stores: dict[str, list[LaneSpec]] = {}
    for row in table.to_pylist():
        stores.setdefault(row["store"], []).append(
            LaneSpec(
                device=row["device"],
                lane=int(row["lane"]),
                gtin=row["gtin"],
                unit_g=float(row["unit_g"]),
                capacity=int(row["capacity"]),
            )
        )
    return stores


def replay_dataset(
    dataset: Path, options: ReplayOptions | None = None, progress: Progress | None = None
) -> ReplayedRows:
    """Replay every store of the data set in ``dataset`` (a ``write_dataset`` folder)."""
    options = options or ReplayOptions()
    if not (dataset / "dataset.json").is_file():
        raise FileNotFoundError(f"{dataset} is not a data set (no dataset.json)")
    profiles = {
        row["store"]: row["profile"]
        for row in pq.read_table(
            dataset / "stores.parquet", columns=["store", "profile"]
        ).to_pylist()
    }
    end_ms = int(
        pc.max(pq.read_table(dataset / "labels.parquet", columns=["ts"]).column("ts"))
        .cast(pa.int64())
        .as_py()
    )
    parts: list[ReplayedRows] = []
    for store, lanes in read_lanes(dataset).items():
        if progress:
            progress(f"replaying {dataset.name}/{store} ({profiles[store]}, {len(lanes)} lanes)")
        raw = _StoreReplay(store, lanes, options, dataset).run()
        minutes = raw["minutes"]
        # No stock-out within the data set: a negative only when the whole horizon is inside it.
        horizon_ms = options.horizon_min * MINUTE_MS
        censored = np.isnan(minutes) & (raw["ts_ms"] + horizon_ms > end_ms)
        parts.append(
            ReplayedRows(
                features=raw["features"],
                lane=raw["lane"],
                ts_ms=raw["ts_ms"],
                true_units=raw["true_units"],
                minutes_to_stockout=minutes,
                usable=(raw["true_units"] > 0) & ~censored,
                label=~np.isnan(minutes) & (minutes <= options.horizon_min),
                profile=np.full(raw["lane"].size, profiles[store]),
                lane_ids=tuple((store, spec.device, spec.lane) for spec in lanes),
                stockout_lane=raw["stockout_lane"],
                stockout_ts_ms=raw["stockout_ts_ms"],
                horizon_min=options.horizon_min,
            )
        )
    return concatenate(parts)
