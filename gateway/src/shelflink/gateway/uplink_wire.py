"""The uplink's payloads: a lease becomes a framed Batch; an ack payload becomes a BatchAck.

Topics and the batch framing are the device SDK's contract
(:mod:`shelflink.device.uplink`); this module only applies them to leases.
An ack travels as a plain serialized ``BatchAck``: it is a few dozen bytes,
there is nothing to compress.
"""

from __future__ import annotations

from shelflink.device.batch import BATCH_VERSION
from shelflink.device.proto import batch_pb2 as pb
from shelflink.device.uplink import frame_batch
from shelflink.gateway.buffer_batch import encode_batch_bytes
from shelflink.gateway.buffer_record import Lease

OUTCOMES = frozenset({pb.BatchAck.OUTCOME_COMMITTED, pb.BatchAck.OUTCOME_REJECTED})


class AckError(ValueError):
    """A payload on the ack topic that is not a usable BatchAck for this gateway."""


def batch_payload(store_id: str, gateway_id: str, lease: Lease) -> bytes:
    """The MQTT payload of a lease: deterministic, so a rebuilt lease gives the same bytes.

    The header comes from the lease (``batch_seq``, ``created_ms``), not from
    the clock, and zlib is deterministic for the same input and level: a
    resend after a restart is byte-identical to the first send.
    """
    body = encode_batch_bytes(
        store_id=store_id,
        gateway_id=gateway_id,
        batch_seq=lease.batch_seq,
        created_ms=lease.created_ms,
        records=lease.records,
        version=BATCH_VERSION,
    )
    return frame_batch(body)


def parse_ack(payload: bytes, gateway_id: str) -> pb.BatchAck:
    """The BatchAck in ``payload``, or :class:`AckError` saying why it cannot be used."""
    try:
        ack = pb.BatchAck.FromString(payload)
    except Exception as exc:  # protobuf raises DecodeError, and others on odd input
        raise AckError(f"not a protobuf BatchAck: {exc}") from None
    # Protobuf parses many random byte strings without complaint; these checks
    # are what tells a real answer from noise.
    if ack.gateway_id != gateway_id:
        raise AckError(f"ack for gateway {ack.gateway_id!r}, this is {gateway_id!r}")
    if ack.batch_seq <= 0:
        raise AckError("ack without a batch_seq")
    if ack.outcome not in OUTCOMES:
        raise AckError(f"ack with outcome {ack.outcome} (neither committed nor rejected)")
    return ack
