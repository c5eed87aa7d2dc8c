#!/usr/bin/env bash
# Provide a real MLflow (>= 3.3, webhooks) for the MLflow tests and the benchmark, in its own
# virtualenv: MLflow's dependencies would fight Prefect's pins in the project's environment.
# Safe to re-run: an existing .venv-mlflow with a recent enough MLflow is kept.
#
# Progress goes to stderr and the only line on stdout is the export, so CI can do
#   eval "$(bash .ci/mlflow.sh)" && pytest tests/test_mlflow*.py
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-mlflow
python="$PWD/$venv/bin/python"

log() { echo "mlflow.sh: $*" >&2; }

recent_enough() {
    "$python" - <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version

major, minor = (int(p) for p in version("mlflow").split(".")[:2])
sys.exit(0 if (major, minor) >= (3, 3) else 1)
EOF
}

if [[ ! -x "$python" ]] || ! recent_enough; then
    log "creating $venv with mlflow >= 3.3 (about a minute)"
    python3 -m venv "$venv" >&2
    # pip warns about every package absent from this machine's local extra indexes: noise
    quiet() { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }
    "$python" -m pip install -q --upgrade pip 2>&1 | quiet
    "$python" -m pip install -q 'mlflow>=3.3' 2>&1 | quiet
fi
log "$("$python" -c 'import mlflow; print("mlflow", mlflow.__version__)')"

echo "export PHASEGATE_TEST_MLFLOW_PYTHON=$python"
