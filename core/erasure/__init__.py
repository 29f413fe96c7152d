"""The erasure engine: Adversarial Preservation (and ESD) on diffusers Stable Diffusion models.

`erase` is imported lazily so that `import core.erasure.types` stays torch-free for callers that
only need the contract (the worker maps errors without paying for torch).
"""

from typing import TYPE_CHECKING, Any

from core.quiet import quiet_environment

# Before any module of the engine imports transformers or diffusers, which read these once:
# their advice (torchvision, accelerate) and loading bars are not for this engine's users.
quiet_environment()

if TYPE_CHECKING:
    from core.erasure.runner import erase

__all__ = ["erase"]


def __getattr__(name: str) -> Any:
    if name == "erase":
        from core.erasure.runner import erase

        return erase
    raise AttributeError(name)
