#!/usr/bin/env bash
# Builds the platform's images for containerized mode (compose.yaml):
# hyperfake-database, hyperfake-worker and hyperfake-leaf (:latest), each FROM
# scratch with one static binary, labelled hyperfake.managed=true. Same
# profile and target as the function images, so they share build artifacts.
# Uses CARGO_TARGET_DIR if set.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/scratch-image.sh
source "$repo/scripts/lib/scratch-image.sh"
target=x86_64-unknown-linux-gnu
profile=function-image
managed_label=hyperfake.managed  # hyperfake_core::defaults::LABEL_MANAGED

die() { echo "build-platform-images: $*" >&2; exit 1; }
command -v cargo >/dev/null || die "cargo not found"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (docker info failed)"

start=$SECONDS
echo "building static binaries (profile $profile): database worker leaf"
# With --target given, RUSTFLAGS reaches only the target artifacts, not build
# scripts or proc-macros, which must stay dynamically linked to run on the host.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet \
    --manifest-path "$repo/Cargo.toml" --profile "$profile" --target "$target" \
    -p database -p worker -p leaf --bin database --bin worker --bin leaf
out_dir="${CARGO_TARGET_DIR:-$repo/target}/$target/$profile"
build_scratch_image hyperfake-database:latest "$out_dir/database" \
    --label "$managed_label=true" --expose 8999 || die "database image"
build_scratch_image hyperfake-worker:latest "$out_dir/worker" \
    --label "$managed_label=true" --expose 50051 || die "worker image"
build_scratch_image hyperfake-leaf:latest "$out_dir/leaf" \
    --label "$managed_label=true" --expose 50050 || die "leaf image"
echo "built 3 images in $((SECONDS - start)) s"
