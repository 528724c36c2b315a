#!/usr/bin/env bash
# Fill .whl/ (gitignored) with the wheels that benchmarks/gpu_run.sh installs on a GPU machine whose image
# has PyTorch but not optuna, mlflow or hydra (CPython 3.12, x86_64). About 31 MB; the device call carries it.
#   benchmarks/gpu_wheels.sh            # from the repository root, with this project's .venv
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
PLATFORMS=(--platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
rm -rf .whl && mkdir -p .whl
grep -v '^#' benchmarks/gpu_wheels.txt | grep . > .whl/requirements.txt
"$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}" -d .whl -r .whl/requirements.txt
"$PIP" wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3      # PyPI has only its sdist: a pure-Python wheel
rm .whl/requirements.txt
ls .whl | wc -l | xargs echo "wheels:"
du -sh .whl
