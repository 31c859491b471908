"""The v1 device contract: round trips for every message, and every rejection path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from device_strategies import NOW, STORE, messages
from hypothesis import given
from hypothesis import strategies as st

from shelflink.device import (
    Command,
    ContractError,
    DeviceMessage,
    Limits,
    Reason,
    Sale,
    ShelfReading,
    decode,
    decode_command,
    encode,
)
from shelflink.device.codec import channel_of
from shelflink.device.gtin import is_valid_gtin, make_gtin
from shelflink.device.topics import Channel, TopicError, parse_topic, topic


def topic_for(message: DeviceMessage) -> str:
    return topic(STORE, message.device, channel_of(message))


@given(messages)
def test_every_message_round_trips_byte_exact(message: DeviceMessage) -> None:
    payload = encode(message)
    where, decoded = decode(topic_for(message), payload, now_ms=NOW)
    assert decoded == message
    assert encode(decoded) == payload
    assert where.device_id == message.device
    assert where.store_id == STORE


def test_encoding_is_compact_and_starts_with_version_and_type() -> None:
    reading = ShelfReading(device="d1", seq=1, ts=NOW, grams=[1.5, None], board_c=20.0)
    assert encode(reading) == (
        b'{"v":1,"type":"shelf.reading","device":"d1","seq":1,"ts":1764150000000,'
        b'"grams":[1.5,null],"board_c":20.0}'
    )


def _shelf_obj(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "v": 1,
        "type": "shelf.reading",
        "device": "d1",
        "seq": 1,
        "ts": NOW,
        "grams": [100.0],
        "board_c": 20.0,
    }
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not ...}


def _raw_shelf(**changes: Any) -> bytes:
    return json.dumps(_shelf_obj(**changes)).encode()


SHELF_TOPIC = "shelflink/v1/s0001/d1/telemetry"


def reject(payload: bytes | dict[str, Any], where: str = SHELF_TOPIC, **kw: Any) -> ContractError:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(ContractError) as caught:
        decode(where, raw, now_ms=NOW, **kw)
    return caught.value


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        (b"{not json", Reason.MALFORMED, None),
        (b"\xff\xfe", Reason.MALFORMED, None),
        (b"[1,2]", Reason.MALFORMED, None),
        (b"1" * 5000, Reason.MALFORMED, None),  # an integer too long to parse
        (b"[" * 10_000 + b"]" * 10_000, Reason.OVERSIZED, None),
        (_shelf_obj(v=2), Reason.UNSUPPORTED_VERSION, "v"),
        (_shelf_obj(v=True), Reason.UNSUPPORTED_VERSION, "v"),
        (_shelf_obj(v=...), Reason.UNSUPPORTED_VERSION, "v"),
        (_shelf_obj(type="shelf.weight"), Reason.UNKNOWN_TYPE, "type"),
        (_shelf_obj(type="scanner.sale"), Reason.TOPIC_MISMATCH, None),
        (_shelf_obj(device="d2"), Reason.TOPIC_MISMATCH, "device"),
        (_shelf_obj(colour="red"), Reason.UNKNOWN_FIELD, "colour"),
        (_shelf_obj(seq=...), Reason.MISSING_FIELD, "seq"),
        (_shelf_obj(seq="1"), Reason.INVALID_VALUE, "seq"),
        (_shelf_obj(seq=1.0), Reason.INVALID_VALUE, "seq"),
        (_shelf_obj(seq=-1), Reason.OUT_OF_RANGE, "seq"),
        (_shelf_obj(seq=2**63), Reason.OUT_OF_RANGE, "seq"),
        (_shelf_obj(grams=[]), Reason.OUT_OF_RANGE, "grams"),
        (_shelf_obj(grams=[1.0] * 65), Reason.OUT_OF_RANGE, "grams"),
        (_shelf_obj(grams=[100_001.0]), Reason.OUT_OF_RANGE, "grams.0"),
        (
            json.dumps(_shelf_obj(grams=[7.5])).replace("7.5", "1e400").encode(),
            Reason.NON_FINITE,
            "grams.0",
        ),
        (_shelf_obj(board_c=-41), Reason.OUT_OF_RANGE, "board_c"),
        (_shelf_obj(board_c=True), Reason.INVALID_VALUE, "board_c"),
        (_shelf_obj(device="d 1"), Reason.INVALID_VALUE, "device"),
        (_shelf_obj(ts=NOW + 5 * 60_000 + 1), Reason.CLOCK_SKEW, "ts"),
        (_shelf_obj(ts=0), Reason.CLOCK_SKEW, "ts"),
    ],
)
def test_rejections_say_why(
    payload: bytes | dict[str, Any], reason: Reason, field: str | None
) -> None:
    error = reject(payload)
    assert error.reason is reason, str(error)
    assert error.field == field
    assert str(error).startswith(reason.value + ": ")


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_json_constants_are_refused(constant: bytes) -> None:
    raw = json.dumps(_shelf_obj(board_c=0.5)).encode().replace(b"0.5", constant)
    assert reject(raw).reason is Reason.NON_FINITE


def test_size_limit_is_checked_before_parsing() -> None:
    error = reject(json.dumps(_shelf_obj()).encode(), limits=Limits(max_payload_bytes=10))
    assert error.reason is Reason.OVERSIZED
    assert "limit 10" in str(error)


@pytest.mark.parametrize(
    "where",
    [
        "shelflink/v1/s0001/d1",
        "shelflink/v2/s0001/d1/telemetry",
        "other/v1/s0001/d1/telemetry",
        "shelflink/v1/s0001/d1/firmware",
        "shelflink/v1/s0001/d1/cmd",
        "shelflink/v1/s 1/d1/telemetry",
    ],
)
def test_bad_topics_are_refused(where: str) -> None:
    assert reject(_shelf_obj(), where=where).reason is Reason.BAD_TOPIC


def test_vendor_extensions_are_ignored() -> None:
    raw = json.dumps(_shelf_obj(x_adc_raw=[1, 2, 3])).encode()
    _, message = decode(SHELF_TOPIC, raw, now_ms=NOW)
    assert isinstance(message, ShelfReading)
    assert encode(message) == json.dumps(_shelf_obj(), separators=(",", ":")).encode()


def test_old_but_plausible_readings_are_accepted() -> None:
    # A device that buffered through a week-long gateway outage.
    decode(SHELF_TOPIC, json.dumps(_shelf_obj(ts=NOW - 7 * 86_400_000)).encode(), now_ms=NOW)


SALE_TOPIC = "shelflink/v1/s0001/d1/event"


def _sale_obj(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "v": 1,
        "type": "scanner.sale",
        "device": "d1",
        "seq": 9,
        "ts": NOW,
        "gtin": "4006381333931",
        "serial": "SN0001",
        "qty": 1,
        "unit_price_minor": 199,
        "currency": "EUR",
        "receipt_id": "R-1",
    }
    obj.update(changes)
    return obj


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"gtin": "4006381333932"}, Reason.INVALID_VALUE),  # wrong check digit
        ({"gtin": "400638133393"}, Reason.INVALID_VALUE),
        ({"gtin": 4006381333931}, Reason.INVALID_VALUE),
        ({"qty": 2}, Reason.INVALID_VALUE),  # one item, one code
        ({"qty": 0}, Reason.OUT_OF_RANGE),
        ({"unit_price_minor": -1}, Reason.OUT_OF_RANGE),
        ({"currency": "eur"}, Reason.INVALID_VALUE),
        ({"serial": ""}, Reason.INVALID_VALUE),
        ({"serial": "has space"}, Reason.INVALID_VALUE),
    ],
)
def test_sale_rejections(changes: dict[str, Any], reason: Reason) -> None:
    assert reject(_sale_obj(**changes), where=SALE_TOPIC).reason is reason


def test_unserialised_items_may_have_quantity() -> None:
    raw = json.dumps(_sale_obj(serial=None, qty=3)).encode()
    _, sale = decode(SALE_TOPIC, raw, now_ms=NOW)
    assert isinstance(sale, Sale)
    assert sale.qty == 3


@given(st.from_regex(r"[0-9]{7}|[0-9]{11,13}", fullmatch=True))
def test_made_gtins_validate_and_any_single_digit_change_fails(body: str) -> None:
    gtin = make_gtin(body)
    assert is_valid_gtin(gtin)
    wrong = gtin[:-1] + str((int(gtin[-1]) + 1) % 10)
    assert not is_valid_gtin(wrong)


def test_known_gtin() -> None:
    assert is_valid_gtin("4006381333931")
    assert is_valid_gtin("96385074")


def command(**changes: Any) -> bytes:
    obj: dict[str, Any] = {"v": 1, "type": "command", "id": "c1", "ts": NOW, "expires": NOW + 1}
    obj.update(changes)
    return json.dumps(obj).encode()


def test_commands_round_trip() -> None:
    for cmd in (
        Command(id="c1", ts=NOW, expires=NOW + 60_000, name="tare", lane=3),
        Command(id="c2", ts=NOW, expires=NOW + 60_000, name="set_interval", interval_ms=5000),
        Command(id="c3", ts=NOW, expires=NOW + 60_000, name="reboot"),
    ):
        assert decode_command(encode(cmd), now_ms=NOW) == cmd


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (command(name="set_interval"), Reason.INVALID_VALUE),
        (command(name="reboot", lane=1), Reason.INVALID_VALUE),
        (command(name="tare", interval_ms=5000), Reason.INVALID_VALUE),
        (command(name="format_disk"), Reason.INVALID_VALUE),
        (command(name="tare", expires=NOW), Reason.INVALID_VALUE),
        (command(name="tare", ts=NOW + 3_600_000, expires=NOW + 3_600_001), Reason.CLOCK_SKEW),
        (b'{"v":1,"type":"status"}', Reason.UNKNOWN_TYPE),
        (b"nope", Reason.MALFORMED),
    ],
)
def test_command_rejections(payload: bytes, reason: Reason) -> None:
    with pytest.raises(ContractError) as caught:
        decode_command(payload, now_ms=NOW)
    assert caught.value.reason is reason


def test_topics() -> None:
    assert topic("s1", "d1", Channel.TELEMETRY) == "shelflink/v1/s1/d1/telemetry"
    assert parse_topic("shelflink/v1/s1/d1/reply").channel is Channel.REPLY
    with pytest.raises(TopicError):
        topic("s1", "d+1", Channel.TELEMETRY)
    with pytest.raises(TopicError):
        topic("s1", "d/1", Channel.TELEMETRY)
