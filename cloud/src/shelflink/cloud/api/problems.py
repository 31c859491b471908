"""RFC 9457 problem details: the one shape of every error the dealer API returns.

Routes raise :class:`Problem`; the handlers installed by
:func:`install_problem_handlers` turn it, FastAPI's validation errors,
Starlette's 404/405 and anything unexpected into ``application/problem+json``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import compile_path

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# Problem types are URNs: stable names that need no web server. docs/dealer-api.md
# lists each one.
TYPE_PREFIX = "urn:shelflink:problem:"


class ProblemDetail(BaseModel):
    """An error, as RFC 9457 describes it."""

    type: str = Field(examples=[TYPE_PREFIX + "not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["no order 42"])
    instance: str | None = Field(default=None, description="the request path")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="for validation problems: each invalid field"
    )


class Problem(Exception):
    """An error answer: raise it from a route, the handler renders it."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = dict(headers or {})
        self.errors = errors


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    """The problem as an ``application/problem+json`` response."""
    body = ProblemDetail(
        type=TYPE_PREFIX + problem.kind,
        title=problem.title,
        status=problem.status,
        detail=problem.detail,
        instance=request.url.path,
        errors=problem.errors,
    )
    return JSONResponse(
        jsonable_encoder(body, exclude_none=True),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_JSON,
    )


_HTTP_KINDS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "content-too-large",
    415: "unsupported-media-type",
}


def as_problem(exc: Exception) -> Problem:
    """Any exception as the problem the client should see."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return Problem(
            422,
            "validation",
            "the request does not match the API's schema; see errors",
            title="Invalid request",
            errors=jsonable_encoder(errors),
        )
    if isinstance(exc, StarletteHTTPException):
        kind = _HTTP_KINDS.get(exc.status_code, "http-error")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return Problem(exc.status_code, kind, detail, headers=exc.headers)
    if isinstance(exc, psycopg.DataError):
        # A value the schema lets through but PostgreSQL cannot store (a NUL
        # character in text): the client's to fix, not a server error.
        return Problem(
            422, "validation", f"a value cannot be stored: {exc}", title="Invalid request"
        )
    logger.exception("unexpected error", exc_info=exc)
    return Problem(500, "internal", "an unexpected error; it has been logged")


def problem_for(request: Request, exc: Exception) -> Response:
    """The response for any exception a route raised."""
    return problem_response(request, as_problem(exc))


def _allowed_methods(request: Request) -> str:
    # Starlette's 405 names the methods of the first route whose path matched, but
    # GET and PUT of one path are two routes here; RFC 9110 wants every method.
    allowed: set[str] = set()
    for context in iter_route_contexts(request.app.routes):
        path, methods = context.path, context.methods
        if path and methods and compile_path(path)[0].fullmatch(request.url.path):
            allowed.update(methods)
    return ", ".join(sorted(allowed))


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` a problem-details response."""

    async def handle(request: Request, exc: Exception) -> Response:
        response = problem_for(request, exc)
        if response.status_code == 405:
            response.headers["Allow"] = _allowed_methods(request)
        return response

    # DataError has its own entry: Starlette re-raises whatever reaches the catch-all
    # Exception handler (to log it as a crash), even after answering.
    for exc_class in (
        Problem, RequestValidationError, StarletteHTTPException, psycopg.DataError, Exception,
    ):  # fmt: skip
        app.add_exception_handler(exc_class, handle)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all problem details."""
    return {
        status: {
            "model": ProblemDetail,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}},
        }
        for status in statuses
    }
