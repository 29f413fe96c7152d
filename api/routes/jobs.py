"""/v1/jobs: create (idempotent), get (ETag), list (filters, cursor), cancel."""

import hashlib
import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from api.dependencies import (
    Context,
    Credentials,
    DbSession,
    Principal,
    read_as_caller,
    require_json,
    run_read,
)
from api.problems import ApiProblem, problems
from core.hyperparameters import Method
from core.jobs import reads, service
from core.jobs.errors import FieldError
from core.jobs.pagination import in_utc_range
from core.jobs.schemas import JobCreate, JobPage, JobView
from core.jobs.status import JobStatus
from core.queue import enqueue_job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

IDEMPOTENCY_KEY_MAX_CHARS = 255


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison, a list of tags, or `*`."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def _job_location(request: Request, job_id: str) -> str:
    return str(request.app.url_path_for("get_job", job_id=job_id))


@router.post(
    "",
    status_code=202,
    response_model=JobView,
    dependencies=[Depends(require_json)],
    responses=problems(400, 401, 409, 413, 415, 422),
    summary="Submit an erasure job",
)
def create_job(
    request: Request,
    body: JobCreate,
    principal: Principal,
    context: Context,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=IDEMPOTENCY_KEY_MAX_CHARS,
            description="Retry-safe submission: the same key and body return the first response.",
        ),
    ] = None,
) -> JSONResponse:
    if idempotency_key is not None and not idempotency_key.strip():
        raise ApiProblem(
            422,
            "validation-error",
            "Idempotency-Key must not be blank",
            errors=[FieldError(("header", "idempotency-key"), "must not be blank", "value_error")],
        )
    created = service.create_job(
        context.session_factory,
        context.settings,
        principal,
        body,
        idempotency_key=idempotency_key,
        enqueue=lambda job_id: enqueue_job(context.settings, job_id),
    )
    headers = {"Location": _job_location(request, created.job_id)}
    if created.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(created.body, status_code=created.status_code, headers=headers)


@router.get(
    "/{job_id}",
    response_model=JobView,
    responses=problems(
        401, 404, also={304: {"description": "Not modified (If-None-Match matched the ETag)"}}
    ),
    summary="A job: status, progress with ETA, error, result",
)
async def get_job(
    job_id: str,
    context: Context,
    credentials: Credentials,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    # The key and the job in one statement, one trip to the thread pool (read_as_caller).
    job = await read_as_caller(
        context, credentials, lambda db, key: reads.job_for_key(db, key, job_id)
    )
    # Serialised once, by pydantic's (Rust) serializer, or not at all when this process has
    # served the same row before; the ETag hashes those very bytes (the field order is the
    # model's, so equal jobs give equal bytes).
    content = context.renderer.job(job)
    etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
    if if_none_match is not None and _matches(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(
        content,
        media_type="application/json",
        headers={"ETag": etag, "Cache-Control": "no-cache"},
    )


@router.get(
    "",
    response_model=JobPage,
    responses=problems(401, 422),
    summary="The caller's jobs, newest first",
)
async def list_jobs(
    principal: Principal,
    context: Context,
    status: Annotated[list[JobStatus] | None, Query(description="Any of these states.")] = None,
    method: Method | None = None,
    created_after: Annotated[
        str | None, Query(description="Inclusive, RFC 3339 date-time with offset.")
    ] = None,
    created_before: Annotated[
        str | None, Query(description="Exclusive, RFC 3339 date-time with offset.")
    ] = None,
    limit: Annotated[int | None, Query(ge=1, description="Page size.")] = None,
    after: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> Response:
    settings = context.settings
    if limit is not None and limit > settings.page_size_max:
        raise ApiProblem(
            422,
            "validation-error",
            f"limit is at most {settings.page_size_max}",
            errors=[FieldError(("query", "limit"), f"at most {settings.page_size_max}", "limit")],
        )
    filters = service.JobFilter(
        statuses=status or (),
        method=method,
        created_after=_date_time("created_after", created_after),
        created_before=_date_time("created_before", created_before),
    )
    page = await run_read(
        context,
        lambda db: service.list_jobs(
            db, principal, filters, limit=limit or settings.page_size_default, after=after
        ),
    )
    # The JobPage of response_model (which documents it), rendered from the cached views;
    # returned as bytes, or FastAPI would validate the page a second time.
    body = context.renderer.page(page.items, page.has_more, page.next_cursor)
    return Response(body, media_type="application/json")


# RFC 3339 §5.6 date-time, what the document's `format: date-time` promises, and nothing else
# (pydantic would also take a bare number as a Unix time).
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def _date_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    match = _RFC3339.match(value)
    problem = None
    moment = None
    if match is None:
        problem = "an RFC 3339 date-time with an offset, e.g. 2026-01-01T00:00:00Z"
    else:
        year, month, day, hour, minute, second, fraction, offset = match.groups()
        micros = int(((fraction or ".0")[1:] + "000000")[:6])
        # A leap second (:60) is the last instant of its minute for every purpose here.
        leap = second == "60"
        zone = "+00:00" if offset in ("Z", "z") else offset
        try:
            moment = datetime.fromisoformat(
                f"{year}-{month}-{day}T{hour}:{minute}:{'59' if leap else second}"
                f".{'999999' if leap else f'{micros:06d}'}{zone}"
            )
        except ValueError:
            problem = "not a calendar date and time"
        if moment is not None and not in_utc_range(moment):
            problem = "outside the years 1-9999 once converted to UTC"
    if problem is not None:
        raise ApiProblem(
            422,
            "validation-error",
            f"{name}: {problem}",
            errors=[FieldError(("query", name), problem, "datetime")],
        )
    return moment


@router.post(
    "/{job_id}/cancel",
    response_model=JobView,
    responses=problems(401, 404, 409),
    summary="Cancel a job (idempotent; running jobs stop at the next step boundary)",
)
def cancel_job(job_id: str, principal: Principal, session: DbSession) -> JobView:
    return JobView.of(service.cancel_job(session, principal, job_id))
