"""The same API on SQLite (the local profile's database): the calls a client makes in a local
`eraser serve` behave as on Postgres, keyset pagination and idempotency included."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from core.auth.keys import create_key
from core.db import migrate
from core.db.session import engine_from_settings, make_session_factory, session_scope
from core.settings import Settings


@pytest.fixture
def sqlite_api(
    settings: Settings,
    tmp_path: Path,
    api_server_for: Callable[[Settings], AbstractContextManager[str]],
) -> Iterator[httpx.Client]:
    local = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'eraser.db'}"})
    migrate.upgrade(local.sqlalchemy_url)
    engine = engine_from_settings(local)
    with session_scope(make_session_factory(engine)) as session:
        key = create_key(session, "local-user").key
    engine.dispose()
    with (
        api_server_for(local) as base_url,
        httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client,
    ):
        yield client


def test_create_list_cancel_and_events_on_sqlite(sqlite_api: httpx.Client) -> None:
    body = {"model": "demo", "concepts": ["ring"]}
    ids = [
        sqlite_api.post("/v1/jobs", json={**body, "seed": seed}).json()["id"] for seed in range(3)
    ]
    first = sqlite_api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "a"})
    replay = sqlite_api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "a"})
    assert first.status_code == replay.status_code == 202
    assert first.json()["id"] == replay.json()["id"]
    ids.append(first.json()["id"])

    page_one = sqlite_api.get("/v1/jobs", params={"limit": 3}).json()
    page_two = sqlite_api.get(
        "/v1/jobs", params={"limit": 3, "after": page_one["next_cursor"]}
    ).json()
    listed = [job["id"] for job in page_one["items"] + page_two["items"]]
    assert listed == list(reversed(ids))
    assert page_two["has_more"] is False

    assert sqlite_api.post(f"/v1/jobs/{ids[0]}/cancel").json()["status"] == "cancelled"
    kinds = [e["kind"] for e in sqlite_api.get(f"/v1/jobs/{ids[0]}/events").json()["items"]]
    assert kinds == ["created", "enqueued", "cancelled"]
    assert sqlite_api.get("/readyz").json()["checks"]["database"] is True
