"""The erasure settings chosen once for the toy model, shared by the bench, the CI test and the
demo (read from `core/assets/toyworld/recommended.json`)."""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from core.hyperparameters import Hyperparameters, TrainMethod
from core.toyworld.evaluate import SamplingSettings
from core.toyworld.paths import RECOMMENDED_FILE


@dataclass(frozen=True)
class Recommended:
    train_method: TrainMethod
    hyperparameters: Hyperparameters
    sampling: SamplingSettings  # how erased models are judged
    eval_every: int  # updates between evaluations on the ESR/PSR-over-updates curve

    @classmethod
    def load(cls, path: Path = RECOMMENDED_FILE) -> "Recommended":
        raw = json.loads(path.read_text())
        evaluation = raw["evaluation"]
        return cls(
            train_method=TrainMethod(raw["train_method"]),
            hyperparameters=Hyperparameters(**raw["hyperparameters"]),
            sampling=SamplingSettings(
                steps=evaluation["ddim_steps"],
                guidance=evaluation["guidance"],
                images_per_caption=evaluation["images_per_caption"],
            ),
            eval_every=evaluation["eval_every"],
        )

    def with_iterations(self, iterations: int, eval_every: int | None = None) -> "Recommended":
        """The same settings run for `iterations` updates (judged every `eval_every`)."""
        return dataclasses.replace(
            self,
            hyperparameters=self.hyperparameters.model_copy(update={"iterations": iterations}),
            eval_every=self.eval_every if eval_every is None else eval_every,
        )
