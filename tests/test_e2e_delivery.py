"""Every reading lands exactly once: simulated stores → store broker → gateway →
cloud broker → two ingest workers → PostgreSQL, then ``verify`` finds nothing
missing and nothing duplicated — plainly, and under faults.

The cloud broker is a broker process of the test's own (Mosquitto when the
machine has it, so the two workers share the load through an MQTT 5 shared
subscription), so that a test can stop it and start it again.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from delivery_harness import Deployment

from conftest import BrokerProcess
from shelflink.cloud.database import connect
from shelflink.cloud.embedded import EmbeddedPostgres
from shelflink.cloud.migrations import migrate
from shelflink.sim.run import run_stores

pytestmark = pytest.mark.slow

Fault = Callable[[Deployment, BrokerProcess], Awaitable[None]]


async def kill_ingest(deployment: Deployment, broker: BrokerProcess) -> None:
    await deployment.kill("ingest-0")
    await asyncio.sleep(1.0)
    await deployment.start("ingest-0")


async def restart_cloud_broker(deployment: Deployment, broker: BrokerProcess) -> None:
    broker.kill()
    await asyncio.sleep(2.0)  # the uplink is down; the store keeps buffering
    await asyncio.to_thread(broker.start)


async def kill_gateway(deployment: Deployment, broker: BrokerProcess) -> None:
    await deployment.kill("gateway")
    await asyncio.sleep(1.0)
    await deployment.start("gateway")


FAULTS: dict[str, Fault] = {
    "kill_ingest": kill_ingest,
    "restart_cloud_broker": restart_cloud_broker,
    "kill_gateway": kill_gateway,
}


async def deliver(
    tmp_path: Path,
    mqtt_url: str,
    broker_process: BrokerProcess,
    database_url: str,
    faults: list[Fault],
    seconds: float = 8.0,
) -> dict[str, object]:
    seed = 7000 + os.getpid() % 1000
    deployment = Deployment(tmp_path, mqtt_url, broker_process.url, database_url, seed)
    await deployment.prepare()
    await deployment.start()
    manifest = tmp_path / "manifest.json"
    sim = asyncio.create_task(
        run_stores(
            stores=1, seed=seed, speed=240.0, duration_s=seconds, broker_url=mqtt_url,
            manifest_path=manifest, state_dir=tmp_path / "devices",
        )
    )  # fmt: skip
    try:
        gap = seconds / (len(faults) + 1)
        for fault in faults:
            await asyncio.sleep(gap)
            await fault(deployment, broker_process)
        await asyncio.wait_for(sim, timeout=seconds + 60)
        report = await deployment.until_delivered(manifest)
    finally:
        if not sim.done():
            sim.cancel()
        await deployment.stop_all()
    assert report["expected"] > 0
    assert report["missing"] == 0, f"{report}\n{deployment.logs()}"
    assert report["duplicates"] == 0, report
    assert report["found"] == report["expected"], report
    return report


async def test_every_reading_lands_exactly_once(
    tmp_path: Path, mqtt_url: str, broker_process: BrokerProcess, migrated_database_url: str
) -> None:
    await deliver(tmp_path, mqtt_url, broker_process, migrated_database_url, [])


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_delivery_survives(
    tmp_path: Path,
    mqtt_url: str,
    broker_process: BrokerProcess,
    migrated_database_url: str,
    fault: str,
) -> None:
    await deliver(tmp_path, mqtt_url, broker_process, migrated_database_url, [FAULTS[fault]])


@pytest.fixture
async def own_postgres() -> AsyncIterator[EmbeddedPostgres]:
    """A PostgreSQL server of this test's own, to stop and start again."""
    # Not pytest's 0700 folders: run as root, the server runs as an unprivileged user.
    root = Path(tempfile.mkdtemp(prefix="shelflink-pg-"))
    await asyncio.to_thread(root.chmod, 0o711)
    server = EmbeddedPostgres(root / "data")
    await server.start()
    try:
        conn = await connect(server.url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield server
    finally:
        await server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_delivery_survives_a_postgres_restart(
    tmp_path: Path,
    mqtt_url: str,
    broker_process: BrokerProcess,
    own_postgres: EmbeddedPostgres,
) -> None:
    async def restart_postgres(deployment: Deployment, broker: BrokerProcess) -> None:
        await own_postgres.stop()
        await asyncio.sleep(2.0)  # workers hold their batches unacknowledged meanwhile
        await own_postgres.start()

    await deliver(tmp_path, mqtt_url, broker_process, own_postgres.url, [restart_postgres])


async def test_delivery_survives_a_random_schedule_of_faults(
    tmp_path: Path, mqtt_url: str, broker_process: BrokerProcess, own_postgres: EmbeddedPostgres
) -> None:
    async def restart_postgres(deployment: Deployment, broker: BrokerProcess) -> None:
        await own_postgres.stop()
        await asyncio.sleep(1.0)
        await own_postgres.start()

    rng = random.Random(os.getpid())
    faults = {**FAULTS, "restart_postgres": restart_postgres}
    names = rng.sample(sorted(faults), k=len(faults))
    schedule = [faults[name] for name in names]
    await deliver(tmp_path, mqtt_url, broker_process, own_postgres.url, schedule, 14.0)
