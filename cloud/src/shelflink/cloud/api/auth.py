"""Who is calling: API keys from ``Authorization: Bearer`` or ``X-API-Key``, and the
rate limit that each key's calls spend.

Authorisation is one visible parameter per route: :data:`CallerDep` (any valid
key) or :data:`OperatorDep` (a brand operator's key). Object-level checks are
in the queries: a dealer's calls pass its ``dealer_id`` down, so another
dealer's objects are simply not found.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from shelflink.cloud.api.problems import Problem
from shelflink.cloud.api.state import api_state
from shelflink.cloud.api_keys import KeyHolder, authenticate
from shelflink.cloud.orders_models import Actor

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer slk_…`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: slk_…`")

_UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="shelflink"'}


def offered_key(request: Request) -> str | None:
    """The API key the request carries, if any (Bearer first, then X-API-Key)."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("X-API-Key") or None


async def authenticate_request(request: Request) -> KeyHolder:
    """The caller, authenticated and charged one request, once per request.

    Raises a 401 problem for a missing, malformed, unknown or revoked key and a
    429 problem (with Retry-After) when the key's bucket is empty.
    """
    cached: KeyHolder | None = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    api_key = offered_key(request)
    if api_key is None:
        raise Problem(
            401,
            "unauthorized",
            "send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`",
            headers=_UNAUTHORIZED_HEADERS,
        )
    state = api_state(request)
    async with state.pool.connection() as conn:
        holder = await authenticate(conn, api_key)
        if holder is None:
            raise Problem(
                401, "unauthorized", "the API key is not valid or was revoked",
                headers=_UNAUTHORIZED_HEADERS,
            )  # fmt: skip
        wait_s = await state.rate_limiter.take(holder.key_id, conn)
    if wait_s > 0:
        raise Problem(
            429,
            "rate-limited",
            f"this key exceeded {state.options.rate_per_s:g} requests per second",
            headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
        )
    request.state.caller = holder
    return holder


async def _caller(
    request: Request,
    # Declared for OpenAPI (the two ways to send a key); offered_key reads them.
    _bearer_key: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    _header_key: Annotated[str | None, Security(_header)],
) -> KeyHolder:
    return await authenticate_request(request)


async def _operator(caller: Annotated[KeyHolder, Depends(_caller)]) -> KeyHolder:
    if not caller.is_operator:
        raise Problem(403, "operator-only", "this route needs a brand operator's key")
    return caller


CallerDep = Annotated[KeyHolder, Depends(_caller)]
OperatorDep = Annotated[KeyHolder, Depends(_operator)]


def actor_of(caller: KeyHolder) -> Actor:
    """The caller as the actor an order's audit trail records."""
    if caller.is_operator:
        return Actor(kind="operator", key_id=caller.key_id)
    return Actor(kind="dealer", key_id=caller.key_id, dealer_id=caller.dealer_id)
