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
# on; HYPERFAKE_PUBLISH_ADDR (127.0.0.1), the host address it is published on
# (0.0.0.0: every interface; read README.md, "Security", first);
# HYPERFAKE_TOKEN_FILE, the shared token file (default: ~/.cache/hyperfake/token,
# generated with a random token, mode 0600, if missing; HYPERFAKE_TOKEN is
# written to a file first); SKIP_BUILD=1 to reuse built images and binaries
# (leafctl: the dev profile's, in CARGO_TARGET_DIR, default ~/.cache/hyperfake/target).
#
# Every service requires the token; clients send it with
# `export HYPERFAKE_TOKEN_FILE=<the file printed>`.
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
    use_token_file
    "${compose[@]}" up -d
    wait_for_leaf "$leafctl" "127.0.0.1:${HYPERFAKE_LEAF_PORT:-50050}"
}

down() {
    # compose.yaml requires the variable; removing needs no token.
    HYPERFAKE_TOKEN_FILE="${HYPERFAKE_TOKEN_FILE:-$hyperfake_cache/token}" \
        "${compose[@]}" down --volumes --rmi all --remove-orphans --timeout 20
    remove_deployment "$deployment"
    echo "removed containers, images (${images[*]}), volume and networks of project $project"
}

swarm_test() {
    build
    use_token_file
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
        local network deadline
        for network in hyperfake hyperfake-functions; do
            deadline=$((SECONDS + 30))
            while docker network inspect "$network" >/dev/null 2>&1 && (( SECONDS < deadline )); do
                docker network rm "$network" >/dev/null 2>&1 || sleep 1
            done
        done
        rm -f "$swarm_file"
        docker volume rm "${stack}_database" >/dev/null 2>&1 || true
        if [[ $initialised == 1 ]]; then
            docker swarm leave --force >/dev/null
            # Created by swarm init; not removed by leaving.
            [[ $had_gwbridge == 1 ]] || docker network rm docker_gwbridge >/dev/null 2>&1 || true
            echo "left the swarm"
        fi
    }
    # A swarm cannot publish on one address, and its ingress routing mesh needs
    # IPVS, which not every kernel has: the leaf's port line, rewritten to host
    # mode (every interface of the node running the leaf; the token guards it).
    swarm_file="$(mktemp -t hyperfake-swarm.XXXXXX.yaml)"
    trap cleanup EXIT
    local published='      - "${HYPERFAKE_PUBLISH_ADDR:-127.0.0.1}:${HYPERFAKE_LEAF_PORT:-50050}:50050"'
    grep -qxF "$published" "$repo/compose.yaml" || die "compose.yaml: the leaf's port line changed; update swarm_test"
    awk -v line="$published" -v port="$port" \
        '$0 == line { print "      - { target: 50050, published: " port ", protocol: tcp, mode: host }"; next } { print }' \
        "$repo/compose.yaml" >"$swarm_file"
    HYPERFAKE_NETWORK_DRIVER=overlay \
        docker stack deploy --resolve-image never -c "$swarm_file" "$stack"
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
    smoke) use_token_file && smoke "${2:-127.0.0.1:${HYPERFAKE_LEAF_PORT:-50050}}" ;;
    swarm-test) swarm_test ;;
    *) die "usage: $0 up|smoke|down|swarm-test" ;;
esac
