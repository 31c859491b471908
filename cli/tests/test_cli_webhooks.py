"""``shelflink cloud webhooks`` runs the dispatcher until SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_dispatcher_command_starts_and_stops_cleanly(migrated_database_url: str) -> None:
    env = {**os.environ, "SHELFLINK_DATABASE_URL": migrated_database_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "shelflink.cli.main", "cloud", "webhooks"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert json.loads(line) == {"ready": True}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
