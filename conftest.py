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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import psycopg

MQTT_URL_ENV = "SHELFLINK_TEST_MQTT_URL"
DATABASE_URL_ENV = "SHELFLINK_TEST_DATABASE_URL"


# Daemons install into sbin, which a non-root PATH may leave out.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def find_mosquitto() -> str | None:
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    return shutil.which("mosquitto", path=search)


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
        mosquitto = find_mosquitto()
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


# -- databases ---------------------------------------------------------------------------
# The server comes from SHELFLINK_TEST_DATABASE_URL, else an embedded PostgreSQL for the
# session. No test writes to that URL's database: each gets a database of its own, cloned
# from a template migrated once per session, and dropped afterwards, so tests stay
# isolated even on a server that other suites share.


def _create_database(server_url: str, name: str, template: str | None = None) -> str:
    import psycopg
    from psycopg import sql

    from shelflink.cloud.database import with_database

    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(statement)
    return with_database(server_url, name)


def _drop_database(server_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _unique_name(prefix: str) -> str:
    import uuid

    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A PostgreSQL server for the session (its URL names a database tests leave alone)."""
    configured = os.environ.get(DATABASE_URL_ENV)
    if configured:
        yield configured
        return
    import asyncio

    from shelflink.cloud.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="shelflink-pg-") as workdir:
        # Searchable by others: as root, the server runs as an unprivileged user.
        Path(workdir).chmod(0o711)
        server = EmbeddedPostgres(Path(workdir) / "pg")
        asyncio.run(server.start())
        try:
            yield server.url
        finally:
            asyncio.run(server.stop())


@pytest.fixture(scope="session")
def _migrated_template(database_url: str) -> Iterator[str]:
    import asyncio

    from shelflink.cloud.database import connect
    from shelflink.cloud.migrations import migrate

    name = _unique_name("shelflink_template")
    url = _create_database(database_url, name)

    async def run() -> None:
        async with await connect(url) as conn:
            await migrate(conn)

    try:
        asyncio.run(run())
        yield name
    finally:
        _drop_database(database_url, name)


@pytest.fixture
def empty_database_url(database_url: str) -> Iterator[str]:
    """A fresh database with no schema, dropped after the test."""
    name = _unique_name("shelflink_test")
    url = _create_database(database_url, name)
    try:
        yield url
    finally:
        _drop_database(database_url, name)


@pytest.fixture
def migrated_database_url(database_url: str, _migrated_template: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own, dropped after the test."""
    name = _unique_name("shelflink_test")
    url = _create_database(database_url, name, template=_migrated_template)
    try:
        yield url
    finally:
        _drop_database(database_url, name)


@pytest.fixture
async def db(migrated_database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """An autocommit connection to this test's own migrated database."""
    from shelflink.cloud.database import connect

    conn = await connect(migrated_database_url)
    try:
        yield conn
    finally:
        await conn.close()
