#!/usr/bin/env bash
# The main job (README): the whole lifecycle on embedded defaults — synthetic data, MLflow's sqlite store
# (./mlflow.db) and local artefacts (./mlruns), no network — through the MLproject `pipeline` entry point.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-work}
source .venv/bin/activate
export GIT_PYTHON_REFRESH=quiet
mlflow run . -e pipeline --env-manager local -P work="$work" ${GATREC_PIPELINE_ARGS:-}
cat <<MSG

Done. Look next:
  .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db     # runs, metrics, plots, the registry and the champion
  .venv/bin/gatrec eval --run $work/runs/gat-fused               # re-evaluate the trained model
  .venv/bin/python -c "import mlflow; m = mlflow.pyfunc.load_model('models:/gatrec@champion'); print(m.predict([{'user_id': 'u0', 'k': 5}]))"
MSG
