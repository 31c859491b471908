"""``shelflink edge evaluate`` as a user runs it: a real subprocess on a small data set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shelflink.sim import write_dataset

SHELFLINK = [sys.executable, "-m", "shelflink.cli.main"]
KEYS = {"roc_auc", "pr_auc", "precision", "recall", "lead_time_min"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("edge-dataset")
    write_dataset(2, 1.2, 3, out, profile_mix={"kiosk": 1, "convenience": 1})
    return out


@pytest.mark.slow
def test_evaluate_prints_one_json_object_with_model_and_baseline(dataset: Path) -> None:
    done = subprocess.run(
        [*SHELFLINK, "edge", "evaluate", "--dataset", str(dataset)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    result = json.loads(lines[0])
    assert set(result) == {"model", "baseline"}
    for side in result.values():
        assert set(side) >= KEYS
    # Progress goes to stderr, where it does not spoil the JSON.
    assert "replaying" in done.stderr


def test_evaluate_says_what_is_wrong_with_a_missing_model(dataset: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [*SHELFLINK, "edge", "evaluate", "--dataset", str(dataset),
         "--model", str(tmp_path / "nothing.tflite")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    assert "nothing.tflite does not exist" in done.stderr
