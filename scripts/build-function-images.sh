#!/usr/bin/env bash
# Builds the Docker image of every function: hyperfaas-<name>:latest, FROM
# scratch with one static binary, labelled hyperfake.managed=true.
#
#   scripts/build-function-images.sh            # every binary in functions/src/bin
#   scripts/build-function-images.sh echo bfs   # just these
#
# No image is pulled (the engine may have no registry access): the binaries
# are linked statically against glibc, so the image needs nothing else.
# Re-running rebuilds only what changed; the image an updated tag replaced is
# removed. Builds into CARGO_TARGET_DIR (default ~/.cache/hyperfake/target).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/common.sh
source "$repo/scripts/lib/common.sh"
# shellcheck source=lib/scratch-image.sh
source "$repo/scripts/lib/scratch-image.sh"
bin_dir="$repo/functions/src/bin"
target=x86_64-unknown-linux-gnu
profile=function-image
image_prefix=hyperfaas-          # hyperfake_core::defaults::IMAGE_PREFIX
function_label=hyperfake.function  # hyperfake_core::defaults::LABEL_FUNCTION
port=50052                       # hyperfake_core::defaults::FUNCTION_PORT

command -v cargo >/dev/null || die "cargo not found"
command -v docker >/dev/null || die "docker not found"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (docker info failed)"

# The function list is the set of binaries (functions::NAMES mirrors it).
all_names=()
for file in "$bin_dir"/*.rs; do
    all_names+=("$(basename "$file" .rs)")
done
[[ ${#all_names[@]} -gt 0 ]] || die "no function binaries in $bin_dir"
if [[ $# -gt 0 ]]; then
    names=("$@")
    for name in "${names[@]}"; do
        [[ -f "$bin_dir/$name.rs" ]] || die "unknown function '$name' (known: ${all_names[*]})"
    done
else
    names=("${all_names[@]}")
fi

start=$SECONDS
bin_args=()
for name in "${names[@]}"; do bin_args+=(--bin "$name"); done
echo "building ${#names[@]} static binaries (profile $profile): ${names[*]}"
# With --target given, RUSTFLAGS reaches only the target artifacts, not build
# scripts or proc-macros, which must stay dynamically linked to run on the host.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet \
    --manifest-path "$repo/Cargo.toml" -p functions \
    --profile "$profile" --target "$target" "${bin_args[@]}"

out_dir="$CARGO_TARGET_DIR/$target/$profile"
for name in "${names[@]}"; do
    build_scratch_image "${image_prefix}${name}:latest" "$out_dir/$name" \
        --label "$hyperfake_label_managed=true" --label "$function_label=$name" --expose "$port" \
        || die "image of $name"
done
echo "built ${#names[@]} images in $((SECONDS - start)) s"
