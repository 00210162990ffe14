#!/usr/bin/env bash
# Containerized mode: compose.yaml (database, two workers, leaf) on a private
# network, as a Compose project or as a single-node Docker Swarm stack.
#
#   scripts/compose.sh up          # build images, start, wait until the leaf answers
#   scripts/compose.sh smoke       # create an echo function through the leaf and call it
#   scripts/compose.sh down        # stop and remove every container (function containers
#                                  # too), the platform images, the volume and the network
#   scripts/compose.sh swarm-test  # deploy as a stack on a single-node swarm, smoke-test,
#                                  # remove it; leaves the swarm if it initialised it
#
# Environment: HYPERFAKE_LEAF_PORT (50050), the host port the leaf is published
# on; SKIP_BUILD=1 to reuse built images.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
project=hyperfake
stack=hyperfake
compose=(docker-compose -p "$project" -f "$repo/compose.yaml")
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
leafctl="$target_dir/debug/leafctl"
images=(hyperfake-database:latest hyperfake-worker:latest hyperfake-leaf:latest)

die() { echo "compose: $*" >&2; exit 1; }

build() {
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        "$repo/scripts/build-platform-images.sh"
        cargo build --quiet --manifest-path "$repo/Cargo.toml" -p leaf --bin leafctl
    fi
    for image in "${images[@]}"; do
        docker image inspect "$image" >/dev/null 2>&1 || die "$image missing: run scripts/build-platform-images.sh"
    done
    [[ -x "$leafctl" ]] || die "$leafctl missing: cargo build -p leaf --bin leafctl"
}

# Waits until the leaf at $1 answers State.
wait_for_leaf() {
    local address="$1" deadline=$((SECONDS + 60))
    until "$leafctl" --address "$address" --deadline 2s state >/dev/null 2>&1; do
        (( SECONDS < deadline )) || { echo "compose: the leaf at $address did not answer within 60 s" >&2; return 1; }
        sleep 0.5
    done
    echo "leaf answers at $address"
}

smoke() {
    local address="${1:-127.0.0.1:50050}"
    local f
    f="$("$leafctl" --address "$address" create hyperfaas-echo:latest --memory 64MB --timeout 30s)"
    echo "created function $f"
    local out
    out="$("$leafctl" --address "$address" call "$f" "hello from $(hostname)" 2>/dev/null)"
    [[ "$out" == "hello from $(hostname)" ]] || die "unexpected answer: $out"
    echo "called it: $out"
}

# Function containers the compose workers started (they remove them on
# SIGTERM; this catches a worker that was killed).
remove_function_containers() {
    local ids
    ids="$(docker ps -aq --filter label=hyperfake.deployment=compose)"
    [[ -z "$ids" ]] || docker rm -f $ids >/dev/null
}

up() {
    build
    "${compose[@]}" up -d
    wait_for_leaf "127.0.0.1:${HYPERFAKE_LEAF_PORT:-50050}"
}

down() {
    "${compose[@]}" down --volumes --rmi all --remove-orphans --timeout 20
    remove_function_containers
    docker network rm hyperfake >/dev/null 2>&1 || true
    echo "removed containers, images (${images[*]}), volume and network of project $project"
}

swarm_test() {
    build
    initialised=0
    if [[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]]; then
        docker swarm init --advertise-addr 127.0.0.1 >/dev/null
        initialised=1
        echo "initialised a single-node swarm (left again at the end)"
    fi
    local port="${HYPERFAKE_LEAF_PORT:-50050}"
    had_gwbridge=0
    docker network inspect docker_gwbridge >/dev/null 2>&1 && had_gwbridge=1
    cleanup() {
        docker stack rm "$stack" >/dev/null 2>&1 || true
        # Services go first; wait for their containers, then remove what the workers started.
        local deadline=$((SECONDS + 60))
        while [[ -n "$(docker ps -aq --filter "label=com.docker.stack.namespace=$stack")" ]] && (( SECONDS < deadline )); do
            sleep 1
        done
        remove_function_containers
        local deadline=$((SECONDS + 30))
        while docker network inspect hyperfake >/dev/null 2>&1 && (( SECONDS < deadline )); do
            docker network rm hyperfake >/dev/null 2>&1 || sleep 1
        done
        docker volume rm "${stack}_database" >/dev/null 2>&1 || true
        if [[ $initialised == 1 ]]; then
            docker swarm leave --force >/dev/null
            # Created by swarm init; not removed by leaving.
            [[ $had_gwbridge == 1 ]] || docker network rm docker_gwbridge >/dev/null 2>&1 || true
            echo "left the swarm"
        fi
    }
    trap cleanup EXIT
    HYPERFAKE_NETWORK_DRIVER=overlay HYPERFAKE_LEAF_PORT="$port" \
        docker stack deploy --resolve-image never -c "$repo/compose.yaml" "$stack"
    if ! wait_for_leaf "127.0.0.1:$port"; then
        docker stack ps "$stack" --no-trunc
        docker service logs --tail 20 "${stack}_leaf" 2>&1 || true
        exit 1
    fi
    smoke "127.0.0.1:$port"
    docker stack ps "$stack" --format '{{.Name}} {{.Node}} {{.CurrentState}}'
    echo "swarm test passed"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    smoke) smoke "${2:-127.0.0.1:${HYPERFAKE_LEAF_PORT:-50050}}" ;;
    swarm-test) swarm_test ;;
    *) die "usage: $0 up|smoke|down|swarm-test" ;;
esac
