"""The gateway's own events: what it concluded, numbered by its own sequence.

Events go into the durable buffer at the highest priority, so they reach the
cloud ahead of raw telemetry, and carry a JSON body documented per type in
docs/gateway.md.
"""

from __future__ import annotations

import json
from typing import Any

from shelflink.device.proto import batch_pb2 as pb
from shelflink.device.sequence import SequenceStore
from shelflink.gateway.buffer_record import DropReport, Record, record_of
from shelflink.gateway.sequence_tracker import GapReport, SequenceReset

INFO = pb.SEVERITY_INFO
WARNING = pb.SEVERITY_WARNING
CRITICAL = pb.SEVERITY_CRITICAL

RESET_ACTION = (
    "Give the board a new device id (ids are retired, never reused) and replay the held "
    "readings under it, or restore the board's sequence file. Until then its numbers "
    "held_first..held_last are held in the gateway's dead letters (reason sequence_reset), "
    "not sent to the cloud."
)


class EventFactory:
    def __init__(self, gateway_id: str, sequence: SequenceStore) -> None:
        self.gateway_id = gateway_id
        self.sequence = sequence
        self.created = 0  # events numbered so far: each becomes one buffered record

    def event(
        self, type_: str, severity: pb.Severity.ValueType, ts_ms: int, source: str | None = None,
        **body: Any,
    ) -> Record:  # fmt: skip
        self.created += 1
        item = pb.Event(
            source=source or self.gateway_id,
            seq=self.sequence.next(),
            ts=ts_ms,
            type=type_,
            severity=severity,
            body_json=json.dumps(body, separators=(",", ":"), sort_keys=True),
        )
        return record_of(item)

    def gap(self, report: GapReport, ts_ms: int) -> Record:
        # A reboot skip is expected bookkeeping; loss is what operators act on.
        severity = WARNING if report.kind.value == "loss" else INFO
        return self.event(
            "sequence_gap", severity, ts_ms, report.device,
            kind=report.kind.value, first=report.first, last=report.last, count=report.count,
        )  # fmt: skip

    def dropped(self, report: DropReport, ts_ms: int) -> Record:
        return self.event(
            "buffer_dropped", WARNING, ts_ms, report.device,
            records=report.records, seq_ranges=[list(r) for r in report.seq_ranges],
        )  # fmt: skip

    def high_water(self, on: bool, ts_ms: int, used: int, limit: int) -> Record:
        return self.event(
            "buffer_high_water", CRITICAL if on else INFO, ts_ms, None,
            on=on, used_bytes=used, max_bytes=limit,
        )  # fmt: skip

    def sequence_reset(self, reset: SequenceReset, ts_ms: int) -> Record:
        return self.event(
            "device_sequence_reset", CRITICAL, ts_ms, reset.device,
            old_high=reset.last, next_seq=reset.next_seq, old_boot=reset.old_boot,
            new_boot=reset.boot, held_first=reset.first, held_last=reset.last,
            action=RESET_ACTION,
        )  # fmt: skip
