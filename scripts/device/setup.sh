#!/usr/bin/env bash
# First call on a lent GPU machine (no TensorFlow, no package index): install the carried wheels beside its
# own packages, then train one tiny epoch under KERAS_BACKEND=jax into a scratch store to prove the stack.
#   carry: .gpu_a (wheels in .gpu_a/whl, the first chunks of the packed dataset). A later call's copy of the
#   repository loses what was not carried with it, so both go outside it, to /tmp (kept while the machine is).
set -u -o pipefail
ROOT=$(pwd)
nvidia-smi -L
mkdir -p /tmp/gpu_a && cp -r .gpu_a/. /tmp/gpu_a/ || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu_a/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$ROOT PYTHONUNBUFFERED=1 KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
python3 - <<'PY' || exit 4
import numpy as np, pathlib
rng = np.random.default_rng(0)
out = pathlib.Path(".gpu_tiny"); out.mkdir(exist_ok=True)
for split, n in (("train", 600), ("test", 200)):
    y = np.arange(n) % 100
    np.savez(out / f"{split}.npz", x=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), y_fine=y.astype(np.uint8), y_coarse=(y // 5).astype(np.uint8))
PY
if command -v nvidia-cuda-mps-control && nvidia-cuda-mps-control -d; then echo "MPS daemon started"; fi
python3 -c "import cifar_exp.sweep, cifar_exp.train, cifar_exp.report" 2>&1 | tail -4 || exit 5
time python3 -m cifar_exp data=local data.path="$ROOT/.gpu_tiny" trainer.epochs=1 tracking.uri=sqlite:///$ROOT/.gpu_tiny/mlflow.db 2>&1 | tail -8 || exit 6
echo quit | nvidia-cuda-mps-control 2>/dev/null; echo "setup done"
