#!/usr/bin/env bash
# The main job (README): the whole lifecycle on embedded defaults — synthetic data, MLflow's sqlite store
# (./mlflow.db) and local artefacts (./mlruns), no network — through the MLproject `pipeline` entry point.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-work}
source .venv/bin/activate
export GIT_PYTHON_REFRESH=quiet
started=$SECONDS
mlflow run . -e pipeline --env-manager local -P work="$work" ${GATREC_PIPELINE_ARGS:-}
# The run folder of the model that actually trained (GATREC_PIPELINE_ARGS may pick another model or features),
# from the train step's completion record.
run_dir=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["output"])' \
  "$work/.gatrec-steps/train.json" 2>/dev/null || echo "$work/runs/<model>")
cat <<MSG

Main job: $((SECONDS - started)) s in all (step timings above; load average now $(cut -d' ' -f1-3 /proc/loadavg)).

Done. Look next:
  .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db     # runs, metrics, plots, the registry and the champion
  .venv/bin/gatrec eval --run $run_dir               # re-evaluate the trained model
  .venv/bin/python -c "import mlflow; m = mlflow.pyfunc.load_model('models:/gatrec@champion'); print(m.predict([{'user_id': 'u0', 'k': 5}]))"
MSG
