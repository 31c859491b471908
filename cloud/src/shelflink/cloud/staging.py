"""Batches as PostgreSQL binary COPY data: the writer's (and the baselines') encoder.

We write the binary COPY format ourselves with :mod:`struct` instead of
handing psycopg one Python tuple per row: a shelf reading then costs one
``pack`` call on a cached format, not a list of lane values that psycopg's
array dumper walks in Python. Measured in docs/storage.md (psycopg text
``write_row``, psycopg binary ``write_row``, this encoder).

The same pass checks what PostgreSQL would refuse or what would poison a
rollup (a seq beyond bigint, a time outside the contract's range, NaN grams, a
NUL character in a string, an event body that is not JSON), so that one bad
batch is named before any SQL is sent, instead of aborting a transaction that
holds sixty good ones. It also drops rows repeated within the commit (the
same reading in two batches), counting them as duplicates of the first.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from shelflink.cloud.partitions import DAY_MS, FRIDGE_TABLES, SHELF_TABLES
from shelflink.device.proto import batch_pb2 as pb

HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no extension
TRAILER: Final = b"\xff\xff"
PG_EPOCH_MS: Final = 946_684_800_000  # 2000-01-01, PostgreSQL's timestamp zero
FLOAT4_OID: Final = 700
SEQ_MAX: Final = 2**63 - 1
INT4_MAX: Final = 2**31 - 1
TS_MAX_MS: Final = 2**53  # the contract's EpochMs bound
MAX_LANES: Final = 64

_I32 = struct.Struct(">i").pack
_I16 = struct.Struct(">h").pack
_INT8 = struct.Struct(">iq").pack
_INT4 = struct.Struct(">ii").pack
_F4 = struct.Struct(">if").pack
_BOOL = struct.Struct(">i?").pack
_NULL: Final = b"\xff\xff\xff\xff"


@dataclass(frozen=True, slots=True)
class Kind:
    """One record kind: its table, staging table and columns in COPY order."""

    table: str
    stage: str
    columns: tuple[tuple[str, str], ...]  # (name, SQL type), without the batch index
    key: tuple[str, ...]  # the unique key that makes a replay a duplicate

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _type in self.columns)


_READING = (("store_id", "text"), ("device", "text"), ("seq", "bigint"), ("ts", "timestamptz"))
_DEVICE_KEY = ("device", "ts", "seq")
KINDS: Final = {
    "events": Kind(
        "events", "stage_events",
        (("store_id", "text"), ("gateway_id", "text"), ("seq", "bigint"), ("source", "text"),
         ("ts", "timestamptz"), ("type", "text"), ("severity", "text"), ("body", "jsonb")),
        ("gateway_id", "seq"),
    ),
    "statuses": Kind(
        "device_status", "stage_status",
        (*_READING, ("online", "boolean"), ("cause", "text"), ("kind", "text"),
         ("firmware", "text"), ("boot_id", "text"), ("interval_ms", "integer"),
         ("lanes", "integer")),
        ("device", "ts", "seq", "cause"),
    ),
    "sales": Kind(
        "sales", "stage_sales",
        (*_READING, ("gtin", "text"), ("serial", "text"), ("qty", "integer"),
         ("unit_price_minor", "bigint"), ("currency", "text"), ("receipt_id", "text")),
        _DEVICE_KEY,
    ),
    "receipts": Kind(
        "goods_receipts", "stage_receipts",
        (*_READING, ("gtin", "text"), ("serial", "text"), ("qty", "integer"),
         ("delivery_ref", "text")),
        _DEVICE_KEY,
    ),
    "shelf": Kind(
        "shelf_readings", "stage_shelf", (*_READING, ("grams", "real[]"), ("board_c", "real")),
        _DEVICE_KEY,
    ),
    "fridge": Kind(
        "fridge_readings", "stage_fridge",
        (*_READING, ("cabinet_c", "real"), ("evaporator_c", "real"), ("door_open", "boolean"),
         ("compressor_on", "boolean"), ("defrost_on", "boolean")),
        _DEVICE_KEY,
    ),
}  # fmt: skip


class InvalidBatch(ValueError):
    """A batch that cannot be stored as it is; nothing was sent to the database."""

    def __init__(self, index: int, gateway_id: str, batch_seq: int, reason: str) -> None:
        super().__init__(f"batch {batch_seq} from {gateway_id} (#{index}): {reason}")
        self.index = index
        self.gateway_id = gateway_id
        self.batch_seq = batch_seq
        self.reason = reason


class _Bad(Exception):
    pass


def _text(value: str) -> bytes:
    if "\x00" in value:
        raise _Bad(f"NUL character in {value!r}")
    data = value.encode()
    return _I32(len(data)) + data


def _ts(ms: int) -> bytes:
    if not 0 <= ms <= TS_MAX_MS:
        raise _Bad(f"timestamp {ms} ms is outside 0..2^53")
    return _INT8(8, (ms - PG_EPOCH_MS) * 1000)


def _seq(seq: int) -> bytes:
    if seq > SEQ_MAX:
        raise _Bad(f"seq {seq} exceeds bigint")
    return _INT8(8, seq)


def _int4(value: int) -> bytes:
    if value > INT4_MAX:
        raise _Bad(f"{value} exceeds integer")
    return _INT4(4, value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _jsonb(body: str) -> bytes:
    body = body or "{}"  # an event without fields
    try:
        json.loads(body, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise _Bad(f"event body is not JSON: {exc}") from None
    if "\\u0000" in body:
        raise _Bad("event body holds \\u0000, which jsonb refuses")
    # jsonb's binary format is a version byte (1) and the text. json.loads has
    # already refused raw control characters, NUL among them.
    data = b"\x01" + body.encode()
    return _I32(len(data)) + data


def _severity(value: int) -> str:
    try:
        return pb.Severity.Name(value).removeprefix("SEVERITY_").lower()  # type: ignore[arg-type]
    except ValueError:
        return str(value)  # a level newer than this release


@dataclass(slots=True)
class StagedRows:
    """COPY data by kind, and what the commit needs to know about the batches."""

    copy_data: dict[str, list[bytes]] = field(default_factory=lambda: {k: [] for k in KINDS})
    rows: list[int] = field(default_factory=list)  # per batch, every row it carried
    days: dict[str, set[int]] = field(default_factory=dict)  # partitioned table -> days
    staged: int = 0  # rows encoded (repeats within the commit dropped)

    def payload(self, kind: str) -> bytes | None:
        parts = self.copy_data[kind]
        return b"".join((HEADER, *parts, TRAILER)) if parts else None


class _Encoder:
    """Encodes batches one after another; ``with_index`` adds the batch's position first."""

    def __init__(self, with_index: bool) -> None:
        self.with_index = with_index
        self.out = StagedRows()
        self.seen: dict[str, set[tuple[Any, ...]]] = {k: set() for k in KINDS}
        self._shelf_days: set[int] = set()
        self._fridge_days: set[int] = set()
        self._shelf_fmt: dict[tuple[int, int], Callable[..., bytes]] = {}
        self._fridge_fmt: dict[int, Callable[..., bytes]] = {}

    def _prefix(self, kind: str, index: int, store: bytes) -> bytes:
        count = len(KINDS[kind].columns) + (1 if self.with_index else 0)
        head = _I16(count) + (_INT4(4, index) if self.with_index else b"")
        return head + store

    def add(self, index: int, batch: pb.Batch, gateway_id: str) -> None:
        if batch.batch_seq > SEQ_MAX:
            raise _Bad(f"batch_seq {batch.batch_seq} exceeds bigint")
        store = _text(batch.store_id)
        gateway = _text(gateway_id)
        data, seen = self.out.copy_data, self.seen
        rows = 0
        # Every row is encoded, and so checked, before the repeat test: a bad row
        # makes its batch bad even when an earlier copy of it was good.
        key: tuple[Any, ...]

        prefix = self._prefix("events", index, store)
        out, keys = data["events"], seen["events"]
        for e in batch.events:
            rows += 1
            row = (
                b"".join((prefix, gateway, _seq(e.seq), _text(e.source), _ts(e.ts),
                          _text(e.type), _text(_severity(e.severity)), _jsonb(e.body_json)))
            )  # fmt: skip
            key = (gateway_id, e.seq)
            if key not in keys:
                keys.add(key)
                out.append(row)

        prefix = self._prefix("statuses", index, store)
        out, keys = data["statuses"], seen["statuses"]
        for s in batch.statuses:
            rows += 1
            row = (
                b"".join((prefix, _text(s.device), _seq(s.seq), _ts(s.ts), _BOOL(1, s.online),
                          _text(s.cause), _text(s.kind), _text(s.firmware), _text(s.boot_id),
                          _int4(s.interval_ms), _int4(s.lanes) if s.lanes else _NULL))
            )  # fmt: skip
            key = (s.device, s.ts, s.seq, s.cause)
            if key not in keys:
                keys.add(key)
                out.append(row)

        prefix = self._prefix("sales", index, store)
        out, keys = data["sales"], seen["sales"]
        for sale in batch.sales:
            rows += 1
            row = (
                b"".join((prefix, _text(sale.device), _seq(sale.seq), _ts(sale.ts),
                          _text(sale.gtin), _text(sale.serial) if sale.serial else _NULL,
                          _int4(sale.qty), _INT8(8, sale.unit_price_minor), _text(sale.currency),
                          _text(sale.receipt_id)))
            )  # fmt: skip
            key = (sale.device, sale.ts, sale.seq)
            if key not in keys:
                keys.add(key)
                out.append(row)

        prefix = self._prefix("receipts", index, store)
        out, keys = data["receipts"], seen["receipts"]
        for r in batch.receipts:
            rows += 1
            row = (
                b"".join((prefix, _text(r.device), _seq(r.seq), _ts(r.ts), _text(r.gtin),
                          _text(r.serial) if r.serial else _NULL, _int4(r.qty),
                          _text(r.delivery_ref)))
            )  # fmt: skip
            key = (r.device, r.ts, r.seq)
            if key not in keys:
                keys.add(key)
                out.append(row)

        rows += self._shelf(index, batch, store)
        rows += self._fridge(index, batch, store)
        self.out.rows.append(rows)

    def _shelf(self, index: int, batch: pb.Batch, store: bytes) -> int:
        # The hot path: one cached struct format per (device id length, lane count).
        prefix = self._prefix("shelf", index, store)
        out, keys, days, fmts = self.out.copy_data["shelf"], self.seen["shelf"], \
            self._shelf_days, self._shelf_fmt  # fmt: skip
        for r in batch.shelf:
            device, seq, ts, grams, mask = r.device, r.seq, r.ts, r.grams, r.missing_mask
            lanes = len(grams)
            if not 0 < lanes <= MAX_LANES:
                raise _Bad(f"shelf reading {device}/{seq} has {lanes} lanes")
            if not math.isfinite(sum(grams)) or not math.isfinite(r.board_c):
                raise _Bad(f"shelf reading {device}/{seq} has a non-finite value")
            if not 0 <= ts <= TS_MAX_MS or seq > SEQ_MAX or "\x00" in device:
                _text(device), _seq(seq), _ts(ts)  # raises, naming the field
            key = (device, ts, seq)
            if key in keys:
                continue
            keys.add(key)
            dev = device.encode()
            days.add(ts // DAY_MS)
            if mask:
                out.append(prefix + self._masked_shelf(dev, seq, ts, grams, mask, r.board_c))
                continue
            pack = fmts.get((len(dev), lanes))
            if pack is None:
                pack = fmts[len(dev), lanes] = struct.Struct(
                    f">i{len(dev)}siqiqiiiiii{'if' * lanes}if"
                ).pack
            values: list[Any] = [4] * (2 * lanes)
            values[1::2] = grams
            out.append(
                prefix
                + pack(len(dev), dev, 8, seq, 8, (ts - PG_EPOCH_MS) * 1000,
                       20 + 8 * lanes, 1, 0, FLOAT4_OID, lanes, 1, *values, 4, r.board_c)
            )  # fmt: skip
        return len(batch.shelf)

    @staticmethod
    def _masked_shelf(
        dev: bytes, seq: int, ts: int, grams: Sequence[float], mask: int, board_c: float
    ) -> bytes:
        # Lanes without a reading are NULL array elements (the rarer, slower path).
        elements = b"".join(
            _NULL if mask >> lane & 1 else _F4(4, g) for lane, g in enumerate(grams)
        )
        array = struct.pack(">iiiii", 1, 1, FLOAT4_OID, len(grams), 1) + elements
        return b"".join((_I32(len(dev)), dev, _INT8(8, seq), _INT8(8, (ts - PG_EPOCH_MS) * 1000),
                         _I32(len(array)), array, _F4(4, board_c)))  # fmt: skip

    def _fridge(self, index: int, batch: pb.Batch, store: bytes) -> int:
        prefix = self._prefix("fridge", index, store)
        out, keys, days, fmts = self.out.copy_data["fridge"], self.seen["fridge"], \
            self._fridge_days, self._fridge_fmt  # fmt: skip
        for f in batch.fridge:
            device, seq, ts = f.device, f.seq, f.ts
            cabinet, evaporator = f.cabinet_c, f.evaporator_c
            if not (math.isfinite(cabinet) and math.isfinite(evaporator)):
                raise _Bad(f"fridge reading {device}/{seq} has a non-finite value")
            if not 0 <= ts <= TS_MAX_MS or seq > SEQ_MAX or "\x00" in device:
                _text(device), _seq(seq), _ts(ts)
            key = (device, ts, seq)
            if key in keys:
                continue
            keys.add(key)
            dev = device.encode()
            days.add(ts // DAY_MS)
            pack = fmts.get(len(dev))
            if pack is None:
                pack = fmts[len(dev)] = struct.Struct(f">i{len(dev)}siqiqififi?i?i?").pack
            out.append(
                prefix
                + pack(len(dev), dev, 8, seq, 8, (ts - PG_EPOCH_MS) * 1000, 4, cabinet,
                       4, evaporator, 1, f.door_open, 1, f.compressor_on, 1, f.defrost_on)
            )  # fmt: skip
        return len(batch.fridge)

    def finish(self) -> StagedRows:
        out = self.out
        for table in SHELF_TABLES:
            out.days[table] = self._shelf_days
        for table in FRIDGE_TABLES:
            out.days[table] = self._fridge_days
        out.staged = sum(len(parts) for parts in out.copy_data.values())
        return out


def stage(batches: Sequence[tuple[pb.Batch, str]], *, with_index: bool = True) -> StagedRows:
    """Encode every batch; InvalidBatch names the first that cannot be stored."""
    encoder = _Encoder(with_index)
    for index, (batch, gateway_id) in enumerate(batches):
        try:
            encoder.add(index, batch, gateway_id)
        except _Bad as exc:
            raise InvalidBatch(index, gateway_id, batch.batch_seq, str(exc)) from None
    return encoder.finish()


def check_batch(batch: pb.Batch, gateway_id: str) -> str | None:
    """Why this batch cannot be stored, or None. Costs as much as encoding it."""
    try:
        stage([(batch, gateway_id)])
    except InvalidBatch as exc:
        return exc.reason
    return None
