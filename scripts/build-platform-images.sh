#!/usr/bin/env bash
# Builds the platform's images for containerized mode (compose.yaml):
# hyperfake-database, hyperfake-worker and hyperfake-leaf (:latest), and
# hyperfake-fakeworker (the swarm stack's simulated workers, swarm-stack.yaml),
# each FROM scratch with one static binary, labelled hyperfake.managed=true. Same
# profile and target as the function images, so they share build artifacts.
# Builds into CARGO_TARGET_DIR (default ~/.cache/hyperfake/target).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/common.sh
source "$repo/scripts/lib/common.sh"
# shellcheck source=lib/scratch-image.sh
source "$repo/scripts/lib/scratch-image.sh"
target=x86_64-unknown-linux-gnu
profile=function-image
command -v cargo >/dev/null || die "cargo not found"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (docker info failed)"

start=$SECONDS
echo "building static binaries (profile $profile): database worker leaf"
# With --target given, RUSTFLAGS reaches only the target artifacts, not build
# scripts or proc-macros, which must stay dynamically linked to run on the host.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet \
    --manifest-path "$repo/Cargo.toml" --profile "$profile" --target "$target" \
    -p database -p worker -p leaf --bin database --bin worker --bin leaf
# A cargo invocation of its own, so that the fake worker's dependencies (the
# model crates) do not change the features, and so the builds, of the three
# above. In a scratch image it serves JSON models; ONNX models would need the
# ONNX Runtime library (a shared library, with libstdc++), which it lacks.
echo "building static binary (profile $profile): fakeworker"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet \
    --manifest-path "$repo/Cargo.toml" --profile "$profile" --target "$target" \
    -p fakeworker --bin fakeworker
out_dir="$CARGO_TARGET_DIR/$target/$profile"
build_scratch_image hyperfake-database:latest "$out_dir/database" \
    --label "$hyperfake_label_managed=true" --expose 8999 || die "database image"
build_scratch_image hyperfake-worker:latest "$out_dir/worker" \
    --label "$hyperfake_label_managed=true" --expose 50051 || die "worker image"
build_scratch_image hyperfake-leaf:latest "$out_dir/leaf" \
    --label "$hyperfake_label_managed=true" --expose 50050 || die "leaf image"
build_scratch_image hyperfake-fakeworker:latest "$out_dir/fakeworker" \
    --label "$hyperfake_label_managed=true" --expose 50051 || die "fakeworker image"
echo "built 4 images in $((SECONDS - start)) s"
