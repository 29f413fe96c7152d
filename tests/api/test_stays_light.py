"""The API process never loads the engine: no torch, diffusers, transformers or worker code,
even after building the app and serving its OpenAPI document (import-linter checks the static
imports; this checks what actually ends up loaded)."""

import json
import subprocess
import sys

PROBE = """
import json, sys
from api.app import create_app
from core.settings import Settings
app = create_app(Settings())
app.openapi()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "diffusers", "transformers"}
               or m == "worker" or m.startswith(("worker.", "core.erasure")))
print(json.dumps(heavy))
"""


def test_building_the_api_loads_no_engine_module(test_database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
