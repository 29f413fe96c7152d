#!/usr/bin/env bash
# The prepared GPU measurement (docs/performance.md, "GPU"): under 8 minutes on one H200.
# Builds the SD 1.4-shaped model in $WORK_DIR on first use, then runs every cell of bench/gpu.py
# and writes docs/gpu-bench.md (+ .json). Extra arguments go to bench/gpu.py, e.g.
#   bash bench/gpu.sh --budget-s 300
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
WORK_DIR="${WORK_DIR:-${TMPDIR:-/tmp}/eraser-bench}"
"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device: use --device cpu --quick"'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "$PYTHON" bench/gpu.py --device cuda --work-dir "$WORK_DIR" "$@"
