"""The compose stack cannot run here (no Docker engine, no GPU), so it is validated statically:
against the Compose specification's JSON schema (bundled with check-jsonschema, in the project's
venv: no Docker, no system package), and for the properties the service relies on."""

import os
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


def test_make_test_validates_compose_with_the_venv_and_installs_no_system_package() -> None:
    """Issue 14 item 4: `make test` ran `apt-get install docker-compose` (Docker and ~45
    packages, root only) just to check this file. Its plan runs no apt-get of its own (the
    services and browsers scripts install PostgreSQL, Redis and Chromium only when missing), and
    the compose check is a command of the venv that runs here, without Docker."""
    plan = subprocess.run(
        ["make", "-n", "test"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert not [line for line in plan if "apt-get" in line or "docker" in line.split()[0]], plan
    check = next(line for line in plan if "check-jsonschema" in line)
    assert check == (
        ".venv/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml"
    )
    binary = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(binary), *check.split()[1:]],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_PROXY": "*", "HTTPS_PROXY": "http://127.0.0.1:9"},  # offline
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


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
