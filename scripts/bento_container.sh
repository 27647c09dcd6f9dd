#!/usr/bin/env bash
# Build the Bento's container image with buildah on a local Debian bookworm base, run it, and measure:
# build time, image size, cold start (process start -> /readyz 200), then /recommend over 127.0.0.1.
# Writes bench/results/container.json. Needs root (buildah, debootstrap); installs them if missing.
# Usage: scripts/bento_container.sh [BENTO_TAG]    (default gatrec:latest; BENTOML_HOME as for bentoml)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
BENTO=${1:-gatrec:latest}
BASE=${GATREC_BASE_IMAGE:-localhost/gatrec-base:bookworm}
PORT=${PORT_OVERRIDE:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
OUT=${OUT_JSON:-$repo/bench/results/container.json}
PY=${PY:-$repo/.venv/bin/python}
bash "$here/container_base.sh" "$BASE"
t0=$(date +%s.%N)
image=$("$PY" -m gatrec bento containerize "$BENTO" --base-image "$BASE" | sed -n 's/^built image //p')
t1=$(date +%s.%N)
[ -n "$image" ] || { echo "containerize printed no image tag" >&2; exit 1; }
size=$(buildah inspect --type image --format '{{.OCIv1.Size}}' "$image" 2>/dev/null || true)
size_h=$(buildah images --format '{{.Size}}' "$image" | head -1)
ctr=$(buildah from "$image")
cleanup() { if [ -n "${pid:-}" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; buildah rm "$ctr" >/dev/null 2>&1 || true; }
trap cleanup EXIT
log=$(mktemp /tmp/gatrec-container.XXXXXX.log)
s0=$(date +%s.%N)
buildah run --isolation=chroot --network=host "$ctr" -- /home/bentoml/bento/env/docker/entrypoint.sh \
  --host 127.0.0.1 --port "$PORT" >"$log" 2>&1 &
pid=$!
ready=""
for _ in $(seq 1 600); do
  if curl -fsS -m 2 "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
s1=$(date +%s.%N)
[ -n "$ready" ] || { echo "container did not become ready" >&2; tail -50 "$log" >&2; exit 1; }
resp=$(curl -fsS -m 10 -H 'content-type: application/json' -d '{"history": [], "k": 5}' "http://127.0.0.1:$PORT/recommend")
echo "recommend: $resp"
model=$(curl -fsS -m 10 "http://127.0.0.1:$PORT/model")
"$PY" - "$OUT" <<PY
import json, sys, platform, os
out = {"image": "$image", "base_image": "$BASE", "bento": "$BENTO",
       "build_seconds": round($t1 - $t0, 1), "image_size": "$size_h", "image_size_bytes": int("${size:-0}" or 0),
       "cold_start_seconds": round($s1 - $s0, 2), "recommend_response": json.loads('''$resp'''),
       "model": json.loads('''$model'''), "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()}}
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as fh:
    json.dump(out, fh, indent=2)
os.replace(tmp, sys.argv[1])
print(json.dumps({k: out[k] for k in ("image", "build_seconds", "image_size", "cold_start_seconds")}))
PY
