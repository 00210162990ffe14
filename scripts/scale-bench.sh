#!/usr/bin/env bash
# The scale benchmark (issue 11, bullet 5). The full size, on a quiet machine:
#
#   scripts/scale-bench.sh
#   # = WORKERS=1000 LEAVES=4 RATE=5000 DURATION=60s INSTANCES=10000 PROFILE=release scripts/scale-bench.sh
#
# A small size (what a shared 2-core machine can take; label its output):
#
#   WORKERS=200 LEAVES=2 RATE=500 DURATION=20s INSTANCES=1000 \
#       HYPERFAKE_BENCH_OUT=/tmp/scale-small scripts/scale-bench.sh
#
# Measured on the shared 2-core machine (dev build, load 8-10 from other work;
# bench-results/scale-small*.md): 100 workers / 1 000 instances / 500 calls/s
# with LEAF_ARGS="--reconcile-interval 10s" ran clean (9 888 of 9 888 OK, 0
# lost rows); 200 workers / 2 000 instances / 1 000 calls/s with the leaf's
# defaults did not: during the warm-up both leaves were CPU-bound in
# placement (Scheduler::place, BTreeMap walks), workers' State calls missed
# the 2 s reconcile interval, workers left rotation, starts were retried
# elsewhere (6 888 instances for 2 000 functions) and 8 % of calls were OK.
#
# Starts, as host processes on 127.0.0.1 (ports chosen by the kernel):
#   - the database;
#   - one `fakeworker --workers $WORKERS` process (the newest committed
#     random forests with a model for every image of $WORKLOAD, or
#     $FAKE_MODELS);
#   - $LEAVES leaves, leaf i over every $LEAVES-th worker starting at i;
#   - a load-balancer node over the leaves;
#   - the collector following every worker (lifecycle events and samples);
# then runs loadgen with $WORKLOAD (configs/scale.yaml) against the
# load-balancer node. How the instances reach $INSTANCES: the workload has
# INSTANCES/#images `copies` of every modelled image, each its own function,
# warmed to one ready instance before the clock (`warmup: {instances: 1}`),
# with an idle timeout (900 s) longer than the warm-up and the run, so each
# function keeps its instance while RATE calls/s (Poisson, 1/#images per
# image, each call to a copy drawn from the seed) run for DURATION. The script
# rewrites the file's rates, durations and copies for other sizes.
#
# While it runs, every second, it samples each process's CPU time and RSS
# (/proc/<pid>/stat, status), the machine's busy CPU (/proc/stat) and the load
# average; with `perf` (PERF=1, the default when perf is installed) it
# records every process at 99 Hz for PERF_SECONDS (10), PERF_DELAY (20) s
# after the clock starts. Afterwards scripts/lib/scale-report.sh
# writes bench-results/scale.{json,md} (or $HYPERFAKE_BENCH_OUT): achieved vs
# scheduled rate, send lag, leaf and LB hop times (p50/p99, from trailers),
# instances over time (collector events), lost rows (calls due vs recorded),
# peak RSS and CPU per process over the measured window, the machine and the
# build profile, and, when the goal (5 000 calls/s, 10 000 instances, 60 s)
# is not met, the bottleneck by CPU share with perf's top symbols.
# Everything started is stopped on exit (also on failure or Ctrl-C); the run
# directory stays for inspection. REPORT_ONLY=1 rewrites the report from an
# existing $RUN_DIR without running anything.
#
# Settings (environment): WORKERS (1000), LEAVES (4), RATE (5000, calls/s in
# total), DURATION (60s), INSTANCES (10000), MAX_INSTANCES (per function and
# leaf, 64), COLLECTOR_INTERVAL (1s), WORKLOAD (configs/scale.yaml), PROFILE
# (release), SKIP_BUILD (0), PERF (1 if perf is installed), PERF_DELAY (20),
# PERF_SECONDS (10), LEAF_ARGS (extra
# flags for the leaves and the load-balancer node, none), FAKE_MODELS,
# RUN_DIR ($CARGO_TARGET_DIR/scale-bench), REPORT_ONLY (0).
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
repo="$hyperfake_repo"
workers="${WORKERS:-1000}"
leaves="${LEAVES:-4}"
rate="${RATE:-5000}"
duration="${DURATION:-60s}"
instances="${INSTANCES:-10000}"
max_instances="${MAX_INSTANCES:-64}"
profile="${PROFILE:-release}"
workload="${WORKLOAD:-$repo/configs/scale.yaml}"
bin="$(profile_dir "$profile")"
run_dir="${RUN_DIR:-$CARGO_TARGET_DIR/scale-bench}"
out="${HYPERFAKE_BENCH_OUT:-$repo/bench-results}"
models="${FAKE_MODELS:-$(newest_models random-forest "$workload")}"
# Extra flags for every leaf and the load-balancer node, e.g.
# LEAF_ARGS="--reconcile-interval 10s" on a starved machine (a worker whose
# State does not answer within the reconcile interval leaves rotation).
leaf_args="${LEAF_ARGS:-}"
perf_on="${PERF:-$(command -v perf >/dev/null && echo 1 || echo 0)}"
perf_delay="${PERF_DELAY:-20}"
perf_seconds="${PERF_SECONDS:-10}"

command -v jq >/dev/null || die "jq is needed to build the leaves' configuration"
command -v sqlite3 >/dev/null || die "sqlite3 is needed to summarise the run database"
# shellcheck source=lib/scale-report.sh
source "$repo/scripts/lib/scale-report.sh"
if [[ "${REPORT_ONLY:-0}" == 1 ]]; then
    [[ -s "$run_dir/settings.json" ]] || die "REPORT_ONLY=1: no run in $run_dir (settings.json missing)"
    mkdir -p "$out"
    scale_report "$run_dir" "$out"
    exit 0
fi
[[ -n "$models" && -d "$models" ]] || die "no models/*/random-forest has a model for every image of $workload (set FAKE_MODELS)"
[[ -r "$workload" ]] || die "WORKLOAD: cannot read $workload"
[[ "$workers" =~ ^[0-9]+$ && "$leaves" =~ ^[0-9]+$ ]] || die "WORKERS and LEAVES must be whole numbers (got '$workers', '$leaves')"
[[ "$rate" =~ ^[0-9]+$ && "$instances" =~ ^[0-9]+$ ]] || die "RATE and INSTANCES must be whole numbers (got '$rate', '$instances')"
(( workers >= leaves && leaves >= 1 )) || die "need WORKERS >= LEAVES >= 1 (got $workers, $leaves)"
mapfile -t images < <(grep -oE 'image_tag: *[^ },]+' "$workload" | sed 's/image_tag: *//' | sort -u)
(( ${#images[@]} > 0 )) || die "$workload: no phase names an image_tag"
for image in "${images[@]}"; do
    [[ -e "$models/${image%%:*}.onnx" || -e "$models/${image%%:*}.json" ]] \
        || die "$workload: image $image has no model in $models"
done
share=$(( rate / ${#images[@]} ))
copies=$(( (instances + ${#images[@]} - 1) / ${#images[@]} ))
(( share >= 1 && copies >= 1 )) || die "RATE ($rate) and INSTANCES ($instances) must be at least the number of images (${#images[@]})"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    build_workspace "$profile"
fi
[[ -n "${ORT_DYLIB_PATH:-}" ]] || ORT_DYLIB_PATH="$("$repo/scripts/install-onnxruntime.sh" | tail -n 1)"
export ORT_DYLIB_PATH

rm -rf "$run_dir"
mkdir -p "$run_dir" "$out"
pids=()
sampler_pid=""
perf_pid=""
stop_all() {
    local pid
    [[ -z "$perf_pid" ]] || kill -INT "$perf_pid" 2>/dev/null || true
    [[ -z "$sampler_pid" ]] || kill -TERM "$sampler_pid" 2>/dev/null || true
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}" $sampler_pid $perf_pid; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
# A signal ends the script through the EXIT trap (bash would otherwise wait).
trap 'exit 130' INT TERM

# start <name> <command...>: runs it in the background, stdout to <name>.out.
start() {
    local name="$1"; shift
    "$@" >"$run_dir/$name.out" 2>"$run_dir/$name.log" &
    pids+=("$!")
    echo "$!" >"$run_dir/$name.pid"
}

# address_of <name>: waits (30 s) for the first host:port on <name>'s stdout.
address_of() {
    local name="$1" deadline=$((SECONDS + 30)) address
    until address="$(grep -oE '127\.0\.0\.1:[0-9]+' "$run_dir/$name.out" 2>/dev/null | head -n 1)" \
        && [[ -n "$address" ]]; do
        kill -0 "$(cat "$run_dir/$name.pid")" 2>/dev/null || { tail -n 20 "$run_dir/$name.log" >&2; die "$name exited"; }
        (( SECONDS < deadline )) || die "$name did not report its address within 30 s ($run_dir/$name.log)"
        sleep 0.2
    done
    echo "$address"
}

start database "$bin/database" --address 127.0.0.1:0 --db "$run_dir/functions.db"
database="$(address_of database)"
start fakeworker "$bin/fakeworker" --workers "$workers" --address 127.0.0.1:0 --database "$database" \
    --models "$models" --addresses-file "$run_dir/workers.json"
deadline=$((SECONDS + 120))
until [[ -s "$run_dir/workers.json" ]]; do
    kill -0 "$(cat "$run_dir/fakeworker.pid")" 2>/dev/null || { tail -n 20 "$run_dir/fakeworker.log" >&2; die "fakeworker exited"; }
    (( SECONDS < deadline )) || die "the fake workers did not start within 120 s"
    sleep 0.2
done
leaf_addresses=()
for ((i = 0; i < leaves; i++)); do
    jq --argjson i "$i" --argjson k "$leaves" \
        '{workers: [.workers | to_entries[] | select(.key % $k == $i) | .value]}' \
        "$run_dir/workers.json" >"$run_dir/leaf-$i.json"
    # shellcheck disable=SC2086 # LEAF_ARGS is a list of flags
    start "leaf-$i" "$bin/leaf" --config "$run_dir/leaf-$i.json" --database "$database" \
        --address 127.0.0.1:0 --max-instances "$max_instances" $leaf_args
done
for ((i = 0; i < leaves; i++)); do leaf_addresses+=("$(address_of "leaf-$i")"); done
children="$(IFS=,; echo "${leaf_addresses[*]}")"
# shellcheck disable=SC2086 # LEAF_ARGS is a list of flags
start lb "$bin/leaf" --child "$children" --database "$database" --address 127.0.0.1:0 $leaf_args
lb="$(address_of lb)"
run_id="scale-$(date -u +%Y%m%dT%H%M%SZ)"
mapfile -t worker_addresses < <(jq -r '.workers[]' "$run_dir/workers.json")
collector_args=()
for w in "${worker_addresses[@]}"; do collector_args+=(--worker "$w"); done
# The collector's default 100 ms is 10 000 resource samples/s over 1000
# workers: a 60 s run at 5000 calls/s then wrote 2.6 M worker samples and
# overloaded this 2-core machine. 1 s keeps the samples to 1000/s (plus one
# container sample per instance and second).
start collector "$bin/collector" "${collector_args[@]}" --run-id "$run_id" --db "$run_dir/run.db" \
    --interval "${COLLECTOR_INTERVAL:-1s}" --no-progress

# The workload at this size: the file's rates, durations and copies rewritten.
sed -E -e "s/start_rps: *[0-9]+/start_rps: $share/" \
    -e "s/(max_duration|duration): *[0-9a-z.]+/\1: $duration/" \
    -e "s/copies: *[0-9]+/copies: $copies/" "$workload" >"$run_dir/workload.yaml"
"$bin/loadgen" validate "$run_dir/workload.yaml" >"$run_dir/validate.out" 2>&1 \
    || { cat "$run_dir/validate.out" >&2; die "the workload at this size is not valid ($run_dir/workload.yaml)"; }

# Every second: "<ns> <name> <cpu ticks> <rss kB>" per process, and the
# machine's busy and total ticks and its 1-minute load average.
sample_loop() {
    local f name pid now
    while true; do
        now="$(date +%s%N)"
        for f in "$run_dir"/*.pid; do
            name="$(basename "$f" .pid)"; pid="$(cat "$f")"
            [[ -r "/proc/$pid/stat" ]] || continue
            echo "$now $name $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) $(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null)"
            # Thread ids, so perf's per-thread samples add up per process.
            ls "/proc/$pid/task" 2>/dev/null | sed "s/\$/ $name/" >>"$run_dir/tids.txt"
        done
        echo "$now machine $(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat) $(cut -d' ' -f1 /proc/loadavg)"
        sleep 1
    done
}
sample_loop >"$run_dir/samples.txt" 2>/dev/null &
sampler_pid=$!
jq -n --arg profile "$profile" --argjson workers "$workers" --argjson leaves "$leaves" --argjson rate "$rate" \
    --arg duration "$duration" --argjson instances "$instances" --argjson copies "$copies" \
    --argjson images "${#images[@]}" --arg run_id "$run_id" --arg models "${models#"$repo"/}" \
    --arg workload "${workload#"$repo"/}" --argjson max_instances "$max_instances" \
    --arg collector_interval "${COLLECTOR_INTERVAL:-1s}" --arg leaf_args "$leaf_args" \
    --arg perf_window "$( [[ "$perf_on" == 1 ]] && echo "${perf_seconds} s from ${perf_delay} s after the clock started")" \
    '{leaf_args: $leaf_args, profile: $profile, workers: $workers, leaves: $leaves, perf_window: $perf_window,
      scheduled_rate: $rate, duration: $duration, instances_goal: $instances, copies_per_image: $copies,
      images: $images, run_id: $run_id, models: $models, workload: $workload, max_instances: $max_instances,
      collector_interval: $collector_interval}' >"$run_dir/settings.json"

# In the background and waited for, so a signal reaches the trap at once.
"$bin/loadgen" run "$run_dir/workload.yaml" --leaf "$lb" --out "$run_dir/run.db" --run-id "$run_id" \
    --database "$database" --no-progress >"$run_dir/loadgen.out" 2>"$run_dir/loadgen.log" &
loadgen_pid=$!
pids+=("$loadgen_pid")
echo "$loadgen_pid" >"$run_dir/loadgen.pid"
if [[ "$perf_on" == 1 ]]; then
    # Only a window of the measured run: recording every process for the
    # whole run cost perf itself 0.63 cores of the two (measured at
    # 1 000 calls/s, 19:42), which starved what it was measuring. Its pid file
    # puts its own CPU in the samples.
    (
        until grep -q "starting the clock" "$run_dir/loadgen.log" 2>/dev/null; do
            kill -0 "$loadgen_pid" 2>/dev/null || exit 0
            sleep 0.5
        done
        sleep "$perf_delay"
        exec perf record -q -F 99 -g -o "$run_dir/perf.data" -p "$(IFS=,; echo "${pids[*]}")" -- sleep "$perf_seconds"
    ) >"$run_dir/perf.out" 2>"$run_dir/perf.log" &
    perf_pid=$!
    echo "$perf_pid" >"$run_dir/perf.pid"
fi
loadgen_status=0
wait "$loadgen_pid" || loadgen_status=$?
if [[ -n "$perf_pid" ]]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    perf_pid=""
fi
kill -TERM "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""
# The collector commits what it holds when stopped: stop it before reading.
kill -TERM "$(cat "$run_dir/collector.pid")" 2>/dev/null || true
wait "$(cat "$run_dir/collector.pid")" 2>/dev/null || true
(( loadgen_status == 0 )) || { tail -n 20 "$run_dir/loadgen.log" >&2; echo "$hyperfake_script: loadgen exited with $loadgen_status; reporting what was recorded" >&2; }
scale_report "$run_dir" "$out"
exit "$loadgen_status"
