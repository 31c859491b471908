"""From the latest OPC UA values of one controller to fridge readings, or to rejections.

The functional core of :mod:`shelflink.gateway.opcua_source`: no I/O. A
:class:`FridgeSnapshot` keeps the newest :class:`Sample` of each variable;
:meth:`FridgeSnapshot.take` turns what changed since the last reading into
one :class:`Candidate` (a reading to check) or a :class:`Problem`.
:func:`check_reading` checks a candidate against the v1 contract through the
pydantic model, so an OPC UA fridge obeys the same ranges as an MQTT one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from asyncua import ua
from pydantic import ValidationError

from shelflink.device import ContractError, FridgeReading, Reason
from shelflink.device.codec import DEFAULT_LIMITS, Limits, check_clock, contract_error

ReadingField = Literal["cabinet_c", "evaporator_c", "door_open", "compressor_on", "defrost_on"]
READING_FIELDS: Final[tuple[ReadingField, ...]] = (
    "cabinet_c",
    "evaporator_c",
    "door_open",
    "compressor_on",
    "defrost_on",
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One variable's value as the server reported it."""

    value: object
    ts_ms: int  # SourceTimestamp, else ServerTimestamp, else when the gateway received it
    status: str  # the OPC UA status code's name: Good, UncertainLastUsableValue, Bad...

    @property
    def bad(self) -> bool:
        return self.status.startswith("Bad")


def _epoch_ms(when: datetime | None) -> int | None:
    if when is None:
        return None
    if when.tzinfo is None:  # OPC UA times are UTC; asyncua may hand them over naive
        when = when.replace(tzinfo=UTC)
    ms = int(when.timestamp() * 1000)
    # DateTime 0 (1601) or 1970 means "not set" in practice.
    return ms if ms > 0 else None


def sample_of(data: ua.DataValue | None, received_ms: int) -> Sample:
    """A notification's DataValue as a :class:`Sample`."""
    if data is None:
        return Sample(None, received_ms, "BadNoData")
    value = None if data.Value is None else data.Value.Value
    status = "Good" if data.StatusCode is None else data.StatusCode.name
    ts = _epoch_ms(data.SourceTimestamp) or _epoch_ms(data.ServerTimestamp) or received_ms
    return Sample(value, ts, status)


def _same(a: object, b: object) -> bool:
    # NaN is not equal to itself, yet a NaN that stays NaN is no change.
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@dataclass(frozen=True, slots=True)
class Candidate:
    """A reading to be: every field's value and the time it describes."""

    values: Mapping[str, object]  # keyed by ReadingField
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Problem:
    """A change that cannot become a reading, with the reason to count it under."""

    reason: Reason
    detail: str


class FridgeSnapshot:
    """The newest sample of each reading field, and what changed since the last reading."""

    def __init__(self, node_ids: Mapping[str, str]) -> None:
        """``node_ids``: the configured node id of each reading field, for details."""
        self._node_ids = dict(node_ids)
        self._latest: dict[ReadingField, Sample] = {}
        self._pending: set[ReadingField] = set()
        self._reported: dict[str, object] | None = None  # values of the last reading

    def apply(self, field: ReadingField, sample: Sample, *, replayed: bool = False) -> bool:
        """Keep ``sample`` as the field's newest; False if it was ignored.

        A replayed notification (asyncua's Republish after a reconnect) may be
        older than what this snapshot already holds; it never overwrites a
        newer value.
        """
        current = self._latest.get(field)
        if replayed and current is not None and sample.ts_ms < current.ts_ms:
            return False
        self._latest[field] = sample
        self._pending.add(field)
        return True

    def take(self) -> Candidate | Problem | None:
        """What the changes since the last call amount to, or None for nothing new.

        None also while a field has never been seen: a reading is whole or not at all.
        """
        if not self._pending or any(f not in self._latest for f in READING_FIELDS):
            return None
        pending, self._pending = self._pending, set()
        bad = [f for f in READING_FIELDS if self._latest[f].bad]
        if bad:
            detail = "; ".join(
                f"{f} ({self._node_ids[f]}) has status {self._latest[f].status}" for f in bad
            )
            return Problem(Reason.INVALID_VALUE, detail)
        values: dict[str, object] = {f: self._latest[f].value for f in READING_FIELDS}
        reported = self._reported
        if reported is not None and all(_same(values[f], reported[f]) for f in READING_FIELDS):
            # A resubscription re-sends current values; what did not change is no reading.
            return None
        return Candidate(values, max(self._latest[f].ts_ms for f in pending))

    def forget_values(self) -> None:
        """Drop every sample (a new session re-sends them all); keep the last reading's
        values, so a resubscription that finds nothing changed makes no reading."""
        self._latest.clear()
        self._pending.clear()

    def reported(self, candidate: Candidate) -> None:
        """Record that ``candidate`` became a reading: later changes are measured from it."""
        self._reported = dict(candidate.values)

    def node_id(self, field: ReadingField) -> str:
        return self._node_ids[field]


def _problem(exc: ValidationError, candidate: Candidate, node_ids: Mapping[str, str]) -> Problem:
    parts: list[str] = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else "?"
        where = f" ({node_ids[field]})" if field in node_ids else ""
        value = candidate.values.get(field)
        parts.append(f"{field}{where} = {value!r}: {error['msg']}")
    # One reason per rejection, the first field's, counted as the codec counts a message.
    return Problem(contract_error(exc).reason, "; ".join(parts))


def check_reading(
    device_id: str,
    candidate: Candidate,
    *,
    now_ms: int,
    node_ids: Mapping[str, str],
    limits: Limits = DEFAULT_LIMITS,
) -> FridgeReading | Problem:
    """The reading ``candidate`` makes, with seq 0 (the caller assigns the real one), or why not."""
    try:
        reading = FridgeReading.model_validate(
            {"device": device_id, "seq": 0, "ts": candidate.ts_ms, **candidate.values}
        )
    except ValidationError as exc:
        return _problem(exc, candidate, node_ids)
    try:
        # A controller with a wrong clock is refused like a device with one.
        check_clock(reading.ts, now_ms, limits)
    except ContractError as exc:
        return Problem(exc.reason, exc.detail)
    return reading
