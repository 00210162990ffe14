#!/usr/bin/env bash
# The two-node swarm test: a real Docker Swarm of two engines on this machine,
# each a private dockerd in network, mount and UTS namespaces of its own
# (scripts/lib/second-engine.sh), joined over a bridge between their network
# namespaces. The machine's own engine is never put into swarm mode: it only
# supplies the images (`docker save`), loaded into both nodes without a
# registry. Then it deploys swarm-stack.yaml (database and leaf on the
# manager, two fake workers on each node, one overlay network), runs a small
# workload through the leaf from this host, checks that every call succeeded
# and that the fake workers of both nodes served calls, and removes
# everything (engines, namespaces, veths, data roots), on failure too.
#
#   scripts/test-swarm.sh [config]     # default configs/swarm-smoke.yaml
#
# Needs root (network namespaces, dockerd), dockerd, containerd, ip, nsenter,
# unshare, python3. Environment: OUT_DIR (kept; default a temporary directory,
# removed unless the test fails), RUN_ID, SKIP_BUILD=1 (reuse built images and
# binaries, in CARGO_TARGET_DIR, default ~/.cache/hyperfake/target),
# MODELS_FILE (the JSON model set the fake workers serve; default the newest
# committed models/*/linear.json with a model for every image of the workload), SWARM_SUBNET (the two nodes' /24, default a
# free one in 198.19.0.0/16, part of the benchmarking range). Prints the
# timings, calls sent and OK, and instances per node; writes them to
# $OUT_DIR/swarm-summary.json.
# Also run by `cargo test --workspace --test it -- swarm` (e2e/tests/it/swarm.rs).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/common.sh
source "$repo/scripts/lib/common.sh"
# shellcheck source=lib/second-engine.sh
source "$repo/scripts/lib/second-engine.sh"
cd "$repo"
config="${1:-configs/swarm-smoke.yaml}"
[[ -f "$config" ]] || die "no workload file $config"
images=(hyperfake-database:latest hyperfake-leaf:latest hyperfake-fakeworker:latest)
leafctl="$(profile_dir dev)/leafctl"
loadgen="$(profile_dir dev)/loadgen"
suffix="$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')"
manager="hfs${suffix}-m"
worker="hfs${suffix}-w"
stack="hfswarm"
port=50050  # inside the manager's network namespace: no clash with this host's ports
run_id="${RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)-swarm}"
start=$SECONDS
declare -A took  # seconds per stage, for the summary

step() { printf '\n== test-swarm [%3d s]: %s\n' "$((SECONDS - start))" "$*"; }
# timed <stage> <command...>: runs it and records its seconds.
timed() {
    local stage="$1" t0=$SECONDS; shift
    "$@"
    took[$stage]=$((SECONDS - t0))
}

engine_check || die "cannot run private engines here (see above)"
docker info >/dev/null 2>&1 || die "cannot reach this machine's Docker engine (it supplies the images)"
command -v python3 >/dev/null || die "python3 is needed to check the run database"
host_swarm_state="$(docker info --format '{{.Swarm.LocalNodeState}}')"
models_file="${MODELS_FILE:-$(newest_models linear.json "$config")}"
[[ -f "$models_file" ]] || die "no JSON model set for the fake workers with a model for each image of $config (MODELS_FILE, or models/<run>/linear.json)"
models_file="$(realpath "$models_file")"
if [[ -n "$(engine_list)" ]]; then
    echo "note: engines of another run exist ($(engine_list | tr '\n' ' ')); left alone" >&2
fi

own_out=0
if [[ -z "${OUT_DIR:-}" ]]; then
    OUT_DIR="$(mktemp -d -t hyperfake-swarm.XXXXXX)"
    own_out=1
fi
mkdir -p "$OUT_DIR"
OUT_DIR="$(realpath "$OUT_DIR")"
token_dir="$(mktemp -d -t hyperfake-token.XXXXXX)"
write_token_file "$token_dir/token" "$(new_token)"
unset HYPERFAKE_TOKEN
export HYPERFAKE_TOKEN_FILE="$token_dir/token"

started=()   # engines started, removed in reverse order
passed=0
teardown() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ $passed != 1 && ${#started[@]} -gt 0 ]]; then
        echo "test-swarm: FAILED (exit $rc); swarm state and logs:" >&2
        engine_docker "$manager" node ls >&2 2>/dev/null
        engine_docker "$manager" stack ps "$stack" --no-trunc \
            --format '{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}' >&2 2>/dev/null
        local service
        for service in $(engine_docker "$manager" service ls -q 2>/dev/null); do
            engine_docker "$manager" service logs --tail 15 --no-task-ids "$service" >&2 2>/dev/null
        done
        local e
        for e in "${started[@]}"; do
            echo "--- dockerd of $e (end of its log)" >&2
            tail -n 10 "$hyperfake_engines_dir/$e/dockerd.log" >&2 2>/dev/null
        done
    fi
    step "removing the swarm: engines ${started[*]:-none}"
    local i t0=$SECONDS
    if [[ ${#started[@]} -gt 0 ]] && engine_docker "$manager" stack rm "$stack" >/dev/null 2>&1; then
        # The stack first, as on real hosts; then the engines, with whatever it left.
        local deadline=$((SECONDS + 30)) e
        for e in "${started[@]}"; do
            while [[ -n "$(engine_docker "$e" ps -aq 2>/dev/null)" ]] && ((SECONDS < deadline)); do sleep 0.5; done
        done
        echo "stack $stack removed in $((SECONDS - t0)) s"
    fi
    t0=$SECONDS
    for ((i = ${#started[@]} - 1; i >= 0; i--)); do
        engine_stop "${started[i]}" || echo "test-swarm: could not remove engine ${started[i]}" >&2
    done
    ((${#started[@]} == 0)) || echo "engines removed in $((SECONDS - t0)) s"
    for i in "${started[@]}"; do
        ! ip netns list | grep -qw "^hfe-$i" || echo "test-swarm: namespace hfe-$i remains" >&2
    done
    rm -rf "$token_dir"
    if [[ $own_out == 1 && $passed == 1 ]]; then
        rm -rf "$OUT_DIR"
    else
        echo "outputs kept in $OUT_DIR"
    fi
    echo "test-swarm: $([[ $passed == 1 ]] && echo passed || echo FAILED) in $((SECONDS - start)) s"
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    step "building the platform images (FROM scratch) and the client binaries"
    timed build_images scripts/build-platform-images.sh
    timed build_binaries build_workspace dev
fi
for image in "${images[@]}"; do
    docker image inspect "$image" >/dev/null 2>&1 || die "$image missing (scripts/build-platform-images.sh)"
done
for binary in "$leafctl" "$loadgen"; do
    [[ -x "$binary" ]] || die "$binary missing (cargo build --workspace --all-targets)"
done

# The nodes' subnet: a /24 of 198.19.0.0/16 (the benchmarking range's upper
# half; the fault-injection tests take theirs from 198.18.0.0/16) that no
# route of this host overlaps, so a concurrent run picks another.
pick_subnet() {
    if [[ -n "${SWARM_SUBNET:-}" ]]; then
        echo "${SWARM_SUBNET%/*}"
        return
    fi
    local try third
    for try in $(seq 1 20); do
        third=$((RANDOM % 256))
        if [[ -z "$(_engine_route_overlap "$(_ip_to_int "198.19.$third.0")" 24)" ]]; then
            echo "198.19.$third.0"
            return
        fi
    done
    die "no free /24 in 198.19.0.0/16 after 20 tries: set SWARM_SUBNET"
}
subnet="$(pick_subnet)"
manager_ip="${subnet%.*}.2"
worker_ip="${subnet%.*}.3"

step "two private engines: $manager ($manager_ip) and $worker ($worker_ip) on ${subnet}/24"
start_engines() {
    started+=("$manager")
    engine_start "$manager" "$manager_ip/24" || die "engine $manager did not start"
    started+=("$worker")
    engine_start "$worker" "$worker_ip/24" || die "engine $worker did not start"
    local e
    for e in "$manager" "$worker"; do
        printf '  %-10s %s  netns hfe-%s  %s\n' "$e" "$(engine_socket "$e")" "$e" \
            "$(engine_docker "$e" info --format '{{.Name}} {{.Driver}} {{.ServerVersion}} {{.DockerRootDir}}')"
    done
}
timed engines start_engines

step "loading ${images[*]} into both engines (docker save | docker load, no registry)"
load_images() {
    local tar="$OUT_DIR/images.tar"
    docker save -o "$tar" "${images[@]}"
    engine_docker "$manager" load -q -i "$tar" >/dev/null &
    local pid=$!
    engine_docker "$worker" load -q -i "$tar" >/dev/null || die "loading the images into $worker failed"
    wait "$pid" || die "loading the images into $manager failed"
    rm -f "$tar"
}
timed images load_images

step "swarm: init on $manager, join $worker, label the nodes"
form_swarm() {
    engine_docker "$manager" swarm init --advertise-addr "$manager_ip" --listen-addr "$manager_ip:2377" >/dev/null
    local join_token
    join_token="$(engine_docker "$manager" swarm join-token -q worker)"
    engine_docker "$worker" swarm join --token "$join_token" --advertise-addr "$worker_ip" "$manager_ip:2377" >/dev/null
    engine_docker "$manager" node update --label-add hyperfake.workers=a "$manager" >/dev/null
    engine_docker "$manager" node update --label-add hyperfake.workers=b "$worker" >/dev/null
    engine_docker "$manager" node ls --format '  {{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}'
}
timed swarm form_swarm

step "deploying swarm-stack.yaml as stack $stack (models: $models_file)"
deploy() {
    HYPERFAKE_MODELS_FILE="$models_file" HYPERFAKE_LEAF_PORT="$port" HYPERFAKE_DEPLOYMENT="$stack" \
        engine_docker "$manager" stack deploy --resolve-image never -c swarm-stack.yaml "$stack"
    local expected running deadline=$((SECONDS + 120))
    expected="$(engine_docker "$manager" service ls -q --filter "label=com.docker.stack.namespace=$stack" | wc -l)"
    until running="$(engine_docker "$manager" stack ps "$stack" --filter desired-state=running \
        --format '{{.CurrentState}}' | grep -c '^Running')" && ((running == expected)); do
        ((SECONDS < deadline)) || die "only $running of $expected services running after 120 s"
        sleep 1
    done
    wait_for_leaf "$leafctl" "$manager_ip:$port" 60 || die "the leaf does not answer at $manager_ip:$port"
    # Every worker in the leaf's rotation before the workload starts.
    local state
    deadline=$((SECONDS + 60))
    until state="$("$leafctl" --address "$manager_ip:$port" --deadline 5s state 2>&1)" &&
        [[ "$state" == *"nodes in rotation: 4"* ]]; do
        ((SECONDS < deadline)) || die "the leaf has not taken all four fake workers into rotation: $state"
        sleep 1
    done
    echo "$state"
}
timed deploy deploy

# The swarm lives in the engines' namespaces only: this machine's engine keeps
# its swarm state, and this host's iptables hold no rule for the nodes' subnet.
[[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" == "$host_swarm_state" ]] ||
    die "this machine's engine changed its swarm state (was $host_swarm_state)"
! iptables-save 2>/dev/null | grep -qF "${subnet%.*}." ||
    die "this host's iptables mention ${subnet}/24: $(iptables-save | grep -F "${subnet%.*}.")"
echo "this machine's engine: swarm $host_swarm_state, as before; no iptables rule here for ${subnet}/24"

refused="$(env -u HYPERFAKE_TOKEN_FILE "$leafctl" --address "$manager_ip:$port" --deadline 5s state 2>&1)" &&
    die "the leaf answered a client without the token: $refused"
echo "a client without the token is refused: ${refused##*message: }"

step "workload $config from this host through the leaf at $manager_ip:$port"
db="$OUT_DIR/$run_id.db"
# --keep-functions: the database is reachable only on the overlay; the
# functions go with the stack.
timed workload "$loadgen" run "$config" --leaf "$manager_ip:$port" --out "$db" --run-id "$run_id" \
    --no-progress --keep-functions

step "checking the run and where it was served"
# q <sql>: the rows of a query on the run database, fields joined by '|'
# (python3's sqlite3, read-only: no sqlite3 CLI needed).
q() {
    python3 - "$db" "$1" <<'PY'
import sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
for row in con.execute(sys.argv[2]):
    print("|".join("" if v is None else str(v) for v in row))
PY
}
read -r status calls_scheduled calls_due calls_recorded <<<"$(q "SELECT status, calls_scheduled,
    calls_due, calls_recorded FROM runs WHERE run_id = '$run_id'" | tr '|' ' ')"
calls_sent="$(q "SELECT COUNT(*) FROM calls WHERE run_id = '$run_id' AND sent_ns IS NOT NULL")"
calls_ok="$(q "SELECT COUNT(*) FROM calls WHERE run_id = '$run_id' AND status = 'OK'")"
echo "run $status: $calls_scheduled scheduled, $calls_due due, $calls_recorded recorded, $calls_sent sent, $calls_ok OK"
q "SELECT '  ' || status || ' ' || COUNT(*) || COALESCE(' e.g. ' || MIN(error), '') FROM calls
    WHERE run_id = '$run_id' GROUP BY status"
problems=()
[[ "$status" == completed ]] || problems+=("the run's status is '$status', not completed")
[[ "$calls_due" == "$calls_recorded" ]] || problems+=("$calls_due calls due but $calls_recorded recorded")
((calls_sent > 0)) || problems+=("no call was sent")
((calls_ok == calls_sent)) || problems+=("$((calls_sent - calls_ok)) of $calls_sent calls sent failed")

# Each worker service's task must run on the node its label puts it on; the
# calls' worker addresses (the leaf's trailer) then say which node served them.
declare -A node_of node_calls node_instances
while read -r name node; do
    node_of[${name#"${stack}_"}]="$node"
done < <(engine_docker "$manager" stack ps "$stack" --filter desired-state=running --format '{{.Name}} {{.Node}}' |
    sed -E 's/\.[0-9]+ / /')
for w in a1 a2 b1 b2; do
    expect="$manager"
    [[ $w == b* ]] && expect="$worker"
    [[ "${node_of[fakeworker-$w]:-}" == "$expect" ]] ||
        problems+=("fakeworker-$w runs on '${node_of[fakeworker-$w]:-nowhere}', not on $expect")
done
printf '  %-22s %-10s %8s %10s\n' worker node "calls OK" instances
while IFS='|' read -r address calls instances; do
    service="${address%%:*}"
    node="${node_of[$service]:-unknown}"
    printf '  %-22s %-10s %8s %10s\n' "$address" "$node" "$calls" "$instances"
    node_calls[$node]=$((${node_calls[$node]:-0} + calls))
    node_instances[$node]=$((${node_instances[$node]:-0} + instances))
done < <(q "SELECT COALESCE(worker_address, '?'), COUNT(*), COUNT(DISTINCT instance_id) FROM calls
    WHERE run_id = '$run_id' AND status = 'OK' GROUP BY worker_address ORDER BY worker_address")
for node in "$manager" "$worker"; do
    echo "node $node: ${node_calls[$node]:-0} calls OK on ${node_instances[$node]:-0} instances"
    ((${node_calls[$node]:-0} > 0)) || problems+=("no call was served on node $node")
done
((${node_calls[unknown]:-0} == 0)) || problems+=("${node_calls[unknown]} OK calls came from a worker of no known node")

total=$((SECONDS - start))
build=$((${took[build_images]:-0} + ${took[build_binaries]:-0}))
cat >"$OUT_DIR/swarm-summary.json" <<JSON
{
  "run_id": "$run_id",
  "config": "$config",
  "nodes": ["$manager", "$worker"],
  "seconds": {"total": $total, "build": $build, "engines": ${took[engines]}, "images": ${took[images]},
              "swarm": ${took[swarm]}, "deploy": ${took[deploy]}, "workload": ${took[workload]}},
  "calls": {"scheduled": $calls_scheduled, "due": $calls_due, "recorded": $calls_recorded,
            "sent": $calls_sent, "ok": $calls_ok},
  "per_node": [
    {"node": "$manager", "role": "manager", "calls_ok": ${node_calls[$manager]:-0}, "instances": ${node_instances[$manager]:-0}},
    {"node": "$worker", "role": "worker", "calls_ok": ${node_calls[$worker]:-0}, "instances": ${node_instances[$worker]:-0}}
  ]
}
JSON
echo "summary: $OUT_DIR/swarm-summary.json (stages: engines ${took[engines]} s, images ${took[images]} s," \
    "swarm ${took[swarm]} s, deploy ${took[deploy]} s, workload ${took[workload]} s; $total s so far)"
if ((${#problems[@]} > 0)); then
    printf 'test-swarm: %s\n' "${problems[@]}" >&2
    exit 1
fi
passed=1
