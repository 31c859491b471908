"""The ``shelflink`` command as a user runs it: real subprocesses, real brokers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SHELFLINK = [sys.executable, "-m", "shelflink.cli.main"]


def shelflink(*args: str, timeout: float = 120, cwd: Path | None = None) -> list[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SHELFLINK_MQTT_URL", "SHELFLINK_DATABASE_URL")
    }
    done = subprocess.run(
        [*SHELFLINK, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A state folder the embedded PostgreSQL can use even when tests run as root
    (the server then runs as an unprivileged user, who cannot enter pytest's 0700
    temporary folders)."""
    path = Path(tempfile.mkdtemp(prefix="shelflink-demo-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_demo_runs_headless_on_embedded_defaults(reachable_dir: Path) -> None:
    # No broker and no database configured: the zero-install path a newcomer takes.
    lines = shelflink(
        "demo", "--headless", "--stores", "2", "--duration", "6",
        "--state-dir", str(reachable_dir), timeout=240,
    )  # fmt: skip
    final = json.loads(lines[-1])
    assert final["stores"] == 2
    assert final["published"] > 0
    progress = [line for line in lines[:-1] if line.startswith("t=")]
    assert progress, "the headless demo printed no live lines"
    assert any("devices=19/19" in line or "/19" in line for line in progress)
    manifest = json.loads(Path(final["manifest"]).read_text())
    assert sum(d["count"] for d in manifest["devices"]) == final["published"]
    # Everything the gateways accepted reached the embedded PostgreSQL through
    # the uplink and the ingest worker (statuses included, hence >= published).
    assert final["gateway_accepted"] >= final["published"]
    assert final["in_cloud"] == final["gateway_accepted"] == final["cloud_rows_new"]
    assert final["buffered"] == 0


@pytest.mark.slow
def test_sim_run_writes_a_manifest(tmp_path: Path, mqtt_url: str) -> None:
    manifest_path = tmp_path / "manifest.json"
    lines = shelflink(
        "sim", "run", "--stores", "1", "--duration", "3", "--speed", "60",
        "--broker", mqtt_url, "--manifest", str(manifest_path), "--state-dir", str(tmp_path),
    )  # fmt: skip
    summary = json.loads(lines[-1])
    manifest = json.loads(manifest_path.read_text())
    assert summary["published"] == sum(d["count"] for d in manifest["devices"]) > 0
    for device in manifest["devices"]:
        if device["count"]:
            assert device["last_seq"] - device["first_seq"] + 1 >= device["count"]


def test_sim_dataset_writes_parquet(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    lines = shelflink("sim", "dataset", "--stores", "1", "--days", "0.25", "--out", str(out))
    summary = json.loads(lines[-1])
    assert summary["rows"]
    assert any(out.glob("*.parquet"))


def test_bench_sim_ends_with_one_json_line() -> None:
    lines = shelflink("bench", "sim", "--stores", "1", "--days", "0.25")
    figures = json.loads(lines[-1])
    assert figures["store_days_per_s"] > 0
    assert figures["model_only_store_days_per_s"] > 0


def test_unknown_command_is_a_clear_error() -> None:
    done = subprocess.run(
        [*SHELFLINK, "frobnicate"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_sim_run_without_a_broker_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SHELFLINK_MQTT_URL"}
    done = subprocess.run(
        [*SHELFLINK, "sim", "run"], capture_output=True, text=True, timeout=30, env=env, check=False
    )
    assert done.returncode == 2
    assert "--broker" in done.stderr


def shelflink_status(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SHELFLINK, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_cloud_migrate_retention_and_verify(tmp_path: Path, empty_database_url: str) -> None:
    env = {**os.environ, "SHELFLINK_DATABASE_URL": empty_database_url}
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {"devices": [{"device_id": "s1-shelf-01", "store_id": "s1", "kind": "shelf",
                          "first_seq": 0, "last_seq": 4, "count": 5}]}
        )
    )  # fmt: skip
    before = shelflink_status("verify", "--manifest", str(manifest), env=env)
    assert before.returncode == 2
    assert "shelflink cloud migrate" in before.stderr
    migrated = shelflink_status("cloud", "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout)["applied"]
    again = shelflink_status("cloud", "migrate", env=env)
    assert json.loads(again.stdout) == {"applied": []}
    kept = shelflink_status("cloud", "retention", "--days", "30", env=env)
    assert kept.returncode == 0, kept.stderr
    report = shelflink_status("verify", "--manifest", str(manifest), env=env)
    assert report.returncode == 1
    found = json.loads(report.stdout)
    assert (found["expected"], found["found"], found["missing"]) == (5, 0, 5)
    assert found["missing_ranges"] == [["s1-shelf-01", 0, 4]]
