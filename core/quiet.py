"""The environment that keeps third-party chatter out of what users read (torch-free).

transformers and diffusers print advice (install torchvision, install accelerate) and loading
bars at WARNING level; in a worker's log each of those reads as trouble, and none is something a
user of this service can or should act on. Real errors still pass (level ERROR). Variables the
caller already set win, so `TRANSFORMERS_VERBOSITY=info` brings the detail back when debugging.
The libraries read them when imported: set them before (`core.erasure.quiet` also switches off
what has no variable).
"""

import os

QUIET_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' "Loading weights" bar honours it too
}


def quiet_environment() -> None:
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
