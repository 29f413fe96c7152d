"""Bearer keys: no key → 401; a principal never sees another's jobs, events or artifacts."""

from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from core.artifacts import get_store
from core.auth.keys import revoke_key
from core.jobs.models import Artifact
from core.settings import Settings

BODY = {"model": "demo", "concepts": ["ring"]}


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/jobs", "POST"),
        ("/v1/jobs", "GET"),
        ("/v1/jobs/any", "GET"),
        ("/v1/jobs/any/cancel", "POST"),
        ("/v1/jobs/any/events", "GET"),
        ("/v1/jobs/any/artifacts", "GET"),
        ("/v1/jobs/any/artifacts/delta.safetensors", "GET"),
        ("/v1/models", "GET"),
    ],
)
def test_every_v1_call_without_a_key_is_a_401_problem(
    http: httpx.Client, path: str, method: str
) -> None:
    response = http.request(method, path, json=BODY if method == "POST" else None)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["title"] == "Unauthorized"


def test_an_unknown_or_revoked_key_is_a_401(
    http: httpx.Client, make_api_key: object, db_session: Session
) -> None:
    assert callable(make_api_key)
    key = make_api_key("carol")
    authorized = {"Authorization": f"Bearer {key}"}
    assert http.get("/v1/jobs", headers=authorized).status_code == 200

    forged = {"Authorization": f"Bearer {key[:-4]}AAAA"}
    assert http.get("/v1/jobs", headers=forged).status_code == 401

    assert revoke_key(db_session, key[:11])
    db_session.commit()
    assert http.get("/v1/jobs", headers=authorized).status_code == 401


def _job_with_artifact(client: httpx.Client, settings: Settings, db: Session, tmp: Path) -> str:
    job_id = client.post("/v1/jobs", json=BODY).json()["id"]
    source = tmp / "delta.safetensors"
    source.write_bytes(b"weights")
    stored = get_store(settings).put(job_id, "delta.safetensors", source)
    db.add(Artifact.of(job_id, stored))
    db.commit()
    return job_id


def test_another_principals_job_events_and_artifacts_are_404(
    alice: httpx.Client,
    bob: httpx.Client,
    settings: Settings,
    db_session: Session,
    tmp_path: Path,
) -> None:
    job_id = _job_with_artifact(alice, settings, db_session, tmp_path)
    assert alice.get(f"/v1/jobs/{job_id}/artifacts/delta.safetensors").content == b"weights"

    for response in (
        bob.get(f"/v1/jobs/{job_id}"),
        bob.get(f"/v1/jobs/{job_id}/events"),
        bob.get(f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"}),
        bob.get(f"/v1/jobs/{job_id}/artifacts"),
        bob.get(f"/v1/jobs/{job_id}/artifacts/delta.safetensors"),
        bob.post(f"/v1/jobs/{job_id}/cancel"),
    ):
        assert response.status_code == 404, response.request.url
        assert response.headers["content-type"] == "application/problem+json"
        assert "weights" not in response.text

    assert bob.get("/v1/jobs").json()["items"] == []
    assert alice.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"  # bob's cancel did nothing
