"""Schemathesis hooks for tests/api/test_schemathesis.py (loaded with SCHEMATHESIS_HOOKS)."""

import uuid
from typing import Any

import schemathesis


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    """A fresh Idempotency-Key per case: a key reused with another body answers 422 (as the
    IETF idempotency-key draft asks), which depends on earlier requests, not on the document.
    Only keys the document allows are replaced, so the refusal of a blank key is still tested,
    and cases that probe a missing header are left exactly as generated."""
    scenario = getattr(getattr(getattr(case, "meta", None), "phase", None), "data", None)
    if "missing" in str(getattr(scenario, "scenario", "")).lower():
        return
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and value.strip():
            headers[name] = f"fuzz-{uuid.uuid4().hex}"
