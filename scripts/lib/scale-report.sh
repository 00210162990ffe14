# shellcheck shell=bash
# The scale benchmark's report (scripts/scale-bench.sh): reads a run directory
# (settings.json, run.db, samples.txt, *.pid, perf.data) and writes
# <out>/scale.json and <out>/scale.md. Sourced; needs jq and sqlite3.
#
#   scale_report <run dir> <out dir>
#
# The measured window is the run's schedule, [runs.started_at_ns,
# runs.finished_at_ns] (loadgen's clock, the same host clock the samples use);
# the warm-up before it is reported apart. Lost rows are the calls whose time
# came (runs.calls_due) minus the measured rows in `calls`.

# scale_pct <db> <run id> <expression> <fraction>: that rank of the
# expression over the measured calls, in ms ("" when there is none).
scale_pct() {
    sqlite3 -noheader "$1" "SELECT printf('%.3f', v / 1e6) FROM (SELECT $3 AS v FROM calls
        WHERE run_id = '$2' AND warmup = 0 AND $3 IS NOT NULL ORDER BY v) LIMIT 1 OFFSET
        (SELECT CAST($4 * (COUNT(*) - 1) AS INT) FROM calls WHERE run_id = '$2' AND warmup = 0 AND $3 IS NOT NULL)"
}

scale_report() {
    local dir="$1" out="$2" db="$1/run.db" run_id start end q
    [[ -s "$db" ]] || die "no run database at $db"
    run_id="$(jq -r .run_id "$dir/settings.json")"
    q() { sqlite3 -noheader "$db" "$1"; }
    [[ -n "$(q "SELECT 1 FROM runs WHERE run_id = '$run_id'")" ]] || die "$db has no run $run_id (loadgen failed before it started?)"
    start="$(q "SELECT started_at_ns FROM runs WHERE run_id = '$run_id'")"
    end="$(q "SELECT COALESCE(finished_at_ns, (SELECT MAX(scheduled_ns) FROM calls WHERE run_id = '$run_id')) FROM runs WHERE run_id = '$run_id'")"

    local run calls percentiles key p50 p99
    run="$(q "SELECT json_object('status', r.status, 'error', r.error, 'calls_scheduled', r.calls_scheduled,
            'calls_due', r.calls_due, 'calls_recorded', r.calls_recorded,
            'measured_rows', (SELECT COUNT(*) FROM calls c WHERE c.run_id = r.run_id AND c.warmup = 0),
            'warmup_calls', (SELECT COUNT(*) FROM calls c WHERE c.run_id = r.run_id AND c.warmup = 1),
            'warmup_ok', (SELECT COUNT(*) FROM calls c WHERE c.run_id = r.run_id AND c.warmup = 1 AND c.status = 'OK'),
            'warmup_s', (SELECT (r.started_at_ns - MIN(c.scheduled_ns)) / 1e9 FROM calls c WHERE c.run_id = r.run_id AND c.warmup = 1),
            'window_s', ($end - r.started_at_ns) / 1e9,
            'schedule_span_s', (SELECT (MAX(scheduled_ns) - MIN(scheduled_ns)) / 1e9 FROM calls c WHERE c.run_id = r.run_id AND c.warmup = 0),
            'sent', (SELECT COUNT(*) FROM calls c WHERE c.run_id = r.run_id AND c.warmup = 0 AND c.sent_ns IS NOT NULL),
            'ok', (SELECT COUNT(*) FROM calls c WHERE c.run_id = r.run_id AND c.warmup = 0 AND c.status = 'OK'),
            'statuses', (SELECT json_group_object(status, n) FROM (SELECT status, COUNT(*) n FROM calls c
                 WHERE c.run_id = r.run_id AND c.warmup = 0 GROUP BY status)),
            'instances_serving', (SELECT COUNT(DISTINCT instance_id) FROM calls c WHERE c.run_id = r.run_id AND c.warmup = 0),
            'workers_serving', (SELECT COUNT(DISTINCT worker_address) FROM calls c WHERE c.run_id = r.run_id AND c.warmup = 0),
            'functions', (SELECT COUNT(*) FROM functions f WHERE f.run_id = r.run_id))
        FROM runs r WHERE r.run_id = '$run_id'")"

    declare -A stat=(
        [send_lag]="send_lag_ns"
        [leaf_hop]="leaf_scheduled_call_ns - leaf_got_request_ns"
        [lb_hop]="lb_forwarded_call_ns - lb_got_request_ns"
        [latency]="latency_ns"
    )
    percentiles="{}"
    for key in send_lag leaf_hop lb_hop latency; do
        p50="$(scale_pct "$db" "$run_id" "${stat[$key]}" 0.5)"; p99="$(scale_pct "$db" "$run_id" "${stat[$key]}" 0.99)"
        percentiles="$(jq -c --arg k "$key" --arg a "${p50:-null}" --arg b "${p99:-null}" \
            '. + {($k): {p50_ms: ($a | tonumber? // null), p99_ms: ($b | tonumber? // null)}}' <<<"$percentiles")"
    done

    # Instances over time from the collector's lifecycle events: +1 per
    # successful START, -1 per successful STOP, TIMEOUT or DOWN.
    local instances step
    local first_event
    first_event="$(q "SELECT MIN(timestamp_ns) FROM instance_events WHERE run_id = '$run_id'")"
    step="$(jq -n --argjson w "$(( end - (first_event && first_event < start ? first_event : start) ))" \
        '[(($w / 1e9 / 20) | ceil), 1] | max')"
    instances="$(q "WITH ev AS (SELECT timestamp_ns t, CASE WHEN event = 'START' THEN 1 ELSE -1 END d FROM instance_events
            WHERE run_id = '$run_id' AND timestamp_ns IS NOT NULL AND ((event = 'START' AND status = 'SUCCESS')
              OR (event = 'STOP' AND status = 'SUCCESS') OR event IN ('TIMEOUT', 'DOWN'))),
          run AS (SELECT t, SUM(d) OVER (ORDER BY t ROWS UNBOUNDED PRECEDING) n FROM ev),
          marks(s) AS (SELECT CAST(MIN(COALESCE((SELECT MIN(t) FROM ev), $start), $start) - $start AS REAL) / 1e9
              UNION ALL SELECT CASE WHEN s < 0 AND s + $step > 0 THEN 0 ELSE s + $step END FROM marks
              WHERE s < ($end - $start) / 1e9)
        SELECT json_object('peak', COALESCE((SELECT MAX(n) FROM run), 0),
            'peak_at_s', (SELECT ROUND((t - $start) / 1e9, 1) FROM run ORDER BY n DESC, t LIMIT 1),
            'starts', (SELECT COUNT(*) FROM ev WHERE d = 1), 'ends', (SELECT COUNT(*) FROM ev WHERE d = -1),
            'start_failures', (SELECT COUNT(*) FROM instance_events WHERE run_id = '$run_id' AND event = 'START' AND status != 'SUCCESS'),
            'at_start', (SELECT COALESCE(SUM(d), 0) FROM ev WHERE t <= $start),
            'at_end', (SELECT COALESCE(SUM(d), 0) FROM ev WHERE t <= $end),
            'series', (SELECT json_group_array(json_array(ROUND(s, 1), (SELECT COALESCE(SUM(d), 0) FROM ev
                 WHERE t <= $start + CAST(s * 1e9 AS INTEGER)))) FROM marks))")"
    [[ -n "$instances" ]] || instances='{"peak":0,"series":[]}'

    # Per process over the measured window (and the warm-up before it), from
    # the 1 s /proc samples; peak RSS over the whole run.
    local ticks processes machine
    ticks="$(getconf CLK_TCK)"
    processes="$(awk -v s="$start" -v e="$end" -v hz="$ticks" '
        $2 == "machine" { next }
        { n = $2 } !(n in first) { first[n] = $1; fc[n] = $3 }
        $1 <= s { ws[n] = $1; wc[n] = $3 }
        $1 >= s && !(n in ms) { ms[n] = $1; mc[n] = $3 }
        $1 <= e { me[n] = $1; mec[n] = $3 }
        $4 + 0 > rss[n] { rss[n] = $4 + 0 }
        END { sep = ""; printf "["
          for (n in first) {
            c = (n in ms && me[n] > ms[n]) ? (mec[n] - mc[n]) / hz / ((me[n] - ms[n]) / 1e9) : -1
            w = (n in ws && ws[n] > first[n]) ? (wc[n] - fc[n]) / hz / ((ws[n] - first[n]) / 1e9) : -1
            printf "%s{\"name\":\"%s\",\"cpu_cores\":%.3f,\"cpu_cores_warmup\":%.3f,\"peak_rss_mib\":%.1f}", sep, n, c, w, rss[n] / 1024
            sep = "," }
          print "]" }' "$dir/samples.txt" | jq -c 'map(if .cpu_cores < 0 then .cpu_cores = null else . end
              | if .cpu_cores_warmup < 0 then .cpu_cores_warmup = null else . end) | sort_by(-(.cpu_cores // 0))')"
    machine="$(awk -v s="$start" -v e="$end" '
        $2 != "machine" { next }
        $1 >= s && !b0 { b0 = $3; t0 = $4; b0set = 1 }
        $1 >= s && $1 <= e { b1 = $3; t1 = $4; l += $5; k++; if ($5 > lmax) lmax = $5; if (!lminset || $5 < lmin) { lmin = $5; lminset = 1 } }
        END { busy = (t1 > t0) ? (b1 - b0) / (t1 - t0) : -1
              printf "{\"busy_fraction\":%.3f,\"load_min\":%.2f,\"load_mean\":%.2f,\"load_max\":%.2f}\n", busy, lmin, (k ? l / k : 0), lmax }' \
        "$dir/samples.txt")"

    # perf: the top symbols of each process, by share of all samples.
    local perf_top=""
    if [[ -s "$dir/perf.data" ]] && command -v perf >/dev/null; then
        sort -u "$dir/tids.txt" >"$dir/tids.sorted" 2>/dev/null || : >"$dir/tids.sorted"
        # perf's "pid" is the thread: add its threads' shares up per process.
        perf report -i "$dir/perf.data" --no-children --sort pid,sym --stdio -g none 2>/dev/null \
            | awk -v tids="$dir/tids.sorted" 'FILENAME == tids { name[$1] = $2; next }
                   /^ +[0-9.]+%/ { pct = $1; sub("%", "", pct); split($2, t, ":"); p = (t[1] in name) ? name[t[1]] : t[2]
                                   $1 = ""; $2 = ""; sym = substr($0, 3); total[p " " sym] += pct }
                   END { for (k in total) printf "%6.2f%%  %s\n", total[k], k }' "$dir/tids.sorted" - \
            | sort -rn | head -n 25 | cut -c1-160 >"$dir/perf-top.txt" || true
        perf_top="$(cat "$dir/perf-top.txt")"
    fi

    jq -n --slurpfile settings "$dir/settings.json" --argjson run "$run" --argjson percentiles "$percentiles" \
        --argjson instances "$instances" --argjson processes "$processes" --argjson machine "$machine" \
        --arg cpus "$(nproc)" --arg model "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
        --arg kernel "$(uname -r)" --arg perf_top "$perf_top" '
      $settings[0] as $s
      | ($run.window_s) as $w
      | ($processes | map(select(.name != "perf"))) as $bench
      | ($bench | map(.cpu_cores // 0) | add) as $ours
      | ($run.ok / $run.schedule_span_s) as $ok_rate
      | ($run.calls_due - $run.measured_rows) as $lost
      | ($s.duration | capture("^(?<n>[0-9.]+)(?<u>ms|s|m|h)$") | (.n | tonumber) * ({ms: 0.001, s: 1, m: 60, h: 3600}[.u])) as $dur_s
      | {met_rate: ($ok_rate >= 0.99 * 5000), met_instances: ($instances.peak >= 10000), met_duration: ($dur_s >= 60),
         no_lost_rows: ($lost == 0)} as $goal
      | ($bench | map(select(.cpu_cores != null)) | .[0:3]
         | map("\(.name) \(.cpu_cores * 100 | round / 100) cores (\(.cpu_cores / ($cpus | tonumber) * 100 | round)% of the machine)") | join(", ")) as $top
      | $s + {
          machine: ({cpus: ($cpus | tonumber), model: $model, kernel: $kernel} + $machine),
          run: $run, lost_rows: $lost,
          scheduled_rate_measured: ($run.calls_due / $run.schedule_span_s), sent_rate: ($run.sent / $run.schedule_span_s),
          achieved_ok_rate: $ok_rate, percentiles_ms: $percentiles, instances: $instances,
          processes: $processes, goal: ($goal + {met: ($goal | all)}),
          bottleneck: (if ($goal | all) then null else
            "machine CPU \($machine.busy_fraction * 100 | round)% busy over the measured window (load average \($machine.load_min)-\($machine.load_max) on \($cpus) CPUs), of which the benchmark processes \($ours * 100 | round / 100) cores and other work (perf included) on the machine \(([($machine.busy_fraction * ($cpus | tonumber)) - $ours, 0] | max) * 100 | round / 100) cores; most CPU: \($top)"
            + (if $percentiles.send_lag.p99_ms != null and $percentiles.send_lag.p99_ms > 10 then "; loadgen fell behind its schedule (send lag p99 \($percentiles.send_lag.p99_ms) ms)" else "" end)
            end),
          perf_top: (if $perf_top == "" then null else ($perf_top | split("\n")) end)
        }' >"$out/scale.json"
    scale_markdown "$out/scale.json" >"$out/scale.md"
    cat "$out/scale.md"
}

# scale_markdown <scale.json>: the Markdown form of the report.
scale_markdown() {
    jq -r '
      def r(x): if x == null then "-" else (x * 100 | round / 100 | tostring) end;
      "# Scale benchmark\n",
      (if (.workers < 1000 or .scheduled_rate < 5000 or .instances_goal < 10000) then
        "**Small run** (below the issue-11 size: 1 000 workers, 5 000 calls/s, 10 000 instances, 60 s); its figures show the benchmark works, not the platform at scale.\n" else empty end),
      "`scripts/scale-bench.sh`: \(.workers) fake workers in one process, \(.leaves) leaves (max \(.max_instances) instances per function each), one load-balancer node\(if (.leaf_args // "") != "" then " (leaf flags `\(.leaf_args)`)" else "" end), the collector following every worker (interval \(.collector_interval)); `\(.workload)` at \(.scheduled_rate) calls/s for \(.duration) (Poisson), \(.images) images × \(.copies_per_image) copies = \(.run.functions) functions, each warmed to one instance. Models `\(.models)`. Run `\(.run_id)`.\n",
      "Build profile: **\(.profile)**. Machine: \(.machine.cpus) × \(.machine.model), Linux \(.machine.kernel); load average during the measured window \(.machine.load_min)-\(.machine.load_max) (mean \(.machine.load_mean)), machine CPU \(.machine.busy_fraction * 100 | round)% busy. Other work on the machine counts against the figures.\n",
      "## Goal: \(if .goal.met then "met" else "not met" end)\n",
      "| | goal | measured |", "|---|---|---|",
      "| OK calls/s | 5 000 | \(.achieved_ok_rate | floor) (scheduled \(.scheduled_rate_measured | floor)/s, sent \(.sent_rate | floor)/s) |",
      "| simulated instances (peak) | 10 000 | \(.instances.peak) (at \(.instances.peak_at_s) s) |",
      "| duration | ≥ 60 s | \(.duration) |",
      "| lost rows (calls due − rows recorded) | 0 | \(.lost_rows) (due \(.run.calls_due), recorded \(.run.measured_rows)) |",
      "",
      (if .bottleneck then "**Bottleneck**: \(.bottleneck).\n" else empty end),
      "Measured calls: \(.run.measured_rows), OK \(.run.ok); statuses \(.run.statuses | tostring). Served by \(.run.instances_serving) instances on \(.run.workers_serving) workers. Warm-up: \(.run.warmup_calls) calls (\(.run.warmup_ok) OK) in \(r(.run.warmup_s)) s before the clock. Run status: \(.run.status)\(if .run.error then " (\(.run.error))" else "" end).\n",
      "| measure (measured calls) | p50 ms | p99 ms |", "|---|---|---|",
      (.percentiles_ms | to_entries[] | "| \(.key) | \(.value.p50_ms // "-") | \(.value.p99_ms // "-") |"),
      "",
      "## Instances over time\n",
      "From the collector'"'"'s lifecycle events (+1 START, −1 STOP/TIMEOUT/DOWN): \(.instances.starts) starts, \(.instances.ends) ends, \(.instances.start_failures) failed starts; \(.instances.at_start) at the clock'"'"'s start, \(.instances.at_end) at its end. Time is seconds from the clock'"'"'s start (negative: the warm-up).\n",
      "| s | instances |", "|---|---|",
      (.instances.series[] | "| \(.[0]) | \(.[1]) |"),
      "",
      "## Processes\n",
      "CPU over the measured window and over the warm-up (cores, from /proc every second); peak RSS over the run (sampled every second).\n",
      "| process | CPU cores (measured) | CPU cores (warm-up) | peak RSS MiB |", "|---|---|---|---|",
      (.processes[] | "| \(.name) | \(r(.cpu_cores)) | \(r(.cpu_cores_warmup)) | \(.peak_rss_mib | floor) |"),
      "",
      (if .perf_top then "## perf: top symbols (share of all samples, 99 Hz, \(.perf_window // "whole run"))\n", "```", (.perf_top[]), "```" else empty end)
    ' "$1"
}
