"""The edge inside a running gateway: alerts become buffered events ahead of telemetry,
cold-chain alarms are raised offline, a missing or corrupt model costs only the risk
alerts, and a model swapped under load loses no reading."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from gateway_harness import Publisher, eventually, http_get, running_gateway, shelf_json
from gateway_harness import store_config as base_config

from shelflink.device.proto import batch_pb2 as pb
from shelflink.edge.lane_alerts import AlertKind
from shelflink.edge.stockout_model import default_model_path
from shelflink.gateway import Gateway, GatewayConfig
from shelflink.gateway.buffer_record import Priority

T0 = 1_704_103_200_000  # 2024-01-01 10:00 UTC
MINUTE = 60_000


def store_config(tmp: Path, mqtt_url: str, **edge: Any) -> GatewayConfig:
    # Event time is the readings' own: the test's 2024 timestamps must pass the age check.
    return base_config(tmp, mqtt_url, limits={"max_age_days": 100_000}, edge=edge)


def fridge_json(device: str, seq: int, ts: int, cabinet_c: float, **changes: Any) -> str:
    obj: dict[str, Any] = {
        "v": 1,
        "type": "fridge.reading",
        "device": device,
        "seq": seq,
        "ts": ts,
        "cabinet_c": cabinet_c,
        "evaporator_c": -5.0,
        "door_open": False,
        "compressor_on": True,
        "defrost_on": False,
    }
    obj.update(changes)
    return json.dumps(obj)


def topic(config: GatewayConfig, device: str) -> str:
    return f"shelflink/v1/{config.store_id}/{device}/telemetry"


async def buffered_events(gateway: Gateway) -> list[pb.Event]:
    assert gateway.intake is not None
    buffer = gateway.intake.buffer
    # Handed over is not yet committed: wait for the buffer to hold something.
    await eventually(lambda: buffer.stats().records > 0, what="buffered records")
    lease = await buffer.lease(100_000, 64 << 20)
    assert lease is not None
    events = [pb.Event.FromString(r.body) for r in lease.records if r.priority is Priority.EVENT]
    first_telemetry = next(
        (i for i, r in enumerate(lease.records) if r.priority is not Priority.EVENT), None
    )
    if first_telemetry is not None:
        # Events leave the buffer ahead of raw telemetry.
        assert all(r.priority is not Priority.EVENT for r in lease.records[first_telemetry:])
    await buffer.release(lease.batch_seq)
    return events


def shelf_series(config: GatewayConfig, grams0: list[float], minutes: int) -> list[str]:
    """A shelf whose lane 0 empties one unit (250 g) every 5 minutes from 4 units."""
    device = f"{config.store_id}-shelf-01"
    payloads = []
    for m in range(minutes):
        units0 = max(0, 4 - m // 5)
        grams = [units0 * 250.0 + 0.3 * (m % 3), *grams0[1:]]
        payloads.append(shelf_json(device, m, T0 + m * MINUTE, grams=grams))
    return payloads


async def test_out_of_stock_is_raised_and_buffered_ahead_of_telemetry(
    tmp_path: Path, mqtt_url: str
) -> None:
    config = store_config(tmp_path, mqtt_url)
    publisher = Publisher(mqtt_url)
    try:
        async with running_gateway(config) as gateway:
            assert gateway.edge is not None and gateway.edge.model is not None
            for payload in shelf_series(config, [0.0, 5000.0, 5000.0, 5000.0], 30):
                publisher.publish(topic(config, f"{config.store_id}-shelf-01"), payload)
            edge = gateway.edge
            await eventually(
                lambda: edge.counters.alerts[("out_of_stock", "raised")] == 1, what="out_of_stock"
            )
            assert gateway.intake is not None
            await eventually(lambda: edge.pending_events() == 0, what="events buffered")
            await gateway.intake.drain()
            events = await buffered_events(gateway)
            out = [e for e in events if e.type == "out_of_stock"]
            assert len(out) == 1
            body = json.loads(out[0].body_json)
            assert body["state"] == "raised" and body["lane"] == 0 and body["units"] == 0
            assert out[0].source == f"{config.store_id}-shelf-01"
            assert out[0].severity == pb.SEVERITY_CRITICAL
            # The model event from start-up is there too.
            assert any(e.type == "model_loaded" for e in events)
    finally:
        publisher.close()


async def test_cold_chain_alarm_is_raised_offline_from_the_reading_that_proves_it(
    tmp_path: Path, mqtt_url: str
) -> None:
    # No [uplink]: this gateway has no cloud at all.
    config = store_config(tmp_path, mqtt_url)
    fridge = f"{config.store_id}-fridge-01"
    publisher = Publisher(mqtt_url)
    try:
        async with running_gateway(config) as gateway:
            assert gateway.edge is not None
            edge = gateway.edge
            # Warm and rising with the compressor running: 12 °C for an hour.
            for m in range(60):
                publisher.publish(
                    topic(config, fridge), fridge_json(fridge, m, T0 + m * MINUTE, 12.0 + m * 0.01)
                )
            await eventually(
                lambda: edge.counters.alerts[("cold_chain_temperature_high", "raised")] == 1,
                what="temperature alarm",
            )
            await eventually(lambda: edge.pending_events() == 0, what="events buffered")
            events = await buffered_events(gateway)
            alarms = [e for e in events if e.type == "cold_chain_alarm"]
            kinds = {json.loads(e.body_json)["alarm"] for e in alarms}
            assert "temperature_high" in kinds
            status, body = await http_get(gateway.health_port, "/healthz")
            assert json.loads(body)["edge"]["cold_chain_alarms"] >= 1
            assert status in (200, 503)
    finally:
        publisher.close()


async def test_missing_model_keeps_the_gateway_and_the_rules_running(
    tmp_path: Path, mqtt_url: str
) -> None:
    config = store_config(tmp_path, mqtt_url, model_path=str(tmp_path / "nowhere.tflite"))
    publisher = Publisher(mqtt_url)
    try:
        async with running_gateway(config) as gateway:
            edge = gateway.edge
            assert edge is not None and edge.model is None
            assert edge.model_error is not None and "nowhere.tflite" in edge.model_error
            _, body = await http_get(gateway.health_port, "/healthz")
            health = json.loads(body)["edge"]
            assert health["model"] is None and "nowhere.tflite" in health["model_error"]
            for payload in shelf_series(config, [0.0, 5000.0, 5000.0, 5000.0], 30):
                publisher.publish(topic(config, f"{config.store_id}-shelf-01"), payload)
            await eventually(
                lambda: edge.counters.alerts[("out_of_stock", "raised")] == 1, what="rules run"
            )
            assert edge.counters.inferences == 0
            intake = gateway.intake
            assert intake is not None
            await eventually(lambda: sum(intake.counters.accepted.values()) >= 30, what="accepted")
    finally:
        publisher.close()


async def test_corrupt_model_is_refused_with_a_clear_error(tmp_path: Path, mqtt_url: str) -> None:
    corrupt = tmp_path / "stockout.tflite"
    corrupt.write_bytes(b"\x00not a flatbuffer" * 64)
    shutil.copy(default_model_path().with_suffix(".json"), corrupt.with_suffix(".json"))
    config = store_config(tmp_path, mqtt_url, model_path=str(corrupt))
    async with running_gateway(config) as gateway:
        edge = gateway.edge
        assert edge is not None and edge.model is None and edge.model_error
        # A damaged file no longer matches the checksum its card gives.
        assert "sha256" in edge.model_error and "stockout.tflite" in edge.model_error
        assert edge.counters.model_failures == 1
        await eventually(lambda: edge.pending_events() == 0, what="events buffered")
        events = await buffered_events(gateway)
        failed = [e for e in events if e.type == "model_load_failed"]
        assert len(failed) == 1 and json.loads(failed[0].body_json)["kept"] is None


async def test_model_hot_swap_under_load_loses_no_reading(tmp_path: Path, mqtt_url: str) -> None:
    model = tmp_path / "models" / "stockout.tflite"
    model.parent.mkdir()
    config = store_config(tmp_path, mqtt_url, model_path=str(model), model_check_s=0.1)
    device = f"{config.store_id}-shelf-01"
    total = 400
    publisher = Publisher(mqtt_url)
    try:
        async with running_gateway(config) as gateway:
            edge = gateway.edge
            assert edge is not None and edge.model is None  # nothing there yet
            intake = gateway.intake
            assert intake is not None

            async def load() -> None:
                for m in range(total):
                    grams = [1000.0 - (m // 20) * 250.0 % 1000, 750.0, 500.0, 2000.0]
                    payload = shelf_json(device, m, T0 + m * MINUTE, grams=grams)
                    await asyncio.to_thread(publisher.publish, topic(config, device), payload)

            async def swap() -> None:
                source = default_model_path()
                # The documented way: the card first, then the model, each by rename.
                staged = model.with_name("staged.json")
                await asyncio.to_thread(shutil.copy, source.with_suffix(".json"), staged)
                await asyncio.to_thread(staged.replace, model.with_suffix(".json"))
                staged = model.with_name("staged.tflite")
                await asyncio.to_thread(shutil.copy, source, staged)
                await asyncio.to_thread(staged.replace, model)
                await eventually(lambda: edge.model is not None, what="model swapped in")
                # A broken replacement is refused and the loaded model kept.
                failures = edge.counters.model_failures
                await asyncio.to_thread(model.write_bytes, b"garbage")
                await eventually(lambda: edge.counters.model_failures > failures, what="refused")

            publishing = asyncio.create_task(load())
            await eventually(lambda: sum(intake.counters.accepted.values()) >= 50, what="load")
            await swap()
            await publishing
            await eventually(
                lambda: intake.counters.accepted[(device, "shelf.reading")] == total,
                what="every reading accepted",
            )
            assert not intake.counters.rejected
            assert edge.model is not None  # the good model survived the garbage
            assert edge.counters.inferences > 0
            assert edge.counters.model_loads == 1
    finally:
        publisher.close()


async def test_what_the_edge_learnt_survives_a_restart(tmp_path: Path, mqtt_url: str) -> None:
    config = store_config(tmp_path, mqtt_url)
    device = f"{config.store_id}-shelf-01"
    series = shelf_series(config, [0.0, 5000.0, 5000.0, 5000.0], 40)
    publisher = Publisher(mqtt_url)
    try:
        async with running_gateway(config) as gateway:
            edge = gateway.edge
            assert edge is not None and not edge.restored
            for payload in series[:30]:
                publisher.publish(topic(config, device), payload)
            await eventually(
                lambda: edge.counters.alerts[("out_of_stock", "raised")] == 1, what="out_of_stock"
            )
            first = gateway.intake
            assert first is not None
            # All settled, so that the broker has nothing of this run to redeliver.
            await eventually(
                lambda: first.counters.accepted[(device, "shelf.reading")] == 30, what="accepted"
            )
            await first.drain()
            units_before = edge.features.units().tolist()
        state_file = config.sequence.state_dir / "edge-state.pickle"
        assert await asyncio.to_thread(state_file.exists)

        async with running_gateway(config) as gateway:
            again = gateway.edge
            assert again is not None and again.restored
            _, body = await http_get(gateway.health_port, "/healthz")
            assert json.loads(body)["edge"]["state"] == "restored"
            # Known at once, without a reading: the count and the standing alert.
            assert again.features.units().tolist() == units_before
            assert again.alerts.active()[AlertKind.OUT_OF_STOCK] == 1
            for payload in series[30:]:
                publisher.publish(topic(config, device), payload)
            intake = gateway.intake
            assert intake is not None
            await eventually(
                lambda: intake.counters.accepted[(device, "shelf.reading")] == 10, what="accepted"
            )
            await eventually(lambda: again.counters.ticks >= 9, what="ticks")
            # Still empty: the alert stands and is not announced a second time.
            assert again.counters.alerts[("out_of_stock", "raised")] == 0
    finally:
        publisher.close()


async def test_state_from_another_planogram_is_set_aside(tmp_path: Path, mqtt_url: str) -> None:
    config = store_config(tmp_path, mqtt_url)
    async with running_gateway(config) as gateway:
        assert gateway.edge is not None
    state_file = config.sequence.state_dir / "edge-state.pickle"
    assert await asyncio.to_thread(state_file.exists)
    devices = [d.model_dump() for d in config.devices]
    devices[0]["lanes"] = devices[0]["lanes"][:2]  # the shelf was re-planned
    changed = config.model_copy(update={"devices": [type(config.devices[0])(**d) for d in devices]})
    async with running_gateway(changed) as gateway:
        assert gateway.edge is not None and not gateway.edge.restored
    rejected = state_file.with_name("edge-state.pickle.rejected")
    assert await asyncio.to_thread(rejected.exists)
