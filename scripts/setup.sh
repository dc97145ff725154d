#!/usr/bin/env bash
# Creates .venv and installs orchestrator with its test extras. Safe to re-run.
# torch goes first, pinned: the 2.13.0 CPU wheel is on local disk, while letting pip resolve
# torch on its own would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/python -c "import torch, ray, orchestrator; print(f'orchestrator {orchestrator.__version__}: torch {torch.__version__}, ray {ray.__version__}')"
