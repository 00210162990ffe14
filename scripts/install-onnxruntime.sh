#!/usr/bin/env bash
# Installs the ONNX Runtime shared library that the trainer and the fake worker
# load at run time (the `ort` crate is built with `load-dynamic`, because its
# build-time download cannot reach its host from here). The library comes from
# the onnxruntime wheel on PyPI: it needs only glibc and libstdc++.
#
# Idempotent: does nothing when the library is already there. Prints its path.
# Use it with: export ORT_DYLIB_PATH="$(scripts/install-onnxruntime.sh)"
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

VERSION="1.31.1"
LIB="libonnxruntime.so.${VERSION}"
DEST="$hyperfake_cache/onnxruntime"

if [[ -f "$DEST/$LIB" ]]; then
    echo "$DEST/$LIB"
    exit 0
fi

if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    PIP=(python3 -m pip)
elif command -v pip3 >/dev/null 2>&1; then
    PIP=(pip3)
else
    die "pip is needed (apt-get install python3-pip)"
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

"${PIP[@]}" download --quiet --no-deps --only-binary=:all: --dest "$TMP" "onnxruntime==${VERSION}" >&2
WHEEL="$(ls "$TMP"/onnxruntime-"${VERSION}"-*.whl | head -n1)"

# A wheel is a zip file; python's zipfile avoids depending on `unzip`.
python3 - "$WHEEL" "$TMP" "onnxruntime/capi/${LIB}" <<'PY'
import sys, zipfile
wheel, dest, member = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    z.extract(member, dest)
PY

mkdir -p "$DEST"
# Write then rename, so a concurrent reader never sees half a library.
cp "$TMP/onnxruntime/capi/${LIB}" "$DEST/.${LIB}.tmp"
mv "$DEST/.${LIB}.tmp" "$DEST/$LIB"
echo "$DEST/$LIB"
