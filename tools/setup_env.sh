#!/usr/bin/env bash
# Create (or complete) the CPU development environment in $VENV (default .venv):
# Python 3.11, torch 2.9.1 + torchvision 0.24.1, mmcv-full 1.7.2 with CPU ops,
# mmdet 2.28.2 and mmdet-hpu itself in editable mode with its dev extras.
# Every pin lives in tools/constraints.txt. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
CONSTRAINTS=tools/constraints.txt
SHARED_WHEELS=${SHARED_WHEELS:-../shared/wheels}

if ! command -v "$PYTHON" >/dev/null; then
  echo "error: $PYTHON not found. Install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'." >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

pip install -c "$CONSTRAINTS" "setuptools<70" wheel
pip install -c "$CONSTRAINTS" torch torchvision

if ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
  if [ -d "$SHARED_WHEELS" ]; then
    echo "mmcv-full: using the prebuilt wheel in $SHARED_WHEELS"
    PIP_FIND_LINKS="$SHARED_WHEELS" pip install -c "$CONSTRAINTS" mmcv-full
  else
    echo "mmcv-full: no $SHARED_WHEELS; building 1.7.2 from its sdist with CPU ops (~17 min on 2 cores)"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} pip install -c "$CONSTRAINTS" --no-build-isolation mmcv-full
  fi
fi

pip install -c "$CONSTRAINTS" -e ".[dev]"
"$VENV/bin/python" -c "import mmcv.ops, mmdet, mmdet_hpu; print('environment ready:', mmdet_hpu.env_summary())"
touch "$VENV/.installed"
