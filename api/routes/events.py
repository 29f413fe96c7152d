"""/v1/jobs/{id}/events: the job's event log as a JSON page or a Server-Sent Events stream.

The stream polls the database (the source of truth, shared by every API process) at
`events_poll_seconds`, sends each event with its log id as the SSE id so that a client that
reconnects with `Last-Event-ID` resumes exactly after what it saw, and ends after the job's final
event (succeeded, failed or cancelled).
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from api.dependencies import Context, Principal, ReadSession
from api.problems import ApiProblem, problems
from core.jobs import service
from core.jobs.errors import FieldError
from core.jobs.models import JobEvent
from core.jobs.schemas import EventList, EventView
from core.jobs.status import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["events"])

SSE_MEDIA_TYPE = "text/event-stream"
# Event ids are a 32-bit serial on every backend; a larger resume point cannot be one we sent.
MAX_EVENT_ID = 2**31 - 1


def _wants_stream(request: Request) -> bool:
    return SSE_MEDIA_TYPE in request.headers.get("accept", "")


LAST_EVENT_ID_PATTERN = "^[0-9]{1,19}$"
_LAST_EVENT_ID = re.compile(LAST_EVENT_ID_PATTERN)


def _resume_point(after: int, last_event_id: str | None) -> int:
    """Where to resume: the header (what the stream sent last) wins over `after`. Any decimal id
    is a position; one past the largest id we can send simply has nothing after it."""
    if last_event_id is None:
        return after
    value = last_event_id.strip()
    if not _LAST_EVENT_ID.match(value):
        raise ApiProblem(
            422,
            "validation-error",
            "Last-Event-ID must be an event id this API sent (decimal digits)",
            errors=[FieldError(("header", "last-event-id"), "not an event id", "int_parsing")],
        )
    return min(int(value), MAX_EVENT_ID)


@router.get(
    "/{job_id}/events",
    response_model=EventList,
    responses=problems(
        401,
        404,
        422,
        also={
            200: {
                "description": "JSON page of events, or SSE with Accept: text/event-stream",
                "content": {SSE_MEDIA_TYPE: {"schema": {"type": "string"}}},
            }
        },
    ),
    summary="The job's events (JSON list, or SSE resumable with Last-Event-ID)",
)
def job_events(
    request: Request,
    job_id: str,
    principal: Principal,
    session: ReadSession,
    context: Context,
    after: Annotated[
        int, Query(ge=0, le=MAX_EVENT_ID, description="Only events with a larger id.")
    ] = 0,
    last_event_id: Annotated[
        str | None,
        Header(
            pattern=LAST_EVENT_ID_PATTERN,
            description="The `id` of the last event received: the stream resumes after it.",
        ),
    ] = None,
) -> Response | EventList:
    start = _resume_point(after, last_event_id)
    settings = context.settings
    if _wants_stream(request):
        service.get_job(session, principal, job_id)  # 404 before the stream starts
        return EventSourceResponse(
            _stream(
                context.session_factory, principal, job_id, start, settings.events_poll_seconds
            ),
            ping=int(settings.events_ping_seconds),
        )
    events = service.events_since(
        session, principal, job_id, after_id=start, limit=settings.page_size_max
    )
    return EventList(
        items=[EventView.of(event) for event in events],
        finished=any(service.is_final_event(event) for event in events),
    )


def _poll(
    factory: sessionmaker[Session], principal: str, job_id: str, after_id: int, limit: int
) -> tuple[list[JobEvent], bool]:
    """New events, and whether the job is already terminal (a guard against a log that lacks
    its final event, so a stream can never hang forever)."""
    with factory() as session:
        events = service.events_since(session, principal, job_id, after_id=after_id, limit=limit)
        terminal = JobStatus(service.get_job(session, principal, job_id).status).is_terminal
        return events, terminal


async def _stream(
    factory: sessionmaker[Session],
    principal: str,
    job_id: str,
    after_id: int,
    poll_seconds: float,
    batch: int = 100,
) -> AsyncIterator[ServerSentEvent]:
    last_id = after_id
    while True:
        events, terminal = await run_in_threadpool(
            _poll, factory, principal, job_id, last_id, batch
        )
        for event in events:
            last_id = event.id
            view = EventView.of(event)
            yield ServerSentEvent(
                id=str(event.id), event=event.kind, data=json.dumps(view.model_dump(mode="json"))
            )
            if service.is_final_event(event):
                return
        if terminal and not events:
            return
        if not events:
            await asyncio.sleep(poll_seconds)
