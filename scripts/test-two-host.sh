#!/usr/bin/env bash
# The two-host pipeline test. The SUT "host" is the containerized platform
# (compose.yaml: database, leaf, two workers, images FROM scratch, nothing
# pulled) on a private Docker network of its own; the client "host" is this
# machine's network namespace, which runs scripts/run-full-pipeline.sh against
# the containers' addresses on that network (the leaf and both workers by
# container IP). Every service requires a shared token (HYPERFAKE_TOKEN, as
# across real hosts), which the client side sends; a client without it must be
# refused. Then it checks the run database and tears everything down, on
# failure too, leaving the engine as it found it.
#
#   scripts/test-two-host.sh [config]     # default configs/two-host-smoke.yaml
#
# Environment: OUT_DIR (kept; default a temporary directory, removed unless the
# test fails), RUN_ID, SKIP_BUILD=1 (reuse built images and binaries),
# KEEP_IMAGES=1 (keep platform images this script built), FAKE_SUT=1 (also the
# out-of-sample step: a validation run with another seed against the SUT, the
# same workload on a local fake platform at LEAF_PORT/WORKER_PORT/DATABASE_PORT,
# and the fidelity report of the two).
# Also run by `cargo test -p hyperfake-e2e` (e2e/tests/it/two_host.rs).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
config="${1:-configs/two-host-smoke.yaml}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HYPERFAKE_CACHE:-$HOME/.cache/hyperfake}/target}"
suffix="$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
project="hftwohost$suffix"
export HYPERFAKE_NETWORK="$project"
export HYPERFAKE_DEPLOYMENT="$project"
# compose passes it to every service; loadgen, collector and leafctl read it.
HYPERFAKE_TOKEN="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export HYPERFAKE_TOKEN
compose=(docker-compose -p "$project" -f "$repo/compose.yaml")
images=(hyperfake-database:latest hyperfake-worker:latest hyperfake-leaf:latest)
leafctl="$CARGO_TARGET_DIR/debug/leafctl"
run_id="${RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)-twohost}"
start=$SECONDS

die() { echo "test-two-host: $*" >&2; exit 1; }
step() { printf '\n== test-two-host [%3d s]: %s\n' "$((SECONDS - start))" "$*"; }

docker info >/dev/null 2>&1 || die "cannot reach the Docker engine"
command -v python3 >/dev/null || die "python3 is needed for the checks"

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
    local ids
    ids="$(docker ps -aq --filter "label=hyperfake.deployment=$project")"
    [[ -z "$ids" ]] || docker rm -f $ids >/dev/null
    docker network rm "$project" >/dev/null 2>&1
    if [[ "${KEEP_IMAGES:-0}" != 1 && ${#missing_images[@]} -gt 0 ]]; then
        docker image rm "${missing_images[@]}" >/dev/null 2>&1
        echo "removed the images this test built: ${missing_images[*]}"
    fi
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
    cargo build --quiet --workspace --all-targets  # the selection scripts/test.sh builds: one dependency build
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
deadline=$((SECONDS + 60))
until "$leafctl" --address "$leaf_ip:50050" --deadline 2s state >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "the leaf at $leaf_ip:50050 did not answer within 60 s"
    sleep 0.5
done
echo "leaf answers at $leaf_ip:50050"
refused="$(env -u HYPERFAKE_TOKEN "$leafctl" --address "$leaf_ip:50050" --deadline 5s state 2>&1)" &&
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

step "checking $OUT_DIR/training_data/$run_id.db"
python3 - "$OUT_DIR/training_data/$run_id.db" "$run_id" "$worker_1" "$worker_2" "$leaf_ip:50050" <<'EOF'
import sqlite3, sys
db, run, w1, w2, leaf = sys.argv[1:]
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
one = lambda sql: c.execute(sql, (run,)).fetchone()[0]
problems = []
status, scheduled, leaf_address = c.execute(
    "SELECT status, calls_scheduled, leaf_address FROM runs WHERE run_id = ?", (run,)).fetchone()
calls = one("SELECT COUNT(*) FROM calls WHERE run_id = ?")
ok = one("SELECT COUNT(*) FROM calls WHERE run_id = ? AND status = 'OK'")
if status != "completed": problems.append(f"run status {status}")
if calls != scheduled: problems.append(f"{calls} calls recorded, {scheduled} scheduled")
if ok * 2 < calls: problems.append(f"only {ok} of {calls} calls OK")
if leaf_address != leaf: problems.append(f"leaf address {leaf_address}, expected {leaf}")
counts = {}
for table in ("instance_events", "container_samples", "worker_samples", "training_data"):
    counts[table] = one(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?")
    if counts[table] == 0: problems.append(f"no {table} rows")
for table in ("instance_events", "container_samples", "worker_samples"):
    seen = {r[0] for r in c.execute(f"SELECT DISTINCT worker FROM {table} WHERE run_id = ?", (run,))}
    if not seen <= {w1, w2}: problems.append(f"{table}: workers {seen}, expected those connected to: {w1} {w2}")
seen = {r[0] for r in c.execute("SELECT DISTINCT worker FROM worker_samples WHERE run_id = ?", (run,))}
if seen != {w1, w2}: problems.append(f"worker_samples from {seen}, expected both {w1} {w2}")
checks = {
    "NULL target": "function_processing_time_ns IS NULL OR function_cpu_usage IS NULL OR function_ram_usage IS NULL",
    "active_function_calls_count < 1": "active_function_calls_count IS NULL OR active_function_calls_count < 1",
    "function_instances_count < 1": "function_instances_count IS NULL OR function_instances_count < 1",
    "runtime > client latency": "latency_ns IS NULL OR function_processing_time_ns > latency_ns",
    "CPU above quota": "function_cpu_usage > (SELECT s.cpu_quota_cores * 1.5 + 0.05 FROM run_summary s"
                       " WHERE s.run_id = t.run_id AND s.image_tag = t.image_tag)",
}
for what, cond in checks.items():
    n = one(f"SELECT COUNT(*) FROM training_data t WHERE run_id = ? AND ({cond})")
    if n: problems.append(f"{n} training rows with {what}")
rows = c.execute("SELECT image_tag, calls, calls_ok, training_rows, calls_by_status_json FROM run_summary"
                 " WHERE run_id = ?", (run,)).fetchall()
print(f"calls {calls}/{scheduled} scheduled, {ok} OK; {counts}")
for r in rows: print("  run_summary:", r)
if problems:
    print("FAILED:\n- " + "\n- ".join(problems), file=sys.stderr)
    sys.exit(1)
EOF
passed=1
step "passed"
