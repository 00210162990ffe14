# shellcheck shell=bash
# Steps shared by scripts/run-local-pipeline.sh (platform on this machine) and
# scripts/run-full-pipeline.sh (platform on another host). Source it after
# `set -euo pipefail`, then call pipeline_init <config> <run id suffix>.
#
# Settings (environment): PROFILE=dev|release (cargo profile, default dev),
# RUN_ID=<utc time>-<suffix>, SKIP_FAKE=1 to stop after training,
# VALIDATION_SEED=<the config's seed + 1> (the out-of-sample run's seed),
# CARGO_TARGET_DIR (default ~/.cache/hyperfake/target), DATA_DIR=training_data,
# MODELS_DIR=models, REPORTS_DIR=reports, PIPELINE_DIR=<repo>/target/pipeline
# (logs and platform state of a run go to $PIPELINE_DIR/<run>).

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Sets the paths every step uses: repo, config, bin, run_id, run_dir, real_db,
# validation_config, validation_seed, validation_id, validation_db, fake_db,
# report_dir, data_dir, models_dir; enters the repository.
pipeline_init() {
    local suffix="$2"
    config="$1"
    repo="$hyperfake_repo"
    cd "$repo" || exit 1
    [[ -f "$config" ]] || die "no workload file $config"
    export PROFILE="${PROFILE:-dev}"
    bin="$(profile_dir "$PROFILE")"
    run_id="${RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)-$suffix}"
    data_dir="${DATA_DIR:-training_data}"
    models_dir="${MODELS_DIR:-models}"
    run_dir="${PIPELINE_DIR:-$repo/target/pipeline}/$run_id"
    real_db="$data_dir/$run_id.db"
    # Out of sample: the models are judged on a run they were not trained on,
    # the same workload drawn with another seed (new arrivals, payloads, sizes).
    training_seed="$(config_seed "$config")"
    validation_seed="${VALIDATION_SEED:-$((training_seed + 1))}"
    [[ "$validation_seed" != "$training_seed" ]] || die "VALIDATION_SEED equals the training seed $training_seed"
    validation_id="$run_id-validation"
    validation_db="$data_dir/$validation_id.db"
    fake_db="$data_dir/$validation_id-fake.db"
    report_dir="${REPORTS_DIR:-reports}/$run_id"
    mkdir -p "$run_dir" "$data_dir" "$report_dir"
    validation_config="$run_dir/validation.yaml"
    with_seed "$config" "$validation_seed" >"$validation_config"
    collector_pid=""
    platform_dir=""
    trap pipeline_cleanup EXIT
    # The platform requires the shared token; the clients send the same one.
    use_token_file
}

step() { printf '\n==> %s\n' "$*"; }

# config_seed <workload file>: its top-level `seed:` (0 when it has none, as loadgen assumes).
config_seed() {
    local seed
    seed="$(sed -n 's/^seed:[[:space:]]*\(-\{0,1\}[0-9][0-9]*\).*/\1/p' "$1" | head -n 1)"
    echo "${seed:-0}"
}

# with_seed <workload file> <seed>: the file with its top-level seed replaced (or added).
with_seed() {
    if grep -q '^seed:' "$1"; then
        sed "s/^seed:.*/seed: $2/" "$1"
    else
        cat "$1"
        printf '\nseed: %s\n' "$2"
    fi
}

# Stops the collector and a platform this script started (on exit, even a failed one).
pipeline_cleanup() {
    [[ -n "$collector_pid" ]] && kill -TERM "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null || true
    [[ -n "$platform_dir" ]] && RUN_DIR="$platform_dir" "$repo/scripts/platform.sh" down >/dev/null 2>&1 || true
}

# `--worker a --worker b ...` for the collector, from addresses a b ...
worker_flags() {
    local w
    for w in "$@"; do printf -- '--worker\n%s\n' "$w"; done
}

# measure <workload> <db> <run id> <collector log> <leaf> <worker>...: runs the
# workload against the platform at <leaf>, with the collector following the workers.
measure() {
    local workload="$1" db="$2" id="$3" log="$4" leaf="$5"
    shift 5
    local flags=()
    mapfile -t flags < <(worker_flags "$@")
    "$bin/collector" "${flags[@]}" --run-id "$id" --db "$db" --no-progress 2>"$log" &
    collector_pid=$!
    "$bin/loadgen" run "$workload" --leaf "$leaf" --run-id "$id" --out "$db"
    if ! kill -TERM "$collector_pid" 2>/dev/null; then
        # It ended on its own, before the run did: say why here, since a
        # test's temporary directory (and the log in it) may not outlive it.
        local status=0
        wait "$collector_pid" || status=$?
        collector_pid=""
        echo "collector log ($log), last lines:" >&2
        tail -n 20 "$log" >&2 || true
        die "the collector ended before the run did (exit status $status)"
    fi
    wait "$collector_pid" || die "collector failed (log: $log)"
    collector_pid=""
}

# build_binaries: every binary of the workspace, as the tests build it (common.sh).
build_binaries() {
    build_workspace "$PROFILE"
}

install_onnxruntime() {
    ORT_DYLIB_PATH="$(scripts/install-onnxruntime.sh | tail -n 1)"
    export ORT_DYLIB_PATH
}

# process_and_plot <db> <run id>
process_and_plot() {
    step "processing $1"
    "$bin/process" --db "$1" --run-id "$2"
    "$bin/process" plots --db "$1" --run-id "$2" --out "$data_dir/$2/plots"
}

# train <db> <run id>
train() {
    step "training models from $1"
    "$bin/trainer" train --db "$1" --model all --out "$models_dir" --run "$2"
}

# evaluate_out_of_sample <models dir>: scores every model file there on the
# validation run's training rows (rows the models never saw) -> $report_dir/out-of-sample/.
evaluate_out_of_sample() {
    local models="$1" file name
    step "scoring the models on the validation run (seed $validation_seed, not trained on)"
    mkdir -p "$report_dir/out-of-sample"
    for file in "$models"/*.onnx; do
        [[ -e "$file" ]] || die "no model files in $models"
        name="$(basename "$file" .onnx)"
        "$bin/trainer" evaluate --model "$file" --db "$validation_db" --out "$report_dir/out-of-sample/$name.json"
    done
}

# fake_replay <workers>: deploys the random forests of $run_id, runs the
# validation workload (seed $validation_seed, which the models were not trained
# on) on a local fake platform (scripts/platform.sh, WORKER_KIND=fake) and
# compares it with the real validation run.
fake_replay() {
    local n="$1" leaf="127.0.0.1:${LEAF_PORT:-50050}" first="${WORKER_PORT:-50051}" local_workers=() i
    for ((i = 0; i < n; i++)); do local_workers+=("127.0.0.1:$((first + i))"); done
    step "deploying the random forests of $run_id"
    local deployed="$run_dir/models"
    "$bin/trainer" deploy "$models_dir/$run_id" --to "$deployed" --kind random-forest
    evaluate_out_of_sample "$deployed"

    step "fake platform: the validation workload (seed $validation_seed) over the models"
    platform_dir="$run_dir/fake"
    RUN_DIR="$platform_dir" SKIP_BUILD=1 WORKERS="$n" WORKER_KIND=fake FAKE_MODELS="$deployed" \
        FAKE_SEED="$validation_seed" scripts/platform.sh up
    measure "$validation_config" "$fake_db" "$validation_id-fake" "$run_dir/collector-fake.log" "$leaf" "${local_workers[@]}"
    RUN_DIR="$platform_dir" scripts/platform.sh down
    platform_dir=""
    "$bin/process" --db "$fake_db" --run-id "$validation_id-fake"

    step "fidelity: real vs fake, out of sample"
    # The training run is the reference: how much the real platform differs from itself between two seeds.
    "$bin/fidelity" compare --real "$validation_db" --fake "$fake_db" --reference "$real_db" --out "$report_dir" \
        --trained-on "$real_db (run $run_id, $config, seed $training_seed)" \
        --validation "out of sample: $config with seed $validation_seed, real run $validation_id vs fake run $validation_id-fake"
    step "rendering the report in headless Chromium"
    CHROMIUM="${CHROMIUM:-$(scripts/install-chromium.sh | tail -n 1)}" \
        scripts/render-report.sh "$report_dir/fidelity.html" "$report_dir/fidelity.png"
}

# print_done <with fake: 0|1>
print_done() {
    step "done"
    cat <<EOF2
  run database (real):  $real_db
  training plots:       $data_dir/$run_id/plots/index.html
  models and report:    $models_dir/$run_id/ (report.html)
EOF2
    [[ "$1" != 1 ]] || cat <<EOF2
  validation (real):    $validation_db (seed $validation_seed)
  validation (fake):    $fake_db
  out-of-sample scores: $report_dir/out-of-sample/
  fidelity report:      $report_dir/fidelity.html (out of sample)
EOF2
    echo "  logs:                 $run_dir/"
}
