"""`make demo`: the service end to end on this machine, as a client would use it, told as a short
story (what it is doing, a progress bar with an ETA, where the results are).

1. starts `eraser serve` (local profile: SQLite + filesystem broker + one worker, data in
   ERASER_DATA_DIR, default ./var) on `--port` (default: a free one); its log goes to a file;
2. issues an API key with `eraser keys create`;
3. submits an erasure job on the built-in `demo` model over HTTP;
4. follows its Server-Sent Events to the end: training as a progress bar, then the sample grid;
5. downloads every artifact, checks each sha256 against the manifest, says where they are;
6. stops the server the way a user would (Ctrl-C, i.e. SIGINT).

Exit status 0 only if the job succeeded and every artifact verified. The progress bar is
written here (a dozen lines), not taken from a client library: the script stands on its own.
"""

import argparse
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
from typing import Any, TextIO

import httpx
from httpx_sse import connect_sse

from core.local import local_environment
from core.settings import Profile, Settings
from core.toyworld.paths import RECOMMENDED_FILE

START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 1800
BAR_WIDTH = 30
NEXT_STEPS = {
    "samples.png": "before | after grid: rings gone in any colour, other shapes kept",
    "delta.safetensors": "the erased weights: eraser apply --model demo --delta … --out erased",
    "manifest.json": "base model, every setting, versions, final losses, warnings",
}


def demo_job() -> dict[str, Any]:
    """Erase the shape `ring` from the built-in toy model with the settings measured to work on
    it (docs/quality.md: `recommended.json`, at the demo's update count). The grid shows rings
    gone, in any colour, and circles, squares and stars kept."""
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


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class ProgressBar:
    """`[#####-----]  50/100  50% | ETA 40s`: redrawn in place on a terminal; elsewhere (a CI
    log, a pipe) one line per tenth, so a log stays short."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.tty = out.isatty()
        self.first: tuple[int, float] | None = None  # (step, time) of the first update seen
        self.printed_tenth = -1

    def update(self, step: int, total: int) -> None:
        now = time.monotonic()
        self.first = self.first or (step - 1, now)
        done_here = step - self.first[0]
        rate = (now - self.first[1]) / done_here if done_here > 1 else None  # s per update
        eta = "…" if rate is None else duration(rate * (total - step))
        filled = BAR_WIDTH * step // total
        line = (
            f"  [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {step:>4}/{total} "
            f"{100 * step // total:3d}% | ETA {eta}"
        )
        tenth = 10 * step // total
        if self.tty:
            self.out.write("\r" + line + ("\n" if step == total else ""))
        elif tenth > self.printed_tenth:
            self.printed_tenth = tenth
            self.out.write(line + "\n")
        self.out.flush()


def claim_port(port: int) -> int:
    """`port`, or a free one for 0; refuses a port in use, whose server would answer for ours."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise SystemExit(f"port {port} is in use; choose another: make demo PORT=…") from None
        return int(probe.getsockname()[1])


def eraser_command() -> list[str]:
    """The `eraser` console script of this interpreter's environment."""
    return [str(Path(sys.executable).with_name("eraser"))]


def wait_until_ready(base_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"eraser serve exited with {server.returncode}; see {log}")
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


def follow(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """Tell the job's story from its events; return the final event ({"kind", "data"})."""
    bar, started, trained_at = ProgressBar(), time.monotonic(), 0.0
    path = f"/v1/jobs/{job_id}/events"
    with connect_sse(client, "GET", path, timeout=JOB_TIMEOUT_S) as events:
        events.response.raise_for_status()
        for message in events.iter_sse():
            if not message.data:
                continue
            event = message.json()
            kind, data = event["kind"], event["data"]
            if kind == "claimed":
                print("  the worker took the job: loading the model, choosing candidates")
            elif kind == "resumed":
                print(f"  resumed from the checkpoint at step {data['step']}")
            elif kind == "progress":
                bar.update(data["step"], data["total"])
                if data["step"] == data["total"]:
                    trained_at = time.monotonic()
                    print(f"  trained in {duration(trained_at - started)}; now the before/after "
                          "grid: both models draw every prompt …")  # fmt: skip
            elif kind in ("succeeded", "failed", "cancelled"):
                if kind == "succeeded":
                    print(f"  grid and artifacts done in {duration(time.monotonic() - trained_at)}")
                return dict(event)
    return {"kind": "disconnected", "data": {}}


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
        print(f"    {artifact['name']:<42} {artifact['bytes']:>10} B  {status}")
    return all_verified


def run_demo(server_url: str, environment: dict[str, str], downloads: Path) -> bool:
    key = create_api_key(environment)
    print("2/5 created an API key for principal 'demo' (eraser keys create)")
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())}
    with httpx.Client(base_url=server_url, headers=headers, timeout=60) as client:
        body = demo_job()
        response = client.post("/v1/jobs", json=body)
        if response.status_code != 202:
            print(f"job refused: {response.status_code} {response.text}")
            return False
        job_id = response.json()["id"]
        iterations = body["hyperparameters"]["iterations"]
        print(f"3/5 submitted job {job_id}: erase 'ring' from model 'demo' "
              f"(AP, {iterations} updates) — POST /v1/jobs")  # fmt: skip
        print("4/5 following its events (GET /v1/jobs/<id>/events, Server-Sent Events)")
        final = follow(client, job_id)
        if final["kind"] != "succeeded":
            print(f"job ended {final['kind']}: {final['data']}")
            return False
        for warning in client.get(f"/v1/jobs/{job_id}").json()["result"].get("warnings", []):
            print(f"  note: {warning}")
        target = downloads / job_id
        print(f"5/5 downloading the artifacts to {target}:")
        verified = download_artifacts(client, job_id, target)
        print("  look at:")
        for name, what in NEXT_STEPS.items():
            print(f"    {target / name}\n      {what}")
        return verified


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    port = claim_port(parser.parse_args().port)
    data_dir = Settings(profile=Profile.LOCAL).resolved_data_dir
    environment = local_environment(data_dir)
    server_url = f"http://127.0.0.1:{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "demo-serve.log"
    started = time.monotonic()
    print("eraser demo: erase the shape 'ring' from the built-in toy model 'demo', over HTTP")
    print(f"1/5 starting eraser serve on {server_url} (data in {data_dir}, log in {log})")
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [*eraser_command(), "serve", "--port", str(port), "--log-level", "warning"],
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        succeeded = False
        try:
            wait_until_ready(server_url, server, log)
            succeeded = run_demo(server_url, environment, data_dir / "demo-downloads")
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGINT)  # what Ctrl-C does
                server.wait(timeout=60)
    print(f"stopped eraser serve. demo {'succeeded' if succeeded else 'FAILED'} "
          f"in {duration(time.monotonic() - started)}")  # fmt: skip
    return 0 if succeeded else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
