#!/usr/bin/env bash
# A local hyperfake platform as host processes: database, N workers, a leaf
# over them and, optionally, a load-balancer node over the leaf.
#
#   scripts/platform.sh up      # build (if needed) and start; prints the addresses
#   scripts/platform.sh status  # which processes run
#   scripts/platform.sh down    # SIGTERM everything (workers remove their containers)
#
# Settings (environment):
#   WORKERS=2            number of workers
#   LB=0                 1 adds a load-balancer node in front of the leaf
#   DATABASE_PORT=8999  WORKER_PORT=50051 (first; the others follow)
#   LEAF_PORT=50050      LB_PORT=50049
#   RUN_DIR=<repo>/target/platform   pid files, logs and the SQLite file
#   PROFILE=dev          cargo profile of the binaries (release for measurements)
#   LEAF_ARGS=""         extra flags for the leaf (e.g. "--max-instances 4")
#   SKIP_BUILD=0         1 uses the binaries already built (else: the whole
#                        workspace, as the tests build it, into CARGO_TARGET_DIR,
#                        default ~/.cache/hyperfake/target)
#   WORKER_KIND=real     fake runs fakeworker (models instead of containers)
#   FAKE_MODELS=<repo>/models/deployed   models directory of the fake workers
#   FAKE_SEED=<n>                         seed of the fake workers' draws (worker i gets n + i)
#   FAKEWORKER_ARGS=""   extra flags for each fake worker
#   HYPERFAKE_TOKEN_FILE the shared token file every process requires (default:
#                        ~/.cache/hyperfake/token, generated with a random token,
#                        mode 0600, if missing; HYPERFAKE_TOKEN is written to a
#                        file first). Clients: export HYPERFAKE_TOKEN_FILE=<it>.
#
# Every process listens on 127.0.0.1 only and requires the token (README.md,
# "Security"): other users of this host cannot use the platform.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/common.sh
source "$repo/scripts/lib/common.sh"
workers="${WORKERS:-2}"
lb="${LB:-0}"
database_port="${DATABASE_PORT:-8999}"
worker_port="${WORKER_PORT:-50051}"
leaf_port="${LEAF_PORT:-50050}"
lb_port="${LB_PORT:-50049}"
run_dir="${RUN_DIR:-$repo/target/platform}"
profile="${PROFILE:-dev}"
bin_dir="$(profile_dir "$profile")"

# Starts "$name" in the background; waits for its "listening"/address line.
start() {
    local name="$1"; shift
    local log="$run_dir/$name.log" out="$run_dir/$name.out"
    "$@" >"$out" 2>"$log" &
    echo $! >"$run_dir/$name.pid"
    local deadline=$((SECONDS + 30))
    until [[ -s "$out" ]]; do
        if ! kill -0 "$(cat "$run_dir/$name.pid")" 2>/dev/null; then
            tail -n 20 "$log" >&2
            die "$name exited during startup (log: $log)"
        fi
        (( SECONDS < deadline )) || die "$name did not report its address within 30 s (log: $log)"
        sleep 0.1
    done
    printf '  %-10s pid %-7s %s\n' "$name" "$(cat "$run_dir/$name.pid")" "$(head -n 1 "$out")"
}

up() {
    command -v cargo >/dev/null || die "cargo not found"
    docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (the workers need it)"
    [[ -z "$(ls "$run_dir"/*.pid 2>/dev/null)" ]] || die "already running (scripts/platform.sh down first)"
    mkdir -p "$run_dir"
    # A failed start leaves nothing running behind.
    trap 'echo "platform: startup failed; stopping what was started" >&2; down' EXIT
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        echo "building the workspace (profile $profile) into $CARGO_TARGET_DIR"
        build_workspace "$profile"
    fi
    # Exported: every process below reads it (never a --token on a command line).
    use_token_file
    local worker_addresses=()
    start database "$bin_dir/database" --address "127.0.0.1:$database_port" --db "$run_dir/functions.db"
    for ((i = 0; i < workers; i++)); do
        local address="127.0.0.1:$((worker_port + i))"
        if [[ "${WORKER_KIND:-real}" == fake ]]; then
            # shellcheck disable=SC2086 # FAKEWORKER_ARGS is a list of flags
            start "worker-$i" "$bin_dir/fakeworker" --address "$address" --database "127.0.0.1:$database_port" \
                --worker-id "platform-fakeworker-$i" --models "${FAKE_MODELS:-$repo/models/deployed}" \
                ${FAKE_SEED:+--seed $((FAKE_SEED + i))} ${FAKEWORKER_ARGS:-}
        else
            start "worker-$i" "$bin_dir/worker" --address "$address" --database "127.0.0.1:$database_port" \
                --worker-id "platform-worker-$i"
        fi
        worker_addresses+=("$address")
    done
    local IFS=,
    # shellcheck disable=SC2086 # LEAF_ARGS is a list of flags
    start leaf "$bin_dir/leaf" --address "127.0.0.1:$leaf_port" --database "127.0.0.1:$database_port" \
        --worker "${worker_addresses[*]}" ${LEAF_ARGS:-}
    unset IFS
    local entry="127.0.0.1:$leaf_port"
    if [[ "$lb" == 1 ]]; then
        start lb "$bin_dir/leaf" --address "127.0.0.1:$lb_port" --database "127.0.0.1:$database_port" \
            --child "127.0.0.1:$leaf_port"
        entry="127.0.0.1:$lb_port"
    fi
    trap - EXIT
    echo "platform up: call leaf.Leaf at $entry (logs in $run_dir)"
    echo "  try: HYPERFAKE_TOKEN_FILE=$HYPERFAKE_TOKEN_FILE $bin_dir/leafctl --address $entry create hyperfaas-echo:latest"
}

down() {
    local stopped=0
    # Front to back, so nothing forwards to a node that is already gone.
    for name in lb leaf $(cd "$run_dir" 2>/dev/null && ls worker-*.pid 2>/dev/null | sed 's/\.pid$//') database; do
        local pid_file="$run_dir/$name.pid"
        [[ -f "$pid_file" ]] || continue
        local pid; pid="$(cat "$pid_file")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            local deadline=$((SECONDS + 15))
            while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.1; done
            if kill -0 "$pid" 2>/dev/null; then
                echo "  $name (pid $pid) ignored SIGTERM for 15 s; killing it" >&2
                kill -KILL "$pid" 2>/dev/null || true
            fi
            stopped=$((stopped + 1))
        fi
        rm -f "$pid_file" "$run_dir/$name.out"
    done
    echo "platform down: stopped $stopped process(es)"
}

status() {
    local any=0
    for pid_file in "$run_dir"/*.pid; do
        [[ -f "$pid_file" ]] || continue
        any=1
        local name; name="$(basename "$pid_file" .pid)"
        local pid; pid="$(cat "$pid_file")"
        if kill -0 "$pid" 2>/dev/null; then
            printf '  %-10s pid %-7s running  %s\n' "$name" "$pid" "$(head -n 1 "$run_dir/$name.out" 2>/dev/null)"
        else
            printf '  %-10s pid %-7s exited   (log: %s)\n' "$name" "$pid" "$run_dir/$name.log"
        fi
    done
    [[ $any == 1 ]] || echo "platform not running"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: $0 up|down|status" ;;
esac
