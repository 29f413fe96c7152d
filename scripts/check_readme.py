"""Run every command block of README.md as written, in a fresh clone, against the local profile.

    python scripts/check_readme.py [--keep] [--timeout 900]

The clone is `git clone` of this checkout's HEAD into a temporary folder, with this checkout's
`.venv` linked in (what `make setup` would build; PYTHONPATH points at the clone, as its own
editable install would) and activated, as the README's quickstart asks.
Blocks run in order, each in its own `bash -e -o pipefail`, sharing the variables the earlier
ones set (a README reads top to bottom: `KEY=…` in one block, `$KEY` in the next); ```python
blocks run with the venv's python in that same shell, so the variables exported before reach
them. Background processes a block starts (`eraser serve &`) are stopped at the end. Skipped,
each with its reason: blocks that need Docker or a GPU host, and the block of `make test` and
`make demo` (the suite runs itself; the demo has its own test, tests/ops/test_local_demo.py).

Prints one line per block (ok / FAILED / skipped, with the README line) and the output of the
failures; exit status 1 if any block failed.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#+ (.*)$", re.MULTILINE)
# (pattern in the block or its section title, why it is not run here)
SKIPS = (
    ("docker compose", "needs Docker and a GPU host"),
    ("make test", "make test runs the whole suite; make demo has its own test"),
    ("GPU hosts", "needs Docker and a GPU host"),
)


@dataclass
class Block:
    line: int
    language: str
    section: str
    text: str

    def skip_reason(self) -> str | None:
        if self.language not in ("sh", "bash", "python"):
            return f"a {self.language or 'plain'} block, not commands"
        for pattern, reason in SKIPS:
            if pattern in self.text or pattern in self.section:
                return reason
        return None


def blocks(readme: str) -> list[Block]:
    found = []
    for match in FENCE.finditer(readme):
        before = readme[: match.start()]
        headings = HEADING.findall(before)
        found.append(
            Block(
                line=before.count("\n") + 1,
                language=match.group(1),
                section=headings[-1] if headings else "",
                text=match.group(2),
            )
        )
    return found


def run_block(
    block: Block, clone: Path, state: Path, pids: Path, timeout: float
) -> tuple[bool, str]:
    body = block.text
    if block.language == "python":
        # In the shell the earlier blocks left: `export ERASER_API_KEY=…` reaches the client.
        program = pids.with_name(f"block-{block.line}.py")
        program.write_text(block.text)
        body = f"python {program}"
    script = (  # on exit, even a failed one: what it started, and the variables it set
        f"trap 'jobs -p >> {pids}; export -p > {state}' EXIT\n"
        f"set -a; source {state}; . .venv/bin/activate; set -eo pipefail\n"
        f"{body}\n"
    )
    command = ["bash", "-c", script]
    # The clone's own code, as its own `pip install -e` would give (the venv is borrowed).
    environment = {**os.environ, "PYTHONPATH": str(clone)}
    # A file, not a pipe: a background process (`eraser serve &`) keeps the output open, and
    # reading a pipe to its end would wait for it to exit.
    log = pids.with_name(f"block-{block.line}.log")
    with log.open("w") as sink:
        try:
            result = subprocess.run(
                command,
                cwd=clone,
                env=environment,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
            ok = result.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
            sink.write(f"\ntimed out after {timeout:.0f}s\n")
    return ok, log.read_text(errors="replace")


def stop_background(pids: Path) -> None:
    for pid in {int(p) for p in pids.read_text().split()} if pids.exists() else set():
        try:
            os.kill(pid, signal.SIGINT)  # Ctrl-C: `eraser serve` stops its children
        except ProcessLookupError:
            continue
        for _ in range(60):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone (printed)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per block")
    args = parser.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="readme-check-"))
    clone = workspace / "eraser"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to((REPO_ROOT / ".venv").resolve())
    state, pids = workspace / "state.sh", workspace / "pids"
    state.write_text("")
    environment_note = {k: v for k, v in os.environ.items() if k.startswith("ERASER_")}
    if environment_note:
        print(f"note: ERASER_* variables are set here and reach the blocks: {environment_note}")
    failures = 0
    try:
        for block in blocks((clone / "README.md").read_text()):
            reason = block.skip_reason()
            if reason:
                print(f"skipped  README.md:{block.line}  ({reason})")
                continue
            started = time.monotonic()
            ok, output = run_block(block, clone, state, pids, args.timeout)
            seconds = time.monotonic() - started
            print(f"{'ok' if ok else 'FAILED':<8} README.md:{block.line}  ({seconds:.0f}s)")
            if not ok:
                failures += 1
                print("    " + "\n    ".join(output.strip().splitlines()[-15:]))
    finally:
        stop_background(pids)
        if args.keep:
            print(f"clone kept in {clone}")
        else:
            shutil.rmtree(workspace, ignore_errors=True)
    print(f"{failures} block(s) failed" if failures else "every command block ran")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
