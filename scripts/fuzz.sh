#!/usr/bin/env bash
# Fuzzing (issue 14): builds the cargo-fuzz targets in fuzz/ and runs each.
#
#   scripts/fuzz.sh [SECONDS]          every target for SECONDS (default 120),
#                                      then bench-results/fuzz.{md,json}
#   scripts/fuzz.sh --smoke [SECONDS]  every target a few seconds (default 5) on
#                                      its committed corpus only; for CI, writes
#                                      no report and keeps nothing it finds
#   scripts/fuzz.sh --merge            adds to fuzz/corpus/<target> the inputs of
#                                      the long runs that reach new code edges
#                                      (libFuzzer -set_cover_merge=1), running
#                                      nothing else; check the corpus size after
#   options: --runs N (stop a target after N execs, whichever comes first),
#            --target NAME (repeatable; default every target in fuzz/Cargo.toml),
#            --no-build (run the targets as last built)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Runs on stable Rust: targets
# are built with `--sanitizer none` (libFuzzer's coverage instrumentation, no
# AddressSanitizer, which would need nightly). They build in release mode with
# debug assertions and overflow checks (cargo-fuzz's default) into a target
# directory of their own, since the instrumentation must not mix with the
# workspace build.
#
# A long run keeps what it finds in $hyperfake_cache/fuzz-corpus/<target> (the
# committed fuzz/corpus/<target> is read, never written); a failing input goes
# to fuzz/artifacts/<target>/ (crash-*, oom-*, timeout-*, slow-unit-*), and
# libFuzzer's output to $hyperfake_cache/fuzz-logs/<target>.log.
# Reproduce one with
#   cargo fuzz run -s none --target-dir ~/.cache/hyperfake/fuzz-target <target> <file>
# and shrink it with `cargo fuzz tmin` (same options). Exits 1 when any target
# failed, after writing the report.
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$hyperfake_repo/fuzz"

smoke=false
merge=false
build=true
runs=""
seconds=""
targets=()
while (($#)); do
    case "$1" in
    --smoke) smoke=true ;;
    --merge) merge=true ;;
    --no-build) build=false ;;
    --runs) runs="${2:?--runs needs a number}"; shift ;;
    --target) targets+=("${2:?--target needs a name}"); shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$hyperfake_repo/scripts/fuzz.sh" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) seconds="$1" ;;
    esac
    shift
done
[[ "$seconds" =~ ^[0-9]+$ ]] || seconds=$([[ $smoke == true ]] && echo 5 || echo 120)
[[ -z "$runs" || "$runs" =~ ^[0-9]+$ ]] || die "--runs: $runs is not a number"
command -v cargo-fuzz >/dev/null || die "cargo-fuzz is missing: cargo install cargo-fuzz"

fuzz_target_dir="$hyperfake_cache/fuzz-target"
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$fuzz_target_dir/$triple/release"
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo fuzz list)
fi

log_dir="$(mktemp -d)"
trap 'rm -rf "$log_dir"' EXIT
# libFuzzer's output of each target's last run.
logs="$hyperfake_cache/fuzz-logs"
mkdir -p "$logs"
started=$SECONDS
if [[ $build == true ]]; then
    echo "fuzz: building the targets into $fuzz_target_dir"
    if ! cargo fuzz build -s none --target-dir "$fuzz_target_dir" >"$log_dir/build.log" 2>&1; then
        grep -v '^ *Compiling' "$log_dir/build.log" >&2
        die "the fuzz targets did not build"
    fi
fi
build_seconds=$((SECONDS - started))

if [[ $merge == true ]]; then
    for target in "${targets[@]}"; do
        found="$hyperfake_cache/fuzz-corpus/$target"
        [[ -d "$found" ]] || continue
        before=$(find "corpus/$target" -type f | wc -l)
        # A set cover of the edges (hit counts ignored): far fewer files than -merge=1.
        "$bin_dir/$target" -set_cover_merge=1 -use_counters=0 "corpus/$target" "$found" \
            >"$logs/$target-merge.log" 2>&1 ||
            die "merging $target failed; see $logs/$target-merge.log"
        echo "fuzz: $target: corpus $before -> $(find "corpus/$target" -type f | wc -l) files, $(du -sh "corpus/$target" | cut -f1)"
    done
    exit 0
fi

load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
date_start="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
failed=()
rows_json=()
rows_md=()

# status_field <log> <pattern>: the first number after <pattern> in libFuzzer's last
# status line (`#N DONE cov: C ft: F corp: U/Sb ...`).
status_field() {
    grep -E '^#[0-9]+' "$1" | tail -n 1 | sed -nE "s/.*$2 ([0-9]+).*/\1/p"
}
# final_stat <log> <name>: a `stat::<name>: N` line of -print_final_stats.
final_stat() {
    sed -nE "s/^stat::$2: *([0-9]+).*/\1/p" "$1" | tail -n 1
}

# new_artifacts <target> <stamp> <kind>: failing inputs of <kind> written since <stamp>.
new_artifacts() {
    find "artifacts/$1" -newer "$2" -name "$3-*" | wc -l
}

for target in "${targets[@]}"; do
    [[ -x "$bin_dir/$target" ]] || die "no built target $target in $bin_dir"
    committed="corpus/$target"
    mkdir -p "$committed" "artifacts/$target"
    if [[ $smoke == true ]]; then
        work="$log_dir/corpus-$target"
    else
        work="$hyperfake_cache/fuzz-corpus/$target"
    fi
    mkdir -p "$work"
    stamp="$log_dir/stamp-$target"
    touch "$stamp"
    log="$logs/$target.log"
    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="artifacts/$target/")
    [[ -n "$runs" ]] && args+=(-runs="$runs")
    t0=$SECONDS
    status=0
    "$bin_dir/$target" "${args[@]}" "$work" "$committed" >"$log" 2>&1 || status=$?
    elapsed=$((SECONDS - t0))
    crashes=$(new_artifacts "$target" "$stamp" crash)
    ooms=$(new_artifacts "$target" "$stamp" oom)
    timeouts=$(new_artifacts "$target" "$stamp" timeout)
    execs=$(final_stat "$log" number_of_executed_units)
    execs=${execs:-$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -nE 's/^#([0-9]+).*/\1/p')}
    execs=${execs:-0}
    per_second=$(final_stat "$log" average_exec_per_sec)
    per_second=${per_second:-0}
    cov=$(status_field "$log" cov:)
    ft=$(status_field "$log" ft:)
    corpus_units=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -nE 's/.*corp: ([0-9]+)\/.*/\1/p')
    corpus_size=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -nE 's/.*corp: [0-9]+\/([0-9]+[a-zA-Z]*).*/\1/p')
    rss=$(final_stat "$log" peak_rss_mb)
    result=ok
    if ((status != 0 || crashes + ooms + timeouts > 0)); then
        result="FAILED (exit $status)"
        failed+=("$target")
        echo "fuzz: $target failed; its log is $log:" >&2
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -n 8 >&2 || true
    fi
    printf 'fuzz: %-18s %10s execs %8s/s  cov %5s  corpus %5s (%s)  crash/oom/timeout %s/%s/%s  %ss  %s\n' \
        "$target" "$execs" "$per_second" "${cov:-?}" "${corpus_units:-?}" "${corpus_size:-?}" \
        "$crashes" "$ooms" "$timeouts" "$elapsed" "$result"
    rows_json+=("$(printf '{"target": "%s", "seconds": %s, "execs": %s, "execs_per_second": %s, "coverage": %s, "features": %s, "corpus_units": %s, "corpus_size": "%s", "crashes": %s, "ooms": %s, "timeouts": %s, "peak_rss_mb": %s, "result": "%s"}' \
        "$target" "$elapsed" "$execs" "$per_second" "${cov:-null}" "${ft:-null}" "${corpus_units:-null}" \
        "${corpus_size:-}" "$crashes" "$ooms" "$timeouts" "${rss:-null}" "$result")")
    rows_md+=("| $target | $elapsed | $execs | $per_second | ${cov:-?} | ${ft:-?} | ${corpus_units:-?} ($corpus_size) | $crashes | $ooms | $timeouts | ${rss:-?} | $result |")
done

total=$((SECONDS - started))
echo "fuzz: ${#targets[@]} targets in ${total}s (build ${build_seconds}s)"
if [[ $smoke == false ]]; then
    load_end="$(cut -d' ' -f1-3 /proc/loadavg)"
    cpu="$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
    machine="$(nproc) CPUs ($cpu), $(uname -sr)"
    profile="release with debug assertions and overflow checks (cargo-fuzz default), libFuzzer coverage instrumentation with trace-compares, no sanitizer (-s none), codegen-units 1"
    toolchain="$(rustc --version), $(cargo fuzz --version)"
    limits="-max_total_time=$seconds${runs:+ -runs=$runs} -timeout=10 -rss_limit_mb=2048"
    out="$hyperfake_repo/bench-results"
    mkdir -p "$out"
    {
        echo "{"
        echo "  \"date\": \"$date_start\","
        echo "  \"machine\": \"$machine\","
        echo "  \"profile\": \"$profile\","
        echo "  \"toolchain\": \"$toolchain\","
        echo "  \"limits\": \"$limits\","
        echo "  \"load_average_start\": \"$load_start\","
        echo "  \"load_average_end\": \"$load_end\","
        echo "  \"build_seconds\": $build_seconds,"
        echo "  \"targets\": ["
        last=$((${#rows_json[@]} - 1))
        for i in "${!rows_json[@]}"; do
            sep=$([[ $i -lt $last ]] && echo "," || true)
            echo "    ${rows_json[$i]}$sep"
        done
        echo "  ]"
        echo "}"
    } >"$out/fuzz.json"
    {
        echo "# Fuzzing"
        echo
        echo "\`scripts/fuzz.sh $seconds${runs:+ --runs $runs}\` on $date_start. Machine: $machine. Load average (1/5/15 min) $load_start at the start, $load_end at the end."
        echo
        echo "Build: $profile; $toolchain. Limits per target: \`$limits\` (a target stops at whichever limit comes first). Each target starts from its committed corpus (\`fuzz/corpus/<target>\`) plus what earlier runs found (\`~/.cache/hyperfake/fuzz-corpus/<target>\`)."
        echo
        echo "What each target feeds and bounds, and every failure found with its regression test: \`fuzz/README.md\`."
        echo
        echo "Columns: execs and exec/s from libFuzzer's final stats; cov = code edges covered, ft = libFuzzer features; corpus = inputs kept (total size); crash/oom/timeout = failing inputs written to \`fuzz/artifacts/<target>/\` in this run."
        echo
        echo "| target | s | execs | exec/s | cov | ft | corpus | crash | oom | timeout | peak RSS MB | result |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
        printf '%s\n' "${rows_md[@]}"
    } >"$out/fuzz.md"
    echo "fuzz: wrote $out/fuzz.md and fuzz.json"
fi
if ((${#failed[@]})); then
    die "failed: ${failed[*]}"
fi
