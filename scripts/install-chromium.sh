#!/usr/bin/env bash
# Installs headless Chromium from Debian's packages when it is missing, so
# scripts/render-report.sh can check a report as a reader sees it. Prints the
# browser's path. Needs root and apt-get (CI and the development machines run
# as root); says so plainly otherwise.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

for b in chromium chromium-browser; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; exit 0; fi
done
command -v apt-get >/dev/null 2>&1 || die "no chromium and no apt-get; install Chromium and set CHROMIUM"
[[ "$(id -u)" == 0 ]] || die "no chromium; run as root or: apt-get install -y chromium"
echo "install-chromium: installing chromium from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium >&2
command -v chromium
