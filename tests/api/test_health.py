"""/healthz, /readyz (turns 503 when the database goes away and recovers by itself), /metrics."""

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from core.db import migrate
from core.settings import Settings

ServerFor = Callable[[Settings], AbstractContextManager[str]]


def _set_connections_allowed(admin_url: str, database: str, allowed: bool) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(
                text(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')
            )
            if not allowed:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": database},
                )
    finally:
        admin.dispose()


def _wait_for(client: httpx.Client, status: int, seconds: float = 15) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = client.get("/readyz")
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_healthz_and_readyz_are_200_on_a_healthy_deployment(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": True,
        "migrations": True,
        "broker": True,
        "artifact_store": True,
    }


def test_readyz_turns_503_without_the_database_and_recovers_by_itself(
    make_postgres_database: Callable[[], str],
    settings: Settings,
    api_server_for: ServerFor,
    postgres_admin_url: str,
) -> None:
    url = make_postgres_database()
    migrate.upgrade(url)
    database = make_url(url).database
    assert database is not None
    own = settings.model_copy(update={"database_url": url})

    with api_server_for(own) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        assert _wait_for(client, 200).status_code == 200

        _set_connections_allowed(postgres_admin_url, database, False)
        try:
            down = _wait_for(client, 503)
            assert down.status_code == 503
            assert down.headers["content-type"] == "application/problem+json"
            assert down.json()["checks"]["database"] is False
            assert "database" in down.json()["detail"]
        finally:
            _set_connections_allowed(postgres_admin_url, database, True)

        assert _wait_for(client, 200).status_code == 200


def test_readyz_is_503_while_migrations_lag_the_code(
    make_postgres_database: Callable[[], str], settings: Settings, api_server_for: ServerFor
) -> None:
    own = settings.model_copy(update={"database_url": make_postgres_database()})
    with api_server_for(own) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] is False


def test_metrics_count_requests_by_route_template_and_jobs_by_status(
    alice: httpx.Client,
) -> None:
    job_id = alice.post("/v1/jobs", json={"model": "demo", "concepts": ["ring"]}).json()["id"]
    alice.get(f"/v1/jobs/{job_id}")

    metrics = alice.get("/metrics")

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    body = metrics.text
    assert 'route="/v1/jobs/{job_id}"' in body
    assert job_id not in body  # templates, not raw paths: bounded label cardinality
    assert 'eraser_jobs{status="queued"} 1.0' in body
    assert 'eraser_jobs{status="running"} 0.0' in body
