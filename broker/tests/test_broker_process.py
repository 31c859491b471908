"""``python -m shelflink.broker`` as a child process: the way fault tests simulate a broker
outage (kill the pid, clients lose the broker, start it again on the same port)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from shelflink.broker import (
    BrokerConnectError,
    BrokerStartError,
    BrokerUnreachableError,
    wait_for_broker,
)
from shelflink.broker.probe_client import ProbeClient
from shelflink.broker.process import READY_PREFIX, BrokerProcess
from shelflink.broker.throughput import measure_throughput


def _connect(url: str) -> None:
    with ProbeClient(url, "test-process") as client:
        client.connect(timeout_s=5)


async def test_killed_by_pid_then_restarted_on_the_same_port() -> None:
    async with BrokerProcess() as broker:
        port = broker.port
        report = await asyncio.to_thread(measure_throughput, broker.url, 200, 64, 1, timeout_s=30)
        assert report["complete"], report

        os.kill(broker.pid, signal.SIGKILL)
        assert await broker.wait(timeout_s=10) == -signal.SIGKILL
        with pytest.raises(BrokerUnreachableError):
            await wait_for_broker(broker.host, port, timeout_s=2)
        with pytest.raises(BrokerConnectError):
            await asyncio.to_thread(_connect, broker.url)

        await broker.start()
        assert broker.port == port
        await wait_for_broker(broker.host, port, timeout_s=5)
        await asyncio.to_thread(_connect, broker.url)


async def test_sigterm_stops_it_cleanly() -> None:
    broker = BrokerProcess()
    await broker.start()
    await asyncio.to_thread(_connect, broker.url)
    assert await broker.terminate(timeout_s=10) == 0
    with pytest.raises(BrokerUnreachableError):
        await wait_for_broker(broker.host, broker.port, timeout_s=0.5)


async def test_module_prints_exactly_one_ready_line_with_its_url() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shelflink.broker",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            line = (await process.stdout.readline()).decode()
        assert line.startswith(READY_PREFIX + "mqtt://127.0.0.1:")
        url = line.removeprefix(READY_PREFIX).strip()
        await asyncio.to_thread(_connect, url)
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            rest = await process.stdout.read()
            assert await process.wait() == 0
        assert rest == b""
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_port_in_use_fails_the_start() -> None:
    async with BrokerProcess() as first:
        second = BrokerProcess(port=first.port, start_timeout_s=20)
        with pytest.raises(BrokerStartError):
            await second.start()
        assert not second.running
