#!/usr/bin/env bash
# The report's arms over seeds on one lent GPU, side by side under KERAS_BACKEND=jax, into this copy's own
# store (mlruns/), which comes back as $OUT/store.tar.gz (runs, params, per-epoch metrics, plots; not the
# .h5 and logged models, which are too large to send back), and as run records in $OUT/records (to copy into
# mlruns/evidence here; the records already there are imported first, so what they hold FINISHED is skipped).
#   after setup.sh on the same warm machine; carry: .gpu_b (the packed chunks that .gpu_a did not hold)
#   MINUTES: each run's budget (trainer.max_minutes); SWEEPS: run the first SWEEPS of the list below, all at once
#   (default 5 with MPS, 2 without; the others do not run); every sweep runs seeds 0,1,2;
#   JOBS: jobs of one sweep at once (3: its seeds; a sweep of 2 arms x 3 seeds wants 6);
#   MPS=0: no CUDA MPS daemon (kernels of the processes then take turns on the GPU instead of sharing it).
#   Arguments, if any, replace the list of sweeps: each one a quoted set of overrides, e.g.
#     bash scripts/device/verdict_grid.sh "+experiment=dropout dropout=winning,baseline" "+experiment=winning"
#   OUT: where logs and store.tar.gz go (the device tool sets it; default ./device_out); DATA: where the dataset
#   is rebuilt (.gpu_data); PACKS: the folders of packed chunks; EXTRA: overrides added to every sweep.
set -u
ROOT=$(pwd)
OUT=${OUT:-$ROOT/device_out}
mkdir -p "$OUT"
MINUTES=${MINUTES:-7}
export PYTHONPATH=/tmp/site:$ROOT PYTHONUNBUFFERED=1 KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
export OMP_NUM_THREADS=1
DATA=${DATA:-$ROOT/.gpu_data}
python3 scripts/device/unpack_cifar.py "$DATA" ${PACKS:-/tmp/gpu_a .gpu_b} || exit 3
if [ "${MPS:-1}" = 1 ] && command -v nvidia-cuda-mps-control >/dev/null && nvidia-cuda-mps-control -d; then
  echo "MPS on"; SWEEPS=${SWEEPS:-5}
else
  echo "MPS not available"; SWEEPS=${SWEEPS:-2}
fi
if [ $# -gt 0 ]; then
  sweeps=("$@"); SWEEPS=$#
else
  sweeps=(
    "+experiment=dropout dropout=report_exp3"
    "+experiment=augmentation augmentation=none"
    "+experiment=decay optimizer.lr=1e-3 optimizer.decay=0.05"
    "+experiment=sgd optimizer=sgd"
    "+experiment=learning_rate optimizer.lr=1e-3"
  )
fi
if [ "$SWEEPS" -gt "${#sweeps[@]}" ]; then SWEEPS=${#sweeps[@]}; fi
# The records in mlruns/evidence and mlruns/records (git ignores both: name them in the device tool's carry): configurations they hold FINISHED on this same data are skipped.
for folder in mlruns/evidence mlruns/records; do
  if [ -d "$folder" ]; then python3 -m cifar_exp.records import "$folder" || exit 4; fi
done
pids=()
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 > "$OUT/gpu.csv" &
for i in $(seq 0 $((SWEEPS - 1))); do
  # shellcheck disable=SC2086
  python3 -m cifar_exp --multirun ${sweeps[$i]} data=local data.path="$DATA" ${EXTRA:-} seed=0,1,2 \
    trainer.max_minutes="$MINUTES" hydra/launcher=joblib hydra.launcher.n_jobs="${JOBS:-3}" > "$OUT/sweep_$i.log" 2>&1 &
  pids+=($!)
  sleep 2
done
wait "${pids[@]}"
kill %1 2>/dev/null
echo quit | nvidia-cuda-mps-control 2>/dev/null
python3 -m cifar_exp.report --all > "$OUT/report.txt" 2>&1
# Every finished run as a record, to copy into mlruns/evidence here (cp -r $OUT/records/* ...).
python3 -m cifar_exp.records export "$OUT/records" > "$OUT/records.txt" 2>&1
tar -czf "$OUT/store.tar.gz" --exclude='*.h5' --exclude='*.keras' --exclude='tensorboard' --exclude='checkpoints' mlruns
ls -la "$OUT"; tail -n 3 "$OUT"/sweep_*.log
