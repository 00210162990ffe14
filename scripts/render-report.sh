#!/usr/bin/env bash
# render-report.sh <html> <png>: renders an HTML report (e.g. reports/<run>/fidelity.html)
# in headless Chromium (Debian's `chromium` package) and writes a PNG screenshot,
# so a pipeline can check the page as a reader sees it.
#
# Fails (exit 1, naming what) when chromium is missing or fails, or when the PNG
# is missing, empty or not a PNG.
#
# Environment:
#   RENDER_WINDOW   window size WIDTH,HEIGHT in px (default 1400,6000: a fidelity
#                   report of five functions); the screenshot is the window, so a
#                   taller page needs a taller window
#   RENDER_TIMEOUT  seconds before chromium is given up on (default 120)
#   CHROMIUM        the browser binary (default: chromium, else chromium-browser)
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

if [[ $# -ne 2 ]]; then
    echo "usage: $0 <html> <png>" >&2
    exit 2
fi
html="$1" png="$2"
window="${RENDER_WINDOW:-1400,6000}"
timeout_s="${RENDER_TIMEOUT:-120}"

[[ -f "$html" ]] || die "$html: no such file"
[[ "$window" =~ ^[0-9]+,[0-9]+$ ]] || die "RENDER_WINDOW=$window: expected WIDTH,HEIGHT"

browser="${CHROMIUM:-}"
if [[ -z "$browser" ]]; then
    for b in chromium chromium-browser; do
        if command -v "$b" >/dev/null 2>&1; then browser="$b"; break; fi
    done
fi
[[ -n "$browser" ]] && command -v "$browser" >/dev/null 2>&1 ||
    die "chromium not found (Debian: apt-get install -y chromium; or set CHROMIUM)"

html_abs="$(realpath "$html")"
mkdir -p "$(dirname "$png")"
png_abs="$(realpath -m "$png")"
rm -f "$png_abs"

# A private profile directory: no state shared with another browser, removed afterwards.
profile="$(mktemp -d "${TMPDIR:-/tmp}/render-report.XXXXXX")"
log="$profile/chromium.log"
trap 'rm -rf "$profile"' EXIT

status=0
timeout "$timeout_s" "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$profile/profile" --no-first-run --no-default-browser-check \
    --window-size="$window" --screenshot="$png_abs" "file://$html_abs" >"$log" 2>&1 || status=$?
if [[ $status -ne 0 ]]; then
    tail -n 20 "$log" >&2
    if [[ $status -eq 124 ]]; then die "$browser timed out after ${timeout_s}s rendering $html"; fi
    die "$browser failed (exit $status) rendering $html"
fi
if [[ ! -s "$png_abs" ]]; then
    tail -n 20 "$log" >&2
    die "$browser wrote no screenshot (or an empty one) at $png"
fi
if [[ "$(head -c 8 "$png_abs" | od -An -tx1 | tr -d ' \n')" != "89504e470d0a1a0a" ]]; then
    die "$png is not a PNG"
fi
echo "rendered $html -> $png ($(stat -c %s "$png_abs") bytes, window $window)"
