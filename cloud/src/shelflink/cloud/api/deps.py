"""Dependencies routes declare: a database connection for an authenticated request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from shelflink.cloud.api.auth import CallerDep
from shelflink.cloud.api.state import api_state
from shelflink.cloud.database import Connection


async def _connection(request: Request, _caller: CallerDep) -> AsyncIterator[Connection]:
    # The caller is authenticated first, on a connection of its own that it gives
    # back: authenticating while holding this one would need two connections per
    # request, and a full pool of requests each waiting for its second deadlocks.
    async with api_state(request).pool.connection() as conn:
        yield conn


# scope="function": the connection goes back to the pool when the route returns,
# before the response is sent (and before an idempotent POST stores it).
ConnDep = Annotated[Connection, Depends(_connection, scope="function")]
