#!/usr/bin/env bash
# The end-to-end pipeline on this machine (the README's main job):
#
#   1. start a local platform (database, workers, leaf) as host processes;
#   2. run the collector and the load generator with a workload (default
#      configs/local.yaml) -> training_data/<run>.db;
#   3. process it into training rows and plots;
#   4. train linear, ridge and random-forest models -> models/<run>/ (+ report);
#   5. deploy the random forests and replay the same seeded workload on a fake
#      platform (fake workers over those models) -> training_data/<run>-fake.db;
#   6. compare the two runs -> reports/<run>/fidelity.html.
#
#   scripts/run-local-pipeline.sh [configs/local.yaml]
#
# Settings (environment): PROFILE=dev|release (cargo profile, default dev),
# WORKERS=2, RUN_ID=<utc time>-local, SKIP_FAKE=1 to stop after training,
# CARGO_TARGET_DIR (default ~/.cache/hyperfake/target).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
config="${1:-configs/local.yaml}"
[[ -f "$config" ]] || { echo "run-local-pipeline: no workload file $config" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HYPERFAKE_CACHE:-$HOME/.cache/hyperfake}/target}"
export PROFILE="${PROFILE:-dev}"
export WORKERS="${WORKERS:-2}"
bin="$CARGO_TARGET_DIR/$([[ $PROFILE == dev ]] && echo debug || echo "$PROFILE")"
run_id="${RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)-local}"
run_dir="$repo/target/pipeline/$run_id"
real_db="training_data/$run_id.db"
fake_db="training_data/$run_id-fake.db"
report_dir="reports/$run_id"
leaf="127.0.0.1:${LEAF_PORT:-50050}"
first_worker_port="${WORKER_PORT:-50051}"
workers=()
for ((i = 0; i < WORKERS; i++)); do workers+=(--worker "127.0.0.1:$((first_worker_port + i))"); done
mkdir -p "$run_dir" training_data "$report_dir"

step() { printf '\n==> %s\n' "$*"; }
collector_pid=""
platform_dir=""
cleanup() {
    [[ -n "$collector_pid" ]] && kill -TERM "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null || true
    [[ -n "$platform_dir" ]] && RUN_DIR="$platform_dir" scripts/platform.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Runs the workload against whatever platform is up, with the collector beside it.
measure() {
    local db="$1" id="$2" log="$3"
    "$bin/collector" "${workers[@]}" --run-id "$id" --db "$db" --no-progress 2>"$log" &
    collector_pid=$!
    "$bin/loadgen" run "$config" --leaf "$leaf" --run-id "$id" --out "$db"
    kill -TERM "$collector_pid"
    wait "$collector_pid" || { echo "collector failed (log: $log)" >&2; exit 1; }
    collector_pid=""
}

step "building binaries (profile $PROFILE), function images and ONNX Runtime"
cargo build --quiet --profile "$PROFILE" -p database -p worker -p fakeworker -p leaf -p loadgen \
    -p collector -p processing -p trainer -p fidelity --bins
scripts/build-function-images.sh
ORT_DYLIB_PATH="$(scripts/install-onnxruntime.sh | tail -n 1)"
export ORT_DYLIB_PATH

step "real platform: $WORKERS worker(s) on Docker, leaf at $leaf"
platform_dir="$run_dir/real"
RUN_DIR="$platform_dir" SKIP_BUILD=1 scripts/platform.sh up
step "collector + load generator: $config -> $real_db"
measure "$real_db" "$run_id" "$run_dir/collector-real.log"
RUN_DIR="$platform_dir" scripts/platform.sh down
platform_dir=""

step "processing $real_db"
"$bin/process" --db "$real_db" --run-id "$run_id"
"$bin/process" plots --db "$real_db" --run-id "$run_id" --out "training_data/$run_id/plots"

step "training models from $real_db"
"$bin/trainer" train --db "$real_db" --model all --out models --run "$run_id"

if [[ "${SKIP_FAKE:-0}" != 1 ]]; then
    step "deploying the random forests of $run_id and replaying on the fake platform"
    models_dir="$run_dir/models"
    "$bin/trainer" deploy "models/$run_id" --to "$models_dir" --kind random-forest
    platform_dir="$run_dir/fake"
    RUN_DIR="$platform_dir" SKIP_BUILD=1 WORKER_KIND=fake FAKE_MODELS="$models_dir" scripts/platform.sh up
    measure "$fake_db" "$run_id-fake" "$run_dir/collector-fake.log"
    RUN_DIR="$platform_dir" scripts/platform.sh down
    platform_dir=""
    "$bin/process" --db "$fake_db" --run-id "$run_id-fake"

    step "fidelity: real vs fake"
    "$bin/fidelity" compare --real "$real_db" --fake "$fake_db" --out "$report_dir"
fi

step "done"
cat <<EOF2
  run database (real):  $real_db
  training plots:       training_data/$run_id/plots/index.html
  models and report:    models/$run_id/ (report.html)
EOF2
[[ "${SKIP_FAKE:-0}" == 1 ]] || cat <<EOF2
  run database (fake):  $fake_db
  fidelity report:      $report_dir/fidelity.html
EOF2
echo "  logs:                 $run_dir/"
