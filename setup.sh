#!/usr/bin/env bash
# Create .venv with sweeps (editable) and its test tools. Installs PyTorch's CPU build first where
# possible: a plain `torch` requirement resolves to a multi-GB CUDA build on Linux.
# Set TORCH_SPEC (e.g. TORCH_SPEC='torch==2.5.1') to choose another build.
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip() { .venv/bin/python -m pip "$@" --disable-pip-version-check; }
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  pip install -q "${TORCH_SPEC:-torch==2.13.0}" \
    || pip install -q torch --index-url https://download.pytorch.org/whl/cpu \
    || pip install -q "torch>=2.3"
fi
# SWEEPS_EXTRAS adds optional extras, e.g. SWEEPS_EXTRAS=lcbench for objective=lcbench
pip install -q -e ".[dev${SWEEPS_EXTRAS:+,$SWEEPS_EXTRAS}]"
# Hydra finds sweeper plugins by scanning the hydra_plugins folders on sys.path, which the editable
# install's import hook hides: put the checkout itself on the path too (python train.py -m hydra/sweeper=sweeps).
site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$PWD" > "$site/sweeps-checkout.pth"
echo "sweeps is installed in .venv: run .venv/bin/sweeps --help"
