#!/usr/bin/env bash
# The GPU session's one script: install the carried wheels, check the imports, run the GPU tests and
# benchmarks/gpu.py, and leave the results in $OUT. Made for a machine whose python3 (3.12) has PyTorch
# with CUDA but not optuna, mlflow or hydra, and that reaches no package index.
#   here, once:      benchmarks/gpu_wheels.sh                     (fills .whl/, ~31 MB)
#   on the device:   carry [".whl"], timeout_s 480, command: bash benchmarks/gpu_run.sh [gpu.py options]
# Default: a 300 s benchmark budget (arms in priority order; what does not fit is skipped and listed),
# install + tests + benchmark take about 6.5 minutes (timeout_s 480); an early failure (install, imports, tests) leaves time for a second try.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-run-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MLFLOW_LOGGING_LEVEL=ERROR
SITE=/tmp/site
t0=$(date +%s)
step() { echo "== $(( $(date +%s) - t0 )) s: $*"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,utilization.gpu --format=csv | tee "$OUT/machine.txt"
python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" | tee -a "$OUT/machine.txt"
nproc | xargs echo "cpu cores:" | tee -a "$OUT/machine.txt"

step "install the carried wheels into $SITE"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 10
# This package from the source tree: installed, conf/ is the subpackage sweeps.conf; here a link makes it one
# (in this throw-away copy of the tree only).
[ -e sweeps/conf ] || ln -s ../conf sweeps/conf
export PYTHONPATH=$SITE:$PWD
python3 -c "import sweeps.cli, sweeps.conf, optuna, mlflow, hydra, objectives.tiny_transformer; from mlflow.tracking import MlflowClient; MlflowClient('sqlite:////tmp/import-check.db').search_experiments(); print('imports ok')" || exit 12

step "tests on the GPU (tests/test_precision.py, tests/test_gpu_packing.py; not the CLI ones, whose helper resets PYTHONPATH)"
timeout 150 python3 -m pytest -q -p no:cacheprovider -k "not exits_2 and not compile" tests/test_precision.py tests/test_gpu_packing.py 2>&1 | tee "$OUT/tests.log" | tail -15

step "benchmark"
python3 benchmarks/gpu.py --budget 300 "$@" 2>&1 | tee "$OUT/gpu.log"
cp benchmarks/results/gpu.json benchmarks/results/gpu_quick.json "$OUT/" 2>/dev/null
step "done; files in \$OUT: $(ls "$OUT" | tr '\n' ' ')"
