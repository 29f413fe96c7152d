"""/healthz (the process answers), /readyz (it can do its job), /metrics (Prometheus)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.responses import Response

from api.context import AppContext
from api.dependencies import Context
from api.problems import problem_response, problems
from core.db import migrate
from core.queue import broker_reachable, worker_alive
from core.settings import Profile

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _database_checks(context: AppContext) -> dict[str, bool]:
    try:
        with context.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        at_head = migrate.current_revisions(context.engine) == context.head_revisions
        return {"database": True, "migrations": at_head}
    except Exception:
        return {"database": False, "migrations": False}


@router.get(
    "/readyz",
    summary="Readiness: database, migrations at head, broker, artifact store",
    responses=problems(503),
)
def readyz(context: Context) -> Response:
    # Each check opens its own connection: nothing is cached, so readiness recovers by itself
    # as soon as the dependency does.
    checks = {
        **_database_checks(context),
        "broker": broker_reachable(context.settings),
        "artifact_store": context.store.writable(),
    }
    if context.settings.profile == Profile.LOCAL:
        # One machine: the worker shares our data dir, and a worker that is dead or wedged
        # (its reaper no longer beats) means no job will run, however healthy the rest is.
        checks["worker"] = worker_alive(context.settings)
    if all(checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = sorted(name for name, ok in checks.items() if not ok)
    return problem_response(
        503,
        "not-ready",
        "failing: " + ", ".join(failing),
        instance="/readyz",
        extra={"checks": checks},
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(context: Context) -> Response:
    return Response(generate_latest(context.metrics_registry), media_type=CONTENT_TYPE_LATEST)
