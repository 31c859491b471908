"""The simulated OPC UA refrigeration controller: its model, its address space, its trust."""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.utils import ServiceError
from asyncua.crypto import uacrypto
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.ua.uaerrors import BadInvalidArgument
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st

from shelflink.device.models import FridgeReading
from shelflink.sim import FaultKind
from shelflink.sim.opcua_controller import ControllerParams, FridgeController, due_ticks
from shelflink.sim.opcua_fridge import FridgeControllerServer, ServerOptions, parse_args
from shelflink.sim.opcua_layout import (
    CLEAR_FAULTS,
    ENDPOINT_PATH,
    INJECT_FAULT,
    NAMESPACE_URI,
    RELEASE_FORCED,
    SIMULATION,
    VARIABLES,
    fridge_name,
    node_id,
)
from shelflink.sim.opcua_process import free_port
from shelflink.sim.opcua_security import TrustedClients, prepare

START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
PARAMS = ControllerParams()
TICKS_PER_HOUR = 3600 // PARAMS.tick_s


def controller(index: int = 0, seed: int = 7) -> FridgeController:
    return FridgeController(fridge_name(index), index, seed, START_MS, PARAMS)


def test_a_day_of_values_fits_the_fridge_contract_and_the_thermostat_cycles() -> None:
    fridge = controller()
    cabinet: list[float] = []
    compressor: list[bool] = []
    defrost: list[bool] = []
    for tick in range(24 * TICKS_PER_HOUR):
        v = fridge.advance(1)
        # The gateway builds its readings through this model: every value must pass.
        FridgeReading(
            device="s0001-fridge-01",
            seq=tick,
            ts=fridge.sim_ms,
            cabinet_c=v.cabinet_c,
            evaporator_c=v.evaporator_c,
            door_open=v.door_open,
            compressor_on=v.compressor_on,
            defrost_on=v.defrost_on,
        )
        cabinet.append(v.cabinet_c)
        compressor.append(v.compressor_on)
        defrost.append(v.defrost_on)
        assert not v.alarm
    settled = cabinet[TICKS_PER_HOUR:]
    # Around the setpoint; defrost and doors warm it, never up to the alarm limit.
    assert min(settled) > 2.0 and max(settled) < PARAMS.alarm_high_c
    assert any(compressor) and not all(compressor)
    assert any(defrost)  # three 20-minute cycles a day


@settings(max_examples=15, deadline=None)
@given(chunks=st.lists(st.integers(1, 40), min_size=1, max_size=20), seed=st.integers(0, 50))
def test_step_sizes_do_not_change_where_a_controller_ends(chunks: list[int], seed: int) -> None:
    stepped, whole = controller(seed=seed), controller(seed=seed)
    for n in chunks:
        stepped.advance(n)
    assert whole.advance(sum(chunks)) == stepped.values
    assert whole.sim_ms == stepped.sim_ms


def test_a_failed_compressor_warms_the_cabinet_and_raises_the_alarm_after_its_delay() -> None:
    fridge = controller()
    fridge.advance(2 * TICKS_PER_HOUR)
    fridge.inject(FaultKind.COMPRESSOR_FAILURE, 6 * 3600)
    warmed: list[float] = []
    first_alarm: int | None = None
    above_since: int | None = None
    for tick in range(5 * TICKS_PER_HOUR):
        v = fridge.advance(1)
        assert not v.compressor_on
        warmed.append(v.cabinet_c)
        if v.cabinet_c > PARAMS.alarm_high_c and above_since is None:
            above_since = tick
        if v.alarm and first_alarm is None:
            first_alarm = tick
    assert warmed[-1] > 10.0
    assert above_since is not None and first_alarm is not None
    # Not on the first warm tick: only once it stayed warm for the delay.
    assert (first_alarm - above_since) * PARAMS.tick_s >= PARAMS.alarm_delay_s
    fridge.clear_faults()
    fridge.advance(3 * TICKS_PER_HOUR)
    assert fridge.values.cabinet_c < 6.0 and not fridge.values.alarm


@pytest.mark.parametrize(
    ("kind", "duration_s"),
    [
        (FaultKind.OFFLINE, 60.0),
        (FaultKind.STUCK, 60.0),
        (FaultKind.COMPRESSOR_FAILURE, 0.0),
        (FaultKind.COMPRESSOR_FAILURE, math.nan),
    ],
)
def test_faults_that_do_not_fit_a_controller_are_refused(
    kind: FaultKind, duration_s: float
) -> None:
    with pytest.raises(ValueError):
        controller().inject(kind, duration_s)


@pytest.mark.parametrize(
    ("elapsed_s", "speed", "done", "due"),
    [(0.0, 60.0, 0, 0), (1.0, 60.0, 0, 6), (1.0, 60.0, 6, 0), (2.05, 60.0, 6, 6), (0.5, 1.0, 0, 0)],
)
def test_due_ticks_follow_the_wall_clock(
    elapsed_s: float, speed: float, done: int, due: int
) -> None:
    assert due_ticks(elapsed_s, speed, 10, done) == due


def test_the_command_line_checks_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    options, verbose = parse_args(
        ["--port", "4841", "--fridges", "3", "--fault", "fridge-02=compressor_failure"]
    )
    assert options.fridges == 3 and options.faults == (("fridge-02", FaultKind.COMPRESSOR_FAILURE),)
    assert options.endpoint == "opc.tcp://127.0.0.1:4841/shelflink/fridges" and not verbose
    for bad in (
        ["--security", "basic256sha256"],  # no --cert-dir
        ["--fault", "fridge-01=stuck"],
        ["--fault", "fridge-02=door_ajar"],  # only one fridge served
        ["--username", "u"],
        ["--speed", "0"],
    ):
        with pytest.raises(SystemExit):
            parse_args(bad)
    assert "error" in capsys.readouterr().err


def test_docs_list_every_node_and_method_of_the_address_space() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "opcua.md").read_text()
    fridge = fridge_name(0)
    for spec in VARIABLES:
        assert f"`{node_id(fridge, spec.browse_name)}` | {spec.kind} |" in doc
    for name in (INJECT_FAULT, CLEAR_FAULTS, RELEASE_FORCED):
        assert f"`{node_id(fridge, SIMULATION, name)}`" in doc
    assert NAMESPACE_URI in doc and ENDPOINT_PATH in doc


async def _certificate(folder: Path, name: str, uri: str) -> Path:
    cert = folder / f"{name}.der"
    await setup_self_signed_certificate(
        folder / f"{name}.pem",
        cert,
        uri,
        socket.gethostname(),
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        {},
    )
    return cert


async def test_trust_is_by_exact_certificate_and_each_refusal_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri = "urn:test:gateway"
    known = await _certificate(tmp_path, "known", uri)
    stranger = await _certificate(tmp_path, "stranger", uri)  # same subject, other key
    prepare(tmp_path / "server", [known])
    trusted = TrustedClients(tmp_path / "server" / "trusted")
    assert await trusted.load() == 1
    app = ua.ApplicationDescription(ApplicationUri=uri, ApplicationType=ua.ApplicationType.Client)
    await trusted(await uacrypto.load_certificate(known), app)
    caplog.set_level(logging.WARNING, "shelflink.sim.opcua")
    for _ in range(3):
        with pytest.raises(ServiceError) as refused:
            await trusted(await uacrypto.load_certificate(stranger), app)
        assert ua.StatusCode(ua.UInt32(refused.value.code)).name == "BadCertificateUntrusted"
    assert len([r for r in caplog.records if "refused client certificate" in r.message]) == 1
    # A certificate that claims another application URI is refused whoever trusts it.
    other = ua.ApplicationDescription(ApplicationUri="urn:someone:else")
    with pytest.raises(ServiceError):
        await trusted(await uacrypto.load_certificate(known), other)


def method(fridge: str, name: str) -> ua.NodeId:
    # call_method takes a string for a browse name, so the id goes as a NodeId.
    return ua.NodeId.from_string(node_id(fridge, SIMULATION, name))


@pytest.fixture
async def served() -> AsyncIterator[tuple[FridgeControllerServer, Client]]:
    options = ServerOptions(port=free_port(), fridges=2, speed=600.0)
    async with (
        FridgeControllerServer(options) as server,
        Client(server.endpoint, timeout=5) as client,
    ):
        yield server, client


@pytest.mark.slow
async def test_the_address_space_has_the_documented_node_ids_and_the_simulation_knobs(
    served: tuple[FridgeControllerServer, Client],
) -> None:
    server, client = served
    for name in (fridge_name(0), fridge_name(1)):
        for spec in VARIABLES:
            node = client.get_node(node_id(name, spec.browse_name))
            value = await node.read_value()
            assert isinstance(value, float if spec.kind == "Double" else bool)
            assert (await node.read_browse_name()).Name == spec.browse_name
    fridge = fridge_name(0)
    sim = client.get_node(node_id(fridge, SIMULATION))
    await sim.call_method(method(fridge, INJECT_FAULT), "compressor_failure", 60.0)
    assert server.controller(fridge).faults.faults[0].kind is FaultKind.COMPRESSOR_FAILURE
    with pytest.raises(BadInvalidArgument):
        await sim.call_method(method(fridge, INJECT_FAULT), "offline", 60.0)
    await sim.call_method(method(fridge, CLEAR_FAULTS))
    assert server.controller(fridge).faults.faults == ()


@pytest.mark.slow
async def test_a_client_write_forces_a_variable_until_released(
    served: tuple[FridgeControllerServer, Client],
) -> None:
    server, client = served
    fridge = fridge_name(1)
    cabinet = client.get_node(node_id(fridge, "CabinetTemperature"))
    await cabinet.write_value(ua.Variant(500.0, ua.VariantType.Double))
    # Steps of the model go on; the forced value stays until released.
    await server._step(30)
    assert await cabinet.read_value() == 500.0
    evaporator = await client.get_node(node_id(fridge, "EvaporatorTemperature")).read_value()
    assert evaporator < 60.0
    sim = client.get_node(node_id(fridge, SIMULATION))
    await sim.call_method(method(fridge, RELEASE_FORCED))
    assert await cabinet.read_value() == server.controller(fridge).values.cabinet_c < 60.0
