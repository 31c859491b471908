"""The ``[[opcua]]`` table: what it accepts, what it refuses, and that docs/opcua.md agrees."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shelflink.gateway.opcua_config import OpcUaControllerConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "opcua.md"
EXAMPLE = re.compile(r"<!-- example: opcua-config -->\n```toml\n(.+?)\n```", re.DOTALL)
NODES = {
    "cabinet_c": "ns=2;s=fridge-01.CabinetTemperature",
    "evaporator_c": "ns=2;s=fridge-01.EvaporatorTemperature",
    "door_open": "ns=2;s=fridge-01.DoorOpen",
    "compressor_on": "ns=2;s=fridge-01.CompressorOn",
    "defrost_on": "ns=2;s=fridge-01.DefrostOn",
}


def config(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "device_id": "s0001-fridge-01",
        "store_id": "s0001",
        "endpoint": "opc.tcp://127.0.0.1:4840/shelflink/fridges",
        "nodes": dict(NODES),
    }
    base.update(changes)
    return base


def test_the_documented_example_is_a_valid_store_config() -> None:
    found = EXAMPLE.search(DOC.read_text())
    assert found, "docs/opcua.md lost its [[opcua]] example"
    tables = tomllib.loads(found.group(1))["opcua"]
    controllers = [OpcUaControllerConfig.model_validate(t) for t in tables]
    assert [c.device_id for c in controllers] == ["s0001-fridge-01", "s0001-fridge-02"]
    assert controllers[0].security_policy == "Basic256Sha256"
    assert controllers[0].nodes.alarm is not None and controllers[1].nodes.alarm is None


def test_every_key_is_documented() -> None:
    text = DOC.read_text()
    for name in OpcUaControllerConfig.model_fields:
        assert f"`{name}`" in text, f"docs/opcua.md does not explain {name}"


def test_defaults_need_only_ids_endpoint_and_nodes() -> None:
    parsed = OpcUaControllerConfig.model_validate(config())
    assert parsed.security_policy == "None" and parsed.nodes.alarm is None
    assert parsed.reconnect_initial_s <= parsed.reconnect_max_s


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"endpoint": "http://127.0.0.1:4840/"}, "opc.tcp"),
        ({"endpoint": "opc.tcp://:4840/"}, "opc.tcp"),
        ({"endpoint": "opc.tcp://host:99999/"}, "port"),
        ({"endpoint": "opc.tcp://user:pw@host:4840/"}, "credentials"),
        ({"device_id": "s0001/fridge"}, "device_id"),
        ({"security_policy": "Basic256"}, "security_policy"),
        ({"security_policy": "Basic256Sha256"}, "client_certificate"),
        ({"client_certificate": "c.der", "client_private_key": "k.pem"}, "security_policy is None"),
        ({"username": "ops"}, "username and password"),
        ({"reconnect_initial_s": 10.0, "reconnect_max_s": 1.0}, "reconnect_max_s"),
        ({"publishing_interval_ms": 0}, "publishing_interval_ms"),
        ({"nodes": {**NODES, "door_open": "fridge-01.DoorOpen"}}, "not an OPC UA node id"),
        ({"nodes": {**NODES, "defrost_on": NODES["door_open"]}}, "its own node id"),
        ({"nodes": {k: v for k, v in NODES.items() if k != "cabinet_c"}}, "cabinet_c"),
        ({"sampling_ms": 100}, "sampling_ms"),
    ],
)
def test_mistakes_are_refused_with_the_field_named(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as refused:
        OpcUaControllerConfig.model_validate(config(**changes))
    assert words in str(refused.value)


def test_the_password_does_not_show_in_logs_or_reprs() -> None:
    parsed = OpcUaControllerConfig.model_validate(config(username="ops", password="s3cret"))
    assert "s3cret" not in repr(parsed) and "s3cret" not in str(parsed.model_dump())
    assert parsed.password is not None and parsed.password.get_secret_value() == "s3cret"
