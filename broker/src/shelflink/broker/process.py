"""The embedded broker as a child process (``python -m shelflink.broker``) that tests and
benchmarks can start, kill by pid and start again on the same port: a broker outage."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from shelflink.broker.embedded import LOCALHOST
from shelflink.broker.errors import BrokerError, BrokerReentrantError, BrokerStartError

# The one line ``python -m shelflink.broker`` prints on stdout, followed by its URL.
READY_PREFIX = "listening "


class BrokerProcess:
    """``async with BrokerProcess() as broker:`` starts the broker and waits until it
    listens; leaving the block kills it if it still runs.

    With ``port=0`` the child picks a free port and reports it; later ``start()`` calls
    reuse that port, so clients configured with ``url`` see the same broker come back.
    """

    def __init__(
        self,
        host: str = LOCALHOST,
        port: int = 0,
        *,
        args: Sequence[str] = (),
        start_timeout_s: float = 20.0,
    ) -> None:
        self._host = host
        self._port = port
        self._args = list(args)
        self._start_timeout_s = start_timeout_s
        self._process: asyncio.subprocess.Process | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._port == 0:
            raise BrokerError("the port is chosen when the broker first starts")
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BrokerError("the broker process is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "shelflink.broker",
            "--host",
            self._host,
            "--port",
            str(self._port),
            *self._args,
        ]

    async def start(self) -> None:
        if self.running:
            raise BrokerReentrantError("the broker process is already running")
        process = await asyncio.create_subprocess_exec(
            *self.command(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        try:
            async with asyncio.timeout(self._start_timeout_s):
                line = (await process.stdout.readline()).decode().strip()
        except TimeoutError:
            line = ""
        if not line.startswith(READY_PREFIX):
            await _reap(process)
            raise BrokerStartError(
                f"broker process exited with {process.returncode} before listening"
                f" on {self._host}:{self._port}"
            )
        self._port = int(line.rsplit(":", 1)[1])
        self._process = process

    async def wait(self, timeout_s: float = 10.0) -> int:
        """Wait for the child to exit (after something else killed it) and return its
        status. A kill is asynchronous: until the child is gone its port may still
        accept connections."""
        process = self._process
        if process is None:
            raise BrokerError("the broker process is not running")
        try:
            async with asyncio.timeout(timeout_s):
                status = await process.wait()
        except TimeoutError:
            raise BrokerError(f"broker process still running after {timeout_s:g} s") from None
        self._process = None
        return status

    async def kill(self) -> None:
        """SIGKILL: the broker gets no chance to say goodbye, as in a crash or power cut."""
        process, self._process = self._process, None
        if process is not None:
            await _reap(process)

    async def terminate(self, timeout_s: float = 10.0) -> int:
        """SIGTERM and wait; return the exit status (0 for a clean stop)."""
        process, self._process = self._process, None
        if process is None:
            raise BrokerError("the broker process is not running")
        if process.returncode is None:
            process.terminate()
        try:
            async with asyncio.timeout(timeout_s):
                return await process.wait()
        except TimeoutError:
            await _reap(process)
            raise BrokerError(f"broker did not stop within {timeout_s:g} s of SIGTERM") from None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.kill()


async def _reap(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await process.wait()
