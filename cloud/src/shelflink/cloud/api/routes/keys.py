"""API keys as their holders see them: listed without secrets, revocable."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from fastapi import Response
from pydantic import BaseModel

from shelflink.cloud.api.auth import CallerDep
from shelflink.cloud.api.deps import ConnDep
from shelflink.cloud.api.problems import Problem, problem_responses
from shelflink.cloud.api.routes import make_router
from shelflink.cloud.api_keys import list_keys, revoke_key

router = make_router("keys")


class ApiKey(BaseModel):
    """A key without its secret; ``dealer_id`` null is an operator's key."""

    key_id: str
    dealer_id: str | None
    label: str
    created_at: datetime
    revoked_at: datetime | None


@router.get("/keys", summary="List API keys", response_model=list[ApiKey])
async def keys(conn: ConnDep, caller: CallerDep) -> list[ApiKey]:
    """A dealer's own keys; every key for an operator."""
    return [ApiKey(**asdict(k)) for k in await list_keys(conn, dealer_id=caller.dealer_id)]


@router.delete(
    "/keys/{key_id}", summary="Revoke an API key", status_code=204,
    responses=problem_responses(404),
)  # fmt: skip
async def revoke(conn: ConnDep, caller: CallerDep, key_id: str) -> Response:
    """Revoking is final and takes effect at the key's next request (this one included)."""
    if not await revoke_key(conn, key_id, dealer_id=caller.dealer_id):
        raise Problem(404, "not-found", f"no key {key_id}")
    return Response(status_code=204)
