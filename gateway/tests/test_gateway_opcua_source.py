"""OPC UA fridge controllers to readings, against the simulator's real server in its own process.

No mocks: the server is ``python -m shelflink.sim.opcua_fridge`` on a loopback
port, killed with SIGKILL and restarted where a test needs it; values that
break the contract are forced by writing them to the server's nodes, and
faults are injected through its Simulation methods. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client
from prometheus_client import CollectorRegistry

from shelflink.device import FridgeReading, Reason, SequenceStore
from shelflink.gateway.opcua_certs import ensure_client_certificate
from shelflink.gateway.opcua_config import OpcUaControllerConfig
from shelflink.gateway.opcua_metrics import OpcUaSourceCollector
from shelflink.gateway.opcua_source import OpcUaFridgeSource, Outage, SourceState
from shelflink.sim.opcua_layout import (
    CLEAR_FAULTS,
    INJECT_FAULT,
    NAMESPACE_URI,
    RELEASE_FORCED,
    SIMULATION,
    VARIABLES,
    identifier,
    node_id,
)
from shelflink.sim.opcua_process import OpcUaSimProcess

pytestmark = pytest.mark.slow

FIELD_OF = {spec.field: spec.browse_name for spec in VARIABLES}
STORE = "s0001"


def nodes(fridge: str) -> dict[str, str]:
    return {field: node_id(fridge, browse) for field, browse in FIELD_OF.items()}


def nodes_by_uri(fridge: str) -> dict[str, str]:
    """The same nodes named by namespace URI, which the source resolves at connect."""
    return {
        field: f"nsu={NAMESPACE_URI};s={identifier(fridge, browse)}"
        for field, browse in FIELD_OF.items()
    }


def controller(endpoint: str, fridge: str, **changes: Any) -> OpcUaControllerConfig:
    settings: dict[str, Any] = {
        "device_id": f"{STORE}-{fridge}",
        "store_id": STORE,
        "endpoint": endpoint,
        "nodes": nodes(fridge),
        # Short everything: the tests run the simulator fast and kill it.
        "publishing_interval_ms": 100,
        "sampling_interval_ms": 0,
        "keepalive_interval_s": 0.5,
        "connect_timeout_s": 5,
        "request_timeout_s": 2,
        "reconnect_initial_s": 0.1,
        "reconnect_max_s": 0.5,
    }
    settings.update(changes)
    return OpcUaControllerConfig.model_validate(settings)


@dataclass
class Recorder:
    readings: list[FridgeReading] = field(default_factory=list)
    rejects: list[tuple[str, Reason, str]] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)

    async def on_reading(self, reading: FridgeReading) -> None:
        self.readings.append(reading)

    async def on_reject(self, device: str, reason: Reason, detail: str) -> None:
        self.rejects.append((device, reason, detail))

    async def on_outage(self, outage: Outage) -> None:
        self.outages.append(outage)


@dataclass
class Running:
    source: OpcUaFridgeSource
    seen: Recorder
    task: asyncio.Task[None]


class Sources:
    """Sources running as tasks; a task that dies fails the wait instead of hanging it."""

    def __init__(self, tmp_path: Path) -> None:
        self._tmp = tmp_path
        self.running: list[Running] = []

    def start(self, config: OpcUaControllerConfig) -> Running:
        seen = Recorder()
        sequence = SequenceStore(self._tmp / "seq" / f"{config.device_id}.seq")
        source = OpcUaFridgeSource(
            config, sequence, seen.on_reading, seen.on_reject, on_outage=seen.on_outage
        )
        run = Running(source, seen, asyncio.create_task(source.run(), name=config.device_id))
        self.running.append(run)
        return run

    async def until(self, what: str, ready: Callable[[], bool], timeout_s: float = 20.0) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                while not ready():
                    for run in self.running:
                        if run.task.done():
                            run.task.result()  # raises what ended it
                            raise AssertionError(f"{run.source.device_id} stopped")
                    await asyncio.sleep(0.02)
        except TimeoutError:
            states = {r.source.device_id: r.source.stats() for r in self.running}
            raise AssertionError(f"not within {timeout_s} s: {what}; {states}") from None

    async def stop(self) -> None:
        """Cancel every source and wait for it; a source that failed raises here."""
        for run in self.running:
            run.task.cancel()
        async with asyncio.timeout(10):
            for run in self.running:
                with contextlib.suppress(asyncio.CancelledError):
                    await run.task


@pytest.fixture
async def sources(tmp_path: Path) -> AsyncIterator[Sources]:
    running = Sources(tmp_path)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpcUaSimProcess]:
    """Three fridges at an hour per second; each test takes its own fridge."""
    sim = OpcUaSimProcess(tmp_path_factory.mktemp("opcua-sim"), fridges=3, speed=3600.0)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


async def call(client: Client, fridge: str, method: str, *args: object) -> None:
    parent = client.get_node(node_id(fridge, SIMULATION))
    await parent.call_method(ua.NodeId.from_string(node_id(fridge, SIMULATION, method)), *args)


async def test_readings_flow_in_range_with_increasing_seqs_and_metrics(
    shared_sim: OpcUaSimProcess, sources: Sources
) -> None:
    started_ms = time.time_ns() // 1_000_000
    run = sources.start(
        controller(shared_sim.endpoint, "fridge-01", nodes=nodes_by_uri("fridge-01"))
    )
    await sources.until("ten readings", lambda: len(run.seen.readings) >= 10)
    readings = list(run.seen.readings)
    assert [r.seq for r in readings] == list(range(len(readings)))
    assert {r.device for r in readings} == {"s0001-fridge-01"}
    # Stamped by the controller's clock: now-ish and never going back.
    assert all(started_ms - 60_000 <= r.ts <= time.time_ns() // 1_000_000 for r in readings)
    assert [r.ts for r in readings] == sorted(r.ts for r in readings)
    assert all(-10.0 < r.cabinet_c < 15.0 and -15.0 < r.evaporator_c < 15.0 for r in readings)
    assert len({r.cabinet_c for r in readings}) > 1  # pushed changes, not one value repeated
    assert not run.seen.rejects and run.source.state is SourceState.CONNECTED
    assert run.source.alarm is False

    registry = CollectorRegistry()
    registry.register(OpcUaSourceCollector(lambda: [run.source]))
    labels = {"device": "s0001-fridge-01", "store": STORE}
    readings_total = registry.get_sample_value("shelflink_gateway_opcua_readings_total", labels)
    assert readings_total is not None and readings_total >= 10
    assert registry.get_sample_value("shelflink_gateway_opcua_rejects_total", labels) == 0
    connected = {**labels, "state": "connected"}
    assert registry.get_sample_value("shelflink_gateway_opcua_state", connected) == 1.0
    assert registry.get_sample_value("shelflink_gateway_opcua_alarm", labels) == 0.0


async def test_out_of_range_and_nan_values_are_rejected_with_their_reasons(
    shared_sim: OpcUaSimProcess, sources: Sources
) -> None:
    fridge = "fridge-02"
    run = sources.start(controller(shared_sim.endpoint, fridge))
    seen = run.seen
    await sources.until("a first reading", lambda: len(seen.readings) >= 1)
    cabinet = node_id(fridge, "CabinetTemperature")
    async with Client(shared_sim.endpoint, timeout=5) as client:
        await client.get_node(cabinet).write_value(ua.Variant(500.0, ua.VariantType.Double))
        await sources.until(
            "an OUT_OF_RANGE reject",
            lambda: any(r is Reason.OUT_OF_RANGE for _, r, _ in seen.rejects),
        )
        await client.get_node(cabinet).write_value(ua.Variant(math.nan, ua.VariantType.Double))
        await sources.until(
            "a NON_FINITE reject", lambda: any(r is Reason.NON_FINITE for _, r, _ in seen.rejects)
        )
        before = len(seen.readings)
        await call(client, fridge, RELEASE_FORCED)
        await sources.until("readings again", lambda: len(seen.readings) > before)

    device, _, detail = next(r for r in seen.rejects if r[1] is Reason.OUT_OF_RANGE)
    assert device == "s0001-fridge-02"
    assert "cabinet_c" in detail and cabinet in detail and "500.0" in detail and "60" in detail
    assert "nan" in next(d for _, r, d in seen.rejects if r is Reason.NON_FINITE)
    # Nothing out of the contract got through, the source never stopped, and
    # rejected changes used no sequence numbers.
    assert all(math.isfinite(r.cabinet_c) and r.cabinet_c <= 60.0 for r in seen.readings)
    assert [r.seq for r in seen.readings] == list(range(len(seen.readings)))
    assert run.source.rejects == len(seen.rejects)
    assert run.source.state is SourceState.CONNECTED


async def test_a_failed_compressor_shows_as_a_rising_cabinet_and_the_alarm(
    shared_sim: OpcUaSimProcess, sources: Sources
) -> None:
    fridge = "fridge-03"
    run = sources.start(controller(shared_sim.endpoint, fridge))
    seen = run.seen
    # An hour of normal running (one second at 3600x) as the baseline.
    await sources.until("a baseline", lambda: len(seen.readings) >= 8)
    await asyncio.sleep(1.0)
    baseline = max(r.cabinet_c for r in seen.readings)
    assert baseline < 8.0
    async with Client(shared_sim.endpoint, timeout=5) as client:
        await call(client, fridge, INJECT_FAULT, "compressor_failure", 6 * 3600.0)
        injected_at = len(seen.readings)
        try:
            await sources.until(
                "a warm cabinet",
                lambda: max(r.cabinet_c for r in seen.readings) > max(baseline + 3.0, 8.5),
            )
            await sources.until("the controller's alarm", lambda: run.source.alarm is True)
        finally:
            await call(client, fridge, CLEAR_FAULTS)
    after = seen.readings[injected_at + 2 :]  # a step in flight may still show it running
    assert after and not any(r.compressor_on for r in after)
    warming = [r.cabinet_c for r in after]
    assert warming[-1] > warming[0] + 2.0


async def test_a_killed_controller_is_reconnected_and_resubscribed_without_invented_data(
    tmp_path: Path, sources: Sources
) -> None:
    sim = OpcUaSimProcess(tmp_path / "sim", speed=600.0)
    await sim.start_async()
    try:
        run = sources.start(controller(sim.endpoint, "fridge-01"))
        seen, source = run.seen, run.source
        await sources.until("readings", lambda: len(seen.readings) >= 3)
        sim.kill()
        await sources.until("the loss noticed", lambda: source.state is not SourceState.CONNECTED)
        lost_with = len(seen.readings)
        await sources.until("failed attempts", lambda: source.connect_failures >= 1)
        assert source.last_error is not None
        await sim.start_async()  # same port
        await sources.until(
            "readings after the restart",
            lambda: source.reconnects >= 1 and len(seen.readings) >= lost_with + 3,
            timeout_s=30.0,
        )
        await sources.stop()  # before the server goes: a clean goodbye
    finally:
        sim.kill()
    readings = list(seen.readings)
    # The gateway numbers OPC UA readings: contiguous across the outage.
    assert [r.seq for r in readings] == list(range(len(readings)))
    assert source.reconnects == 1 and source.state is SourceState.CONNECTED
    assert len(seen.outages) == 1 and list(source.outages) == seen.outages
    outage = seen.outages[0]
    assert outage.next_seq == lost_with and outage.device_id == "s0001-fridge-01"
    assert outage.lost_at_ms <= outage.resumed_at_ms
    # Nothing fabricated for the outage: what came after is stamped by the
    # restarted controller, after the loss was noticed.
    assert all(r.ts >= outage.lost_at_ms for r in readings[lost_with:])


async def test_basic256sha256_works_and_untrusted_or_wrong_clients_are_refused_not_crashed(
    tmp_path: Path, sources: Sources, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "shelflink.gateway.opcua")
    uri = "urn:shelflink:gateway:test"
    cert, key = tmp_path / "gateway" / "cert.der", tmp_path / "gateway" / "key.pem"
    other_cert, other_key = tmp_path / "other" / "cert.der", tmp_path / "other" / "key.pem"
    await ensure_client_certificate(cert, key, application_uri=uri)
    await ensure_client_certificate(other_cert, other_key, application_uri=uri)
    sim = OpcUaSimProcess(
        tmp_path / "sim",
        security="basic256sha256",
        cert_dir=tmp_path / "sim" / "pki",
        trust=(cert,),
        username="ops",
        password="cold-chain",
        speed=600.0,
    )
    await sim.start_async()
    secure: dict[str, Any] = {
        "security_policy": "Basic256Sha256",
        "client_certificate": cert,
        "client_private_key": key,
        "server_certificate": sim.server_certificate,
        "username": "ops",
        "password": "cold-chain",
    }
    try:
        encrypted = sources.start(controller(sim.endpoint, "fridge-01", **secure))
        # Same controller, other device ids: each source has its own sequence.
        signed = sources.start(
            controller(
                sim.endpoint,
                "fridge-01",
                **{**secure, "security_mode": "Sign", "device_id": "s0001-fridge-91"},
            )
        )
        stranger = sources.start(
            controller(
                sim.endpoint,
                "fridge-01",
                **{
                    **secure,
                    "client_certificate": other_cert,
                    "client_private_key": other_key,
                    "device_id": "s0001-fridge-92",
                },
            )
        )
        wrong_password = sources.start(
            controller(
                sim.endpoint,
                "fridge-01",
                **{**secure, "password": "warm", "device_id": "s0001-fridge-93"},
            )
        )
        plain = sources.start(controller(sim.endpoint, "fridge-01", device_id="s0001-fridge-94"))
        refused = (stranger, wrong_password, plain)
        await sources.until(
            "secure readings and three refusals",
            lambda: (
                len(encrypted.seen.readings) >= 3
                and len(signed.seen.readings) >= 3
                and all(r.source.connect_failures >= 2 for r in refused)
            ),
        )
        await sources.stop()
    finally:
        sim.kill()
    assert encrypted.source.state is SourceState.CONNECTED
    for run in refused:
        assert run.source.state is not SourceState.CONNECTED and not run.seen.readings
        assert run.source.last_error is not None
    assert "BadCertificateUntrusted" in str(stranger.source.last_error)
    assert stranger.source.refusals >= 2
    assert "BadUserAccessDenied" in str(wrong_password.source.last_error)
    assert wrong_password.source.refusals >= 2
    # Said once per distinct error, though every attempt failed.
    stranger_errors = [
        r for r in caplog.records if r.levelno == logging.ERROR and "s0001-fridge-92" in r.message
    ]
    assert len(stranger_errors) == 1 and "BadCertificateUntrusted" in stranger_errors[0].message
