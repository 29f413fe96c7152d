"""`make demo`: the service end to end on this machine, as a client would use it.

1. starts `eraser serve` (local profile: SQLite + filesystem broker + one worker, data in
   ERASER_DATA_DIR, default ./var) on a free port;
2. issues an API key with `eraser keys create`;
3. submits an erasure job on the built-in `demo` model over HTTP;
4. follows its Server-Sent Events to the end, printing each;
5. downloads every artifact, checks each sha256 against the manifest, prints where they are;
6. stops the server the way a user would (Ctrl-C, i.e. SIGINT).

Exit status 0 only if the job succeeded and every artifact verified.
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from core.local import local_environment
from core.settings import Profile, Settings
from core.toyworld.paths import RECOMMENDED_FILE


def demo_job() -> dict[str, Any]:
    """Erase the shape `ring` from the built-in toy model with the settings measured to work on
    it (docs/quality.md: `recommended.json`, at the demo's update count: about a minute on a
    CPU). The grid shows rings gone, in any colour, and circles, squares and stars kept."""
    recommended = json.loads(RECOMMENDED_FILE.read_text())
    hyperparameters = {**recommended["hyperparameters"], **recommended["demo"]}
    return {
        "model": "demo",
        "concepts": ["ring"],
        "method": "ap",
        "train_method": recommended["train_method"],
        "hyperparameters": hyperparameters,
        "seed": 0,
        "sample_prompts": ["a green ring", "a green circle", "a blue square", "a red star"],
        "metadata": {"source": "make demo"},
    }


START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 1800


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def eraser_command() -> list[str]:
    """The `eraser` console script of this interpreter's environment."""
    return [str(Path(sys.executable).with_name("eraser"))]


def wait_until_ready(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"eraser serve exited with {server.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the service at {base_url} was not ready within {START_TIMEOUT_S}s")


def create_api_key(environment: dict[str, str]) -> str:
    result = subprocess.run(
        [*eraser_command(), "keys", "create", "--principal", "demo"],
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip().splitlines()[0]


def follow(client: httpx.Client, job_id: str) -> str:
    """Print the job's events as they arrive; return the final event's kind."""
    last = ""
    with connect_sse(client, "GET", f"/v1/jobs/{job_id}/events", timeout=JOB_TIMEOUT_S) as events:
        events.response.raise_for_status()
        for message in events.iter_sse():
            if not message.data:
                continue
            event = message.json()
            last = event["kind"]
            print(f"  event {message.id:>4}  {last:<16} {json.dumps(event['data'])[:100]}")
    return last


def download_artifacts(client: httpx.Client, job_id: str, target: Path) -> bool:
    manifest = client.get(f"/v1/jobs/{job_id}/artifacts").raise_for_status().json()
    all_verified = True
    for artifact in manifest["artifacts"]:
        path = target / artifact["name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with (
            client.stream("GET", f"/v1/jobs/{job_id}/artifacts/{artifact['name']}") as response,
            path.open("wb") as sink,
        ):
            response.raise_for_status()
            for chunk in response.iter_bytes():
                digest.update(chunk)
                sink.write(chunk)
        verified = digest.hexdigest() == artifact["sha256"]
        all_verified &= verified
        status = "sha256 ok" if verified else "SHA256 MISMATCH"
        print(f"  {artifact['name']:<45} {artifact['bytes']:>10} B  {status}")
    return all_verified


def run_demo(server_url: str, environment: dict[str, str], downloads: Path) -> bool:
    key = create_api_key(environment)
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())}
    with httpx.Client(base_url=server_url, headers=headers, timeout=60) as client:
        models = client.get("/v1/models").raise_for_status().json()["items"]
        print("registered models: " + ", ".join(model["name"] for model in models))
        response = client.post("/v1/jobs", json=demo_job())
        if response.status_code != 202:
            print(f"job refused: {response.status_code} {response.text}")
            return False
        job_id = response.json()["id"]
        print(f"submitted job {job_id} ({response.headers.get('Location')}); events:")
        final = follow(client, job_id)
        job = client.get(f"/v1/jobs/{job_id}").json()
        if final != "succeeded":
            print(f"job ended {final}: {job.get('error')}")
            return False
        target = downloads / job_id
        print(f"job succeeded; downloading its artifacts to {target}:")
        verified = download_artifacts(client, job_id, target)
        print(f"artifacts of job {job_id} are in {target}")
        return verified


def main() -> int:
    data_dir = Settings(profile=Profile.LOCAL).resolved_data_dir
    environment = local_environment(data_dir)
    port = free_port()
    server_url = f"http://127.0.0.1:{port}"
    print(f"starting eraser serve on {server_url} (data in {data_dir})")
    server = subprocess.Popen(
        [*eraser_command(), "serve", "--port", str(port), "--log-level", "warning"],
        env=environment,
    )
    try:
        wait_until_ready(server_url, server)
        succeeded = run_demo(server_url, environment, data_dir / "demo-downloads")
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)  # what Ctrl-C does
            server.wait(timeout=60)
    print("demo " + ("succeeded" if succeeded else "FAILED"))
    return 0 if succeeded else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
