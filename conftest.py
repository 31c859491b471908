"""Fixtures shared by every member's tests: real brokers (and later databases).

Each fixture uses the server named by an environment variable when it is set
(``.ci/run`` points them at this machine's services) and otherwise starts the
project's embedded default, so the suite passes on a laptop with nothing
installed and on a machine with real servers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

MQTT_URL_ENV = "SHELFLINK_TEST_MQTT_URL"
DATABASE_URL_ENV = "SHELFLINK_TEST_DATABASE_URL"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


@dataclass
class BrokerProcess:
    """An MQTT broker in its own process, on a fixed loopback port, that a test may
    kill and start again. Mosquitto when the machine has it, else the embedded broker."""

    port: int
    workdir: Path
    prefer_mosquitto: bool = True
    proc: subprocess.Popen[bytes] | None = None
    kind: str = field(default="")
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        mosquitto = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if mosquitto and self.prefer_mosquitto:
            self.kind = "mosquitto"
            conf = self.workdir / "mosquitto.conf"
            conf.write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            )
            return [mosquitto, "-c", str(conf)]
        self.kind = "embedded"
        return [
            sys.executable,
            "-m",
            "shelflink.broker",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]

    def start(self) -> None:
        assert self.proc is None, "already running"
        self._log = open(self.workdir / "broker.log", "ab")  # noqa: SIM115 - closed in _reaped
        self.proc = subprocess.Popen(self._command(), stdout=self._log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)

    def _reaped(self) -> None:
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL: the broker gets no chance to say goodbye, like a power cut."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self._reaped()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self._reaped()


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(port=free_port(), workdir=tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    """A running MQTT broker for tests that do not need to break it."""
    configured = os.environ.get(MQTT_URL_ENV)
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="shelflink-broker-") as workdir:
        broker = BrokerProcess(port=free_port(), workdir=Path(workdir), prefer_mosquitto=False)
        broker.start()
        try:
            yield broker.url
        finally:
            broker.stop()
