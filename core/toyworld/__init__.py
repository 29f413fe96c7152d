"""The toy world: a CPU-sized text-to-image world (generator, toy Stable Diffusion, judge) on
which erasure and preservation can be measured. See docs/quality.md."""
