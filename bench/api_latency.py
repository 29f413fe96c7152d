"""Read-path latency and server CPU per request, on loopback only, bounded in time.

    PYTHONPATH=$PWD .venv/bin/python bench/api_latency.py [--seconds 8] [--rates 50,200]
        [--backends postgres,sqlite] [--arrivals poisson,bursts] [--processes N]
        [--code-root PATH]

For each backend it starts the API (uvicorn, `--processes` processes, default the number of
cores, as the compose stack runs it) on a fresh database holding 60 jobs of one principal, then
offers each endpoint a fixed request rate and prints p50, p95, p99, the achieved rate and the
server's CPU time per request (utime + stime of every API process from /proc, over the requests
served), and that CPU as a ratio to the trivial endpoint (`/healthz`, no database) measured in the
same run. Two ways of offering a rate (`--arrivals`): `poisson`, independent arrivals at that mean
rate, latency counted from each request's due time (bench/open_loop.py); `bursts`, `hey -q` over
50 connections, whose tickers fire together: the rate arrives as bursts of 50 (Debian package
`hey`). The machine's load (`/proc/loadavg`) is printed with every
row: on a shared machine, read ratios rather than absolute numbers.

`--code-root` serves another checkout's API (e.g. `/work/main` for the code before a change) with
the same harness, for before/after ratios.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from open_loop import open_loop  # bench/, beside this script
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get(
    "ERASER_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
JOBS = 60


@dataclass(frozen=True)
class Row:
    backend: str
    arrivals: str
    endpoint: str
    offered: int
    achieved: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_ms: float
    load: str


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _process_tree(root: int) -> list[int]:
    pids, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        children = Path(f"/proc/{parent}/task/{parent}/children")
        try:
            found = [int(pid) for pid in children.read_text().split()]
        except OSError:
            found = []
        pids += found
        frontier += found
    return pids


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def _database(backend: str, folder: Path) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite:///{folder / 'eraser.db'}", None
    name = f"eraser_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False), name


def _drop(name: str | None) -> None:
    if name is None:
        return
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _seed(environment: dict[str, str], code_root: Path) -> str:
    """Migrate, issue a key, insert JOBS jobs; runs in the served checkout's code."""
    script = f"""
from datetime import UTC, datetime, timedelta
from core.auth.keys import create_key
from core.db import migrate
from core.db.session import engine_from_settings, make_session_factory, session_scope
from core.jobs.models import Job
from core.settings import Settings
settings = Settings()
migrate.upgrade(settings.sqlalchemy_url)
engine = engine_from_settings(settings)
start = datetime.now(UTC) - timedelta(hours=1)
with session_scope(make_session_factory(engine)) as session:
    key = create_key(session, "bench").key
    for index in range({JOBS}):
        session.add(Job(principal="bench", model="demo", concepts=["ring"], method="ap",
            train_method="xattn", hyperparameters={{"iterations": 100}}, seed=index,
            sample_prompts=["a red ring"], metadata_={{"n": str(index)}},
            created_at=start + timedelta(seconds=index),
            updated_at=start + timedelta(seconds=index),
            status="succeeded", progress_step=100, progress_total=100,
            progress_losses={{"esd": 0.1, "preservation": 0.2}}, result={{"steps_completed": 100}}))
print(key)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        cwd=code_root,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()[-1]


def _hey(url: str, rate: int, seconds: float, key: str | None) -> tuple[float, dict[str, float]]:
    connections = max(1, min(50, rate // 4))
    command = ["hey", "-z", f"{seconds}s", "-c", str(connections), "-q", f"{rate / connections}"]
    if key:
        command += ["-H", f"Authorization: Bearer {key}"]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    achieved = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    percentiles = {
        match.group(1): float(match.group(2)) * 1000
        for match in re.finditer(r"(\d+)%+ in ([\d.]+) secs", output)
    }
    statuses = re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)
    bad = [(code, count) for code, count in statuses if code != "200"]
    if bad:
        raise RuntimeError(f"non-200 answers from {url}: {bad}")
    return achieved, percentiles


def _offer(
    arrivals: str, url: str, rate: int, seconds: float, key: str | None
) -> tuple[float, dict[str, float]]:
    if arrivals == "bursts":
        return _hey(url, rate, seconds, key)
    result = open_loop(url, rate, seconds, {"Authorization": f"Bearer {key}"} if key else None)
    if set(result.statuses) != {200}:
        raise RuntimeError(f"non-200 answers from {url}: {result.statuses}")
    return result.achieved, result.percentiles_ms


def run_backend(
    backend: str,
    rates: list[int],
    seconds: float,
    processes: int,
    code_root: Path,
    arrivals: list[str],
) -> list[Row]:
    folder = Path(tempfile.mkdtemp(prefix="eraser-bench-"))
    url, database = _database(backend, folder)
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ERASER_")},
        "PYTHONPATH": str(code_root),
        "ERASER_PROFILE": "test",
        "ERASER_DATABASE_URL": url,
        "ERASER_DATA_DIR": str(folder),
        "ERASER_BROKER_URL": "memory://",
    }
    server = None
    rows: list[Row] = []
    try:
        key = _seed(environment, code_root)
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "api.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(processes),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=environment,
            cwd=code_root,
        )
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.3)
        job_id = httpx.get(f"{base}/v1/jobs?limit=1", headers=headers).json()["items"][0]["id"]
        endpoints = {
            "trivial (/healthz)": (f"{base}/healthz", None),
            "GET job": (f"{base}/v1/jobs/{job_id}", key),
            "GET list (20)": (f"{base}/v1/jobs?limit=20", key),
        }
        for target, auth in endpoints.values():  # warm every process's pool and caches
            _offer(arrivals[0], target, 50, 2, auth)
        pids = _process_tree(server.pid)
        for mode, rate in ((mode, rate) for mode in arrivals for rate in rates):
            for name, (target, auth) in endpoints.items():
                before = _cpu_seconds(pids)
                load = _load()
                started = time.monotonic()
                achieved, percentiles = _offer(mode, target, rate, seconds, auth)
                served = achieved * (time.monotonic() - started)
                cpu = (_cpu_seconds(pids) - before) / max(served, 1) * 1000
                rows.append(
                    Row(
                        backend,
                        mode,
                        name,
                        rate,
                        achieved,
                        percentiles.get("50", float("nan")),
                        percentiles.get("95", float("nan")),
                        percentiles.get("99", float("nan")),
                        cpu,
                        load,
                    )
                )
                print(_format(rows[-1], rows), flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        _drop(database)
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def _format(row: Row, rows: list[Row]) -> str:
    trivial = next(
        (
            r.cpu_ms
            for r in rows
            if (r.backend, r.arrivals, r.offered) == (row.backend, row.arrivals, row.offered)
            and r.endpoint.startswith("t")
        ),
        float("nan"),
    )
    return (
        f"| {row.backend} | {row.arrivals} | {row.endpoint} | {row.offered} | {row.achieved:.0f} | "
        f"{row.p50_ms:.1f} | {row.p95_ms:.1f} | {row.p99_ms:.1f} | {row.cpu_ms:.2f} | "
        f"{row.cpu_ms / trivial:.1f}× | {row.load} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per endpoint and rate")
    parser.add_argument("--rates", default="50,200", help="offered requests per second")
    parser.add_argument("--backends", default="postgres,sqlite")
    parser.add_argument("--arrivals", default="poisson,bursts", help="poisson, bursts (hey)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--code-root", type=Path, default=REPO)
    arguments = parser.parse_args()
    arrivals = arguments.arrivals.split(",")
    if not set(arrivals) <= {"poisson", "bursts"}:
        sys.exit("--arrivals: poisson and/or bursts")
    if "bursts" in arrivals and shutil.which("hey") is None:
        sys.exit("needs `hey` (apt-get install hey)")
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, code {arguments.code_root}, "
        f"{arguments.processes} API processes, {os.cpu_count()} cores, load {_load()}"
    )
    print(
        "| backend | arrivals | endpoint | offered/s | achieved/s | p50 ms | p95 ms | p99 ms | "
        "server CPU ms/req | vs trivial | load (1/5/15 min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for backend in arguments.backends.split(","):
        run_backend(
            backend,
            [int(rate) for rate in arguments.rates.split(",")],
            arguments.seconds,
            arguments.processes,
            arguments.code_root.resolve(),
            arrivals,
        )


if __name__ == "__main__":
    main()
