"""Which UNet parameters train (algorithm.md §5), and the frozen reference θ without a second UNet.

θ' is the live UNet. θ differs from θ' only on the trained subset, so the engine keeps a copy of
the subset's original values and evaluates ε_θ by swapping those in for one call with
`torch.func.functional_call`. Memory for the reference is the subset's size, not the UNet's.
"""

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from core.hyperparameters import TrainMethod

# Parameters noxattn keeps frozen besides cross-attention: they set the time and output scale,
# which the ESD authors found harmful to fine-tune.
_NOXATTN_FROZEN_PREFIXES = ("time_embedding.", "conv_norm_out.", "conv_out.")

_SELECTORS: dict[TrainMethod, Callable[[str], bool]] = {
    TrainMethod.XATTN: lambda name: "attn2." in name,
    TrainMethod.NOXATTN: lambda name: (
        "attn2." not in name and not name.startswith(_NOXATTN_FROZEN_PREFIXES)
    ),
    TrainMethod.SELFATTN: lambda name: "attn1." in name,
    TrainMethod.XATTN_KV: lambda name: "attn2.to_k." in name or "attn2.to_v." in name,
    TrainMethod.FULL: lambda name: True,
}


def trained_parameter_names(unet: nn.Module, train_method: TrainMethod) -> list[str]:
    """Diffusers names of the UNet parameters `train_method` fine-tunes, in module order."""
    selected = _SELECTORS[train_method]
    names = [name for name, _ in unet.named_parameters() if selected(name)]
    if not names:
        raise ValueError(f"train_method {train_method.value!r} selects no parameter of this UNet")
    return names


class TrainedSubset:
    """θ' (live parameters of the subset, requires_grad) and θ (their original values, frozen)."""

    def __init__(self, unet: Any, train_method: TrainMethod) -> None:
        self.unet = unet  # a diffusers UNet2DConditionModel (typed Any: dynamic attributes)
        self.names = trained_parameter_names(unet, train_method)
        parameters = dict(unet.named_parameters())
        unet.requires_grad_(False)
        self.live: dict[str, nn.Parameter] = {name: parameters[name] for name in self.names}
        for parameter in self.live.values():
            parameter.requires_grad_(True)
        self.frozen: dict[str, torch.Tensor] = {
            name: p.detach().clone() for name, p in self.live.items()
        }

    def trainable(self) -> list[nn.Parameter]:
        return list(self.live.values())

    def frozen_forward(self, *args: Any, **kwargs: Any) -> Any:
        """The UNet's forward with θ: the subset's original values stand in for one call."""
        return torch.func.functional_call(self.unet, self.frozen, args, kwargs, strict=False)

    def state(self) -> dict[str, torch.Tensor]:
        """θ' of the subset, detached, with diffusers key names (the shipped delta)."""
        return {name: p.detach() for name, p in self.live.items()}

    @torch.no_grad()
    def load_state(self, values: dict[str, torch.Tensor]) -> None:
        missing = set(self.names) ^ set(values)
        if missing:
            raise KeyError(f"trained-subset keys differ: {sorted(missing)[:5]}")
        for name, parameter in self.live.items():
            parameter.copy_(values[name])

    def zero_grad(self) -> None:
        for parameter in self.live.values():
            parameter.grad = None

    @contextlib.contextmanager
    def base_weights(self) -> Iterator[None]:
        """Temporarily put θ into the live UNet (for 'before' images), then restore θ'."""
        trained = {name: p.detach().clone() for name, p in self.live.items()}
        self.load_state(self.frozen)
        try:
            yield
        finally:
            self.load_state(trained)

    @contextlib.contextmanager
    def without_gradients(self) -> Iterator[None]:
        """θ' acts as a constant (the adversary step differentiates only w.r.t. π).

        Under gradient checkpointing the UNet's blocks are re-run during backward, which may
        happen after this context has closed; re-run with θ' requiring gradients they would
        save other tensors than the forward did and checkpointing fails. There θ' keeps its
        requires_grad and the gradients it then receives are discarded by the caller
        (`zero_grad`): a little more backward work, the same π update."""
        if getattr(self.unet, "is_gradient_checkpointing", False):
            yield
            return
        for parameter in self.live.values():
            parameter.requires_grad_(False)
        try:
            yield
        finally:
            for parameter in self.live.values():
                parameter.requires_grad_(True)

    def nbytes(self) -> int:
        """Bytes of one copy of the subset (the frozen reference costs exactly this)."""
        return sum(t.numel() * t.element_size() for t in self.frozen.values())
