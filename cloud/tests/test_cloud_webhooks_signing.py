"""Webhook signatures as a receiver checks them: the right secret and body pass, and a
changed body, another secret, an old or future timestamp, or a malformed header fail."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shelflink.cloud.webhooks_signing import (
    SECRET_PREFIX,
    InvalidSignature,
    new_secret,
    signature_header,
    verify_signature,
)

SECRET = "whsec_test"
BODY = b'{"event_id":1,"type":"order.approved"}'
NOW = 1_700_000_000


def test_a_signed_body_verifies_and_returns_its_timestamp() -> None:
    header = signature_header(SECRET, BODY, NOW)
    assert header.startswith(f"t={NOW},v1=")
    assert verify_signature(SECRET, BODY, header, 300, now=NOW + 10) == NOW


@given(body=st.binary(max_size=512), flip=st.integers(min_value=0))
def test_any_changed_byte_fails(body: bytes, flip: int) -> None:
    header = signature_header(SECRET, body, NOW)
    assert verify_signature(SECRET, body, header, 300, now=NOW) == NOW
    changed = body + b"x" if not body else _flip(body, flip % len(body))
    with pytest.raises(InvalidSignature, match="no signature matches"):
        verify_signature(SECRET, changed, header, 300, now=NOW)


def _flip(body: bytes, index: int) -> bytes:
    return body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]


def test_another_secret_fails() -> None:
    header = signature_header(SECRET, BODY, NOW)
    with pytest.raises(InvalidSignature, match="no signature matches"):
        verify_signature("whsec_other", BODY, header, 300, now=NOW)


@pytest.mark.parametrize("offset", [-301, 301])
def test_a_timestamp_beyond_the_tolerance_fails_either_way(offset: int) -> None:
    header = signature_header(SECRET, BODY, NOW)
    with pytest.raises(InvalidSignature, match="tolerance 300"):
        verify_signature(SECRET, BODY, header, 300, now=NOW + offset)
    assert verify_signature(SECRET, BODY, header, 302, now=NOW + offset) == NOW


def test_a_replayed_request_with_a_new_timestamp_but_the_old_mac_fails() -> None:
    old = signature_header(SECRET, BODY, NOW)
    forged = old.replace(f"t={NOW}", f"t={NOW + 3600}")
    with pytest.raises(InvalidSignature, match="no signature matches"):
        verify_signature(SECRET, BODY, forged, 300, now=NOW + 3600)


def test_one_matching_signature_among_several_is_enough() -> None:
    good = signature_header(SECRET, BODY, NOW).split(",")[1]
    header = f"t={NOW},v1={'0' * 64},{good}"
    assert verify_signature(SECRET, BODY, header, 300, now=NOW) == NOW


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", f"t={NOW}", "v1=abc", f"t=soon,v1={'0' * 64}", f"t={NOW},v0=abc"],
)
def test_a_missing_or_malformed_header_fails(header: str | None) -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(SECRET, BODY, header, 300, now=NOW)


def test_secrets_are_fresh_and_long() -> None:
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(s.startswith(SECRET_PREFIX) and len(s) == len(SECRET_PREFIX) + 43 for s in secrets)
