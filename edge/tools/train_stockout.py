"""Rebuild the stock-out model: simulate, replay, train, convert, compare, write the card.

Needs TensorFlow, which gateways never install: ``uv sync --all-packages --group
dev --group train`` then ``uv run python edge/tools/train_stockout.py``. Every
step is seeded and TensorFlow runs with deterministic ops, so the same code
and package versions rebuild the same model. It writes:

- ``stockout.tflite`` and its card ``stockout.json`` into ``--out`` (by default
  the packaged ``shelflink/edge/models``);
- the golden rows the runtime's tests check (``--golden``);
- the float32 / int8 comparison and the held-out evaluation into the card.

The data sets are simulated into ``--work`` and reused when already there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shelflink.edge.evaluation import compare, model_scores
from shelflink.edge.evaluation_metrics import (
    alarm_quality,
    average_precision,
    roc_auc,
    threshold_for_max_f1,
)
from shelflink.edge.replay import ReplayedRows, ReplayOptions, concatenate, replay_dataset
from shelflink.edge.stockout_model import CARD_FORMAT, StockoutModel, feature_code_digest
from shelflink.sim import write_dataset
from shelflink.stream.lanes import FEATURE_NAMES

VERSION = "1.0.0"
HORIZON_MIN = 180
SEED = 20240601
REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "edge" / "src" / "shelflink" / "edge" / "models"
DEFAULT_GOLDEN = REPO / "edge" / "tests" / "data" / "stockout_golden.json"
TRAIN_MIX = {"kiosk": 1.0, "convenience": 1.0}
# Training rows every 10 minutes (neighbouring minutes say almost the same);
# evaluation every 5 minutes, as `shelflink edge evaluate` does by default.
TRAIN_REPLAY = ReplayOptions(step_min=10, warmup_min=720, horizon_min=HORIZON_MIN)
EVAL_REPLAY = ReplayOptions(horizon_min=HORIZON_MIN)
# int8 replaces float32 only if it loses at most this much held-out PR-AUC.
INT8_PR_AUC_TOLERANCE = 0.005


@dataclass(frozen=True)
class DatasetSpec:
    """One simulated data set of the recipe."""

    name: str
    seed: int
    stores: int
    days: float
    mix: dict[str, float]
    fault_rate: float = 0.1

    def command(self) -> str:
        mix = ",".join(f"{k}={v:g}" for k, v in self.mix.items())
        return (
            f"shelflink sim dataset --stores {self.stores} --days {self.days:g} --seed {self.seed} "
            f"--profile-mix {mix} --fault-rate {self.fault_rate:g} --out {self.name}"
        )


@dataclass(frozen=True)
class Recipe:
    """Which data sets train, validate (threshold, early stopping) and evaluate the model."""

    train: tuple[DatasetSpec, ...] = tuple(
        DatasetSpec(f"train-{seed}", seed, 6, 14, TRAIN_MIX) for seed in (11, 12, 13)
    )
    validation: DatasetSpec = DatasetSpec("validation-14", 14, 4, 14, TRAIN_MIX)
    held_out: tuple[DatasetSpec, ...] = (
        DatasetSpec("heldout-convenience-21", 21, 4, 14, {"convenience": 1.0}),
        DatasetSpec("heldout-supermarket-22", 22, 2, 14, {"supermarket": 1.0}),
    )

    @classmethod
    def quick(cls) -> Recipe:
        def small(spec: DatasetSpec) -> DatasetSpec:
            return DatasetSpec(f"quick-{spec.name}", spec.seed, 2, 3, spec.mix, spec.fault_rate)

        full = cls()
        return cls(
            train=tuple(small(s) for s in full.train[:1]),
            validation=small(full.validation),
            held_out=tuple(small(s) for s in full.held_out),
        )


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def dataset(work: Path, spec: DatasetSpec) -> Path:
    path = work / spec.name
    if (path / "dataset.json").is_file():
        return path
    say(f"simulating {spec.name}: {spec.stores} stores × {spec.days:g} days, {spec.mix}")
    write_dataset(
        spec.stores, spec.days, spec.seed, path, profile_mix=spec.mix, fault_rate=spec.fault_rate
    )
    return path


def save_rows(path: Path, rows: ReplayedRows) -> None:
    arrays = {
        field: getattr(rows, field)
        for field in (
            "features", "lane", "ts_ms", "true_units", "minutes_to_stockout", "usable",
            "label", "profile", "stockout_lane", "stockout_ts_ms",
        )
    }  # fmt: skip
    lane_ids = np.array([f"{s}\t{d}\t{n}" for s, d, n in rows.lane_ids])
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, lane_ids=lane_ids, horizon_min=rows.horizon_min, **arrays)
    tmp.replace(path)


def load_rows(path: Path) -> ReplayedRows:
    with np.load(path) as data:
        lane_ids = tuple(
            (s, d, int(n)) for s, d, n in (str(x).split("\t") for x in data["lane_ids"])
        )
        return ReplayedRows(
            features=data["features"],
            lane=data["lane"],
            ts_ms=data["ts_ms"],
            true_units=data["true_units"],
            minutes_to_stockout=data["minutes_to_stockout"],
            usable=data["usable"],
            label=data["label"],
            profile=data["profile"],
            lane_ids=lane_ids,
            stockout_lane=data["stockout_lane"],
            stockout_ts_ms=data["stockout_ts_ms"],
            horizon_min=int(data["horizon_min"]),
        )


def replay(work: Path, specs: list[DatasetSpec], options: ReplayOptions, code: str) -> ReplayedRows:
    """Replayed rows of the data sets, from the cache in ``work`` when the feature
    code (digest ``code``) and the options are those that wrote it (replay is
    most of a rebuild)."""
    parts = []
    key = f"{code}-s{options.step_min}-w{options.warmup_min}-h{options.horizon_min}"
    for spec in specs:
        cache = work / f"{spec.name}.rows-{key}.npz"
        if cache.is_file():
            parts.append(load_rows(cache))
            continue
        rows = replay_dataset(dataset(work, spec), options, progress=say)
        save_rows(cache, rows)
        parts.append(rows)
    return concatenate(parts)


def usable_xy(rows: ReplayedRows) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    return rows.features[rows.usable], rows.label[rows.usable].astype(np.float32)


def train_keras(
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.float32],
    x_val: npt.NDArray[np.float32],
    y_val: npt.NDArray[np.float32],
    epochs: int,
) -> Any:
    import keras

    keras.utils.set_random_seed(SEED)
    normalise = keras.layers.Normalization(name="normalise")
    normalise.adapt(x)
    inputs = keras.Input(shape=(x.shape[1],), name="features")
    h = normalise(inputs)
    h = keras.layers.Dense(64, activation="relu", name="hidden_1")(h)
    h = keras.layers.Dense(32, activation="relu", name="hidden_2")(h)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="stockout_probability")(h)
    model = keras.Model(inputs, outputs, name="stockout")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(curve="PR", name="pr_auc")],
    )
    stop = keras.callbacks.EarlyStopping(
        monitor="val_pr_auc", mode="max", patience=3, restore_best_weights=True
    )
    model.fit(
        x,
        y,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=1024,
        shuffle=True,
        callbacks=[stop],
        verbose=2,
    )
    return model


def convert(model: Any, representative: npt.NDArray[np.float32], int8: bool) -> bytes:
    import tensorflow as tf

    # The Keras model's input is (None, features): the flatbuffer keeps a dynamic
    # batch dimension that the runtime resizes to the number of lanes.
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

        def calibration() -> Any:
            for row in representative:
                yield [row.reshape(1, -1)]

        converter.representative_dataset = calibration
    content: bytes = converter.convert()
    return content


def write_model(folder: Path, content: bytes, card: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "stockout.tflite"
    path.write_bytes(content)
    card = {**card, "sha256": hashlib.sha256(content).hexdigest()}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return path


def latency_us(model: StockoutModel, features: npt.NDArray[np.float32]) -> dict[str, float]:
    """Median wall time of one batched call for 400 lanes, of 400 single-lane calls
    (per lane), and of one call for a single lane."""
    lanes = features[:400]

    def median_us(call: Any, repeats: int) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return float(np.median(times) * 1e6)

    model.predict(lanes)
    batched = median_us(lambda: model.predict(lanes), 200)
    each = median_us(lambda: model.predict_each(lanes), 20)
    single = median_us(lambda: model.predict(lanes[:1]), 500)
    return {
        "batched_400_lanes_us": round(batched, 1),
        "per_lane_calls_400_lanes_us": round(each, 1),
        "batch_1_us": round(single, 1),
    }


def candidate_card(quantization: str, threshold: float) -> dict[str, Any]:
    return {
        "format": CARD_FORMAT,
        "name": "stockout",
        "version": VERSION,
        "horizon_min": HORIZON_MIN,
        "threshold": threshold,
        "feature_names": list(FEATURE_NAMES),
        "quantization": quantization,
    }


def assess(
    content: bytes, quantization: str, validation: ReplayedRows, held_out: dict[str, ReplayedRows]
) -> dict[str, Any]:
    """Load a converted candidate through the gateway's runtime and measure it."""
    with tempfile.TemporaryDirectory() as tmp:
        # The threshold is chosen below from these very scores; 0.5 only lets it load.
        path = write_model(Path(tmp), content, candidate_card(quantization, 0.5))
        model = StockoutModel.load(path)
        x_val, y_val = usable_xy(validation)
        val_scores = model_scores(model, x_val)
        threshold = threshold_for_max_f1(y_val.astype(bool), val_scores)
        at = alarm_quality(y_val.astype(bool), val_scores, threshold)
        result: dict[str, Any] = {
            "bytes": len(content),
            "threshold": threshold,
            "validation": {
                "pr_auc": round(average_precision(y_val.astype(bool), val_scores), 6),
                "roc_auc": round(roc_auc(y_val.astype(bool), val_scores), 6),
                "precision": round(at.precision, 6),
                "recall": round(at.recall, 6),
            },
            "held_out_pr_auc": {},
            "latency": latency_us(model, x_val),
        }
        for name, rows in held_out.items():
            x, y = usable_xy(rows)
            result["held_out_pr_auc"][name] = round(
                average_precision(y.astype(bool), model_scores(model, x)), 6
            )
    return result


def golden_rows(rows: ReplayedRows, count: int = 24) -> npt.NDArray[np.float32]:
    """A fixed handful of validation rows, half of them before a stock-out, so that
    the golden test covers risky and calm lanes alike."""
    x, y = usable_xy(rows)
    rng = np.random.default_rng(SEED)
    positives = rng.choice(np.flatnonzero(y > 0), count // 2, replace=False)
    negatives = rng.choice(np.flatnonzero(y == 0), count - count // 2, replace=False)
    picked: npt.NDArray[np.float32] = x[np.sort(np.r_[positives, negatives])]
    return picked


def describe_data(
    specs: list[DatasetSpec], rows: ReplayedRows, options: ReplayOptions
) -> dict[str, Any]:
    x, y = usable_xy(rows)
    return {
        "datasets": [
            {
                "name": s.name,
                "seed": s.seed,
                "stores": s.stores,
                "days": s.days,
                "profile_mix": s.mix,
                "fault_rate": s.fault_rate,
            }
            for s in specs
        ],
        "step_min": options.step_min,
        "warmup_min": options.warmup_min,
        "rows": int(x.shape[0]),
        "positive_rate": round(float(y.mean()), 6),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "var" / "stockout-train")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of the whole recipe on a few store-days (its model is not for use)",
    )
    args = parser.parse_args(argv)
    recipe = Recipe.quick() if args.quick else Recipe()
    # Deterministic kernels and one thread: the same data gives the same weights.
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)

    started = time.monotonic()
    # Taken once, next to the import of the feature code this process runs.
    code = feature_code_digest()
    say(f"feature code digest {code}")
    train = replay(args.work, list(recipe.train), TRAIN_REPLAY, code)
    validation = replay(args.work, [recipe.validation], TRAIN_REPLAY, code)
    held_out = {spec.name: replay(args.work, [spec], EVAL_REPLAY, code) for spec in recipe.held_out}
    x, y = usable_xy(train)
    x_val, y_val = usable_xy(validation)
    if not (np.isfinite(x).all() and np.isfinite(x_val).all()):
        raise SystemExit("the lane features contain NaN or infinity; the model cannot use them")
    say(f"training on {x.shape[0]} rows ({y.mean():.3%} positive), validating on {x_val.shape[0]}")

    keras_model = train_keras(x, y, x_val, y_val, args.epochs)
    rng = np.random.default_rng(SEED)
    representative = x[rng.choice(x.shape[0], 1000, replace=False)]
    candidates = {
        "float32": convert(keras_model, representative, int8=False),
        "int8": convert(keras_model, representative, int8=True),
    }
    assessed = {
        name: assess(content, name, validation, held_out) for name, content in candidates.items()
    }
    for name, result in assessed.items():
        say(f"{name}: {json.dumps(result)}")
    float_pr = np.mean(list(assessed["float32"]["held_out_pr_auc"].values()))
    int8_pr = np.mean(list(assessed["int8"]["held_out_pr_auc"].values()))
    faster = (
        assessed["int8"]["latency"]["batched_400_lanes_us"]
        < assessed["float32"]["latency"]["batched_400_lanes_us"]
    )
    chosen = "int8" if faster and float_pr - int8_pr <= INT8_PR_AUC_TOLERANCE else "float32"
    say(f"chosen: {chosen} (held-out PR-AUC float32 {float_pr:.4f}, int8 {int8_pr:.4f})")

    threshold = round(float(assessed[chosen]["threshold"]), 6)
    card = candidate_card(chosen, threshold)
    path = write_model(args.out, candidates[chosen], card)
    model = StockoutModel.load(path)
    evaluation = {}
    for spec in recipe.held_out:
        rows = held_out[spec.name]
        evaluation[spec.name] = {
            "command": spec.command(),
            **compare(rows, model_scores(model, rows.features), model.info.threshold),
        }
        say(f"held out {spec.name}: {json.dumps(evaluation[spec.name])}")
    card.update(
        {
            "threshold_rule": "maximum F1 on the validation stores",
            "training_data": describe_data(list(recipe.train), train, TRAIN_REPLAY),
            "validation_data": describe_data([recipe.validation], validation, TRAIN_REPLAY),
            "architecture": "normalisation → dense 64 relu → dense 32 relu → dense 1 sigmoid",
            "candidates": assessed,
            "held_out": evaluation,
            "trained_with": {
                "tensorflow": tf.__version__,
                "python": sys.version.split()[0],
                "feature_code_digest": code,
            },
        }
    )
    write_model(args.out, candidates[chosen], card)

    golden = golden_rows(validation)
    args.golden.parent.mkdir(parents=True, exist_ok=True)
    args.golden.write_text(
        json.dumps(
            {
                "sha256": hashlib.sha256(candidates[chosen]).hexdigest(),
                "features": golden.tolist(),
                "probabilities": StockoutModel.load(path).predict(golden).tolist(),
            }
        )
        + "\n",
        encoding="utf-8",
    )
    say(f"wrote {path} and {args.golden} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
