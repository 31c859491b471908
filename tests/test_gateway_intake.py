"""A gateway on a real broker: good messages land in its buffer, bad ones are contained.

Every rejection path is driven by raw paho publishes, as a broken or hostile
device would send them, and each is followed by a good message that must
still be accepted.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
from pathlib import Path

import pytest
from gateway_harness import (
    Publisher,
    birth_json,
    eventually,
    http_get,
    now_ms,
    running_gateway,
    shelf_json,
    store_config,
)

from shelflink.device import Reason
from shelflink.device.proto import batch_pb2 as pb
from shelflink.gateway import Gateway
from shelflink.gateway.dead_letter import DeadLetter, DeadLetterStore, HeldReason
from shelflink.gateway.sequence_tracker import SequenceReset


def buffered(path: Path) -> set[tuple[str, int, int]]:
    with sqlite3.connect(path) as db:
        return {(d, s, f) for d, s, f in db.execute("SELECT device, seq, field FROM record")}


def rejected(gateway: Gateway, device: str, reason: str) -> int:
    assert gateway.intake is not None
    return gateway.intake.counters.rejected[(device, reason)]


def accepted(gateway: Gateway, device: str) -> int:
    assert gateway.intake is not None
    return sum(n for (d, _), n in gateway.intake.counters.accepted.items() if d == device)


async def test_good_readings_land_in_the_buffer(tmp_path: Path, mqtt_url: str) -> None:
    config = store_config(tmp_path, mqtt_url)
    shelf = config.devices[0].id
    topic = f"shelflink/v1/{config.store_id}/{shelf}/telemetry"
    async with running_gateway(config) as gateway:
        pub = Publisher(mqtt_url)
        try:
            for seq in range(10):
                pub.publish(topic, shelf_json(shelf, seq, now_ms()))
            await eventually(lambda: accepted(gateway, shelf) == 10, what="10 accepted")
        finally:
            pub.close()
    assert {(shelf, s, 10) for s in range(10)} <= buffered(config.buffer.path)


BAD_CASES = [
    ("malformed", b"{not json", Reason.MALFORMED),
    ("nan", b'{"v":1,"type":"shelf.reading","device":"D","seq":1,"ts":T,"grams":[NaN,1,1,1],'
     b'"board_c":1}', Reason.NON_FINITE),
    ("out_of_range", None, Reason.OUT_OF_RANGE),
    ("clock_skew", None, Reason.CLOCK_SKEW),
    ("oversized", b"{" + b" " * 20_000 + b"}", Reason.OVERSIZED),
    ("spoofed_device", None, Reason.TOPIC_MISMATCH),
    ("wrong_lanes", None, Reason.INVALID_VALUE),
    ("wrong_kind", None, Reason.INVALID_VALUE),
]  # fmt: skip


@pytest.mark.parametrize(("case", "raw", "reason"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
async def test_each_rejection_is_counted_kept_and_harmless(
    tmp_path: Path, mqtt_url: str, case: str, raw: bytes | None, reason: Reason
) -> None:
    config = store_config(tmp_path, mqtt_url)
    shelf, fridge = config.devices[0].id, config.devices[1].id
    topic = f"shelflink/v1/{config.store_id}/{shelf}/telemetry"
    ts = now_ms()
    payload = {
        "out_of_range": shelf_json(shelf, 1, ts, board_c=200.0),
        "clock_skew": shelf_json(shelf, 1, ts + 3_600_000),
        # The shelf's topic, the fridge's name inside: a device speaking for another.
        "spoofed_device": shelf_json(fridge, 1, ts),
        "wrong_lanes": shelf_json(shelf, 1, ts, grams=[1.0, 2.0]),
    }.get(case)
    data = raw.replace(b"D", shelf.encode()).replace(b"T", str(ts).encode()) if raw else None
    if case == "wrong_kind":
        # A fridge sending shelf readings on its own topic.
        topic = f"shelflink/v1/{config.store_id}/{fridge}/telemetry"
        payload, shelf = shelf_json(fridge, 1, ts), fridge
    async with running_gateway(config) as gateway:
        pub = Publisher(mqtt_url)
        try:
            pub.publish(topic, data if data is not None else (payload or ""))
            await eventually(lambda: rejected(gateway, shelf, reason.value) == 1, what=case)
            good_device = config.devices[0].id
            good_topic = f"shelflink/v1/{config.store_id}/{good_device}/telemetry"
            pub.publish(good_topic, shelf_json(good_device, 2, now_ms()))
            await eventually(lambda: accepted(gateway, good_device) == 1, what="good after bad")
            assert gateway.intake is not None
            letters = await gateway.intake.dead_letters.recent()
        finally:
            pub.close()
    assert [letter.reason for letter in letters] == [reason]
    assert letters[0].topic == topic
    assert letters[0].raw_size == len(data if data is not None else (payload or "").encode())


async def test_unknown_device_is_rejected(tmp_path: Path, mqtt_url: str) -> None:
    config = store_config(tmp_path, mqtt_url)
    store = config.store_id
    async with running_gateway(config) as gateway:
        pub = Publisher(mqtt_url)
        try:
            topic = f"shelflink/v1/{store}/intruder/telemetry"
            pub.publish(topic, shelf_json("intruder", 1, now_ms()))
            await eventually(
                lambda: rejected(gateway, "(unknown)", Reason.UNKNOWN_DEVICE.value) == 1,
                what="unknown device",
            )
            assert gateway.intake is not None
            (letter,) = await gateway.intake.dead_letters.recent()
            assert letter.device is None
            assert "intruder" in letter.detail
        finally:
            pub.close()


async def test_duplicates_dropped_and_gaps_reported(tmp_path: Path, mqtt_url: str) -> None:
    config = store_config(tmp_path, mqtt_url)
    shelf = config.devices[0].id
    topic = f"shelflink/v1/{config.store_id}/{shelf}/telemetry"
    async with running_gateway(config) as gateway:
        pub = Publisher(mqtt_url)
        try:
            for seq in (1, 2, 2, 3, 7):
                pub.publish(topic, shelf_json(shelf, seq, now_ms()))
            await eventually(
                lambda: (
                    accepted(gateway, shelf) == 4
                    and rejected(gateway, shelf, Reason.DUPLICATE.value) == 1
                ),
                what="4 accepted, 1 duplicate",
            )
            await eventually(
                lambda: gateway.gaps_reported.get((shelf, "loss")) == 3, what="gap 4..6 reported"
            )
        finally:
            pub.close()
    with sqlite3.connect(config.buffer.path) as db:
        bodies = [row[0] for row in db.execute("SELECT body FROM record WHERE field = 6")]
    gaps = [e for e in map(pb.Event.FromString, bodies) if e.type == "sequence_gap"]
    assert [(g.source, json.loads(g.body_json)) for g in gaps] == [
        (shelf, {"kind": "loss", "first": 4, "last": 6, "count": 3})
    ]


async def test_health_and_metrics_endpoints(tmp_path: Path, mqtt_url: str) -> None:
    config = store_config(tmp_path, mqtt_url)
    shelf = config.devices[0].id
    async with running_gateway(config) as gateway:
        pub = Publisher(mqtt_url)
        try:
            pub.publish(f"shelflink/v1/{config.store_id}/{shelf}/telemetry", b"garbage")
            await eventually(lambda: rejected(gateway, shelf, "malformed") == 1, what="reject")
        finally:
            pub.close()
        status, body = await http_get(gateway.health_port, "/healthz")
        assert status == 200, body
        health = json.loads(body)
        assert health["status"] == "ok"
        assert health["store_id"] == config.store_id
        status, metrics = await http_get(gateway.health_port, "/metrics")
        assert status == 200
        assert (
            f'shelflink_gateway_messages_rejected_total{{device="{shelf}",reason="malformed"}} 1.0'
            in metrics
        )
        assert "shelflink_gateway_buffer_records" in metrics
        assert (
            'shelflink_gateway_link_up{kind="mqtt",link="store-broker",state="connected"} 1.0'
            in metrics
        )
        status, _ = await http_get(gateway.health_port, "/nope")
        assert status == 404


def fridge_json(device: str, seq: int) -> str:
    return json.dumps(
        {
            "v": 1, "type": "fridge.reading", "device": device, "seq": seq, "ts": now_ms(),
            "cabinet_c": 4.2, "evaporator_c": -8.5, "door_open": False,
            "compressor_on": True, "defrost_on": False,
        }
    )  # fmt: skip


def reset_events(path: Path) -> list[pb.Event]:
    with sqlite3.connect(path) as db:
        bodies = [row[0] for row in db.execute("SELECT body FROM record WHERE field = 6")]
    return [e for e in map(pb.Event.FromString, bodies) if e.type == "device_sequence_reset"]


async def test_a_replaced_board_reusing_its_id_is_alarmed_and_loses_nothing(
    tmp_path: Path, mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = store_config(tmp_path, mqtt_url)
    shelf, fridge = config.devices[0].id, config.devices[1].id
    base = f"shelflink/v1/{config.store_id}"
    telemetry, status = f"{base}/{shelf}/telemetry", f"{base}/{shelf}/status"

    def new_reading(seq: int) -> str:
        return shelf_json(shelf, seq, now_ms(), grams=[1.0, 2.0, 3.0, float(seq)])

    async with running_gateway(config) as gateway:
        pub = Publisher(mqtt_url)
        try:
            pub.publish(status, birth_json(shelf, 0, "old-board"))
            for seq in range(10):
                pub.publish(telemetry, shelf_json(shelf, seq, now_ms()))
            await eventually(lambda: accepted(gateway, shelf) == 11, what="the old board's")
            # The board is replaced by one flashed with the same id and a fresh sequence
            # file; its birth arrives twice (QoS 1), the fridge goes on as usual.
            pub.publish(status, birth_json(shelf, 0, "new-board"))
            pub.publish(status, birth_json(shelf, 0, "new-board"))
            for seq in range(5):
                pub.publish(telemetry, new_reading(seq))
            for seq in (10, 11):
                pub.publish(telemetry, new_reading(seq))
            for seq in (0, 1, 1):
                pub.publish(f"{base}/{fridge}/telemetry", fridge_json(fridge, seq))
            await eventually(
                lambda: (
                    rejected(gateway, shelf, "sequence_reset") == 5
                    and accepted(gateway, shelf) == 15
                    and accepted(gateway, fridge) == 2
                    and rejected(gateway, fridge, Reason.DUPLICATE.value) == 1
                ),
                what="5 held, 2 new, the fridge's repeat dropped",
            )
            await eventually(lambda: gateway.resets_reported[shelf] == 1, what="the event")
            status_code, body = await http_get(gateway.health_port, "/healthz")
            _, metrics = await http_get(gateway.health_port, "/metrics")
            assert gateway.intake is not None
            held = await gateway.intake.dead_letters.held()  # every device's
            assert await gateway.intake.dead_letters.recent() == [], "held, not rejected"
        finally:
            pub.close()
    assert [(h.reason, h.topic) for h in held] == [("sequence_reset", telemetry)] * 5
    assert [json.loads(h.raw)["grams"] for h in held] == [[1.0, 2.0, 3.0, s] for s in range(5)]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and shelf in r.getMessage()]
    assert len(errors) == 1 and "sequence reset" in errors[0].getMessage()
    # The alarm is the device's, not the gateway's.
    assert status_code == 200
    (problem,) = json.loads(body)["device_problems"]
    assert problem.startswith(f"{shelf}: sequence reset, numbers 0..9")
    assert f'shelflink_gateway_sequence_resets_total{{device="{shelf}"}} 1.0' in metrics
    assert f'shelflink_gateway_sequence_reset_open{{device="{shelf}"}} 1.0' in metrics
    assert (
        f'shelflink_gateway_messages_rejected_total{{device="{shelf}",reason="sequence_reset"}} 5.0'
        in metrics
    )

    # A restart keeps holding (the reset is kept with the held readings), without a
    # second event, until a boot of the board starts above every number used.
    async with running_gateway(config) as gateway:
        pub = Publisher(mqtt_url)
        try:
            pub.publish(telemetry, new_reading(5))
            await eventually(lambda: rejected(gateway, shelf, "sequence_reset") == 1, what="held")
            pub.publish(status, birth_json(shelf, 1000, "new-board-2"))
            pub.publish(telemetry, new_reading(1000))
            await eventually(lambda: accepted(gateway, shelf) == 2, what="sane again")
            assert gateway.intake is not None
            assert len(await gateway.intake.dead_letters.held(shelf)) == 6
            assert await gateway.intake.dead_letters.resets() == []
            assert gateway.tracker.resets() == []
        finally:
            pub.close()
        assert gateway.resets_reported == {}
    (event,) = reset_events(config.buffer.path)
    assert event.source == shelf
    assert event.severity == pb.SEVERITY_CRITICAL
    detail = json.loads(event.body_json)
    assert {k: detail[k] for k in ("old_high", "next_seq", "old_boot", "new_boot")} == {
        "old_high": 9, "next_seq": 0, "old_boot": "old-board", "new_boot": "new-board",
    }  # fmt: skip
    assert "new device id" in detail["action"]
    assert {(shelf, 10, 10), (shelf, 11, 10), (fridge, 0, 11), (fridge, 1, 11)} <= buffered(
        config.buffer.path
    )


async def test_held_messages_have_their_own_bound(tmp_path: Path) -> None:
    def letter(i: int, reason: Reason | HeldReason) -> DeadLetter:
        return DeadLetter(i, "t", "d", reason, "", b"x" * 10, 10)

    written: list[int] = []
    reset = SequenceReset("d", 0, 9, 0, "old-board", "new-board", 1)
    path = tmp_path / "dl.sqlite"
    async with DeadLetterStore(path, max_rows=2, max_raw_bytes=4, max_held_rows=3) as store:
        store.save_reset("d", reset)
        for i in range(4):
            store.hold(letter(i, HeldReason.SEQUENCE_RESET), functools.partial(written.append, i))
        for i in range(5):  # a flood of rejections pushes out rejections only
            store.add(letter(i, Reason.MALFORMED))
        assert [h.received_ms for h in await store.held()] == [1, 2, 3]
        assert [r.raw for r in await store.recent()] == [b"xxxx"] * 2
        assert written == [0, 1, 2, 3] and store.held_evicted == 1
    async with DeadLetterStore(path) as store:
        assert await store.resets() == [reset]
        assert (await store.held("d"))[0].raw == b"x" * 10, "held messages are kept whole"
        store.save_reset("d", None)
        assert await store.resets() == []
