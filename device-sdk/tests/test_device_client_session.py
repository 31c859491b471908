"""The I/O-free core both device clients share: queue policy, statuses, commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_device_client_tap import command, new_identity, reading

from shelflink.device import (
    Command,
    DeviceKind,
    Reply,
    SequenceStore,
    Status,
    TlsSettings,
    encode,
)
from shelflink.device.session import (
    BOOT_ID,
    EXPIRED,
    NO_HANDLER,
    CommandOutcome,
    DeviceSession,
    MessageRejected,
    Outgoing,
    OutgoingQueue,
    Overflow,
    StatusCause,
    resolve_endpoint,
)

NOW = 1_764_150_000_000


def entry(seq: int) -> Outgoing:
    return Outgoing(seq=seq, topic="t", payload=str(seq).encode())


def session_at(
    tmp_path: Path, now: int = NOW, kind: DeviceKind = DeviceKind.SHELF
) -> DeviceSession:
    return DeviceSession(new_identity(kind), SequenceStore(tmp_path / "seq"), clock=lambda: now)


# -- outgoing queue -------------------------------------------------------------


@pytest.mark.parametrize(
    ("overflow", "kept", "dropped"),
    [
        (Overflow.DROP_OLDEST, [2, 3, 4], [0, 1]),
        (Overflow.DROP_NEWEST, [0, 1, 2], [3, 4]),
    ],
)
def test_a_full_queue_drops_by_its_policy_and_counts(
    overflow: Overflow, kept: list[int], dropped: list[int]
) -> None:
    queue = OutgoingQueue(limit=3, overflow=overflow)
    gone = [queue.put(entry(seq)) for seq in range(5)]
    assert [e.seq for e in queue.waiting()] == kept
    assert [e.seq for e in gone if e is not None] == dropped
    assert (queue.dropped, queue.queued) == (2, 3)


@given(
    limit=st.integers(min_value=1, max_value=20),
    count=st.integers(min_value=0, max_value=60),
    overflow=st.sampled_from(Overflow),
)
def test_the_queue_never_exceeds_its_limit_and_drops_exactly_the_excess(
    limit: int, count: int, overflow: Overflow
) -> None:
    queue = OutgoingQueue(limit=limit, overflow=overflow)
    for seq in range(count):
        queue.put(entry(seq))
        assert queue.queued + queue.in_flight <= limit
    assert queue.dropped == max(0, count - limit)
    expected = range(count)[-limit:] if overflow is Overflow.DROP_OLDEST else range(count)[:limit]
    assert [e.seq for e in queue.waiting()] == list(expected)


def test_in_flight_messages_are_never_dropped_and_count_against_the_limit() -> None:
    queue = OutgoingQueue(limit=2, overflow=Overflow.DROP_OLDEST, max_in_flight=2)
    first, second = entry(0), entry(1)
    queue.put(first)
    queue.put(second)
    assert queue.take() is first and queue.take() is second
    newest = entry(2)
    # Both are on the wire: nothing waiting can make room, so the new one goes.
    assert queue.put(newest) is newest
    assert queue.in_flight == 2 and queue.dropped == 1


def test_the_window_limits_what_is_taken() -> None:
    queue = OutgoingQueue(limit=10, max_in_flight=2)
    for seq in range(4):
        queue.put(entry(seq))
    first, second, third = queue.take(), queue.take(), queue.take()
    assert first is not None and second is not None and third is None
    assert queue.ack(first)
    assert queue.take() is not None


def test_after_a_lost_connection_in_flight_messages_go_first_in_seq_order() -> None:
    queue = OutgoingQueue(limit=10, max_in_flight=3)
    for seq in range(5):
        queue.put(entry(seq))
    taken = [queue.take() for _ in range(3)]
    assert taken[1] is not None and queue.ack(taken[1])
    queue.requeue_in_flight()
    assert [e.seq for e in queue.waiting()] == [0, 2, 3, 4]
    assert queue.in_flight == 0


def test_acks_count_published_and_bound_the_acknowledged_seqs() -> None:
    queue = OutgoingQueue(limit=10)
    for seq in (7, 5, 9):
        queue.put(entry(seq))
    taken = [queue.take() for _ in range(3)]
    for item in taken:
        assert item is not None and queue.ack(item)
    assert item is not None and not queue.ack(item)  # a repeated PUBACK counts once
    assert (queue.published, queue.first_seq, queue.last_seq) == (3, 5, 9)
    assert queue.idle


@pytest.mark.parametrize(("limit", "window"), [(0, 1), (1, 0)])
def test_queue_bounds_must_be_positive(limit: int, window: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        OutgoingQueue(limit=limit, max_in_flight=window)


# -- statuses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cause", "online"), [("birth", True), ("shutdown", False), ("will", False)]
)
def test_statuses_announce_the_next_seq_without_consuming_it(
    tmp_path: Path, cause: StatusCause, online: bool
) -> None:
    session = session_at(tmp_path)
    for _ in range(3):
        session.next_seq()
    status = Status.model_validate_json(session.status(cause))
    identity = session.identity
    assert (status.cause, status.online, status.seq, status.ts) == (cause, online, 3, NOW)
    assert (status.device, status.kind, status.firmware, status.lanes) == (
        identity.device_id,
        DeviceKind.SHELF,
        "1.2.3",
        4,
    )
    assert status.boot_id == BOOT_ID and status.interval_ms == identity.interval_ms
    assert session.next_seq() == 3


def test_a_status_topic_and_a_command_topic_are_the_devices_own(tmp_path: Path) -> None:
    session = session_at(tmp_path)
    device = session.identity.device_id
    assert session.status_topic == f"shelflink/v1/s0001/{device}/status"
    assert session.command_topic == f"shelflink/v1/s0001/{device}/cmd"


# -- outgoing messages ----------------------------------------------------------


def test_data_is_encoded_once_for_its_channel(tmp_path: Path) -> None:
    session = session_at(tmp_path)
    message = reading(session.identity, session.next_seq())
    out = session.outgoing(message)
    assert out.payload == encode(message)
    assert out.topic.endswith("/telemetry") and out.seq == message.seq


def test_another_devices_message_or_a_status_is_refused(tmp_path: Path) -> None:
    session = session_at(tmp_path)
    stranger = new_identity()
    with pytest.raises(MessageRejected, match="cannot be published"):
        session.outgoing(reading(stranger, 0))
    status = Status.model_validate_json(session.status("birth"))
    with pytest.raises(MessageRejected, match="status"):
        session.outgoing(status)  # type: ignore[arg-type]


# -- commands -------------------------------------------------------------------


def reply_of(out: Outgoing) -> Reply:
    assert out.topic.endswith("/reply")
    return Reply.model_validate_json(out.payload)


def test_a_live_command_is_handed_out_for_execution(tmp_path: Path) -> None:
    session = session_at(tmp_path)
    tare = Command(id="c1", ts=NOW - 1000, expires=NOW + 1000, name="tare", lane=2)
    assert session.triage(encode(tare)) == tare


def test_an_expired_command_is_answered_without_execution(tmp_path: Path) -> None:
    session = session_at(tmp_path)
    stale = Command(id="c1", ts=NOW - 10_000, expires=NOW - 1, name="reboot")
    answer = session.triage(encode(stale))
    assert isinstance(answer, Outgoing)
    reply = reply_of(answer)
    assert (reply.id, reply.ok, reply.error, reply.seq) == ("c1", False, "expired", 0)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        json.dumps({"v": 1, "type": "reply"}).encode(),
        json.dumps({"v": 2, "type": "command"}).encode(),
        json.dumps({"v": 1, "type": "command", "id": "x", "name": "tare"}).encode(),
        b"\xff" * 20_000,
    ],
)
def test_a_malformed_command_is_counted_and_ignored(tmp_path: Path, payload: bytes) -> None:
    session = session_at(tmp_path)
    assert session.triage(payload) is None
    assert session.malformed_commands == 1
    assert session.sequence.peek() == 0  # no reply, so no seq used


def test_a_repeated_command_gets_the_same_answer_and_is_not_executed_again(
    tmp_path: Path,
) -> None:
    session = session_at(tmp_path)
    tare = Command(id="c1", ts=NOW - 1000, expires=NOW + 1000, name="tare", lane=0)
    assert session.triage(encode(tare)) == tare
    first = reply_of(session.answer(tare, CommandOutcome.failure("lane 0 is busy")))
    again = session.triage(encode(tare))
    assert isinstance(again, Outgoing)
    second = reply_of(again)
    assert (second.id, second.ok, second.error) == (first.id, first.ok, first.error)
    assert second.seq == first.seq + 1


def test_a_successful_set_interval_changes_what_the_next_status_reports(tmp_path: Path) -> None:
    session = session_at(tmp_path, kind=DeviceKind.FRIDGE)
    change = Command(id="c1", ts=NOW, expires=NOW + 1, name="set_interval", interval_ms=60_000)
    reply = reply_of(session.answer(change, CommandOutcome.success()))
    assert reply.ok and reply.error is None
    assert Status.model_validate_json(session.status("birth")).interval_ms == 60_000


def test_handler_outcomes_fit_the_reply_contract() -> None:
    long = CommandOutcome.from_exception(RuntimeError("x" * 500))
    assert not long.ok and long.error is not None and len(long.error) == 200
    assert long.error.startswith("RuntimeError: x")
    assert CommandOutcome.failure("").error == "failed"
    assert not NO_HANDLER.ok and EXPIRED.error == "expired"


def test_the_reply_helper_builds_commands_that_validate() -> None:
    assert command("set_interval", interval_ms=5_000).interval_ms == 5_000


# -- endpoint -------------------------------------------------------------------


def test_credentials_and_tls_come_from_the_url_unless_given() -> None:
    plain = resolve_endpoint("mqtt://dev-1:s%40cret@broker.local:1884")
    assert (plain.host, plain.port, plain.username, plain.password) == (
        "broker.local",
        1884,
        "dev-1",
        "s@cret",
    )
    assert plain.tls_context is None
    secure = resolve_endpoint("mqtts://broker.local", username="other", password="pw")
    assert (secure.port, secure.username, secure.password) == (8883, "other", "pw")
    assert secure.tls_context is not None and secure.tls_context.check_hostname


def test_explicit_tls_settings_win() -> None:
    endpoint = resolve_endpoint("mqtt://h", tls=TlsSettings(insecure_skip_verify=True))
    assert endpoint.tls_context is not None and not endpoint.tls_context.check_hostname
