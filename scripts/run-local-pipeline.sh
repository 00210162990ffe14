#!/usr/bin/env bash
# The end-to-end pipeline on this machine (the README's main job):
#
#   1. start a local platform (database, workers, leaf) as host processes;
#   2. run the collector and the load generator with a workload (default
#      configs/local.yaml) -> training_data/<run>.db;
#   3. process it into training rows and plots;
#   4. train linear, ridge and random-forest models -> models/<run>/ (+ report);
#   5. out of sample: run the same workload with another seed (VALIDATION_SEED,
#      default the config's seed + 1) on the real platform
#      -> training_data/<run>-validation.db, and score the models on its rows;
#   6. deploy the random forests and run that validation workload on a fake
#      platform (fake workers over those models)
#      -> training_data/<run>-validation-fake.db;
#   7. compare real and fake validation runs -> reports/<run>/fidelity.html
#      (its header names the training run and says it is out of sample).
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
pipeline_init "${1:-configs/local.yaml}" local
export WORKERS="${WORKERS:-2}"
leaf="127.0.0.1:${LEAF_PORT:-50050}"
first_worker_port="${WORKER_PORT:-50051}"
workers=()
for ((i = 0; i < WORKERS; i++)); do workers+=("127.0.0.1:$((first_worker_port + i))"); done

step "building binaries (profile $PROFILE), function images and ONNX Runtime"
build_binaries
scripts/build-function-images.sh
install_onnxruntime

# real_run <workload> <db> <run id>: one measured run on a fresh real platform.
real_run() {
    step "real platform: $WORKERS worker(s) on Docker, leaf at $leaf"
    platform_dir="$run_dir/real-$3"
    RUN_DIR="$platform_dir" SKIP_BUILD=1 scripts/platform.sh up
    step "collector + load generator: $1 -> $2"
    measure "$1" "$2" "$3" "$run_dir/collector-$3.log" "$leaf" "${workers[@]}"
    RUN_DIR="$platform_dir" scripts/platform.sh down
    platform_dir=""
}

real_run "$config" "$real_db" "$run_id"
process_and_plot "$real_db" "$run_id"
train "$real_db" "$run_id"

with_fake=0
if [[ "${SKIP_FAKE:-0}" != 1 ]]; then
    with_fake=1
    step "out-of-sample validation run: $config with seed $validation_seed (training used $training_seed)"
    real_run "$validation_config" "$validation_db" "$validation_id"
    "$bin/process" --db "$validation_db" --run-id "$validation_id"
    fake_replay "$WORKERS"
fi
print_done "$with_fake"
