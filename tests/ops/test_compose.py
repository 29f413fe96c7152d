"""The compose stack cannot run here (no Docker engine, no GPU), so it is validated statically:
against the Compose specification's JSON schema, by Debian's `docker-compose config`, and for the
properties the service relies on."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


def test_compose_file_matches_the_compose_spec_schema() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is missing on CI (make test installs it with apt-get)")
        pytest.skip("docker-compose not installed here (`make test` installs it)")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_worker_reserves_a_gpu_and_every_service_waits_for_migrations(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in device["capabilities"] for device in devices)
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert services["migrate"]["restart"] == "no"
    for name in ("postgres", "redis", "api", "worker"):
        assert "test" in services[name]["healthcheck"], name


def test_the_api_image_has_no_torch_and_the_worker_image_pins_a_cuda_torch() -> None:
    api = (REPO_ROOT / "Dockerfile.api").read_text()
    worker = (REPO_ROOT / "Dockerfile.worker").read_text()
    assert "'.[api]'" in api and "torch==" not in api and ".[worker]" not in api
    assert "FROM ${CUDA_IMAGE}" in worker and "nvidia/cuda:" in worker
    assert '"torch==${TORCH_VERSION}" --index-url' in worker
    assert worker.index("torch==") < worker.index("pip install -e '.[worker]'")  # torch first
