#!/usr/bin/env bash
# GPU check for a rented single-GPU machine (H100): versions, nccl DDP/FSDP2/pipeline, and
# fractional packing of 4 small jobs on one GPU. About 2 minutes; capped at 4.
#
# Needs: python3 with a CUDA build of torch (ray optional). Run from anywhere:
#   bash bench/gpu_check.sh                # everything goes to stdout
#   bash bench/gpu_check.sh --cpu-dry-run  # no GPU: checks the script itself on CPU
# If $OUT is set (the device runner's output folder), a copy goes to $OUT/gpu_check.log.
# Exit status: 0 passed, 1 a check failed, 3 no CUDA, 124 ran past 4 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
PY=${PYTHON:-python3}
log=/dev/null
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then log="$OUT/gpu_check.log"; fi
{
  echo "== host"
  date -u
  echo "CPUs $(getconf _NPROCESSORS_ONLN)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,compute_mode --format=csv \
    || echo "nvidia-smi not found"
  timeout 240 "$PY" bench/gpu_check.py "$@"
  rc=$?
  echo "== exit status $rc"
  exit $rc
} 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
