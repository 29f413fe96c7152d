"""RFC 9457 problem details: every error the API returns is `application/problem+json`.

Domain errors from `core` are mapped here to one problem type and status each; request
validation becomes 422 with an `errors` list naming each field (`loc`). No exception escapes as
an HTML or plain-text 500.
"""

import logging
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from core.jobs.errors import (
    DomainError,
    FieldError,
    IdempotencyInFlightError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    JobFinishedError,
    NotFoundError,
)

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Problem type URIs are relative references (RFC 9457 §3.1.1), documented in docs/api.md.
PROBLEM_BASE = "/problems/"


class FieldErrorModel(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """The body of every error response."""

    type: str = Field(description="URI reference naming the problem type.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldErrorModel] | None = Field(
        None, description="For validation problems: one entry per invalid field."
    )


class ApiProblem(Exception):
    """Raised by routes and dependencies for problems that are HTTP-level (auth, media type,
    size, ranges) rather than domain errors."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors
        self.extra = extra or {}


def problem_response(
    status: int,
    slug: str,
    detail: str | None,
    *,
    instance: str | None = None,
    errors: Iterable[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = list(errors)
    body.update(extra or {})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _field_error(error: FieldError) -> dict[str, Any]:
    return {"loc": list(error.loc), "msg": error.msg, "type": error.type}


def _domain_status(error: DomainError) -> tuple[int, str]:
    if isinstance(error, NotFoundError):
        return 404, "not-found"
    if isinstance(error, InvalidRequestError):
        return 422, "validation-error"
    if isinstance(error, IdempotencyKeyReusedError):
        return 422, "idempotency-key-reused"
    if isinstance(error, IdempotencyInFlightError):
        return 409, "idempotency-key-in-flight"
    if isinstance(error, JobFinishedError):
        return 409, "job-finished"
    return 400, "bad-request"


_STATUS_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    416: "range-not-satisfiable",
    422: "validation-error",
    503: "service-unavailable",
}

# Seconds a client should wait before retrying while the database is unreachable: about what a
# Postgres restart or failover takes.
DATABASE_RETRY_AFTER_SECONDS = 5
# Errors that mean "the database cannot be reached or cannot take the request now" (down,
# restarting, connection lost, pool exhausted, SQLite busy past its timeout), as opposed to a bug.
_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, error: ApiProblem) -> JSONResponse:
        errors = [_field_error(e) for e in error.errors] if error.errors is not None else None
        return problem_response(
            error.status,
            error.slug,
            error.detail,
            instance=request.url.path,
            errors=errors,
            headers=error.headers,
            extra=error.extra,
        )

    @app.exception_handler(DomainError)
    async def _domain(request: Request, error: DomainError) -> JSONResponse:
        status, slug = _domain_status(error)
        errors = (
            [_field_error(e) for e in error.errors]
            if isinstance(error, InvalidRequestError)
            else None
        )
        # The first request with this key is still running: tell the client when to retry.
        headers = {"Retry-After": "1"} if isinstance(error, IdempotencyInFlightError) else None
        return problem_response(
            status, slug, error.detail, instance=request.url.path, errors=errors, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        raw = list(error.errors())
        if any(item.get("type") == "json_invalid" for item in raw):
            return problem_response(
                400,
                "malformed-json",
                "the request body is not valid JSON",
                instance=request.url.path,
                errors=[_plain(item) for item in raw],
            )
        names = ", ".join(".".join(str(part) for part in item["loc"]) for item in raw)
        return problem_response(
            422,
            "validation-error",
            f"invalid fields: {names}",
            instance=request.url.path,
            errors=[_plain(item) for item in raw],
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        slug = _STATUS_SLUGS.get(error.status_code, "http-error")
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return problem_response(
            error.status_code,
            slug,
            str(error.detail) if error.detail else None,
            instance=request.url.path,
            headers=headers,
        )

    @app.exception_handler(sa_exc.DBAPIError)
    async def _database(request: Request, error: sa_exc.DBAPIError) -> JSONResponse:
        if isinstance(error, _UNAVAILABLE) or error.connection_invalidated:
            return _unavailable(request, error)
        return await _unexpected(request, error)

    @app.exception_handler(sa_exc.TimeoutError)
    async def _pool_timeout(request: Request, error: sa_exc.TimeoutError) -> JSONResponse:
        return _unavailable(request, error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500, "internal-error", "an unexpected error occurred", instance=request.url.path
        )


def _unavailable(request: Request, error: Exception) -> JSONResponse:
    logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, error)
    return problem_response(
        503,
        "database-unavailable",
        "the database is unreachable; retry later",
        instance=request.url.path,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. Starlette answers a 405 with the methods of
    the first route whose path matched, which is wrong where several routes share a path (GET
    and POST /v1/jobs are two routes)."""
    methods: set[str] = set()
    for route in _leaf_routes(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _leaf_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """The app's routes with included routers opened up (ours are included without a prefix:
    each router carries its own, so the leaves' paths are the full paths)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaf_routes(inner.routes)
        else:
            yield route


def _plain(item: Any) -> dict[str, Any]:
    """A pydantic error reduced to what a client needs (no echo of the input or its context)."""
    return {"loc": list(item["loc"]), "msg": str(item["msg"]), "type": str(item["type"])}


def problems(
    *statuses: int, also: dict[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring the problems a route can return (plus `also`,
    the route's other documented responses)."""
    return dict(also or {}) | {
        status: {
            # `model` registers the schema; the app's OpenAPI hook serves it as problem+json.
            "model": Problem,
            "description": HTTPStatus(status).phrase,
        }
        for status in statuses
    }
