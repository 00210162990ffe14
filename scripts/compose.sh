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
# on; SKIP_BUILD=1 to reuse built images and binaries (leafctl: the dev profile's,
# in CARGO_TARGET_DIR, default ~/.cache/hyperfake/target).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/common.sh
source "$repo/scripts/lib/common.sh"
project=hyperfake
stack=hyperfake
deployment=compose  # the hyperfake.deployment label compose.yaml defaults to
compose=(docker-compose -p "$project" -f "$repo/compose.yaml")
leafctl="$(profile_dir dev)/leafctl"
images=(hyperfake-database:latest hyperfake-worker:latest hyperfake-leaf:latest)

build() {
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        "$repo/scripts/build-platform-images.sh"
        build_workspace dev
    fi
    for image in "${images[@]}"; do
        docker image inspect "$image" >/dev/null 2>&1 || die "$image missing: run scripts/build-platform-images.sh"
    done
    [[ -x "$leafctl" ]] || die "$leafctl missing: build the workspace (cargo build --workspace --all-targets)"
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

up() {
    build
    "${compose[@]}" up -d
    wait_for_leaf "$leafctl" "127.0.0.1:${HYPERFAKE_LEAF_PORT:-50050}"
}

down() {
    "${compose[@]}" down --volumes --rmi all --remove-orphans --timeout 20
    remove_deployment "$deployment"
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
        remove_deployment "$deployment"
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
    if ! wait_for_leaf "$leafctl" "127.0.0.1:$port"; then
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
