"""API keys: issued once, stored as a hash, checked in constant time, revocable.

A key reads ``slk_<key_id>_<secret>``: ``key_id`` (13 random base32 characters)
is public and finds the row; ``secret`` is 32 random bytes (base64url). Only
SHA-256 of the secret is stored.

Why a plain SHA-256 and not a slow password hash (bcrypt, scrypt, Argon2): slow
hashes exist because passwords are guessable, so a stolen hash table can be
attacked by trying likely passwords. A 256-bit random secret cannot be guessed;
brute-forcing its SHA-256 is 2^255 tries on average whatever the hash costs. A
slow hash would add nothing but tens of milliseconds of CPU to every API call.
The comparison is constant time (``hmac.compare_digest``), so response timing
reveals nothing about how much of a forged secret matched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import class_row

from shelflink.cloud.database import Connection, transaction

KEY_PREFIX = "slk_"
SECRET_BYTES = 32
_KEY_ID_BYTES = 8  # 64 bits: ids never collide in practice


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key as issued: ``api_key`` is shown once and never stored."""

    key_id: str
    dealer_id: str | None
    api_key: str


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """Who an accepted key belongs to: a dealer, or a brand operator (dealer_id None)."""

    key_id: str
    dealer_id: str | None

    @property
    def is_operator(self) -> bool:
        return self.dealer_id is None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as listed: never its secret."""

    key_id: str
    dealer_id: str | None
    label: str
    created_at: datetime
    revoked_at: datetime | None


class UnknownDealer(LookupError):
    """A key was asked for a dealer that does not exist."""


def secret_hash(secret: str) -> bytes:
    """SHA-256 of a key's secret part (see the module docstring for why no slow KDF)."""
    return hashlib.sha256(secret.encode("ascii")).digest()


def new_key() -> tuple[str, str, str]:
    """A fresh (key_id, secret, api_key)."""
    key_id = base64.b32encode(secrets.token_bytes(_KEY_ID_BYTES)).decode().rstrip("=").lower()
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")
    return key_id, secret, f"{KEY_PREFIX}{key_id}_{secret}"


def split_key(api_key: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed key, else None."""
    if not api_key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = api_key[len(KEY_PREFIX) :].partition("_")
    if not sep or not key_id or not secret or not secret.isascii() or not key_id.isalnum():
        return None
    return key_id, secret


async def issue_key(conn: Connection, dealer_id: str | None, *, label: str = "") -> IssuedKey:
    """A new key for a dealer, or for a brand operator when ``dealer_id`` is None."""
    key_id, secret, api_key = new_key()
    async with transaction(conn):
        if dealer_id is not None:
            cur = await conn.execute("SELECT 1 FROM dealers WHERE dealer_id = %s", (dealer_id,))
            if await cur.fetchone() is None:
                raise UnknownDealer(f"no dealer {dealer_id}")
        await conn.execute(
            "INSERT INTO api_keys (key_id, secret_sha256, dealer_id, label)"
            " VALUES (%s, %s, %s, %s)",
            (key_id, secret_hash(secret), dealer_id, label),
        )
    return IssuedKey(key_id=key_id, dealer_id=dealer_id, api_key=api_key)


async def authenticate(conn: Connection, api_key: str) -> KeyHolder | None:
    """Who holds ``api_key``, or None for a malformed, unknown, wrong or revoked key."""
    parts = split_key(api_key)
    if parts is None:
        return None
    key_id, secret = parts
    cur = await conn.execute(
        "SELECT secret_sha256, dealer_id FROM api_keys WHERE key_id = %s AND revoked_at IS NULL",
        (key_id,),
    )
    row = await cur.fetchone()
    # Hash even when there is no row, so an unknown key id costs what a wrong secret costs.
    offered = secret_hash(secret)
    stored: bytes = row[0] if row is not None else bytes(32)
    if not hmac.compare_digest(offered, stored) or row is None:
        return None
    return KeyHolder(key_id=key_id, dealer_id=row[1])


async def revoke_key(conn: Connection, key_id: str, *, dealer_id: str | None = None) -> bool:
    """Revoke a key (only one of ``dealer_id``'s when given); False when there is none."""
    async with transaction(conn):
        cur = await conn.execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
            " WHERE key_id = %(key)s AND (%(dealer)s::text IS NULL OR dealer_id = %(dealer)s)",
            {"key": key_id, "dealer": dealer_id},
        )
        return cur.rowcount == 1


async def list_keys(conn: Connection, *, dealer_id: str | None = None) -> list[KeyRecord]:
    """Keys by creation (only ``dealer_id``'s when given), revoked ones included."""
    async with transaction(conn), conn.cursor(row_factory=class_row(KeyRecord)) as cur:
        await cur.execute(
            "SELECT key_id, dealer_id, label, created_at, revoked_at FROM api_keys"
            " WHERE %(dealer)s::text IS NULL OR dealer_id = %(dealer)s"
            " ORDER BY created_at, key_id",
            {"dealer": dealer_id},
        )
        return await cur.fetchall()
