"""Quiet transformers and diffusers in this process (see `core.quiet` for why)."""

import os
import sys

from core.quiet import quiet_environment


def quiet_libraries() -> None:
    """Set the variables (read when the libraries are imported), and quieten those already
    imported; diffusers' loading bar has no variable, only its switch."""
    quiet_environment()
    if "diffusers" in sys.modules and os.environ["DIFFUSERS_VERBOSITY"] == "error":
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
        diffusers_logging.disable_progress_bar()
    if "transformers" in sys.modules and os.environ["TRANSFORMERS_VERBOSITY"] == "error":
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
