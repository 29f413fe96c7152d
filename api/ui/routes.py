"""/ui: the web console, server-rendered (Jinja2), on the same domain use cases as /v1.

Authentication: the user signs in once with an API key, which is exchanged for a random session
token in an HttpOnly, SameSite=Lax cookie scoped to /ui (`core.auth.sessions`); the key never
appears in a URL, a page or a script. Every form that changes something carries the session's
CSRF token (the sign-in form a double-submit token), checked before anything else. Every read
goes through the principal of the session, exactly as the API's bearer key would: another
principal's job is "not found".
"""

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sse_starlette import EventSourceResponse

from api.dependencies import Context, DbSession
from api.problems import ApiProblem
from api.routes import artifacts as artifact_routes
from api.routes.events import _stream as event_stream
from api.ui.plots import loss_charts
from core.auth.keys import identify
from core.auth.sessions import (
    ConsoleIdentity,
    close_session,
    csrf_matches,
    open_session,
    session_identity,
)
from core.db.session import session_scope
from core.hyperparameters import Method, TrainMethod
from core.jobs import reads, service
from core.jobs.errors import DomainError, InvalidRequestError, JobFinishedError, NotFoundError
from core.jobs.models import Artifact
from core.jobs.schemas import JobCreate, JobView
from core.jobs.status import JobStatus
from core.queue import enqueue_job
from core.registry import list_models

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

SESSION_COOKIE = "eraser_session"
SIGNIN_CSRF_COOKIE = "eraser_signin_csrf"
COOKIE_PATH = "/ui"
PAGE_SIZE = 20
# What the page reads from a job's artifacts to draw it; larger files are offered, not drawn.
MAX_LOG_BYTES = 20 * 1024 * 1024
MAX_REPORT_BYTES = 1024 * 1024
SECURITY_HEADERS = {
    # Everything the console needs is its own: no inline script, no third-party anything.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _format_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


templates.env.filters["bytes"] = _format_bytes
templates.env.filters["duration"] = _format_seconds


def _render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    identity: ConsoleIdentity | None = None,
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, name, {"identity": identity, **context}, status_code=status_code
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def _redirect(url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


def _identity(request: Request, context: Context) -> ConsoleIdentity | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    with session_scope(context.session_factory) as session:
        return session_identity(session, token)


def _forbidden(request: Request, identity: ConsoleIdentity | None) -> HTMLResponse:
    return _render(
        request,
        "error.html",
        {
            "title": "Form expired",
            "message": "This form was not sent by this console session (missing or stale CSRF "
            "token). Reload the page and try again.",
        },
        status_code=403,
        identity=identity,
    )


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


# -- sign in and out -------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def home(request: Request, context: Context) -> Response:
    return _redirect("/ui/jobs" if _identity(request, context) else "/ui/signin")


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, context: Context) -> Response:
    if _identity(request, context) is not None:
        return _redirect("/ui/jobs")
    return _signin_page(request, None, 200)


def _signin_page(request: Request, error: str | None, status_code: int) -> HTMLResponse:
    token = uuid.uuid4().hex + uuid.uuid4().hex
    response = _render(
        request, "signin.html", {"csrf_token": token, "error": error}, status_code=status_code
    )
    _set_cookie(response, request, SIGNIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request,
    context: Context,
    api_key: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    expected = request.cookies.get(SIGNIN_CSRF_COOKIE)
    if not expected or not csrf_token or expected != csrf_token:
        return _forbidden(request, None)
    with session_scope(context.session_factory) as session:
        identity = identify(session, api_key.strip())
        if identity is None:
            return _signin_page(request, "That key is unknown or revoked.", 401)
        lifetime = timedelta(hours=context.settings.console_session_hours)
        opened = open_session(session, identity, lifetime)
    response = _redirect("/ui/jobs")
    _set_cookie(response, request, SESSION_COOKIE, opened.token, int(lifetime.total_seconds()))
    response.delete_cookie(SIGNIN_CSRF_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/signout", response_class=HTMLResponse)
def signout(
    request: Request, context: Context, csrf_token: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    identity = _identity(request, context)
    if identity is None:
        return _redirect("/ui/signin")
    if not csrf_matches(identity, csrf_token):
        return _forbidden(request, identity)
    with session_scope(context.session_factory) as session:
        close_session(session, request.cookies[SESSION_COOKIE])
    response = _redirect("/ui/signin")
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


# -- jobs list -------------------------------------------------------------------------------


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    context: Context,
    session: DbSession,
    status: Annotated[str, Query(max_length=20)] = "",
    method: Annotated[str, Query(max_length=10)] = "",
    after: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    identity = _identity(request, context)
    if identity is None:
        return _redirect("/ui/signin")
    statuses = [JobStatus(status)] if status in {s.value for s in JobStatus} else []
    method_filter = Method(method) if method in {m.value for m in Method} else None
    try:
        page = service.list_jobs(
            session,
            identity.principal,
            service.JobFilter(statuses=statuses, method=method_filter),
            limit=PAGE_SIZE,
            after=after or None,
        )
    except InvalidRequestError:  # a stale or edited cursor: start from the top
        return _redirect("/ui/jobs")
    filters = {"status": status if statuses else "", "method": method if method_filter else ""}
    next_url = (
        "/ui/jobs?" + urlencode({**filters, "after": page.next_cursor})
        if page.next_cursor
        else None
    )
    return _render(
        request,
        "jobs.html",
        {
            "jobs": [JobView.of(reads.decode(row)) for row in page.items],
            "filters": filters,
            "statuses": [s.value for s in JobStatus],
            "methods": [m.value for m in Method],
            "next_url": next_url,
            "first_url": "/ui/jobs?" + urlencode(filters) if after else None,
        },
        identity=identity,
    )


# -- submit ----------------------------------------------------------------------------------


@dataclass
class JobForm:
    model: str = "demo"
    concepts: str = ""
    method: str = Method.AP.value
    train_method: str = TrainMethod.XATTN.value
    iterations: str = ""
    seed: str = "0"
    sample_prompts: str = ""
    hyperparameters: str = ""
    idempotency_key: str = ""

    def body(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The POST /v1/jobs body this form means, and errors of the form's own syntax."""
        errors: dict[str, str] = {}
        hyperparameters: dict[str, Any] = {}
        if self.hyperparameters.strip():
            try:
                loaded = json.loads(self.hyperparameters)
                if not isinstance(loaded, dict):
                    raise ValueError("not an object")
                hyperparameters = loaded
            except ValueError:
                errors["hyperparameters"] = 'a JSON object, e.g. {"ddim_steps": 10}'
        if self.iterations.strip():
            try:
                hyperparameters["iterations"] = int(self.iterations)
            except ValueError:
                errors["iterations"] = "a whole number"
        try:
            seed = int(self.seed or "0")
        except ValueError:
            errors["seed"] = "a whole number"
            seed = 0
        body = {
            "model": self.model,
            "concepts": [c.strip() for c in self.concepts.split(",") if c.strip()],
            "method": self.method,
            "train_method": self.train_method,
            "hyperparameters": hyperparameters,
            "seed": seed,
            "sample_prompts": [p.strip() for p in self.sample_prompts.splitlines() if p.strip()],
            "metadata": {"submitted_with": "console"},
        }
        return body, errors


def _new_job_page(
    request: Request,
    context: Context,
    identity: ConsoleIdentity,
    form: JobForm,
    errors: dict[str, str],
    status_code: int = 200,
) -> HTMLResponse:
    return _render(
        request,
        "new_job.html",
        {
            "form": form,
            "errors": errors,
            "models": [m for m in list_models(context.settings) if m.available],
            "methods": [m.value for m in Method],
            "train_methods": [m.value for m in TrainMethod],
            "csrf_token": identity.csrf_token,
        },
        status_code=status_code,
        identity=identity,
    )


@router.get("/jobs/new", response_class=HTMLResponse)
def new_job_form(request: Request, context: Context) -> Response:
    identity = _identity(request, context)
    if identity is None:
        return _redirect("/ui/signin")
    # One key per rendered form: submitting it twice (a double click, a resent POST) is answered
    # with the first job, like the client's retries.
    form = JobForm(idempotency_key=str(uuid.uuid4()))
    return _new_job_page(request, context, identity, form, {})


def _field_name(loc: tuple[str | int, ...]) -> str:
    parts = [str(part) for part in loc if part != "body"]
    if parts[:1] == ["hyperparameters"] and parts[1:2] == ["iterations"]:
        return "iterations"
    return parts[0] if parts else "form"


@router.post("/jobs", response_class=HTMLResponse)
def submit_job(
    request: Request,
    context: Context,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    model: Annotated[str, Form(max_length=200)] = "",
    concepts: Annotated[str, Form(max_length=4000)] = "",
    method: Annotated[str, Form(max_length=20)] = "ap",
    train_method: Annotated[str, Form(max_length=20)] = "xattn",
    iterations: Annotated[str, Form(max_length=20)] = "",
    seed: Annotated[str, Form(max_length=30)] = "0",
    sample_prompts: Annotated[str, Form(max_length=8000)] = "",
    hyperparameters: Annotated[str, Form(max_length=8000)] = "",
    idempotency_key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    identity = _identity(request, context)
    if identity is None:
        return _redirect("/ui/signin")
    if not csrf_matches(identity, csrf_token):
        return _forbidden(request, identity)
    form = JobForm(
        model, concepts, method, train_method, iterations, seed, sample_prompts,
        hyperparameters, idempotency_key or str(uuid.uuid4()),
    )  # fmt: skip
    body, errors = form.body()
    if errors:
        return _new_job_page(request, context, identity, form, errors, 422)
    try:
        request_body = JobCreate.model_validate(body)
        created = service.create_job(
            context.session_factory,
            context.settings,
            identity.principal,
            request_body,
            idempotency_key=form.idempotency_key,
            enqueue=lambda job_id: enqueue_job(context.settings, job_id),
        )
    except ValidationError as error:
        for item in error.errors():
            errors.setdefault(_field_name(tuple(item["loc"])), item["msg"])
        return _new_job_page(request, context, identity, form, errors, 422)
    except InvalidRequestError as error:
        for field_error in error.errors:
            errors.setdefault(_field_name(tuple(field_error.loc)), field_error.msg)
        return _new_job_page(request, context, identity, form, errors, 422)
    except DomainError as error:  # e.g. the same form sent with other values
        errors["form"] = error.detail
        return _new_job_page(request, context, identity, form, errors, 409)
    return _redirect(f"/ui/jobs/{created.job_id}")


# -- one job ---------------------------------------------------------------------------------


def _read_text(context: Context, artifact: Artifact, limit: int) -> str | None:
    if artifact.bytes > limit:
        return None
    with context.store.open(artifact.location) as handle:
        return handle.read(limit).decode("utf-8", errors="replace")


def _adversarial(text: str | None) -> list[dict[str, Any]]:
    """Per erased concept, the concepts AP protected most, strongest first."""
    if text is None:
        return []
    try:
        report = json.loads(text)
    except ValueError:
        return []
    rows = []
    for concept, entry in report.items() if isinstance(report, dict) else []:
        top = entry.get("top", []) if isinstance(entry, dict) else []
        pairs = [
            (str(item.get("word")), float(item.get("probability", 0)))
            for item in top
            if isinstance(item, dict)
        ]
        peak = max((probability for _, probability in pairs), default=0.0) or 1.0
        words = [
            {"word": word, "probability": probability, "width": round(100 * probability / peak)}
            for word, probability in pairs
        ]
        rows.append({"concept": str(concept), "words": words})
    return rows


def _evaluation(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The evaluation stage's verdict and numbers, where the server evaluates jobs."""
    if not result:
        return None
    nested = result.get("evaluation")
    source: dict[str, Any] = nested if isinstance(nested, dict) else result
    verdict = source.get("acceptance")
    if isinstance(verdict, dict):
        verdict = verdict.get("verdict") or verdict.get("status")
    numbers = {
        key.replace("_", " "): value
        for key, value in source.items()
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and key not in {"steps_completed", "total_steps", "wall_time_s"}
    }
    if verdict is None and not numbers:
        return None
    return {"verdict": verdict, "numbers": numbers}


def _job_context(
    context: Context, session: DbSession, identity: ConsoleIdentity, job_id: str
) -> dict[str, Any]:
    job = JobView.of(service.get_job(session, identity.principal, job_id))
    artifacts = service.job_artifacts(session, identity.principal, job_id)
    by_name = {artifact.name: artifact for artifact in artifacts}
    log = by_name.get("training_log.jsonl")
    log_text = _read_text(context, log, MAX_LOG_BYTES) if log else None
    report = by_name.get("adversarial_concepts.json")
    events = service.events_since(session, identity.principal, job_id, after_id=0, limit=1000)
    # Until the job has published its report, the progress events say what AP picks right now.
    live_adversarial = next(
        (
            event.data.get("adversarial_concepts")
            for event in reversed(events)
            if event.kind == "progress" and event.data.get("adversarial_concepts")
        ),
        None,
    )
    return {
        "job": job,
        "artifacts": artifacts,
        "has_grid": "samples.png" in by_name,
        "charts": loss_charts(log_text.splitlines()) if log_text else [],
        "adversarial": _adversarial(
            _read_text(context, report, MAX_REPORT_BYTES) if report else None
        ),
        "live_adversarial": live_adversarial,
        "evaluation": _evaluation(job.result),
        "last_event_id": events[-1].id if events else 0,
        "events": list(reversed(events[-12:])),
        "terminal": job.status.is_terminal,
        "csrf_token": identity.csrf_token,
    }


def _not_found(request: Request, identity: ConsoleIdentity) -> HTMLResponse:
    return _render(
        request,
        "error.html",
        {"title": "No such job", "message": "There is no job with this id among yours."},
        status_code=404,
        identity=identity,
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str, context: Context, session: DbSession) -> Response:
    identity = _identity(request, context)
    if identity is None:
        return _redirect("/ui/signin")
    try:
        page = _job_context(context, session, identity, job_id)
    except NotFoundError:
        return _not_found(request, identity)
    return _render(request, "job.html", page, identity=identity)


@router.get("/jobs/{job_id}/results", response_class=HTMLResponse)
def job_results(request: Request, job_id: str, context: Context, session: DbSession) -> Response:
    """The job page's result panel alone: the page swaps it in when the job finishes."""
    identity = _identity(request, context)
    if identity is None:
        raise ApiProblem(401, "unauthorized", "sign in to the console first")
    try:
        page = _job_context(context, session, identity, job_id)
    except NotFoundError:
        return _not_found(request, identity)
    return _render(request, "_results.html", page, identity=identity)


@router.post("/jobs/{job_id}/cancel", response_class=HTMLResponse)
def cancel_job(
    request: Request,
    job_id: str,
    context: Context,
    session: DbSession,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    identity = _identity(request, context)
    if identity is None:
        return _redirect("/ui/signin")
    if not csrf_matches(identity, csrf_token):
        return _forbidden(request, identity)
    try:
        service.cancel_job(session, identity.principal, job_id)
    except NotFoundError:
        return _not_found(request, identity)
    except JobFinishedError:
        pass  # finished meanwhile: the page shows how
    return _redirect(f"/ui/jobs/{job_id}")


@router.get("/jobs/{job_id}/events")
def job_events(request: Request, job_id: str, context: Context, session: DbSession) -> Response:
    """The job's events as SSE for the page's progress bar (cookie-authenticated)."""
    identity = _identity(request, context)
    if identity is None:
        raise ApiProblem(401, "unauthorized", "sign in to the console first")
    last_event_id = request.headers.get("last-event-id", "")
    after = request.query_params.get("after", "0")
    start_text = last_event_id if last_event_id.isdigit() else after
    start = int(start_text) if start_text.isdigit() and len(start_text) < 10 else 0
    service.get_job(session, identity.principal, job_id)  # 404 before the stream starts
    settings = context.settings
    return EventSourceResponse(
        event_stream(
            context.session_factory,
            identity.principal,
            job_id,
            start,
            settings.events_poll_seconds,
        ),
        ping=int(settings.events_ping_seconds),
    )


@router.get("/jobs/{job_id}/artifacts/{name:path}")
def download(
    request: Request,
    job_id: str,
    name: str,
    context: Context,
    session: DbSession,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    """Artifact downloads (and the grid image) for the signed-in principal: the API's own
    download, so ranges, hashes and name checks are the same."""
    identity = _identity(request, context)
    if identity is None:
        raise ApiProblem(401, "unauthorized", "sign in to the console first")
    return artifact_routes.download_artifact(
        request, job_id, name, identity.principal, session, context, range_
    )
