"""The gateway as a whole: an OPC UA fridge flows into its buffer next to MQTT
devices, and a filling buffer raises its alarm as an event and on /healthz."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from gateway_harness import (
    Publisher,
    eventually,
    http_get,
    now_ms,
    running_gateway,
    shelf_json,
    store_config,
)

from shelflink.device.proto import batch_pb2 as pb
from shelflink.gateway.app import HOUSEKEEPING_S
from shelflink.gateway.intake import Intake
from shelflink.sim.opcua_layout import node_id
from shelflink.sim.opcua_process import OpcUaSimProcess

FIELDS = {
    "cabinet_c": "CabinetTemperature",
    "evaporator_c": "EvaporatorTemperature",
    "door_open": "DoorOpen",
    "compressor_on": "CompressorOn",
    "defrost_on": "DefrostOn",
}


def _committed(intake: Intake, count: int) -> Callable[[], bool]:
    return lambda: sum(intake.counters.accepted.values()) >= count


@pytest.mark.slow
async def test_opcua_fridge_readings_reach_the_buffer(tmp_path: Path, mqtt_url: str) -> None:
    sim = OpcUaSimProcess(tmp_path / "opcua", speed=600.0)
    await sim.start_async()
    try:
        base = store_config(tmp_path, mqtt_url)
        device = f"{base.store_id}-fridge-ua"
        config = store_config(
            tmp_path,
            mqtt_url,
            store_id=base.store_id,
            gateway_id=base.gateway_id,
            opcua=[
                {
                    "device_id": device,
                    "store_id": base.store_id,
                    "endpoint": sim.endpoint,
                    "nodes": {k: node_id("fridge-01", v) for k, v in FIELDS.items()},
                    "publishing_interval_ms": 100,
                    "sampling_interval_ms": 50,
                }
            ],
        )
        async with running_gateway(config) as gateway:
            assert gateway.intake is not None
            counters = gateway.intake.counters.accepted
            await eventually(
                lambda: counters[(device, "fridge.reading")] >= 3, timeout_s=30,
                what="three OPC UA readings accepted",
            )  # fmt: skip
            _, metrics = await http_get(gateway.health_port, "/metrics")
            link = (
                f'shelflink_gateway_link_up{{kind="opcua",link="{device}",state="connected"}} 1.0'
            )
            assert link in metrics
    finally:
        sim.stop()
    with sqlite3.connect(config.buffer.path) as db:
        bodies = [
            b
            for (b,) in db.execute(
                "SELECT body FROM record WHERE device = ? AND field = 11", (device,)
            )
        ]
    readings = [pb.FridgeReading.FromString(b) for b in bodies]
    assert len(readings) >= 3
    assert [r.seq for r in readings] == list(range(len(readings)))
    assert all(-40 <= r.cabinet_c <= 60 for r in readings)


@pytest.mark.slow
async def test_a_filling_buffer_raises_its_alarm(tmp_path: Path, mqtt_url: str) -> None:
    buffer_path = tmp_path / "small.sqlite"
    config = store_config(tmp_path, mqtt_url, buffer={"path": buffer_path, "max_bytes": 1 << 20})
    shelf = config.devices[0].id
    topic = f"shelflink/v1/{config.store_id}/{shelf}/telemetry"
    async with running_gateway(config) as gateway:
        intake = gateway.intake
        assert intake is not None
        pub = Publisher(mqtt_url)
        try:
            seq = 0
            while not intake.buffer.stats().high_water and seq < 20_000:
                for _ in range(500):
                    pub.client.publish(topic, shelf_json(shelf, seq, now_ms()), qos=1)
                    seq += 1
                await eventually(_committed(intake, seq), what="burst committed")
            assert intake.buffer.stats().high_water, "1 MiB never reached its high-water mark"
            status, body = await http_get(gateway.health_port, "/healthz")
            assert status == 503
            assert "buffer above high water" in json.loads(body)["problems"]
            _, metrics = await http_get(gateway.health_port, "/metrics")
            assert "shelflink_gateway_buffer_high_water 1.0" in metrics
            await asyncio.sleep(2 * HOUSEKEEPING_S)  # the alarm becomes an event
        finally:
            pub.close()
    with sqlite3.connect(buffer_path) as db:
        bodies = [b for (b,) in db.execute("SELECT body FROM record WHERE field = 6")]
    alarms = [e for e in map(pb.Event.FromString, bodies) if e.type == "buffer_high_water"]
    assert len(alarms) == 1
    assert alarms[0].severity == pb.SEVERITY_CRITICAL
    assert json.loads(alarms[0].body_json)["on"] is True
