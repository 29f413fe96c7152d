"""The README's command blocks, cheaply, on every run of the suite (the full run, every block
executed in a fresh clone against the local profile, is `scripts/check_readme.py`, minutes long):
each block is either run by that script or skipped with its reason, every shell block parses,
every Python block compiles, and every `eraser ...` command line names commands and flags that
exist (what a renamed flag or subcommand would break first)."""

import importlib.util
import re
import shlex
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

from core.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
# `eraser ...` up to the end of its command: a pipe, a list, a subshell's end, a comment.
ERASER_COMMAND = re.compile(r"(?:^|[\s(])eraser\s+([^\n|;&)#]*)", re.MULTILINE)


def check_readme() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_readme", REPO_ROOT / "scripts" / "check_readme.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BLOCKS = check_readme().blocks((REPO_ROOT / "README.md").read_text())
RUN = [block for block in BLOCKS if block.skip_reason() is None]


def test_every_block_is_run_or_skipped_with_its_reason() -> None:
    skipped = {block.line: block.skip_reason() for block in BLOCKS if block not in RUN}
    # What the script cannot run here, and only that: the compose stack and GPU hosts, the
    # block of `make test` and `make demo`, and blocks that are not commands (a diagram, YAML).
    for block in BLOCKS:
        reason = skipped.get(block.line)
        if block.language not in ("sh", "bash", "python"):
            assert reason and "not commands" in reason
        elif "docker compose" in block.text or "GPU hosts" in block.section:
            assert reason == "needs Docker and a GPU host"
        elif "make test" in block.text:
            assert reason and "own test" in reason
        else:
            assert reason is None, (block.line, reason)
    # The quickstart, the client, the engine's CLI and library: run, not skipped.
    texts = "\n".join(block.text for block in RUN)
    for needle in ("eraser serve", "eraser jobs submit", "EraserClient", "eraser erase", "erase("):
        assert needle in texts, needle
    assert len(RUN) >= 6


@pytest.mark.parametrize("block", RUN, ids=lambda block: f"README.md:{block.line}")
def test_each_block_that_runs_parses(block: Any) -> None:
    if block.language == "python":
        compile(block.text, "README.md", "exec")
    else:
        parsed = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
        assert parsed.returncode == 0, parsed.stderr


def eraser_commands() -> list[list[str]]:
    joined = "\n".join(block.text.replace("\\\n", " ") for block in RUN)
    return [shlex.split(match) for match in ERASER_COMMAND.findall(joined)]


def test_every_eraser_command_in_the_readme_names_real_commands_and_flags() -> None:
    commands = eraser_commands()
    assert ["serve", "--port", "8000"] in commands  # the extraction sees the quickstart
    assert len(commands) >= 15
    runner = CliRunner()
    for arguments in commands:
        # --help after the arguments: click parses them all first, so an unknown subcommand or
        # flag fails here, before any command runs.
        result = runner.invoke(main, [*arguments, "--help"])
        assert result.exit_code == 0, (arguments, result.output)
