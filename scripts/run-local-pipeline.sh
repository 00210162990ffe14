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
# CARGO_TARGET_DIR (default ~/.cache/hyperfake/target); see scripts/lib/pipeline.sh.
# The steps are shared with scripts/run-full-pipeline.sh (scripts/lib/pipeline.sh).
set -euo pipefail

# shellcheck source=lib/pipeline.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/pipeline.sh"
pipeline_init run-local-pipeline "${1:-configs/local.yaml}" local
export WORKERS="${WORKERS:-2}"
leaf="127.0.0.1:${LEAF_PORT:-50050}"
first_worker_port="${WORKER_PORT:-50051}"
workers=()
for ((i = 0; i < WORKERS; i++)); do workers+=("127.0.0.1:$((first_worker_port + i))"); done

step "building binaries (profile $PROFILE), function images and ONNX Runtime"
build_binaries database worker fakeworker leaf loadgen collector processing trainer fidelity
scripts/build-function-images.sh
install_onnxruntime

step "real platform: $WORKERS worker(s) on Docker, leaf at $leaf"
platform_dir="$run_dir/real"
RUN_DIR="$platform_dir" SKIP_BUILD=1 scripts/platform.sh up
step "collector + load generator: $config -> $real_db"
measure "$real_db" "$run_id" "$run_dir/collector-real.log" "$leaf" "${workers[@]}"
RUN_DIR="$platform_dir" scripts/platform.sh down
platform_dir=""

process_and_plot "$real_db" "$run_id"
train "$real_db" "$run_id"

with_fake=0
if [[ "${SKIP_FAKE:-0}" != 1 ]]; then
    with_fake=1
    fake_replay "$WORKERS"
fi
print_done "$with_fake"
