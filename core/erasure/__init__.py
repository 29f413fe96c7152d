"""The erasure engine: Adversarial Preservation (and ESD) on diffusers Stable Diffusion models.

`erase` is imported lazily so that `import core.erasure.types` stays torch-free for callers that
only need the contract (the worker maps errors without paying for torch).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.erasure.runner import erase

__all__ = ["erase"]


def __getattr__(name: str) -> Any:
    if name == "erase":
        from core.erasure.runner import erase

        return erase
    raise AttributeError(name)
