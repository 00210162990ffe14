#!/usr/bin/env bash
# The two-host pipeline test. The SUT "host" is the containerized platform
# (compose.yaml: database, leaf, two workers, images FROM scratch, nothing
# pulled) on a private Docker network of its own; the client "host" is this
# machine's network namespace, which runs scripts/run-full-pipeline.sh against
# the containers' addresses on that network (the leaf and both workers by
# container IP). Every service requires a shared token (a file,
# HYPERFAKE_TOKEN_FILE, as across real hosts), which the client side sends; a
# client without it must be refused. Then it checks the run database and
# tears everything down, on failure too, leaving the engine as it found it.
#
#   scripts/test-two-host.sh [config]     # default configs/two-host-smoke.yaml
#
# Environment: OUT_DIR (kept; default a temporary directory, removed unless the
# test fails), RUN_ID, SKIP_BUILD=1 (reuse built images and binaries, in
# CARGO_TARGET_DIR, default ~/.cache/hyperfake/target),
# KEEP_IMAGES=1 (keep platform images this script built), FAKE_SUT=1 (also the
# out-of-sample step: a validation run with another seed against the SUT, the
# same workload on a local fake platform at LEAF_PORT/WORKER_PORT/DATABASE_PORT,
# and the fidelity report of the two).
# Also run by `cargo test -p hyperfake-e2e` (e2e/tests/it/two_host.rs).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/common.sh
source "$repo/scripts/lib/common.sh"
cd "$repo"
config="${1:-configs/two-host-smoke.yaml}"
suffix="$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
project="hftwohost$suffix"
export HYPERFAKE_NETWORK="$project"
export HYPERFAKE_DEPLOYMENT="$project"
# compose mounts it into every service; loadgen, collector and leafctl read it.
token_dir="$(mktemp -d -t hyperfake-token.XXXXXX)"
write_token_file "$token_dir/token" "$(new_token)"
unset HYPERFAKE_TOKEN
export HYPERFAKE_TOKEN_FILE="$token_dir/token"
compose=(docker-compose -p "$project" -f "$repo/compose.yaml")
images=(hyperfake-database:latest hyperfake-worker:latest hyperfake-leaf:latest)
leafctl="$(profile_dir dev)/leafctl"
process="$(profile_dir dev)/process"
run_id="${RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)-twohost}"
start=$SECONDS

step() { printf '\n== test-two-host [%3d s]: %s\n' "$((SECONDS - start))" "$*"; }

docker info >/dev/null 2>&1 || die "cannot reach the Docker engine"
command -v python3 >/dev/null || die "python3 is needed (to find a free port)"

own_out=0
if [[ -z "${OUT_DIR:-}" ]]; then
    OUT_DIR="$(mktemp -d -t hyperfake-two-host.XXXXXX)"
    own_out=1
fi
mkdir -p "$OUT_DIR"
missing_images=()
for image in "${images[@]}"; do
    docker image inspect "$image" >/dev/null 2>&1 || missing_images+=("$image")
done

passed=0
teardown() {
    local rc=$?
    set +e
    if [[ $passed != 1 ]]; then
        echo "test-two-host: FAILED (exit $rc); platform state and logs:" >&2
        "${compose[@]}" ps >&2 2>/dev/null
        "${compose[@]}" logs --no-color --tail 40 >&2 2>/dev/null
    fi
    step "tearing down project $project"
    "${compose[@]}" down --volumes --remove-orphans --timeout 20 >/dev/null 2>&1
    remove_deployment "$project"
    if [[ "${KEEP_IMAGES:-0}" != 1 && ${#missing_images[@]} -gt 0 ]]; then
        docker image rm "${missing_images[@]}" >/dev/null 2>&1
        echo "removed the images this test built: ${missing_images[*]}"
    fi
    rm -rf "$token_dir"
    if [[ $own_out == 1 && $passed == 1 ]]; then
        rm -rf "$OUT_DIR"
    else
        echo "outputs kept in $OUT_DIR"
    fi
    [[ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$project")" ]] ||
        echo "test-two-host: containers of $project remain" >&2
    exit "$rc"
}
trap teardown EXIT

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    step "building the platform images (FROM scratch) and the client binaries"
    scripts/build-platform-images.sh
    build_workspace dev
fi
for image in "${images[@]}" hyperfaas-echo:latest hyperfaas-hello:latest; do
    docker image inspect "$image" >/dev/null 2>&1 ||
        die "$image missing (scripts/build-platform-images.sh, scripts/build-function-images.sh)"
done

# The leaf's published port must not collide with a platform on this machine.
leaf_host_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
step "SUT host: compose project $project on network $project (leaf also published on :$leaf_host_port)"
HYPERFAKE_LEAF_PORT="$leaf_host_port" "${compose[@]}" up -d
ip_of() {
    local id
    id="$("${compose[@]}" ps -q "$1")"
    [[ -n "$id" ]] || die "no container for service $1"
    docker inspect -f "{{(index .NetworkSettings.Networks \"$project\").IPAddress}}" "$id"
}
leaf_ip="$(ip_of leaf)"
worker_1="$(ip_of worker-1):50051"
worker_2="$(ip_of worker-2):50051"
echo "leaf $leaf_ip:50050, workers $worker_1 $worker_2"
wait_for_leaf "$leafctl" "$leaf_ip:50050"
refused="$(env -u HYPERFAKE_TOKEN_FILE "$leafctl" --address "$leaf_ip:50050" --deadline 5s state 2>&1)" &&
    die "the leaf answered a client without the token: $refused"
[[ "$refused" == *"missing token"* ]] || die "a client without the token got: $refused"
echo "a client without the token is refused: ${refused##*message: }"

step "client host: run-full-pipeline against $leaf_ip"
pipeline_flags=()
[[ "${FAKE_SUT:-0}" != 1 ]] || pipeline_flags+=(--fake-sut)
SKIP_BUILD=1 RUN_ID="$run_id" DATA_DIR="$OUT_DIR/training_data" MODELS_DIR="$OUT_DIR/models" \
    REPORTS_DIR="$OUT_DIR/reports" PIPELINE_DIR="$OUT_DIR/pipeline" \
    scripts/run-full-pipeline.sh "$config" --sut "$leaf_ip" --workers "$worker_1,$worker_2" \
    "${pipeline_flags[@]}"

# The checks the e2e tests make (processing::check): the run completed with every
# call recorded, at most half failed, the collector followed exactly these
# workers and the load generator this leaf, and the training rows are sound.
check_run() {
    step "checking run $2 in $1"
    "$process" check --db "$1" --run-id "$2" --leaf "$leaf_ip:50050" --worker "$worker_1" --worker "$worker_2"
}
check_run "$OUT_DIR/training_data/$run_id.db" "$run_id"
[[ "${FAKE_SUT:-0}" != 1 ]] || check_run "$OUT_DIR/training_data/$run_id-validation.db" "$run_id-validation"
passed=1
step "passed"
