"""``shelflink cloud plan`` and ``channel-scan`` against a real database: one JSON
object per run, the schedule's JSON lines, and a clean stop on SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from cloud.tests.test_cloud_replenishment_world import (
    WATER,
    add_daily_sales,
    add_sales,
    add_shelf_units,
    build_world,
    today_utc,
)
from shelflink.cli.plan_commands import register
from shelflink.cloud.database import connect


def shelflink_cloud(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> Any:
    """Run ``shelflink cloud ARGV`` through the commands this module registers."""
    parser = argparse.ArgumentParser(prog="shelflink cloud")
    register(parser.add_subparsers(dest="cloud_command", required=True))
    args = parser.parse_args(list(argv))
    assert args.handler(args) == code
    out, err = capsys.readouterr()
    return json.loads(out) if code == 0 else err


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch, migrated_database_url: str) -> str:
    """A migrated database with two dealers; north's store n1 is short of water."""

    async def arrange() -> None:
        async with await connect(migrated_database_url) as conn:
            await build_world(conn)
            await add_daily_sales(conn, "n1", WATER, [2] * 28)
            await add_shelf_units(conn, "n1", today_utc(), [0, 30, 30])
            await add_sales(conn, "s1", [(today_utc(), WATER, None, 10)])  # below 59

    asyncio.run(arrange())
    monkeypatch.setenv("SHELFLINK_DATABASE_URL", migrated_database_url)
    return migrated_database_url


def test_plan_prints_one_summary_and_a_second_run_orders_nothing(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = shelflink_cloud(capsys, "plan")
    assert (first["dealers"], first["pairs"], first["orders_created"]) == (2, 9, 1)
    assert first["by_reason"] == {"no_need": 8, "ok": 1}
    assert first["units"] == 12 and first["skipped_dealers"] == {}
    assert shelflink_cloud(capsys, "plan")["orders_created"] == 0


def test_plan_one_dealer(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    south = shelflink_cloud(capsys, "plan", "--dealer", "south", "--history-days", "14")
    assert (south["dealers"], south["pairs"], south["orders_created"]) == (1, 3, 0)
    assert [r["dealer_id"] for r in south["runs"]] == ["south"]


def test_channel_scan_prints_what_it_found(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scan = shelflink_cloud(capsys, "channel-scan")
    assert (scan["sales_scanned"], scan["price_alerts"], scan["diversion_alerts"]) == (57, 1, 0)
    again = shelflink_cloud(capsys, "channel-scan", "--since", "2000-01-01T00:00:00+00:00")
    assert again["price_alerts"] == 0
    err = shelflink_cloud(capsys, "channel-scan", "--since", "2000-01-01T00:00:00", code=2)
    assert "time zone" in err


def test_commands_refuse_bad_options_and_a_database_without_the_schema(
    monkeypatch: pytest.MonkeyPatch, empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHELFLINK_DATABASE_URL", empty_database_url)
    assert "shelflink cloud migrate" in shelflink_cloud(capsys, "plan", code=2)
    assert "shelflink cloud migrate" in shelflink_cloud(capsys, "channel-scan", code=2)
    assert "--service-level" in shelflink_cloud(capsys, "plan", "--service-level", "1", code=2)
    assert "--every" in shelflink_cloud(capsys, "plan", "--every", "0", code=2)


_SCHEDULE = """
import argparse, sys
from shelflink.cli.plan_commands import register
parser = argparse.ArgumentParser()
register(parser.add_subparsers(dest="cloud_command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.handler(args))
"""


def test_plan_every_prints_a_line_per_run_and_stops_on_sigint(database: str) -> None:
    env = {**os.environ, "SHELFLINK_DATABASE_URL": database}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCHEDULE, "plan", "--every", "3600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = _first_line(proc, timeout_s=30)
        tick = json.loads(line)
        assert (tick["trigger"], tick["orders_created"]) == ("schedule", 1)
        assert tick["channel"]["price_alerts"] == 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def _first_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                return proc.stdout.readline()
            if proc.poll() is not None:
                break
    raise AssertionError(f"no output from the scheduler (exit {proc.poll()})")
