"""The embedded PostgreSQL server shuts down when the process that started it is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from shelflink.cloud.embedded import EmbeddedPostgres, EmbeddedPostgresError, owner_death_hook

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's"),
]

OWNER = """
import asyncio, sys
from pathlib import Path
from shelflink.cloud.embedded import EmbeddedPostgres

async def main() -> None:
    server = EmbeddedPostgres(Path(sys.argv[1]))
    await server.start()
    print(server.pid, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Searchable by others: as root, the server runs as an unprivileged user.
    with tempfile.TemporaryDirectory(prefix="shelflink-embedded-") as workdir:
        Path(workdir).chmod(0o711)
        yield Path(workdir) / "pg"


def _running(pid: int) -> bool:
    # A zombie has stopped; whoever reaps orphans here may take its time.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


async def _eventually(check: Callable[[], bool], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 - another process changes what we watch
            await asyncio.sleep(0.05)


def _status(data_dir: Path) -> str:
    lines = (data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()
    return lines[7].strip() if len(lines) > 7 else ""


async def test_a_server_stops_when_its_owner_is_killed_and_starts_again(data_dir: Path) -> None:
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", OWNER, str(data_dir), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert owner.stdout is not None
        line = await asyncio.wait_for(owner.stdout.readline(), 60)
        pid = int(line)
        assert _running(pid)
        # As root the server runs as another user: the setting survived the switch.
        assert (_uid_of(pid) != 0) or os.geteuid() != 0
        # A server whose owner lives is still refused, not waited for.
        with pytest.raises(EmbeddedPostgresError, match=f"pid {pid}"):
            await EmbeddedPostgres(data_dir).start()
    finally:
        owner.kill()
        await owner.wait()

    await _eventually(lambda: not _running(pid), 30)
    log = (data_dir / "postgres.log").read_text()
    assert "received fast shutdown request" in log
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()

    # Started again at once, the next owner waits for a server still stopping. Smart
    # shutdown waits for the open client, so the server stays "stopping" until then.
    again = EmbeddedPostgres(data_dir)
    await again.start()
    try:
        assert again.pid is not None and again.pid != pid
        conn = await psycopg.AsyncConnection.connect(again.url)
        try:
            cur = await conn.execute("SELECT 1")
            assert await cur.fetchone() == (1,)
            os.kill(again.pid, signal.SIGTERM)
            await _eventually(lambda: _status(data_dir) == "stopping", 30)
            third = EmbeddedPostgres(data_dir)
            starting = asyncio.create_task(third.start())
            await asyncio.sleep(0.5)
            assert not starting.done()
        finally:
            await conn.close()
        await asyncio.wait_for(starting, 60)
        assert not _running(again.pid)
        await third.stop()
    finally:
        await again.stop()


async def test_only_the_main_thread_ties_a_server_to_its_owner() -> None:
    assert owner_death_hook() is not None
    assert await asyncio.to_thread(owner_death_hook) is None
