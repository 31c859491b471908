"""The ``shelflink`` command as a user runs it: real subprocesses, real brokers."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shelflink.cli.demo_seed import staged_diversion
from shelflink.cli.store_configs import sim_layouts
from shelflink.sim import StoreProfile

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


def _open_throughout(profile: StoreProfile, start_ms: int, end_ms: int) -> bool:
    """Whether a store of ``profile`` is open for the whole simulated span (UTC)."""
    day_ms = 86_400_000
    day = start_ms - start_ms % day_ms
    opens, closes = (round(hour * 3_600_000) for hour in (profile.open_hour, profile.close_hour))
    return opens <= start_ms - day and end_ms - day < closes


@pytest.mark.slow
def test_demo_runs_headless_on_embedded_defaults(reachable_dir: Path) -> None:
    # No broker and no database configured: the zero-install path a newcomer takes.
    # At 600x the 6 wall seconds are a simulated hour: at the default 120x (12
    # minutes) the staged SKU goes unsold in about half the runs.
    lines = shelflink(
        "demo", "--headless", "--stores", "2", "--duration", "6", "--speed", "600",
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
    # the uplink and the ingest worker (statuses included, hence >= published),
    # and so did the gateways' own events (the edge's conclusions among them).
    assert final["gateway_accepted"] >= final["published"]
    assert final["gateway_events"] > 0
    in_cloud = final["gateway_accepted"] + final["gateway_events"]
    assert final["in_cloud"] == in_cloud == final["cloud_rows_new"]
    assert final["buffered"] == 0
    # The replenishment side: the dealer API with a key per dealer, a planning run
    # once the shelves had reported, and its suggestions shown as they appeared.
    assert final["api_docs"].startswith("http://127.0.0.1:") and final["api_docs"].endswith("/docs")
    assert any(line.startswith(f"dealer API {final['api_docs']}") for line in lines)
    keys = {line.split(":")[0] for line in lines if line.startswith("api key ")}
    assert keys == {"api key operator", "api key north-drinks", "api key south-wholesale"}
    assert final["planning_runs"] >= 1
    assert sum(final["orders"].values()) >= 1, final
    new_orders = [line for line in lines if line.startswith("order ") and " new, " in line]
    assert len(new_orders) == sum(final["orders"].values())
    assert {line.split()[2] for line in new_orders} <= {"s0001", "s0002"}
    # Channel control: the seeding recorded the opening stock of the convenience
    # store's fastest seller as shipped to the other dealer, and the store's tills
    # sell it below the minimum resale price from the start (docs/orders.md).
    staged = staged_diversion(sim_layouts(2, 1))
    assert staged is not None
    assert (staged.store_id, staged.sold_by, staged.shipped_to) == (
        "s0002", "south-wholesale", "north-drinks"
    )  # fmt: skip
    assert any(line.startswith(f"staged diversion s0002 {staged.gtin}: ") for line in lines)
    assert any(line.startswith(f"staged price s0002 {staged.gtin}: ") for line in lines)
    alerts = [line for line in lines if line.startswith("alert ")]
    assert sorted(final["alerts"]) == ["diversion", "price"]
    assert len(alerts) == sum(final["alerts"].values())
    for line in alerts:
        kind, store, _, _, gtin, _, serial = line.split()[1:8]
        assert (store, gtin, serial[:4]) == ("s0002", staged.gtin, "0002"), line
        if kind == "diversion":
            assert line.endswith(": shipped to north-drinks, sold by south-wholesale"), line
        else:
            assert kind == "price" and ": sold by south-wholesale at " in line, line
    # Its customers come only while it is open, and simulated time follows the wall
    # clock: outside its hours the hour of the run has no sales to judge.
    layout = sim_layouts(2, 1)[1]
    if _open_throughout(layout.profile, manifest["sim_start_ms"], manifest["sim_end_ms"]):
        assert final["alerts"]["diversion"] >= 1 and final["alerts"]["price"] >= 1, final


def _line_starting(proc: subprocess.Popen[str], prefix: str, timeout_s: float) -> str:
    """The first line of the demo's output that starts with ``prefix``."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                line = proc.stdout.readline()
                if line.startswith(prefix):
                    return line.strip()
                if not line:
                    break
    raise AssertionError(f"the demo printed no line starting with {prefix!r} (exit {proc.poll()})")


@pytest.mark.slow
def test_demo_orders_are_delivered_and_visible_through_the_api(reachable_dir: Path) -> None:
    # One kiosk at 600x: in 25 wall seconds the dealer approves, picks, ships and
    # delivers the first orders (about 2.5 simulated hours, DealerPace).
    env = {k: v for k, v in os.environ.items()
           if k not in ("SHELFLINK_MQTT_URL", "SHELFLINK_DATABASE_URL")}  # fmt: skip
    proc = subprocess.Popen(
        [*SHELFLINK, "demo", "--headless", "--stores", "1", "--speed", "600", "--duration", "25",
         "--state-dir", str(reachable_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        docs = _line_starting(proc, "dealer API ", 120).split()[2]
        key = _line_starting(proc, "api key north-drinks: ", 10).split()[-1]
        _line_starting(proc, "order ", 60)
        base = docs.removesuffix("/docs")
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/docs").status_code == 200
            orders = client.get("/api/v1/orders", headers={"Authorization": f"Bearer {key}"})
            assert orders.status_code == 200, orders.text
            assert {o["store_id"] for o in orders.json()["items"]} == {"s0001"}
            assert {o["dealer_id"] for o in orders.json()["items"]} == {"north-drinks"}
        assert proc.stdout is not None
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    final = json.loads(rest.strip().splitlines()[-1])
    assert final["deliveries"] >= 1, final
    assert final["orders"].get("delivered", 0) == final["deliveries"]
    assert final["units_delivered"] > 0
    assert any(" shipped → delivered by demo dealer" in line for line in rest.splitlines())


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
