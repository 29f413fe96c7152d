"""Artifact manifest and download: whole file, Range → 206, unsatisfiable → 416, sha256."""

import base64
import hashlib
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from core.artifacts import get_store
from core.jobs.models import Artifact
from core.settings import Settings

CONTENT = bytes(range(256)) * 40  # 10 240 bytes, every offset distinguishable


@pytest.fixture
def job_with_artifacts(
    alice: httpx.Client, settings: Settings, db_session: Session, tmp_path: Path
) -> str:
    job_id = alice.post("/v1/jobs", json={"model": "demo", "concepts": ["ring"]}).json()["id"]
    store = get_store(settings)
    for name, content in (
        ("unet/diffusion_pytorch_model.safetensors", CONTENT),
        ("manifest.json", b'{"method": "ap"}'),
    ):
        source = tmp_path / name.replace("/", "_")
        source.write_bytes(content)
        stored = store.put(job_id, name, source)
        db_session.add(Artifact.of(job_id, stored))
    db_session.commit()
    return job_id


def test_manifest_lists_name_kind_size_and_sha256(
    alice: httpx.Client, job_with_artifacts: str
) -> None:
    manifest = alice.get(f"/v1/jobs/{job_with_artifacts}/artifacts").json()

    entries = {entry["name"]: entry for entry in manifest["artifacts"]}
    weights = entries["unet/diffusion_pytorch_model.safetensors"]
    assert weights["bytes"] == len(CONTENT)
    assert weights["sha256"] == hashlib.sha256(CONTENT).hexdigest()
    assert weights["kind"] == "weights"
    assert entries["manifest.json"]["kind"] == "report"


def test_download_matches_the_manifest_sha256(alice: httpx.Client, job_with_artifacts: str) -> None:
    path = f"/v1/jobs/{job_with_artifacts}/artifacts/unet/diffusion_pytorch_model.safetensors"
    response = alice.get(path)

    assert response.status_code == 200
    assert response.content == CONTENT
    assert response.headers["content-length"] == str(len(CONTENT))
    assert response.headers["accept-ranges"] == "bytes"
    digest = hashlib.sha256(CONTENT)
    assert response.headers["etag"] == f'"{digest.hexdigest()}"'
    assert response.headers["digest"] == "sha-256=" + base64.b64encode(digest.digest()).decode()


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=10-19", 10, 19), ("bytes=10000-", 10000, 10239), ("bytes=-16", 10224, 10239)],
)
def test_a_range_is_a_206_with_exactly_those_bytes(
    alice: httpx.Client, job_with_artifacts: str, header: str, first: int, last: int
) -> None:
    path = f"/v1/jobs/{job_with_artifacts}/artifacts/unet/diffusion_pytorch_model.safetensors"
    response = alice.get(path, headers={"Range": header})

    assert response.status_code == 206
    assert response.content == CONTENT[first : last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(CONTENT)}"
    assert response.headers["content-length"] == str(last - first + 1)


def test_resuming_a_download_with_ranges_rebuilds_the_file(
    alice: httpx.Client, job_with_artifacts: str
) -> None:
    path = f"/v1/jobs/{job_with_artifacts}/artifacts/unet/diffusion_pytorch_model.safetensors"
    head = alice.get(path, headers={"Range": "bytes=0-4095"}).content
    tail = alice.get(path, headers={"Range": f"bytes={len(head)}-"}).content
    assert hashlib.sha256(head + tail).hexdigest() == hashlib.sha256(CONTENT).hexdigest()


def test_an_unsatisfiable_range_is_a_416_problem(
    alice: httpx.Client, job_with_artifacts: str
) -> None:
    path = f"/v1/jobs/{job_with_artifacts}/artifacts/manifest.json"
    response = alice.get(path, headers={"Range": "bytes=5000-6000"})

    assert response.status_code == 416
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["content-range"] == "bytes */16"


def test_an_unknown_artifact_name_is_a_404(alice: httpx.Client, job_with_artifacts: str) -> None:
    response = alice.get(f"/v1/jobs/{job_with_artifacts}/artifacts/samples.png")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
