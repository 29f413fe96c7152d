"""`make demo`: the service end to end on this machine, as a client would use it, told as a short
story (what it is doing, a progress bar with an ETA, where the results are).

1. starts `eraser serve` (local profile: SQLite + filesystem broker + one worker, data in
   ERASER_DATA_DIR, default ./var) on `--port` (default: a free one); its log goes to a file;
2. issues an API key with `eraser keys create`;
3. submits an erasure job on the built-in `demo` model over HTTP;
4. follows its events to the end with the client's progress display, the one `eraser jobs
   submit --wait` draws (client/progress.py): a live bar on a terminal, a line per tenth of each
   stage in a log;
5. downloads every artifact with the client (each sha256 checked against the manifest), says
   where they are;
6. stops the server the way a user would (Ctrl-C, i.e. SIGINT).

Exit status 0 only if the job succeeded and every artifact verified.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from client import EraserClient, Event, IntegrityError, Job, JobStatus
from client.progress import JobProgress, wait_with_progress
from core.local import local_environment
from core.settings import Profile, Settings
from core.toyworld.paths import RECOMMENDED_FILE

START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 1800
NEXT_STEPS = {
    "samples.png": "before | after grid: rings gone in any colour, other shapes kept",
    "delta.safetensors": "the erased weights: eraser apply --model demo --delta … --out erased",
    "manifest.json": "base model, every setting, versions, final losses, warnings",
}


def demo_job() -> dict[str, Any]:
    """Erase the shape `ring` from the built-in toy model with the settings measured to work on
    it (docs/quality.md: `recommended.json`, 150 updates). The grid shows rings
    gone, in any colour, and circles, squares and stars kept."""
    recommended = json.loads(RECOMMENDED_FILE.read_text())
    hyperparameters = recommended["hyperparameters"]
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


class Story:
    """The demo's own lines between the progress display's: what the worker is doing, and how
    long training and the rest took."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.trained_at: float | None = None

    def on_event(self, event: Event, display: JobProgress) -> None:
        data = event.data
        if event.kind == "claimed":
            display.print("  the worker took the job: loading the model, choosing candidates")
        elif (
            event.kind == "progress"
            and data.get("stage", "training") == "training"
            and data.get("step") == data.get("total")
            and self.trained_at is None
        ):
            self.trained_at = time.monotonic()
            display.print(
                f"  trained in {duration(self.trained_at - self.started)}; now the before/after "
                "grid (both models draw every prompt), then the evaluation"
            )
        elif event.kind == "succeeded" and self.trained_at is not None:
            rest = duration(time.monotonic() - self.trained_at)
            display.print(f"  grid, evaluation and artifacts took {rest}")


def download_artifacts(eraser: EraserClient, job: Job, target: Path) -> bool:
    """Every artifact, each sha256 checked by the client against the manifest."""
    try:
        eraser.download(job, target)
    except IntegrityError as error:
        print(f"    SHA256 MISMATCH: {error}")
        return False
    for artifact in eraser.artifacts(job):
        print(f"    {artifact.name:<42} {artifact.bytes:>10} B  sha256 ok")
    return True


def run_demo(server_url: str, environment: dict[str, str], downloads: Path) -> bool:
    key = create_api_key(environment)
    print("2/5 created an API key for principal 'demo' (eraser keys create)")
    with EraserClient(server_url, key) as eraser:
        body = demo_job()
        job = eraser.create_job(body)  # with an Idempotency-Key: a retry never makes a second job
        iterations = body["hyperparameters"]["iterations"]
        print(f"3/5 submitted job {job.id}: erase 'ring' from model 'demo' "
              f"(AP, {iterations} updates) — POST /v1/jobs")  # fmt: skip
        print("4/5 following it (its events, as `eraser jobs submit --wait` does):")
        job = wait_with_progress(
            eraser, job, console=Console(highlight=False), timeout=JOB_TIMEOUT_S,
            on_event=Story().on_event,
        )  # fmt: skip
        if job.status != JobStatus.SUCCEEDED:
            print(f"job ended {job.status.value}: {job.error}")
            return False
        for warning in (job.result or {}).get("warnings", []):
            print(f"  note: {warning}")
        target = downloads / job.id
        print(f"5/5 downloading the artifacts to {target}:")
        verified = download_artifacts(eraser, job, target)
        print("  look at:")
        for name, what in NEXT_STEPS.items():
            print(f"    {name:<18} {what}")
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
        outcome = "FAILED"
        try:
            wait_until_ready(server_url, server, log)
            if run_demo(server_url, environment, data_dir / "demo-downloads"):
                outcome = "succeeded"
        except KeyboardInterrupt:  # Ctrl-C: a user's choice, not a crash to show a traceback of
            outcome = "interrupted"
            print("\ninterrupted: stopping eraser serve")
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGINT)  # what Ctrl-C does
                server.wait(timeout=60)
    print(f"stopped eraser serve. demo {outcome} in {duration(time.monotonic() - started)}")
    return {"succeeded": 0, "interrupted": 130}.get(outcome, 1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
