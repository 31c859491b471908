"""Idempotency keys for every POST: a retry gets the first answer, not a second effect.

:class:`IdempotentRoute` is the route class of every router of the API. A POST
that carries ``Idempotency-Key`` first reserves (API key, idempotency key) with
a fingerprint of the request; the route then runs once, and its answer (any
status below 500) is stored for ``ApiOptions.idempotency_ttl``. A retry with
the same key and the same request is answered from the store with
``Idempotent-Replayed: true``; with another request, a 422 problem. While the
first request still runs, a retry gets a 409 problem with Retry-After.

The reservation is committed before the route runs, so two concurrent
requests with one key cannot both run. A process that dies mid-request leaves
the reservation in place until it expires: a retry is then refused (409), never
run a second time. A 5xx answer removes the reservation, so the retry runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from psycopg.types.json import Jsonb
from starlette.responses import Response

from shelflink.cloud.api.auth import authenticate_request
from shelflink.cloud.api.problems import Problem, problem_for
from shelflink.cloud.api.state import api_state
from shelflink.cloud.database import Connection

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# Headers a replay repeats; the others (date, server, rate limits) belong to each answer.
_STORED_HEADERS = ("content-type", "etag", "location")

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def request_fingerprint(method: str, path: str, query: str, body: bytes) -> bytes:
    """SHA-256 of what makes two requests the same: the same JSON with other spacing or
    key order is the same request."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


class IdempotentRoute(APIRoute):
    """An API route whose POSTs honour ``Idempotency-Key``."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if "POST" not in (self.methods or set()):
            return handler

        async def idempotent_handler(request: Request) -> Response:
            key = request.headers.get(HEADER)
            if key is None:
                return await handler(request)
            return await _run_once(request, key, handler)

        return idempotent_handler


async def _run_once(request: Request, key: str, handler: Handler) -> Response:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise Problem(
            400,
            "bad-idempotency-key",
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters",
        )
    caller = await authenticate_request(request)
    state = api_state(request)
    fingerprint = request_fingerprint(
        request.method, request.url.path, request.url.query, await request.body()
    )
    async with state.pool.connection() as conn:
        stored = await _reserve(
            conn, caller.key_id, key, fingerprint, state.options.idempotency_ttl
        )
    if stored is not None:
        return _replay(key, fingerprint, stored)
    try:
        response = await handler(request)
    except Exception as exc:  # every answer, errors included, is what a retry must get
        response = problem_for(request, exc)
        if response.status_code >= 500:
            await _release(request, caller.key_id, key)
            raise
    if response.status_code >= 500:
        await _release(request, caller.key_id, key)
        return response
    headers = {k: v for k, v in response.headers.items() if k.lower() in _STORED_HEADERS}
    async with state.pool.connection() as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET status = %s, headers = %s, body = %s"
            " WHERE key_id = %s AND idempotency_key = %s",
            (response.status_code, Jsonb(headers), bytes(response.body), caller.key_id, key),
        )
    return response


async def _reserve(
    conn: Connection, key_id: str, key: str, fingerprint: bytes, ttl: timedelta
) -> tuple[bytes, int | None, dict[str, str] | None, bytes | None] | None:
    """None when this request may run (reserved now); else the stored record."""
    # An expired record is taken over in the same statement, so expiry needs no
    # purge to have happened.
    cur = await conn.execute(
        "INSERT INTO idempotency_keys (key_id, idempotency_key, request_sha256, expires_at)"
        " VALUES (%(key_id)s, %(key)s, %(sha)s, now() + %(ttl)s)"
        " ON CONFLICT (key_id, idempotency_key) DO UPDATE SET"
        " request_sha256 = excluded.request_sha256, status = NULL, headers = NULL,"
        " body = NULL, created_at = now(), expires_at = excluded.expires_at"
        " WHERE idempotency_keys.expires_at <= now() RETURNING true",
        {"key_id": key_id, "key": key, "sha": fingerprint, "ttl": ttl},
    )
    if await cur.fetchone() is not None:
        return None
    cur = await conn.execute(
        "SELECT request_sha256, status, headers, body FROM idempotency_keys"
        " WHERE key_id = %s AND idempotency_key = %s",
        (key_id, key),
    )
    row = await cur.fetchone()
    if row is None:  # expired and purged between the two statements: take it again
        return await _reserve(conn, key_id, key, fingerprint, ttl)
    return (bytes(row[0]), row[1], row[2], None if row[3] is None else bytes(row[3]))


def _replay(
    key: str,
    fingerprint: bytes,
    stored: tuple[bytes, int | None, dict[str, str] | None, bytes | None],
) -> Response:
    stored_fingerprint, status, headers, body = stored
    if stored_fingerprint != fingerprint:
        raise Problem(
            422,
            "idempotency-key-reused",
            f"{HEADER} {key!r} was used for another request; use a new key for a new request",
        )
    if status is None:
        raise Problem(
            409,
            "request-in-progress",
            f"a request with {HEADER} {key!r} is still running; retry later",
            headers={"Retry-After": "1"},
        )
    replay_headers = dict(headers or {})
    replay_headers[REPLAYED_HEADER] = "true"
    return Response(content=body or b"", status_code=status, headers=replay_headers)


async def _release(request: Request, key_id: str, key: str) -> None:
    async with api_state(request).pool.connection() as conn:
        await conn.execute(
            "DELETE FROM idempotency_keys WHERE key_id = %s AND idempotency_key = %s",
            (key_id, key),
        )


async def purge_expired(conn: Connection) -> int:
    """Delete expired records; returns how many."""
    cur = await conn.execute("DELETE FROM idempotency_keys WHERE expires_at <= now()")
    return cur.rowcount
