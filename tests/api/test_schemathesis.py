"""Requests generated from the live OpenAPI document (schemathesis, every check): no 5xx, no answer
outside what the document promises, valid data accepted and invalid data refused.

The suite runs a bounded number of cases; `ERASER_FUZZ_EXAMPLES=1000` (the count per operation)
with `ERASER_FUZZ_PHASES=examples,coverage,fuzzing,stateful` is the long run recorded in
docs/service.md. Each case gets its own Idempotency-Key when it sends
one (see tests/api/schemathesis_hooks.py): reusing a key with another body is a 422 by design,
a state that no stateless document can express.
"""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

HOOKS = "schemathesis_hooks"


def test_generated_requests_meet_the_document_with_every_check(
    api_base_url: str, make_api_key: Callable[[str], str], http: httpx.Client, tmp_path: Path
) -> None:
    examples = os.environ.get("ERASER_FUZZ_EXAMPLES", "12")
    # The suite's run: a dozen random cases per operation (~150 requests with the auth probes);
    # the long run adds the examples, the deterministic coverage phase (every boundary, missing
    # part and wrong type) and stateful sequences.
    phases = os.environ.get("ERASER_FUZZ_PHASES", "fuzzing")
    key = make_api_key("fuzzer")
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run", f"{api_base_url}/openapi.json",
        "--checks", "all",
        "--max-examples", examples,
        "--phases", phases,
        "--seed", os.environ.get("ERASER_FUZZ_SEED", "10"),
        "--header", f"Authorization: Bearer {key}",
        "--request-timeout", "30",
        "--max-response-time", "10",
        "--workers", "1",
        "--no-shrink",
        "--suppress-health-check", "filter_too_much",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": HOOKS,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=environment,
        timeout=int(os.environ.get("ERASER_FUZZ_TIMEOUT", "900")),
        check=False,
    )
    output = result.stdout + result.stderr
    print(output[-6000:])
    assert result.returncode == 0, output[-6000:]
    assert "No issues found" in output or "passed" in output
