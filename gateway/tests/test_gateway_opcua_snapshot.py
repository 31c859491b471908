"""OPC UA values to fridge readings: coalescing, the contract's ranges, honest timestamps."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC

import pytest
from asyncua import ua
from asyncua.ua.status_codes import StatusCodes

from shelflink.device import FridgeReading, Reason
from shelflink.gateway.opcua_snapshot import (
    READING_FIELDS,
    Candidate,
    FridgeSnapshot,
    Problem,
    ReadingField,
    Sample,
    check_reading,
    sample_of,
)

NOW_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
NODES: dict[str, str] = {f: f"ns=2;s=fridge-01.{f}" for f in READING_FIELDS}
GOOD: dict[str, object] = {
    "cabinet_c": 4.2,
    "evaporator_c": -3.0,
    "door_open": False,
    "compressor_on": True,
    "defrost_on": False,
}


def filled(
    ts_ms: int = NOW_MS - 1000, changes: Mapping[str, object] | None = None
) -> FridgeSnapshot:
    """A snapshot that has seen every field: GOOD's values, with ``changes``."""
    values: dict[str, object] = {**GOOD, **(changes or {})}
    snapshot = FridgeSnapshot(NODES)
    for field in READING_FIELDS:
        snapshot.apply(field, Sample(values[field], ts_ms, "Good"))
    return snapshot


def check(candidate: Candidate | Problem | None) -> FridgeReading | Problem:
    assert isinstance(candidate, Candidate)
    return check_reading("s0001-fridge-01", candidate, now_ms=NOW_MS, node_ids=NODES)


def test_a_reading_waits_until_every_field_has_been_seen() -> None:
    snapshot = FridgeSnapshot(NODES)
    for field in READING_FIELDS[:-1]:
        snapshot.apply(field, Sample(GOOD[field], NOW_MS, "Good"))
        assert snapshot.take() is None
    snapshot.apply("defrost_on", Sample(False, NOW_MS, "Good"))
    reading = check(snapshot.take())
    assert isinstance(reading, FridgeReading)
    assert reading.cabinet_c == 4.2 and reading.compressor_on and reading.seq == 0


def test_changes_of_one_cycle_become_one_reading_stamped_with_the_newest_change() -> None:
    snapshot = filled()
    first = snapshot.take()
    assert isinstance(first, Candidate)
    snapshot.reported(first)
    snapshot.apply("cabinet_c", Sample(4.5, NOW_MS - 500, "Good"))
    snapshot.apply("door_open", Sample(True, NOW_MS - 400, "Good"))
    snapshot.apply("cabinet_c", Sample(4.7, NOW_MS - 300, "Good"))
    second = snapshot.take()
    assert isinstance(second, Candidate)
    assert second.values["cabinet_c"] == 4.7 and second.values["door_open"] is True
    assert second.ts_ms == NOW_MS - 300
    assert snapshot.take() is None  # nothing since


def test_a_resubscription_that_finds_nothing_changed_makes_no_reading() -> None:
    snapshot = filled()
    first = snapshot.take()
    assert isinstance(first, Candidate)
    snapshot.reported(first)
    snapshot.forget_values()
    assert snapshot.take() is None
    for field in READING_FIELDS:  # the initial values of a new subscription
        snapshot.apply(field, Sample(GOOD[field], NOW_MS, "Good"))
    assert snapshot.take() is None
    snapshot.apply("cabinet_c", Sample(5.0, NOW_MS, "Good"))
    assert isinstance(snapshot.take(), Candidate)


def test_a_replayed_notification_never_overwrites_a_newer_value() -> None:
    snapshot = filled(ts_ms=NOW_MS)
    assert not snapshot.apply("cabinet_c", Sample(9.9, NOW_MS - 5000, "Good"), replayed=True)
    assert snapshot.apply("cabinet_c", Sample(5.1, NOW_MS + 1, "Good"), replayed=True)
    candidate = snapshot.take()
    assert isinstance(candidate, Candidate) and candidate.values["cabinet_c"] == 5.1


@pytest.mark.parametrize(
    ("field", "value", "reason", "words"),
    [
        ("cabinet_c", 500.0, Reason.OUT_OF_RANGE, "less than or equal to 60"),
        ("cabinet_c", -41.0, Reason.OUT_OF_RANGE, "greater than or equal to -40"),
        ("evaporator_c", 81.0, Reason.OUT_OF_RANGE, "80"),
        ("cabinet_c", math.nan, Reason.NON_FINITE, "finite"),
        ("evaporator_c", -math.inf, Reason.NON_FINITE, "finite"),
        ("cabinet_c", "4.2", Reason.INVALID_VALUE, "valid number"),
        ("door_open", 1, Reason.INVALID_VALUE, "bool"),
        ("compressor_on", None, Reason.INVALID_VALUE, "bool"),
    ],
)
def test_values_outside_the_contract_are_problems_that_name_field_node_and_value(
    field: ReadingField, value: object, reason: Reason, words: str
) -> None:
    problem = check(filled(changes={field: value}).take())
    assert isinstance(problem, Problem)
    assert problem.reason is reason
    assert field in problem.detail and NODES[field] in problem.detail
    assert repr(value) in problem.detail and words in problem.detail


def test_a_bad_status_is_a_problem_until_the_value_is_good_again() -> None:
    snapshot = filled()
    snapshot.apply("evaporator_c", Sample(None, NOW_MS, "BadSensorFailure"))
    problem = snapshot.take()
    assert isinstance(problem, Problem) and problem.reason is Reason.INVALID_VALUE
    assert "BadSensorFailure" in problem.detail and NODES["evaporator_c"] in problem.detail
    snapshot.apply("evaporator_c", Sample(-2.0, NOW_MS, "Good"))
    assert isinstance(snapshot.take(), Candidate)


def test_a_controller_clock_far_ahead_is_refused_like_a_devices() -> None:
    problem = check(filled(ts_ms=NOW_MS + 3_600_000).take())
    assert isinstance(problem, Problem) and problem.reason is Reason.CLOCK_SKEW


def test_nan_that_stays_nan_is_no_change() -> None:
    snapshot = filled(changes={"cabinet_c": math.nan})
    first = snapshot.take()
    assert isinstance(first, Candidate)
    snapshot.reported(first)  # (as if it had been accepted)
    snapshot.apply("cabinet_c", Sample(math.nan, NOW_MS, "Good"))
    assert snapshot.take() is None


@pytest.mark.parametrize(
    ("source", "server", "expected"),
    [
        (ua.DateTime(2026, 1, 1, tzinfo=UTC), ua.DateTime(2026, 1, 2, tzinfo=UTC), NOW_MS),
        (None, ua.DateTime(2026, 1, 1, tzinfo=UTC), NOW_MS),
        (ua.DateTime(2026, 1, 1), None, NOW_MS),  # naive means UTC in OPC UA
        (None, None, 42),  # neither: when the gateway received it
        (ua.DateTime(1601, 1, 1, tzinfo=UTC), None, 42),  # OPC UA's zero time: not set
    ],
)
def test_timestamps_prefer_the_source_then_the_server_then_the_gateway(
    source: ua.DateTime | None, server: ua.DateTime | None, expected: int
) -> None:
    data = ua.DataValue(
        ua.Variant(4.0, ua.VariantType.Double), SourceTimestamp=source, ServerTimestamp=server
    )
    assert sample_of(data, received_ms=42).ts_ms == expected


def test_a_sample_keeps_the_status_name() -> None:
    status = ua.StatusCode(ua.UInt32(StatusCodes.BadSensorFailure))
    data = ua.DataValue(ua.Variant(None, ua.VariantType.Null), StatusCode=status)
    sample = sample_of(data, received_ms=NOW_MS)
    assert sample.bad and sample.status == "BadSensorFailure" and sample.value is None
