"""A live run against a real broker: what arrives is what the manifest says was published."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from shelflink.device import BrokerAddress, decode
from shelflink.device.topics import subscription
from shelflink.sim.live import LiveSnapshot
from shelflink.sim.manifest import Manifest
from shelflink.sim.run import run_stores


class Recorder:
    """Everything devices publish, checked against the contract as a gateway would."""

    def __init__(self) -> None:
        self.seqs: dict[str, set[int]] = defaultdict(set)
        self.rejected: list[str] = []
        self.kinds: dict[str, set[str]] = defaultdict(set)

    def on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        if message.topic.endswith("/status"):
            return
        now_ms = time.time_ns() // 1_000_000
        try:
            decode(message.topic, message.payload, now_ms=now_ms)
        except ValueError as error:
            self.rejected.append(f"{message.topic}: {error}")
        body = json.loads(message.payload)
        self.seqs[body["device"]].add(body["seq"])
        self.kinds[body["device"]].add(body["type"])


@pytest.fixture
def recorder(mqtt_url: str) -> Iterator[Recorder]:
    address = BrokerAddress.parse(mqtt_url)
    record = Recorder()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sim-test-recorder")
    client.on_message = record.on_message
    if address.username:
        client.username_pw_set(address.username, address.password)
    client.connect(address.host, address.port)
    client.subscribe(subscription(channel="+"), qos=1)
    client.loop_start()  # paho's own network thread, the one a paho client needs
    time.sleep(0.3)  # let the subscription settle before anything is published
    try:
        yield record
    finally:
        client.loop_stop()
        client.disconnect()


async def wait_for(record: Recorder, manifest: Manifest, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(len(record.seqs[d.device_id]) >= d.count for d in manifest.devices):
            return
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_what_arrives_is_what_the_manifest_lists(
    mqtt_url: str, recorder: Recorder, tmp_path: Path
) -> None:
    snapshots: list[LiveSnapshot] = []
    manifest = await run_stores(
        1,
        seed=7,
        speed=900.0,
        duration_s=2.0,
        broker_url=mqtt_url,
        manifest_path=tmp_path / "manifest.json",
        state_dir=tmp_path / "state",
        on_tick=snapshots.append,
        profile_mix={"kiosk": 1.0},
    )
    assert Manifest.read(tmp_path / "manifest.json") == manifest
    await wait_for(recorder, manifest)
    assert recorder.rejected == []
    assert manifest.ticks == 30 and snapshots and snapshots[-1].done
    by_kind: dict[str, int] = defaultdict(int)
    for device in manifest.devices:
        got = recorder.seqs[device.device_id]
        assert len(got) == device.count, device
        if device.count:
            assert (min(got), max(got)) == (device.first_seq, device.last_seq)
        by_kind[device.kind] += device.count
    # Every shelf and fridge reported every simulated minute.
    assert by_kind["shelf"] == 3 * 30 and by_kind["fridge"] == 30
    assert recorder.kinds["s0001-fridge-01"] == {"fridge.reading"}
    assert snapshots[-1].stores[0].published == manifest.total

    # A second run with the same state goes on with fresh sequence numbers.
    again = await run_stores(
        1,
        seed=7,
        speed=900.0,
        duration_s=0.5,
        broker_url=mqtt_url,
        manifest_path=None,
        state_dir=tmp_path / "state",
        profile_mix={"kiosk": 1.0},
    )
    for before, after in zip(manifest.devices, again.devices, strict=True):
        if before.last_seq is not None and after.first_seq is not None:
            assert after.first_seq > before.last_seq
