"""Evaluation time next to training time on the `demo` model (issue 11, must-show 5).

One process, the same settings a `make demo` job uses: AP on `ring` with the recommended
settings (150 updates, what the demo runs), then the evaluation stage with its default plan (the
judge's default prompts, seeds 0-2, the model's 20 DDIM steps at CFG 3). Prints both times,
their ratio and the images generated, with the machine's load average (the CPU may be shared).

    python bench/evaluation_cost.py [--threads 2] [--out /tmp/evaluation-cost]
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from core.erasure import erase
from core.erasure.types import ErasureConfig
from core.evaluation import evaluate
from core.evaluation.types import EvaluationJob
from core.hyperparameters import Method
from core.toyworld.paths import DEMO_MODEL_DIR
from core.toyworld.recommended import Recommended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="evaluation-cost-"))
    recommended = Recommended.load()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    trained = erase(
        ErasureConfig(
            model=str(DEMO_MODEL_DIR),
            concepts=["ring"],
            method=Method.AP,
            train_method=recommended.train_method,
            hyperparameters=recommended.hyperparameters,
            device="cpu",
            checkpoint_every=0,
        ),
        out,
    )
    training_s = time.perf_counter() - started
    evaluated = evaluate(
        EvaluationJob(
            model=str(DEMO_MODEL_DIR),
            erased=out,
            concepts=["ring"],
            evaluator="judge",
            device="cpu",
        )
    )
    rates = evaluated.report["rates"]
    print(
        json.dumps(
            {
                "training_updates": trained.steps_completed,
                "training_s": round(training_s, 1),
                "evaluation_images": evaluated.total_steps,
                "evaluation_s": round(evaluated.elapsed_s, 1),
                "evaluation_over_training": round(evaluated.elapsed_s / training_s, 2),
                "acceptance": evaluated.report["verdict"]["acceptance"],
                "erasure_rate": rates["erasure_rate"],
                "preservation_rate": rates["preservation_rate"],
                "base_preservation_rate": rates["base_preservation_rate"],
                "threads": args.threads,
                "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
