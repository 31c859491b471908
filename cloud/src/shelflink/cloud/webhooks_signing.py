"""Webhook signatures: how the sender signs a delivery and how a receiver checks it.

``X-Shelflink-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` where the MAC is
over ``"<t>.<raw body>"`` with the endpoint's secret. Signing the timestamp with
the body lets a receiver refuse an old request replayed by someone who captured
it: the attacker cannot move ``t`` without the secret. Pure functions, no I/O,
so a receiver may copy this module as it is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300.0


class InvalidSignature(ValueError):
    """A delivery whose signature header is missing, malformed, wrong or too old."""


def new_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` and 32 random bytes, base64url."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")
    return SECRET_PREFIX + raw


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Shelflink-Signature`` value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},{SCHEME}={_mac(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    body: bytes,
    header: str | None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> int:
    """Check a delivery as a receiver must; returns its signed timestamp.

    ``body`` is the raw request body, byte for byte (a re-serialised JSON would
    not match). Raises :class:`InvalidSignature` when the header is missing or
    malformed, no ``v1`` MAC matches (several are accepted, for a sender
    rolling to a new secret), or the timestamp is more than ``tolerance_s``
    away from ``now`` (default: the clock), in either direction.
    """
    if not header:
        raise InvalidSignature("no X-Shelflink-Signature header")
    timestamp: int | None = None
    offered: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise InvalidSignature(f"malformed signature element {part.strip()!r}")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignature(f"timestamp {value!r} is not an integer") from None
        elif name == SCHEME:
            offered.append(value)
    if timestamp is None or not offered:
        raise InvalidSignature(f"the header needs t= and {SCHEME}=")
    expected = _mac(secret, timestamp, body)
    # Every candidate is compared, in constant time, so timing says nothing.
    matched = False
    for candidate in offered:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise InvalidSignature("no signature matches the body with this secret")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance_s:
        raise InvalidSignature(f"timestamp is {age:.0f} s from now (tolerance {tolerance_s:g} s)")
    return timestamp
