"""The stock-out model at run time: a TensorFlow Lite flatbuffer and its model card.

The gateway runs the model with LiteRT (``ai_edge_litert``), or with the older
``tflite_runtime`` wheel where LiteRT is not available, and never imports
TensorFlow. The model's input is exactly the feature matrix of
:class:`shelflink.stream.lanes.LaneFeatureState` (``features(now_ms)``), raw:
normalisation is inside the model, so what the gateway computes is what the
model was trained on. The card (``stockout.json`` beside ``stockout.tflite``)
says which features, in which order, the horizon and the alarm threshold; a
model whose card does not match the running feature code is refused.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

import shelflink.stream
from shelflink.stream.lanes import FEATURE_NAMES

# Where LiteRT's interpreter lives, newest first: older gateway images ship the
# tflite_runtime wheel, which has the same Interpreter API.
_INTERPRETER_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")

CARD_FORMAT = 1


class ModelError(Exception):
    """The model cannot be used: a missing or corrupt file, no card, or a card
    that does not match the model or the running feature code."""


@dataclass(frozen=True)
class ModelInfo:
    """What the model card says about a loaded model."""

    version: str
    horizon_min: int
    threshold: float
    feature_names: tuple[str, ...]
    sha256: str
    quantization: str
    path: Path


class _Interpreter(Protocol):
    """The part of the TensorFlow Lite interpreter API this module uses."""

    def allocate_tensors(self) -> None: ...
    def get_input_details(self) -> list[dict[str, Any]]: ...
    def get_output_details(self) -> list[dict[str, Any]]: ...
    def resize_tensor_input(self, input_index: int, tensor_size: list[int]) -> None: ...
    def set_tensor(self, tensor_index: int, value: npt.NDArray[Any]) -> None: ...
    def get_tensor(self, tensor_index: int) -> npt.NDArray[Any]: ...
    def invoke(self) -> None: ...


@functools.cache
def feature_code_digest() -> str:
    """A digest of the feature code (every module of ``shelflink.stream``).

    The model card records it at training; the gateway's saved edge state
    carries it too. Names and order of features are checked at load, formulas
    cannot be: this is what tells that the code behind them changed.
    """
    digest = hashlib.sha256()
    for source in sorted(Path(shelflink.stream.__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()[:16]


def default_model_path() -> Path:
    """The stock-out model packaged with ``shelflink.edge``."""
    return Path(__file__).with_name("models") / "stockout.tflite"


def card_path_for(model_path: Path) -> Path:
    """The model card that belongs to ``model_path``: same folder, same stem, ``.json``."""
    return model_path.with_suffix(".json")


def _interpreter_class() -> Any:
    for name in _INTERPRETER_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return module.Interpreter
    raise ModelError(
        "no TensorFlow Lite runtime: install ai-edge-litert (or tflite-runtime on older gateways)"
    )


def _read_card(model_path: Path, content: bytes) -> ModelInfo:
    card_path = card_path_for(model_path)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"model card {card_path} is missing (it must sit beside the model)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"model card {card_path} is unreadable: {exc}") from exc
    try:
        if card.get("format") != CARD_FORMAT:
            raise ModelError(
                f"model card {card_path} has format {card.get('format')!r}, expected {CARD_FORMAT}"
            )
        info = ModelInfo(
            version=str(card["version"]),
            horizon_min=int(card["horizon_min"]),
            threshold=float(card["threshold"]),
            feature_names=tuple(str(name) for name in card["feature_names"]),
            sha256=str(card["sha256"]),
            quantization=str(card["quantization"]),
            path=model_path,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"model card {card_path} lacks or mangles a field: {exc!r}") from exc
    actual = hashlib.sha256(content).hexdigest()
    if actual != info.sha256:
        # A card describes one exact file; a swapped model with a stale card would
        # run with the wrong threshold and the wrong feature order.
        raise ModelError(
            f"{model_path} has sha256 {actual}, its card {card_path} describes {info.sha256}"
        )
    if info.feature_names != FEATURE_NAMES:
        missing = [n for n in FEATURE_NAMES if n not in info.feature_names]
        extra = [n for n in info.feature_names if n not in FEATURE_NAMES]
        raise ModelError(
            f"model {model_path} was trained on other features than this gateway computes "
            f"(missing {missing}, unknown {extra}, or another order); retrain or update"
        )
    if not 0.0 < info.threshold < 1.0 or info.horizon_min <= 0:
        raise ModelError(
            f"model card {card_path} has threshold {info.threshold} "
            f"and horizon {info.horizon_min} min; both must be positive, threshold < 1"
        )
    return info


class StockoutModel:
    """The stock-out risk model: features of every lane in, probability of running
    empty within the card's horizon out."""

    def __init__(self, interpreter: _Interpreter, info: ModelInfo) -> None:
        self._interpreter = interpreter
        self.info = info
        inputs = interpreter.get_input_details()
        outputs = interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"{info.path} has {len(inputs)} inputs and {len(outputs)} outputs, expected 1 and 1"
            )
        shape = [int(d) for d in inputs[0]["shape"]]
        if len(shape) != 2 or shape[1] != len(info.feature_names):
            raise ModelError(
                f"{info.path} takes input shape {shape}, "
                f"expected [batch, {len(info.feature_names)}]"
            )
        if np.dtype(inputs[0]["dtype"]) != np.float32:
            raise ModelError(
                f"{info.path} takes {np.dtype(inputs[0]['dtype'])} input, expected float32"
            )
        self._input = int(inputs[0]["index"])
        self._output = int(outputs[0]["index"])
        self._batch = shape[0]

    @classmethod
    def load(cls, path: Path) -> StockoutModel:
        """Load the ``.tflite`` at ``path`` and its card beside it; :class:`ModelError`
        says what is wrong when either cannot be used."""
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise ModelError(f"model file {path} does not exist") from None
        except OSError as exc:
            raise ModelError(f"model file {path} is unreadable: {exc}") from exc
        info = _read_card(path, content)
        interpreter_class = _interpreter_class()
        try:
            interpreter = cast(
                _Interpreter, interpreter_class(model_content=content, num_threads=1)
            )
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path} is not a valid TensorFlow Lite model: {exc}") from exc
        return cls(interpreter, info)

    def _check(self, features: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        width = len(self.info.feature_names)
        if features.ndim != 2 or features.shape[1] != width:
            raise ModelError(f"features have shape {features.shape}, expected (lanes, {width})")
        return np.ascontiguousarray(features, dtype=np.float32)

    def _resize(self, rows: int) -> None:
        if rows != self._batch:
            self._interpreter.resize_tensor_input(self._input, [rows, len(self.info.feature_names)])
            self._interpreter.allocate_tensors()
            self._batch = rows

    def _run(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        # get_tensor copies: the interpreter reuses its output buffer on the next invoke.
        return self._interpreter.get_tensor(self._output).reshape(-1).astype(np.float32)

    def predict(self, features: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Probabilities, shape ``(lanes,)``, for a ``(lanes, features)`` matrix, in one
        interpreter invocation for all lanes."""
        batch = self._check(features)
        if batch.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        self._resize(batch.shape[0])
        return self._run(batch)

    def predict_each(self, features: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """The same probabilities as :meth:`predict`, one invocation per lane: what a
        per-lane caller would cost (benchmarks compare the two)."""
        batch = self._check(features)
        out = np.zeros(batch.shape[0], dtype=np.float32)
        if batch.shape[0] == 0:
            return out
        self._resize(1)
        for row in range(batch.shape[0]):
            out[row] = self._run(batch[row : row + 1])[0]
        return out
