"""A gateway under test: a small store, raw MQTT publishes, and bounded waits.

Shared by the gateway tests in this folder (which is on pytest's pythonpath).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from shelflink.device import BrokerAddress, DeviceKind
from shelflink.device.gtin import make_gtin
from shelflink.gateway import Gateway, GatewayConfig

LANES = 4


def store_config(tmp: Path, broker_url: str, **overrides: Any) -> GatewayConfig:
    store = f"t{uuid.uuid4().hex[:8]}"
    lanes = [
        {"gtin": make_gtin(f"400000000{i:03d}"), "unit_g": 250.0, "capacity": 20}
        for i in range(LANES)
    ]
    data: dict[str, Any] = {
        "store_id": store,
        "gateway_id": f"gw-{store}",
        "broker": {"url": broker_url},
        "buffer": {"path": tmp / "buffer.sqlite"},
        "dead_letter": {"path": tmp / "dead_letter.sqlite"},
        "health": {"port": 0},
        "sequence": {"state_dir": tmp / "sequences", "gap_grace_s": 0.5},
        "devices": [
            {"id": f"{store}-shelf-01", "kind": DeviceKind.SHELF, "lanes": lanes},
            {"id": f"{store}-fridge-01", "kind": DeviceKind.FRIDGE},
            {"id": f"{store}-till-01", "kind": DeviceKind.SCANNER},
        ],
        "log_format": "text",
    }
    data.update(overrides)
    return GatewayConfig.model_validate(data)


class Publisher:
    """Raw paho: what a device (or an attacker) can put on the store broker."""

    def __init__(self, broker_url: str) -> None:
        address = BrokerAddress.parse(broker_url)
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex}")
        self.client.connect(address.host, address.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self.client.publish(topic, data, qos=1, retain=retain).wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@asynccontextmanager
async def running_gateway(config: GatewayConfig) -> AsyncIterator[Gateway]:
    gateway = Gateway(config)
    task = asyncio.create_task(gateway.run())
    try:
        async with asyncio.timeout(20):
            await gateway.ready.wait()
            assert gateway.southbound is not None
            await gateway.southbound.connected.wait()
        yield gateway
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], bool], timeout_s: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def birth_json(device: str, seq: int, boot_id: str) -> str:
    """A shelf's birth status: ``seq`` is the next number this boot uses."""
    return json.dumps(
        {
            "v": 1, "type": "status", "device": device, "seq": seq, "ts": now_ms(),
            "online": True, "cause": "birth", "kind": "shelf", "firmware": "1.4.2",
            "boot_id": boot_id, "interval_ms": 10_000, "lanes": LANES,
        }
    )  # fmt: skip


def shelf_json(device: str, seq: int, ts: int, **changes: Any) -> str:
    obj: dict[str, Any] = {
        "v": 1,
        "type": "shelf.reading",
        "device": device,
        "seq": seq,
        "ts": ts,
        "grams": [1000.0, 750.0, 0.5, 2000.0],
        "board_c": 21.0,
    }
    obj.update(changes)
    return json.dumps(obj)


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


def clear_session(broker_url: str, client_id: str) -> None:
    """Drop a persistent session an earlier run left on a shared broker (simulated
    store ids repeat across runs, so its queued messages would reach this one)."""
    address = BrokerAddress.parse(broker_url)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect(address.host, address.port)
    client.loop_start()
    client.disconnect()
    client.loop_stop()
