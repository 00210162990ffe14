#!/usr/bin/env bash
# The pipeline against a platform already running on another host (started
# there with scripts/platform.sh up or scripts/compose.sh up): the client side
# of scripts/run-local-pipeline.sh, from this machine:
#
#   1. run the collector against the SUT's workers and the load generator
#      against its leaf with a workload -> $DATA_DIR/<run>.db;
#   2. process it into training rows and plots;
#   3. train linear, ridge and random-forest models -> models/<run>/ (+ report);
#   4. with --fake-sut only: run the workload again with another seed against
#      the SUT (out of sample), run that validation workload on a local fake
#      platform over the random forests and compare the two (as
#      run-local-pipeline does).
#
#   scripts/run-full-pipeline.sh <config> --sut <host> [--workers host:port,...]
#                                [--leaf-port 50050] [--fake-sut]
#
# --workers defaults to <host>:50051,<host>:50052. The collector stores each
# worker under the address given here, the one it connected to.
# Settings (environment): PROFILE, RUN_ID (<utc time>-full), SKIP_BUILD=1 (use
# built binaries), DATA_DIR, MODELS_DIR, REPORTS_DIR, PIPELINE_DIR; see
# scripts/lib/pipeline.sh. The fake replay uses LEAF_PORT/WORKER_PORT locally.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    echo "usage: $0 <config> --sut <host> [--workers host:port,...] [--leaf-port 50050] [--fake-sut]" >&2
    exit 2
}
config_arg=""
sut=""
worker_list=""
leaf_port=50050
fake_sut=0
while (($#)); do
    case "$1" in
        --sut) sut="${2:?--sut needs a host}"; shift 2 ;;
        --workers) worker_list="${2:?--workers needs host:port,...}"; shift 2 ;;
        --leaf-port) leaf_port="${2:?--leaf-port needs a port}"; shift 2 ;;
        --fake-sut) fake_sut=1; shift ;;
        -h | --help) usage ;;
        -*) echo "run-full-pipeline: unknown option $1" >&2; usage ;;
        *) [[ -z "$config_arg" ]] || usage; config_arg="$1"; shift ;;
    esac
done
[[ -n "$config_arg" && -n "$sut" ]] || usage

# shellcheck source=lib/pipeline.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/pipeline.sh"
pipeline_init "$config_arg" full
leaf="$sut:$leaf_port"
IFS=, read -r -a workers <<<"${worker_list:-$sut:50051,$sut:50052}"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    step "building binaries (profile $PROFILE) and ONNX Runtime"
    build_binaries
fi
install_onnxruntime

step "collector + load generator against the SUT: leaf $leaf, workers ${workers[*]}: $config -> $real_db"
measure "$config" "$real_db" "$run_id" "$run_dir/collector-real.log" "$leaf" "${workers[@]}"

process_and_plot "$real_db" "$run_id"
train "$real_db" "$run_id"

if [[ $fake_sut == 1 ]]; then
    step "out-of-sample validation run against the SUT: $config with seed $validation_seed"
    measure "$validation_config" "$validation_db" "$validation_id" "$run_dir/collector-validation.log" "$leaf" "${workers[@]}"
    "$bin/process" --db "$validation_db" --run-id "$validation_id"
    fake_replay "${#workers[@]}"
fi
print_done "$fake_sut"
