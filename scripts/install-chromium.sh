#!/usr/bin/env bash
# Installs headless Chromium from Debian's packages when it is missing, so
# scripts/render-report.sh can check a report as a reader sees it. Prints the
# browser's path. Needs root and apt-get (CI and the development machines run
# as root); says so plainly otherwise.
set -euo pipefail

for b in chromium chromium-browser; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; exit 0; fi
done
command -v apt-get >/dev/null 2>&1 || { echo "install-chromium: no chromium and no apt-get; install Chromium and set CHROMIUM" >&2; exit 1; }
[[ "$(id -u)" == 0 ]] || { echo "install-chromium: no chromium; run as root or: apt-get install -y chromium" >&2; exit 1; }
echo "install-chromium: installing chromium from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium >&2
command -v chromium
