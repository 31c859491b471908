"""The measurement tools behind ``shelflink bench broker`` and docs/brokers.md, run against
the embedded broker; the limits they find are the limits docs/brokers.md states."""

from __future__ import annotations

import asyncio

import pytest

from shelflink.broker import EmbeddedBroker, measure_throughput
from shelflink.broker.conformance import check_shared_subscription, supports_mqtt5
from shelflink.broker.probe import probe, summary


@pytest.mark.parametrize("qos", [0, 1])
async def test_every_message_arrives_and_the_rate_is_reported(qos: int) -> None:
    async with EmbeddedBroker() as broker:
        report = await asyncio.to_thread(
            measure_throughput, broker.url, 500, 300, qos, timeout_s=30
        )
    assert report["complete"], report
    assert report["received"] == report["sent"] == 500
    assert report["duplicates"] == 0
    assert report["messages_per_s"] > 0
    assert report["url"] == broker.url


async def test_refuses_to_block_a_running_event_loop() -> None:
    with pytest.raises(RuntimeError, match="to_thread"):
        measure_throughput("mqtt://127.0.0.1:1", 1, 300, 1)


def test_rejects_payloads_too_small_for_the_sequence_number() -> None:
    with pytest.raises(ValueError):
        measure_throughput("mqtt://127.0.0.1:1", 1, 4, 1)


@pytest.mark.slow
async def test_embedded_broker_speaks_neither_mqtt5_nor_shared_subscriptions() -> None:
    async with EmbeddedBroker() as broker:
        assert not await asyncio.to_thread(supports_mqtt5, broker.url)
        shared = await asyncio.to_thread(check_shared_subscription, broker.url, 10, 5.0)
    assert not shared["shared"]


@pytest.mark.slow
async def test_probe_report_and_summary() -> None:
    async with EmbeddedBroker() as broker:
        report = await asyncio.to_thread(
            probe, broker.url, "embedded", count=200, payload_bytes=100, timeout_s=30
        )
    assert [t["qos"] for t in report["throughput"]] == [0, 1]
    assert all(t["complete"] for t in report["throughput"])
    assert report["session_redelivery"]["complete"]
    text = summary(report)
    assert "MQTT 5: no" in text
    assert "persistent session redelivery: 100/100" in text
