"""``shelflink cloud dealer …`` and ``shelflink cloud serve`` against a real database."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from shelflink.cli.main import main


def shelflink(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> Any:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    assert exited.value.code == code, err
    return json.loads(out) if code == 0 else err


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch, migrated_database_url: str) -> str:
    monkeypatch.setenv("SHELFLINK_DATABASE_URL", migrated_database_url)
    return migrated_database_url


def test_dealer_create_key_list_and_revoke(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    created = shelflink(
        capsys, "cloud", "dealer", "create", "--name", "North Drinks", "--territory", "N1, N2",
        "--auto-approve-below", "5000",
    )  # fmt: skip
    assert set(created) == {"dealer_id", "api_key", "key_id"}
    assert created["dealer_id"] == "north-drinks"
    assert created["api_key"].startswith(f"slk_{created['key_id']}_")

    again = shelflink(capsys, "cloud", "dealer", "key", "north-drinks", "--label", "tills")
    assert again["dealer_id"] == "north-drinks" and again["api_key"] != created["api_key"]
    operator = shelflink(capsys, "cloud", "dealer", "key", "--operator")
    assert operator["operator"] is True and "dealer_id" not in operator

    listed = shelflink(capsys, "cloud", "dealer", "list")
    assert [(d["dealer_id"], d["name"], d["territory"], d["auto_approve_below_minor"])
            for d in listed] == [("north-drinks", "North Drinks", ["N1", "N2"], 5000)]  # fmt: skip

    revoked = shelflink(capsys, "cloud", "dealer", "revoke", created["key_id"])
    assert revoked == {"key_id": created["key_id"], "revoked": True}


def test_dealer_commands_refuse_clearly(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    shelflink(capsys, "cloud", "dealer", "create", "--name", "East")
    assert "exists" in shelflink(capsys, "cloud", "dealer", "create", "--name", "East", code=2)
    assert "no dealer west" in shelflink(capsys, "cloud", "dealer", "key", "west", code=2)
    assert "either" in shelflink(capsys, "cloud", "dealer", "key", "east", "--operator", code=2)
    assert "either" in shelflink(capsys, "cloud", "dealer", "key", code=2)
    assert "no key" in shelflink(capsys, "cloud", "dealer", "revoke", "nosuchkey", code=2)


def test_dealer_commands_on_an_unmigrated_database(
    monkeypatch: pytest.MonkeyPatch, empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHELFLINK_DATABASE_URL", empty_database_url)
    err = shelflink(capsys, "cloud", "dealer", "list", code=2)
    assert "shelflink cloud migrate" in err


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
    raise AssertionError(f"serve printed nothing (exit {proc.poll()})")


@pytest.mark.slow
def test_serve_answers_and_stops_on_sigterm(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    created = shelflink(capsys, "cloud", "dealer", "create", "--name", "North")
    env = os.environ | {"SHELFLINK_DATABASE_URL": database}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shelflink.cli.main", "cloud", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        ready = json.loads(_first_line(proc, 60))
        assert ready["ready"] is True
        with httpx.Client(base_url=ready["url"], timeout=10) as client:
            assert client.get("/health").json() == {"status": "ok"}
            dealers = client.get(
                "/api/v1/dealers", headers={"Authorization": f"Bearer {created['api_key']}"}
            )
            assert [d["dealer_id"] for d in dealers.json()] == ["north"]
            assert client.get("/api/v1/dealers").status_code == 401
            assert client.get("/docs").status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
