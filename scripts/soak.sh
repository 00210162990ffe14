#!/usr/bin/env bash
# The soak test (issue 14, "Measured" 3): an open-loop run of MINUTES minutes
# (default 10) against the fake platform, with scale-to-zero cycles, and its
# report.
#
#   scripts/soak.sh [MINUTES]     (--help: this text)
#
# What runs, all as host processes on 127.0.0.1 (free ports picked here):
# database, 2 fake workers (fakeworker over the committed random forests), a
# leaf over them, a load-balancer node over the leaf, the collector following
# both workers, and loadgen sending configs/soak.yaml repeated once a minute
# (`soak workload`: 40 s of calls, 20 s of quiet; idle timeout 5 s, so every
# instance stops in each gap and every cycle starts cold). `soak sample` reads
# VmRSS and /proc/<pid>/fd of every process and the load average every 5 s.
# When loadgen has ended, the script waits until every idle timeout has
# passed, asks the load-balancer node, the leaf and the workers which
# instances they hold (`soak probe`; also once during the first cycle, to
# show the probe sees instances), stops everything, and writes the report
# (`soak report`): calls due / sent / recorded, errors by code, latency
# p50/p99 per minute and its drift, RSS and open-file slopes per process,
# phantom instances. Exit status 1 when a check failed (the report is
# written anyway).
#
# Settings (environment):
#   PROFILE=dev           cargo profile of the binaries (dev: as the tests and
#                         the pipeline build; release for a clean figure)
#   SKIP_BUILD=0          1 uses the binaries already built
#   OUT=<path>            report path without extension; default
#                         bench-results/soak for a 10-minute run, else
#                         <run dir>/soak (a short run does not replace the
#                         committed report)
#   SOAK_MODELS=<dir>     models of the fake workers (default: the newest
#                         models/*/random-forest with every image of
#                         configs/soak.yaml)
#   SAMPLE_INTERVAL=5s    process sampling interval
#   QUIET=30              seconds to wait after loadgen ends before the probe
#   FAKE_SEED=14          seed of the fake workers' draws (worker i gets +i)
#   SOAK_DIR=target/soak  logs, samples, probe and run database
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
repo="$hyperfake_repo"
cd "$repo"

if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
    # The comment at the top of this file.
    sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
fi
minutes="${1:-10}"
[[ "$minutes" =~ ^[0-9]+$ ]] && ((minutes >= 1 && minutes <= 1440)) \
    || die "MINUTES must be a whole number of minutes from 1 to 1440, not '$minutes'"
profile="${PROFILE:-dev}"
bin="$(profile_dir "$profile")"
quiet="${QUIET:-30}"
[[ "$quiet" =~ ^[0-9]+$ ]] || die "QUIET must be whole seconds, not '$quiet'"
interval="${SAMPLE_INTERVAL:-5s}"
seed="${FAKE_SEED:-14}"
run_id="soak-$(date -u +%Y%m%dT%H%M%SZ)"
# Relative to the repository (the working directory from here on), so that
# the paths in the committed report name no machine's checkout.
dir="${SOAK_DIR:-target/soak}/$run_id"
db="$dir/$run_id.db"
if [[ -n "${OUT:-}" ]]; then
    out="$OUT"
elif ((minutes == 10)); then
    out="bench-results/soak"
else
    out="$dir/soak"
fi
newest="$(newest_models random-forest configs/soak.yaml)"
models="${SOAK_MODELS:-${newest#"$repo"/}}"
[[ -n "$models" && -d "$models" ]] || die "no models for the fake workers (SOAK_MODELS, or a models/*/random-forest with every image of configs/soak.yaml)"
mkdir -p "$dir"

step() { printf '\n==> %s\n' "$*"; }

# Five consecutive free ports: database, load-balancer node, leaf, worker 0, worker 1.
free_base_port() {
    local listening base p taken
    listening="$(ss -ltnH | awk '{print $4}' | sed 's/.*://' | sort -u)"
    for _ in $(seq 1 50); do
        base=$((20000 + RANDOM % 30000))
        taken=0
        for p in $(seq "$base" $((base + 4))); do
            grep -qx "$p" <<<"$listening" && taken=1
        done
        ((taken == 0)) && { echo "$base"; return 0; }
    done
    die "found no 5 free consecutive ports"
}

collector_pid="" loadgen_pid="" sampler_pid=""
cleanup() {
    local pid
    for pid in "$loadgen_pid" "$sampler_pid" "$collector_pid"; do
        [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    done
    RUN_DIR="$dir/platform" "$repo/scripts/platform.sh" down >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    step "building the workspace (profile $profile) into $CARGO_TARGET_DIR"
    build_workspace "$profile"
fi
ORT_DYLIB_PATH="$(scripts/install-onnxruntime.sh | tail -n 1)"
export ORT_DYLIB_PATH
use_token_file

step "workload: configs/soak.yaml, $minutes cycle(s) of one minute"
"$bin/soak" workload configs/soak.yaml --cycles "$minutes" >"$dir/workload.yaml"
"$bin/loadgen" validate "$dir/workload.yaml" | tail -n 3

base="$(free_base_port)"
database="127.0.0.1:$base" lb="127.0.0.1:$((base + 1))" leaf="127.0.0.1:$((base + 2))"
workers=("127.0.0.1:$((base + 3))" "127.0.0.1:$((base + 4))")
step "fake platform: load-balancer node $lb -> leaf $leaf -> fake workers ${workers[*]} (models $models)"
RUN_DIR="$dir/platform" SKIP_BUILD=1 PROFILE="$profile" WORKERS=2 LB=1 WORKER_KIND=fake \
    FAKE_MODELS="$models" FAKE_SEED="$seed" DATABASE_PORT="$base" LB_PORT=$((base + 1)) \
    LEAF_PORT=$((base + 2)) WORKER_PORT=$((base + 3)) scripts/platform.sh up
wait_for_leaf "$bin/leafctl" "$lb"

step "collector + loadgen: $minutes minute(s), run $run_id -> $db"
"$bin/collector" --worker "${workers[0]}" --worker "${workers[1]}" --run-id "$run_id" --db "$db" \
    --no-progress 2>"$dir/collector.log" &
collector_pid=$!
loadgen_args=(run "$dir/workload.yaml" --leaf "$lb" --run-id "$run_id" --out "$db" --database "$database")
if [[ -t 2 ]]; then
    "$bin/loadgen" "${loadgen_args[@]}" 2> >(tee "$dir/loadgen.log" >/dev/null) &
else
    "$bin/loadgen" "${loadgen_args[@]}" --no-progress 2>"$dir/loadgen.log" &
fi
loadgen_pid=$!
processes=()
for name in database lb leaf worker-0 worker-1; do
    processes+=(--process "$name=$(cat "$dir/platform/$name.pid")")
done
"$bin/soak" sample "${processes[@]}" --process "collector=$collector_pid" --process "loadgen=$loadgen_pid" \
    --interval "$interval" --out "$dir/samples.jsonl" 2>"$dir/sampler.log" &
sampler_pid=$!

probe() {
    "$bin/soak" probe --node "lb=$lb" --node "leaf=$leaf" --worker "${workers[0]}" --worker "${workers[1]}" \
        --out "$1" >/dev/null
}

# Progress, also when stderr is not a terminal: one line a minute. 20 s into
# the first cycle, while calls run, the probe is taken once: the report shows
# it sees the instances that exist (a blind probe would find no phantom).
started=$SECONDS
next=60
busy_probe=() busy_taken=0
while kill -0 "$loadgen_pid" 2>/dev/null; do
    if ((busy_taken == 0 && SECONDS - started >= 20)); then
        busy_taken=1
        if probe "$dir/probe-busy.json"; then
            busy_probe=(--busy-probe "$dir/probe-busy.json")
        else
            echo "soak: the probe during calls failed (the report will say so)" >&2
        fi
    fi
    if ((SECONDS - started >= next)); then
        printf '  %3d of %d min  load %s  samples %s lines\n' $((next / 60)) "$minutes" \
            "$(cut -d' ' -f1-3 /proc/loadavg)" "$(wc -l <"$dir/samples.jsonl")"
        next=$((next + 60))
    fi
    sleep 1
done
loadgen_status=0
wait "$loadgen_pid" || loadgen_status=$?
loadgen_pid=""
((loadgen_status == 0)) || echo "soak: loadgen failed (exit $loadgen_status); log: $dir/loadgen.log" >&2

step "waiting ${quiet} s for every idle timeout (5 s) to pass, then asking what exists"
for ((left = quiet; left > 0; left -= 5)); do
    printf '  %3d s left\n' "$left"
    sleep $((left < 5 ? left : 5))
done
probe "$dir/probe.json"

step "stopping the sampler, the collector and the platform"
kill -TERM "$sampler_pid" && wait "$sampler_pid" || true
sampler_pid=""
kill -TERM "$collector_pid" && wait "$collector_pid" || die "the collector failed (log: $dir/collector.log)"
collector_pid=""
RUN_DIR="$dir/platform" scripts/platform.sh down

step "report -> $out.{md,json}"
setup="Topology: loadgen -> load-balancer node -> leaf -> 2 fake workers (fakeworker over \`$models\`, seeds $seed and $((seed + 1))), \
the function database, and the collector following both workers, all host processes on 127.0.0.1. \
Workload: \`configs/soak.yaml\` repeated $minutes times by \`soak workload\` (each minute 40 s of Poisson calls to 9 functions of 4 images, then 20 s quiet; idle timeout 5 s). \
Processes sampled every $interval; instances probed 20 s into the first cycle and ${quiet} s after loadgen ended. Command: \`scripts/soak.sh $minutes\`."
report_status=0
"$bin/soak" report --db "$db" --run-id "$run_id" --samples "$dir/samples.jsonl" --probe "$dir/probe.json" \
    "${busy_probe[@]}" --setup "$setup" --out "$out" | tee "$dir/checks.txt" || report_status=$?
((report_status == 0)) || die "could not write the report"
echo "run directory: $dir"
((loadgen_status == 0)) || exit 1
! grep -q '^FAIL' "$dir/checks.txt" || exit 1
