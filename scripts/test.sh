#!/usr/bin/env bash
# The project's test command (README quick start; CI runs exactly this via .ci/run).
#
# Installs what the tests need on a fresh machine (the ONNX Runtime library
# from its PyPI wheel, the function images built FROM scratch), then runs
# every crate's tests against the real Docker engine. Fails, never skips,
# when Docker or another dependency is missing.
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$hyperfake_repo"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

docker info >/dev/null 2>&1 || die "the Docker engine is not reachable; the integration tests need it"

ORT_DYLIB_PATH="$(scripts/install-onnxruntime.sh | tail -n 1)"
export ORT_DYLIB_PATH
# The two-host test renders its fidelity report in headless Chromium.
CHROMIUM="$(scripts/install-chromium.sh | tail -n 1)"
export CHROMIUM

scripts/build-function-images.sh
# The two-host test runs the containerized platform (database, worker, leaf images).
scripts/build-platform-images.sh

# One cargo invocation: it builds every package's binaries before running any
# test (each package with binaries has integration tests), which the tests that
# run other crates' binaries as processes rely on (the leaf kills a worker; the
# two-host test runs the pipeline scripts). A separate `cargo build` would
# resolve features differently and compile the dependencies a second time.
cargo test --workspace --no-fail-fast "$@"

# Every fuzz target a few seconds on its committed corpus (issue 14; the long
# runs are `scripts/fuzz.sh [SECONDS]`): a parser that panics on an input
# the corpus already holds fails CI. cargo-fuzz runs on stable with -s none.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz
scripts/fuzz.sh --smoke 3
