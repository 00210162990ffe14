# shellcheck shell=bash
# Shared by every script in scripts/: where builds go, where a cargo profile's
# binaries are, `die`, building the workspace, waiting for a leaf, and removing
# what a deployment left in Docker. Source it right after `set -euo pipefail`:
#
#   # shellcheck source=lib/common.sh
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
#
# Exports CARGO_TARGET_DIR; sets hyperfake_repo (the repository root),
# hyperfake_cache and the label names below.

[[ -z "${hyperfake_common_loaded:-}" ]] || return 0
hyperfake_common_loaded=1

hyperfake_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# The name `die` prefixes messages with: the script that was run.
hyperfake_script="$(basename "$0" .sh)"
# Downloads and build artifacts that outlive a clone.
hyperfake_cache="${HYPERFAKE_CACHE:-$HOME/.cache/hyperfake}"
# One build directory for the scripts, the pipelines and the tests
# (scripts/test.sh): whichever builds first, the others reuse it, instead of a
# second full build in ./target.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$hyperfake_cache/target}"

hyperfake_label_managed=hyperfake.managed        # hyperfake_core::defaults::LABEL_MANAGED
hyperfake_label_deployment=hyperfake.deployment  # compose.yaml; workers put it on their containers (--label)

# die <message>: prints "<script>: <message>" to stderr and exits 1.
die() {
    echo "$hyperfake_script: $*" >&2
    exit 1
}

# newest_models <set> <workload.yaml>: the newest committed model set named
# <set> (models/<run>/<set>: a directory of per-image models such as
# random-forest, or a JSON set such as linear.json) that has a model for every
# image the workload calls, as a path; nothing when no set has them all. The
# newest set by name is not enough: a later pipeline run of another workload
# (the Azure trace example) holds only its own images. Run ids start with
# their UTC time, so the names sort by age.
newest_models() {
    local set="$1" workload="$2" candidate image images
    mapfile -t images < <(grep -oE 'image_tag: *[^ },]+' "$workload" | sed 's/image_tag: *//' | sort -u)
    for candidate in $(ls -d "$hyperfake_repo"/models/*/"$set" 2>/dev/null | sort -r); do
        for image in "${images[@]}"; do
            if [[ -d "$candidate" ]]; then
                [[ -e "$candidate/${image%%:*}.onnx" || -e "$candidate/${image%%:*}.json" ]] || continue 2
            else
                grep -q "\"$image\"" "$candidate" || continue 2
            fi
        done
        echo "$candidate"
        return 0
    done
}

# profile_dir <profile>: the directory a cargo profile's binaries go to
# (cargo names the dev profile's directory `debug`).
profile_dir() {
    if [[ "$1" == dev ]]; then
        echo "$CARGO_TARGET_DIR/debug"
    else
        echo "$CARGO_TARGET_DIR/$1"
    fi
}

# build_workspace <profile>: every binary of the workspace, built as `cargo test
# --workspace` builds (whole workspace, all targets). Cargo hashes each
# dependency with the features of the packages selected, so building a subset
# (`-p leaf ...`) compiles the shared dependencies a second time next to the
# tests' build. One selection, one dependency build, shared by every script,
# the pipelines and scripts/test.sh.
build_workspace() {
    cargo build --quiet --manifest-path "$hyperfake_repo/Cargo.toml" --profile "$1" --workspace --all-targets
}

# wait_for_leaf <leafctl> <address> [seconds, default 60]: polls the leaf's
# State until it answers. Returns 1, saying so, when it has not within the time.
wait_for_leaf() {
    local leafctl="$1" address="$2" seconds="${3:-60}"
    local deadline=$((SECONDS + seconds))
    until "$leafctl" --address "$address" --deadline 2s state >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "$hyperfake_script: the leaf at $address did not answer within $seconds s" >&2
            return 1
        fi
        sleep 0.5
    done
    echo "leaf answers at $address"
}

# remove_deployment <deployment>: removes the containers and networks labelled
# hyperfake.managed=true and hyperfake.deployment=<deployment>: what is left
# of a containerized platform, and the function containers its workers
# started (they remove them on SIGTERM; this catches a worker that was
# killed). A network still in use is left.
remove_deployment() {
    local filters=(--filter "label=$hyperfake_label_managed=true" --filter "label=$hyperfake_label_deployment=${1:?a deployment}")
    local ids=()
    mapfile -t ids < <(docker ps -aq "${filters[@]}")
    ((${#ids[@]} == 0)) || docker rm -f "${ids[@]}" >/dev/null
    mapfile -t ids < <(docker network ls -q "${filters[@]}")
    ((${#ids[@]} == 0)) || docker network rm "${ids[@]}" >/dev/null 2>&1 || true
}

# use_token_file: makes HYPERFAKE_TOKEN_FILE name the shared token file the
# platform requires and its clients send (README.md, "Security"), and exports
# it; every binary reads that variable. In order:
# - HYPERFAKE_TOKEN_FILE set: that file (made absolute, for compose's mount);
# - HYPERFAKE_TOKEN set: written to $hyperfake_cache/token-from-env and
#   HYPERFAKE_TOKEN unset (a binary given both refuses to start);
# - neither: $hyperfake_cache/token, created with a random token if missing,
#   so the next start and the clients of this machine find the same one.
# Files this writes are mode 0600: the binaries refuse a token file that group
# or others may read. Prints where the token is.
use_token_file() {
    if [[ -n "${HYPERFAKE_TOKEN_FILE:-}" ]]; then
        [[ -z "${HYPERFAKE_TOKEN:-}" ]] || die "HYPERFAKE_TOKEN and HYPERFAKE_TOKEN_FILE are both set: keep one"
        [[ -f "$HYPERFAKE_TOKEN_FILE" ]] || die "HYPERFAKE_TOKEN_FILE=$HYPERFAKE_TOKEN_FILE is not a file"
        HYPERFAKE_TOKEN_FILE="$(realpath "$HYPERFAKE_TOKEN_FILE")"
        export HYPERFAKE_TOKEN_FILE
        echo "shared token: $HYPERFAKE_TOKEN_FILE (HYPERFAKE_TOKEN_FILE)"
        return 0
    fi
    mkdir -p "$hyperfake_cache"
    local file="$hyperfake_cache/token"
    if [[ -n "${HYPERFAKE_TOKEN:-}" ]]; then
        file="$hyperfake_cache/token-from-env"
        write_token_file "$file" "$HYPERFAKE_TOKEN"
        unset HYPERFAKE_TOKEN
    elif [[ ! -s "$file" ]]; then
        write_token_file "$file" "$(new_token)"
        echo "generated a shared token"
    fi
    chmod 600 "$file"
    export HYPERFAKE_TOKEN_FILE="$file"
    echo "shared token: $file (clients: export HYPERFAKE_TOKEN_FILE=$file)"
}

# new_token: 32 random bytes as hex.
new_token() {
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

# write_token_file <path> <token>: writes the token, mode 0600 from the first
# byte (printf is a builtin: the token never appears in a process list).
write_token_file() {
    rm -f "$1"
    (umask 077 && printf '%s\n' "$2" >"$1")
}
