"""Keyset pagination: opaque cursors and the page shape every list returns.

A cursor is the sort key of the last item of the previous page, base64url
encoded so that clients treat it as opaque (and we may change what is in it).
A page is then ``WHERE key < cursor ORDER BY key DESC LIMIT n`` (or ``>`` and
ascending): one index range scan whatever the depth, unlike OFFSET, which
reads and discards every row before the page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from shelflink.cloud.api.problems import Problem

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"items per page (at most {MAX_LIMIT})")
]
CursorQuery = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page")
]


class Page(BaseModel, Generic[T]):
    """One page of a list; ``next_cursor`` is null on the last page."""

    items: list[T]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


def encode_cursor(key: int | str) -> str:
    """The cursor that continues after ``key``."""
    return base64.urlsafe_b64encode(json.dumps({"k": key}).encode()).decode().rstrip("=")


def decode_int_cursor(cursor: str | None) -> int | None:
    """The integer key in a cursor; a 400 problem when it is not one of ours."""
    key = _decode(cursor)
    if key is None or (isinstance(key, int) and not isinstance(key, bool)):
        return key
    raise _bad_cursor()


def decode_str_cursor(cursor: str | None) -> str | None:
    """The text key in a cursor; a 400 problem when it is not one of ours."""
    key = _decode(cursor)
    if key is None or isinstance(key, str):
        return key
    raise _bad_cursor()


def _decode(cursor: str | None) -> object:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _bad_cursor() from None
    if not isinstance(value, dict) or "k" not in value:
        raise _bad_cursor()
    return value["k"]


def _bad_cursor() -> Problem:
    return Problem(400, "bad-cursor", "the cursor is not one this API issued")


def page_of(items: list[T], key: Callable[[T], int | str], limit: int) -> Page[T]:
    """A page from up to ``limit + 1`` items: the extra one only says that more follow,
    so the last page never links to an empty one."""
    if len(items) <= limit:
        return Page(items=items, next_cursor=None)
    kept = items[:limit]
    return Page(items=kept, next_cursor=encode_cursor(key(kept[-1])))
