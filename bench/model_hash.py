"""What the model content hash costs per job, read in full vs. remembered in the cache.

    python bench/model_hash.py [--model FOLDER] [--repeats 3]

Every run names its base model by a sha256 over all of the folder's files (manifest, embedding
cache, checkpoint fingerprint). Without a cache that is a full read of the weights per job; with
`cache_dir` (what the worker passes) an unchanged folder costs one stat per file. Default model:
a random-weight folder with SD 1.4's shapes (about 4 GB), built once in a temp folder.
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from core.erasure.models import content_hash
from core.erasure.tiny import make_tiny_model


def _median_seconds(call: Callable[[], str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a diffusers folder (default: SD 1.4 shapes)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hash-bench-") as work:
        model = args.model or make_tiny_model(Path(work) / "sd14", arch="sd14")
        size = sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
        cache = Path(work) / "cache"
        full = _median_seconds(lambda: content_hash(model), args.repeats)
        started = time.perf_counter()
        content_hash(model, cache)  # the first job on this folder reads it and remembers
        first = time.perf_counter() - started
        cached = _median_seconds(lambda: content_hash(model, cache), args.repeats)
    print(f"model {model} ({size / 2**30:.2f} GiB), median of {args.repeats}\n")
    print("| content hash | seconds | vs full read |")
    print("|---|---|---|")
    print(f"| full read (no cache) | {full:.3f} | 1.00× |")
    print(f"| first job with a cache (read + remember) | {first:.3f} | {first / full:.2f}× |")
    print(f"| later jobs (unchanged folder) | {cached:.4f} | {cached / full:.4f}× |")


if __name__ == "__main__":
    main()
