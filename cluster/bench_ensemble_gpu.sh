#!/usr/bin/env bash
# `ics bench --ensemble` on a GPU: member-steps/s of seeds trained as one vectorised model vs the
# same seeds trained one after the other, on the same device, ratios from the same run.
#   ICS_DATA_ROOT=/path/to/data cluster/bench_ensemble_gpu.sh [member counts, default 5,16] [steps, default 500]
# Without ICS_DATA_ROOT it uses random MNIST-shaped tensors (the rates do not depend on the pixels).
set -euo pipefail
python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device here: this bench needs a GPU')"
synthetic=()
[ -n "${ICS_DATA_ROOT:-}" ] || synthetic=(--synthetic)
exec ics bench --ensemble "${1:-5,16}" --steps "${2:-500}" --device cuda "${synthetic[@]}"
