#!/usr/bin/env bash
# Create (or complete) a CPU development environment in $VENV for the torch
# stack $TORCH (default 2.9.1 in .venv; other stacks in .venv-torch<version>):
# Python 3.11, torch + the matching torchvision, mmcv-full 1.7.2 with CPU ops
# built against that torch, mmdet 2.28.2 and mmdet-hpu itself in editable mode
# with its dev extras. Every pin lives in tools/constraints.txt. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=${TORCH:-2.9.1}
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
CONSTRAINTS=tools/constraints.txt
# Prebuilt mmcv-full wheels: ../shared/wheels next to the checkout (for a git
# worktree: next to the main checkout).
if [ -z "${SHARED_WHEELS:-}" ]; then
  SHARED_WHEELS=../shared/wheels
  MAIN_CHECKOUT=$(dirname "$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null || echo .)")
  [ -d "$SHARED_WHEELS" ] || SHARED_WHEELS="$MAIN_CHECKOUT/../shared/wheels"
fi

STACK_PINS=$(sed -n "s/^# stack: \(torch==$TORCH .*\)$/\1/p" "$CONSTRAINTS")
if [ -z "$STACK_PINS" ]; then
  echo "error: no torch stack $TORCH in $CONSTRAINTS. Supported:" \
    "$(sed -n 's/^# stack: torch==\([^ ]*\).*/\1/p' "$CONSTRAINTS" | tr '\n' ' ')" \
    "- use one of these (make test TORCH=<version>) or add a '# stack:' line." >&2
  exit 2
fi
if ! command -v "$PYTHON" >/dev/null; then
  echo "error: $PYTHON not found. Install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'." >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
STACK_CONSTRAINTS="$VENV/stack-constraints.txt"
echo "$STACK_PINS" | tr ' ' '\n' > "$STACK_CONSTRAINTS"
# Installs go through uv (pinned in $CONSTRAINTS, bootstrapped with pip): measured on this
# 2-core machine, torch 2.6.0 + torchvision into a fresh venv took 4 min 54 s with pip, 1 min
# 45 s with uv from an empty cache and 2 s with uv's cache warm (it hardlinks from its cache).
"$VENV/bin/python" -m pip --disable-pip-version-check -q install -c "$CONSTRAINTS" uv
pinned() {
  "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" \
    -c "$CONSTRAINTS" -c "$STACK_CONSTRAINTS" "$@"
}

pinned "setuptools<70" wheel
pinned torch torchvision

# The top level of $SHARED_WHEELS holds the 2.9.1 build, torch-<version>/ the others.
MMCV_WHEELS="$SHARED_WHEELS/torch-$TORCH"
if [ ! -d "$MMCV_WHEELS" ] && [ "$TORCH" = 2.9.1 ]; then MMCV_WHEELS="$SHARED_WHEELS"; fi
if ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
  if ls "$MMCV_WHEELS"/mmcv_full-*.whl >/dev/null 2>&1; then
    echo "mmcv-full: using the prebuilt wheel in $MMCV_WHEELS"
    pinned --find-links "$MMCV_WHEELS" mmcv-full
  else
    # --no-cache: uv caches built wheels by sdist and would otherwise hand back a
    # wheel built against another torch.
    echo "mmcv-full: no wheel in $MMCV_WHEELS; building 1.7.2 from its sdist against torch $TORCH with CPU ops (~17 min on 2 cores)"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} pinned --no-cache --no-build-isolation mmcv-full
  fi
fi

pinned -e ".[dev]"
"$VENV/bin/python" -c "import torch, mmcv.ops, mmdet, mmdet_hpu; print('environment ready:', mmdet_hpu.env_summary())"
"$VENV/bin/python" -c "import torch, sys; v = torch.__version__.split('+')[0]; sys.exit(0 if v == '$TORCH' else 'error: $VENV has torch ' + v + ', not $TORCH')"
touch "$VENV/.installed"
