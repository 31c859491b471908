"""The embedded PostgreSQL server: starts on a free loopback port, keeps its data, stops."""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from shelflink.cloud.database import connect, open_database
from shelflink.cloud.embedded import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    choose_user,
    first_blocking_dir,
)
from shelflink.cloud.settings import CloudSettings, load_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not tmp_path: pytest's base folder is private (0700) to its owner, and when the
    # suite runs as root the server runs as another user, who could not reach it.
    with tempfile.TemporaryDirectory(prefix="shelflink-embedded-") as workdir:
        Path(workdir).chmod(0o711)
        yield Path(workdir) / "pg"


def _uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and " Z " not in Path(f"/proc/{pid}/stat").read_text()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_starts_serves_stops_and_keeps_its_data(data_dir: Path) -> None:
    async with EmbeddedPostgres(data_dir) as server:
        port, pid = server.port, server.pid
        assert port is not None and pid is not None
        assert server.url.startswith("postgresql://postgres:")
        assert f"@127.0.0.1:{port}/shelflink" in server.url
        async with await psycopg.AsyncConnection.connect(server.url, autocommit=True) as conn:
            await conn.execute("CREATE TABLE kept (n integer)")
            await conn.execute("INSERT INTO kept VALUES (42)")
            cur = await conn.execute("SHOW listen_addresses")
            assert await cur.fetchone() == ("127.0.0.1",)
    assert not _alive(pid)
    assert not _listening(port)

    async with (
        EmbeddedPostgres(data_dir) as again,
        await psycopg.AsyncConnection.connect(again.url) as conn,
    ):
        cur = await conn.execute("SELECT n FROM kept")
        assert await cur.fetchall() == [(42,)]


async def test_runs_unprivileged_even_when_we_are_root(data_dir: Path) -> None:
    async with EmbeddedPostgres(data_dir) as server:
        assert server.pid is not None
        assert _uid_of(server.pid) != 0
        assert (server.user is None) == (os.geteuid() != 0)
        assert stat.S_IMODE((data_dir / "superuser.password").stat().st_mode) == 0o600


async def test_a_password_is_required(data_dir: Path) -> None:
    async with EmbeddedPostgres(data_dir) as server:
        with pytest.raises(psycopg.OperationalError):
            await psycopg.AsyncConnection.connect(
                f"postgresql://postgres@127.0.0.1:{server.port}/shelflink"
            )


async def test_a_second_server_on_the_same_data_is_refused(data_dir: Path) -> None:
    async with EmbeddedPostgres(data_dir) as server:
        with pytest.raises(EmbeddedPostgresError, match="already"):
            await server.start()
        with pytest.raises(EmbeddedPostgresError, match=f"pid {server.pid}"):
            await EmbeddedPostgres(data_dir).start()


def test_finds_the_folder_an_unprivileged_user_cannot_enter() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        Path(workdir).chmod(0o711)
        private = Path(workdir) / "private"
        private.mkdir(mode=0o700)
        inner = private / "inner" / "pg"
        owner = private.stat().st_uid
        stranger = owner + 12345
        assert first_blocking_dir(inner, stranger, stranger) == private
        assert first_blocking_dir(inner, owner, owner) is None
        private.chmod(0o711)
        assert first_blocking_dir(inner, stranger, stranger) is None
        assert first_blocking_dir(private / "not" / "yet", stranger, stranger) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="only root is refused")
async def test_root_is_told_which_folder_blocks_the_server() -> None:
    # A fresh temporary folder is 0700: the server's user cannot enter it.
    with (
        tempfile.TemporaryDirectory() as workdir,
        pytest.raises(EmbeddedPostgresError, match=f"cannot enter {workdir}"),
    ):
        await EmbeddedPostgres(Path(workdir) / "pg").start()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root is refused")
def test_a_cluster_owned_by_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "PG_VERSION").write_text("18\n")
    with pytest.raises(EmbeddedPostgresError, match="belongs to root"):
        choose_user(tmp_path, None)


async def test_open_database_uses_the_url_or_starts_an_embedded_server(data_dir: Path) -> None:
    configured = CloudSettings(database_url="postgresql://db.example/shelflink")
    async with open_database(configured) as url:
        assert url == "postgresql://db.example/shelflink"
    async with (
        open_database(CloudSettings(data_dir=data_dir)) as url,
        await connect(url) as conn,
    ):
        cur = await conn.execute("SELECT current_database()")
        assert await cur.fetchone() == ("shelflink",)
    assert (data_dir / "postgres" / "pgdata" / "PG_VERSION").exists()


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELFLINK_RETENTION_DAYS", "30")
    monkeypatch.setenv("SHELFLINK_DATA_DIR", "/srv/shelflink")
    monkeypatch.delenv("SHELFLINK_DATABASE_URL", raising=False)
    settings = load_settings(storage_flavour="plain", mqtt_url=None)
    assert settings.retention_days == 30
    assert settings.embedded_postgres_dir == Path("/srv/shelflink/postgres")
    assert settings.database_url is None and settings.storage_flavour == "plain"
    monkeypatch.setenv("SHELFLINK_RETENTION_DAYS", "0")
    with pytest.raises(ValueError):
        load_settings()
