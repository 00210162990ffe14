# shellcheck shell=bash
# Shared by the image build scripts: builds a `FROM scratch` image holding one
# static binary. Source it, then:
#
#   build_scratch_image <tag> <binary> [--label key=value ...] [--expose port ...]
#
# Prints "<tag> <short id> <size MB>". The image an updated tag replaced is
# removed. No image is pulled: the classic builder never contacts a registry
# for FROM scratch.

# Fails when "$1" is dynamically linked: it would fail in a scratch image with
# a confusing "no such file or directory".
require_static() {
    local binary="$1"
    if ldd "$binary" >/dev/null 2>&1 && ! ldd "$binary" 2>&1 | grep -q "statically linked"; then
        echo "$binary is dynamically linked: $(ldd "$binary" 2>&1 | tr '\n' ' ')" >&2
        return 1
    fi
}

build_scratch_image() {
    local tag="$1" binary="$2"; shift 2
    local name; name="$(basename "$binary")"
    local labels=() expose=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --label) labels+=(--label "$2"); shift 2 ;;
            --expose) expose+="EXPOSE $2"$'\n'; shift 2 ;;
            *) echo "build_scratch_image: unknown option $1" >&2; return 1 ;;
        esac
    done
    [[ -x "$binary" ]] || { echo "$binary was not built" >&2; return 1; }
    require_static "$binary" || return 1
    local context build_log
    context="$(mktemp -d)"
    build_log="$(mktemp)"
    cp "$binary" "$context/$name"
    cat >"$context/Dockerfile" <<DOCKERFILE
FROM scratch
COPY $name /$name
${expose}ENTRYPOINT ["/$name"]
DOCKERFILE
    local previous id size
    previous="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
    # The CLI warns that the classic builder is deprecated on every build;
    # keep its output for when the build fails.
    if ! id="$(DOCKER_BUILDKIT=0 docker build --quiet "${labels[@]}" --tag "$tag" "$context" 2>"$build_log")"; then
        cat "$build_log" >&2
        rm -rf "$context" "$build_log"
        echo "docker build of $tag failed" >&2
        return 1
    fi
    rm -rf "$context" "$build_log"
    if [[ -n "$previous" && "$previous" != "$id" ]]; then
        # The replaced image is now untagged; drop it unless a container still uses it.
        docker image rm "$previous" >/dev/null 2>&1 || true
    fi
    size="$(docker image inspect --format '{{.Size}}' "$tag")"
    printf '  %-28s %s  %s MB\n' "$tag" "${id:7:12}" "$(awk -v bytes="$size" 'BEGIN { printf "%.1f", bytes / 1e6 }')"
}
