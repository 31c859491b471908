"""The committed stock-out model through the gateway's runtime (LiteRT, no TensorFlow)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shelflink.edge.stockout_model import (
    ModelError,
    StockoutModel,
    card_path_for,
    default_model_path,
)
from shelflink.stream.lanes import FEATURE_NAMES

GOLDEN = Path(__file__).with_name("data") / "stockout_golden.json"


@pytest.fixture(scope="module")
def model() -> StockoutModel:
    return StockoutModel.load(default_model_path())


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return data


def copy_model(folder: Path) -> Path:
    """The packaged model and its card, copied where a test may spoil them."""
    path = folder / "stockout.tflite"
    shutil.copyfile(default_model_path(), path)
    shutil.copyfile(card_path_for(default_model_path()), card_path_for(path))
    return path


def rewrite_card(path: Path, **changes: Any) -> None:
    card_path = card_path_for(path)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card.update(changes)
    card_path.write_text(json.dumps(card), encoding="utf-8")


def test_the_packaged_model_matches_its_card_and_the_gateways_features(
    model: StockoutModel,
) -> None:
    info = model.info
    assert info.feature_names == FEATURE_NAMES
    assert info.horizon_min == 180
    assert 0.0 < info.threshold < 1.0
    assert info.quantization in ("float32", "int8")
    assert info.sha256 == hashlib.sha256(default_model_path().read_bytes()).hexdigest()
    assert info.path == default_model_path()


def test_the_model_reproduces_its_golden_outputs(
    model: StockoutModel, golden: dict[str, Any]
) -> None:
    # The golden rows were scored when the model was built; the same bytes must
    # give the same probabilities on any gateway.
    assert golden["sha256"] == model.info.sha256
    features = np.asarray(golden["features"], dtype=np.float32)
    expected = np.asarray(golden["probabilities"], dtype=np.float32)
    assert features.shape == (len(expected), len(FEATURE_NAMES))
    np.testing.assert_allclose(model.predict(features), expected, rtol=0, atol=2e-6)
    # The rows are chosen to span the range: some risky, some calm.
    assert expected.min() < model.info.threshold < expected.max()


def test_batched_and_per_lane_calls_agree_whatever_the_batch_size(
    model: StockoutModel, golden: dict[str, Any]
) -> None:
    features = np.asarray(golden["features"], dtype=np.float32)
    many = np.tile(features, (17, 1))  # 400-odd lanes, then fewer, then one
    batched = model.predict(many)
    assert batched.shape == (many.shape[0],)
    assert batched.dtype == np.float32
    np.testing.assert_allclose(model.predict_each(many), batched, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.predict(features[:3]), batched[:3], rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.predict(features[5:6]), batched[5:6], rtol=0, atol=1e-6)
    assert ((batched >= 0.0) & (batched <= 1.0)).all()
    assert model.predict(features[:0]).shape == (0,)


def test_features_of_the_wrong_width_are_refused(model: StockoutModel) -> None:
    with pytest.raises(ModelError, match="shape"):
        model.predict(np.zeros((4, len(FEATURE_NAMES) - 1), dtype=np.float32))
    with pytest.raises(ModelError, match="shape"):
        model.predict_each(np.zeros(len(FEATURE_NAMES), dtype=np.float32))


def test_a_missing_model_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        StockoutModel.load(tmp_path / "stockout.tflite")


def test_a_missing_card_is_a_model_error(tmp_path: Path) -> None:
    path = copy_model(tmp_path)
    card_path_for(path).unlink()
    with pytest.raises(ModelError, match=r"card .* is missing"):
        StockoutModel.load(path)


def test_a_corrupt_flatbuffer_is_a_model_error(tmp_path: Path) -> None:
    path = copy_model(tmp_path)
    junk = np.random.default_rng(7).bytes(4096)
    path.write_bytes(junk)
    # A card that vouches for the junk, so that the runtime itself has to refuse it.
    rewrite_card(path, sha256=hashlib.sha256(junk).hexdigest())
    with pytest.raises(ModelError, match="not a valid TensorFlow Lite model"):
        StockoutModel.load(path)


def test_a_model_that_does_not_match_its_card_is_refused(tmp_path: Path) -> None:
    path = copy_model(tmp_path)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="sha256"):
        StockoutModel.load(path)


def test_a_card_with_other_feature_names_is_refused(tmp_path: Path) -> None:
    path = copy_model(tmp_path)
    rewrite_card(path, feature_names=list(reversed(FEATURE_NAMES)))
    with pytest.raises(ModelError, match="other features"):
        StockoutModel.load(path)
    rewrite_card(path, feature_names=[*FEATURE_NAMES[:-1], "shelf_mood"])
    with pytest.raises(ModelError, match="shelf_mood"):
        StockoutModel.load(path)


def test_a_damaged_card_is_a_model_error(tmp_path: Path) -> None:
    path = copy_model(tmp_path)
    card_path_for(path).write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="unreadable"):
        StockoutModel.load(path)
    copy_model(tmp_path)
    card = json.loads(card_path_for(path).read_text(encoding="utf-8"))
    del card["threshold"]
    card_path_for(path).write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ModelError, match="threshold"):
        StockoutModel.load(path)


def test_the_committed_model_was_trained_on_the_feature_code_in_the_tree() -> None:
    # The loader catches renamed or reordered features, not a changed formula
    # behind the same name: any change to shelflink.stream needs a retrained model.
    from shelflink.edge.stockout_model import (
        card_path_for,
        default_model_path,
        feature_code_digest,
    )

    card = json.loads(card_path_for(default_model_path()).read_text())
    assert card["trained_with"]["feature_code_digest"] == feature_code_digest(), (
        "shelflink.stream changed since the model was trained: rebuild it with "
        "edge/tools/train_stockout.py (docs/models/stockout.md) and commit model, card and golden"
    )
