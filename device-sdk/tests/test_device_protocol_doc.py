"""Every example in docs/protocol.md is what the reference encoder writes, byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shelflink.device import decode, decode_command, encode

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```json\n(.+?)\n```", re.DOTALL)
# The examples are dated 2025-11-26 09:40 UTC; decode them as if it were then.
EXAMPLE_NOW_MS = 1_764_150_000_000


def examples() -> list[tuple[str, bytes]]:
    found = [(where, body.encode()) for where, body in EXAMPLE.findall(DOC.read_text())]
    assert len(found) >= 8, "docs/protocol.md lost its examples"
    return found


@pytest.mark.parametrize(("where", "payload"), examples())
def test_doc_example_is_byte_exact(where: str, payload: bytes) -> None:
    if where == "command":
        message = decode_command(payload, now_ms=EXAMPLE_NOW_MS)
        assert encode(message) == payload
        return
    _, decoded = decode(where, payload, now_ms=EXAMPLE_NOW_MS)
    assert encode(decoded) == payload


def test_doc_states_the_limits_the_code_enforces() -> None:
    from shelflink.device import DEFAULT_LIMITS

    text = DOC.read_text()
    assert f"{DEFAULT_LIMITS.max_payload_bytes:,} bytes" in text
    assert f"{DEFAULT_LIMITS.max_future_skew_ms // 60_000} minutes ahead" in text
    assert f"{DEFAULT_LIMITS.max_age_ms // 86_400_000} days old" in text
