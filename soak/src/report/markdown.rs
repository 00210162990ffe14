//! `soak.md`: the report for people; `soak.json` has every figure.

use std::fmt::Write;

use super::Report;

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.3}"))
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.digits$}"))
}

fn loads(v: Option<[f64; 3]>) -> String {
    v.map_or_else(|| "–".into(), |l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]))
}

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let w = &mut out;
    let h = &r.header;
    let a = &r.calls.accounting;
    let _ = writeln!(w, "# Soak: {} minutes on the fake platform\n", r.calls.minutes.len());
    let _ = writeln!(
        w,
        "Run `{}` from `{}`, written {}.",
        a.run_id,
        h.workload.as_deref().unwrap_or("?"),
        h.written_at
    );
    if let Some(setup) = &h.setup {
        let _ = writeln!(w, "{setup}");
    }
    let _ = writeln!(w, "\nProfile: {}. Machine: {}.", h.profile, h.machine);
    let l = &r.load;
    let _ = writeln!(
        w,
        "Load average (1/5/15 min) {} at the start, {} at the end; 1-minute load mean {} and max {} over {} samples \
         (the table of minutes below splits the machine's busy cores into the soak's and other work's).\n",
        loads(l.first),
        loads(l.last),
        num(l.mean_1min, 2),
        num(l.max_1min, 2),
        l.samples
    );

    let _ = writeln!(w, "## Summary\n\n| check | result | figures |\n|---|---|---|");
    for c in &r.checks {
        let _ =
            writeln!(w, "| {} | {} | {} |", c.check, if c.passed { "pass" } else { "**FAIL**" }, c.detail);
    }

    let _ = writeln!(
        w,
        "\n## Calls\n\n| scheduled | due | sent | not sent | recorded | lost | run status |\n|---|---|---|---|---|---|---|"
    );
    let _ = writeln!(
        w,
        "| {} | {} | {} | {} | {} | {} | {} |",
        a.scheduled, a.due, a.sent, a.not_sent, a.recorded, a.lost, a.status
    );
    let _ = writeln!(w, "\nErrors by code:\n");
    if r.calls.errors.is_empty() {
        let _ = writeln!(w, "none: every call due was answered OK.");
    } else {
        let _ = writeln!(w, "| status | gRPC code | calls | example message |\n|---|---|---|---|");
        for e in &r.calls.errors {
            let code = e.grpc_code.map_or_else(|| "–".into(), |c| c.to_string());
            let example = e.example.as_deref().unwrap_or("").replace('|', "\\|").replace('\n', " ");
            let _ = writeln!(w, "| {} | {} | {} | {} |", e.status, code, e.calls, example);
        }
    }

    let _ = writeln!(
        w,
        "\n## Latency per minute\n\nClient latency of successful calls scheduled in that minute; handler = the \
         handler's own time (the fake's model draw), overhead = latency − handler (every hop, queueing, cold \
         starts).\n"
    );
    let _ = writeln!(
        w,
        "| minute | due | ok | errors | p50 ms | p99 ms | max ms | handler p50 ms | overhead p50 ms | overhead p99 ms |\n\
         |---|---|---|---|---|---|---|---|---|---|"
    );
    for m in &r.calls.minutes {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.minute,
            m.due,
            m.ok,
            m.errors,
            ms(m.p50_ms),
            ms(m.p99_ms),
            ms(m.max_ms),
            ms(m.handler_p50_ms),
            ms(m.overhead_p50_ms),
            ms(m.overhead_p99_ms),
        );
    }
    let _ = writeln!(
        w,
        "\nThe machine and the instances, minute by minute: load = mean 1-minute load average; cores busy = all of \
         the machine's processes (`/proc/stat`), of which the soak's own processes (their utime + stime) and \
         the rest (other work on the machine); steal = CPU time the hypervisor gave elsewhere.\n\n\
         | minute | load | cores busy | soak's cores | other cores | steal % | cold starts | idle stops | leaf stops | alive max | alive min |\n\
         |---|---|---|---|---|---|---|---|---|---|---|"
    );
    for m in &r.calls.minutes {
        let inst = r.instances.minutes.iter().find(|i| i.minute == m.minute);
        let mm = r.load.per_minute.get(m.minute as usize);
        let field = |f: fn(&super::MinuteMachine) -> Option<f64>, digits: usize| num(mm.and_then(f), digits);
        let others = mm.and_then(|x| Some(x.busy_cores? - x.soak_cores?));
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.minute,
            field(|x| x.load_1min, 2),
            field(|x| x.busy_cores, 2),
            field(|x| x.soak_cores, 2),
            num(others, 2),
            field(|x| x.steal_pct, 1),
            inst.map_or(0, |i| i.starts),
            inst.map_or(0, |i| i.idle_stops),
            inst.map_or(0, |i| i.requested_stops),
            inst.map_or(0, |i| i.max_alive),
            inst.map_or(0, |i| i.min_alive),
        );
    }
    let i = &r.instances;
    let _ = writeln!(
        w,
        "\nInstances: {} cold starts (Start → ready p50 {} ms, p99 {} ms), {} idle stops by the workers (TIMEOUT), \
         {} stops requested by the leaf (STOP), {} deaths (DOWN), {} failed starts; the platform went to zero \
         instances {} times.",
        i.starts,
        ms(i.cold_start_p50_ms),
        ms(i.cold_start_p99_ms),
        i.idle_stops,
        i.requested_stops,
        i.downs,
        i.failed_starts,
        i.scale_to_zero
    );

    let d = &r.drift;
    let pct = |v: Option<f64>| v.map_or_else(|| "–".into(), |v| format!("{:+.1} %", v * 100.0));
    let _ = writeln!(
        w,
        "\nDrift, least-squares trend over the minutes: latency p50 {}, p99 {}. \
         Minute {} alone → minute {} alone: latency p50 {}, p99 {}; of which the handler's own time (the fake's model \
         draws) p50 {}, and the rest (hops, queues, cold starts: what a busy machine stretches) p50 {}, p99 {}. \
         Load average {} → {}. Over the minutes, p50 against the load average: Pearson r = {}. CPU the soak's \
         own processes used per call: {} ms in minute {} and {} ms in minute {} (the platform's work per call; \
         flat while latency grows means the calls waited for a CPU that other work held).",
        pct(d.p50_trend),
        pct(d.p99_trend),
        d.first_minute,
        d.last_minute,
        pct(d.p50_drift),
        pct(d.p99_drift),
        pct(d.handler_p50_drift),
        pct(d.overhead_p50_drift),
        pct(d.overhead_p99_drift),
        num(d.load_first, 2),
        num(d.load_last, 2),
        num(d.p50_load_correlation, 2),
        num(d.soak_cpu_ms_per_call_first, 3),
        d.first_minute,
        num(d.soak_cpu_ms_per_call_last, 3),
        d.last_minute,
    );

    let _ = writeln!(
        w,
        "\nPer image, first and last minute:\n\n| image | minute | ok | p50 ms | p99 ms |\n|---|---|---|---|---|"
    );
    for (image, minutes) in &r.calls.minutes_by_image {
        let with_calls: Vec<_> = minutes.iter().filter(|m| m.ok > 0).collect();
        for m in with_calls.first().into_iter().chain(with_calls.last().filter(|_| with_calls.len() > 1)) {
            let _ =
                writeln!(w, "| {image} | {} | {} | {} | {} |", m.minute, m.ok, ms(m.p50_ms), ms(m.p99_ms));
        }
    }

    let _ = writeln!(
        w,
        "\n## Memory and open files per process\n\nSampled from `/proc/<pid>/status` (VmRSS) and `/proc/<pid>/fd`; \
         slopes are least-squares fits over every sample and over the second half of them (near 0 when memory \
         levelled off after filling caches and pools; as steep as the whole run's when it keeps growing).\n"
    );
    let _ = writeln!(
        w,
        "| process | samples | minutes | CPU cores | RSS first MiB | RSS last MiB | RSS max MiB | RSS slope KiB/min | second half KiB/min (R²) | at that rate, MiB/h | fds first | fds last | fds max | fd slope /min | second half /min |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for p in &r.processes {
        let _ = writeln!(
            w,
            "| {}{} | {} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {} | {} ({}) | {} | {} | {} | {} | {} | {} |",
            p.process,
            if p.exited { " (exited)" } else { "" },
            p.samples,
            p.minutes_sampled,
            num(p.cpu_cores_mean, 3),
            p.rss_first_mib,
            p.rss_last_mib,
            p.rss_max_mib,
            num(p.rss_slope_kib_per_min, 1),
            num(p.rss_slope_second_half_kib_per_min, 1),
            num(p.rss_r2_second_half, 2),
            num(p.rss_slope_second_half_kib_per_min.map(|k| k * 60.0 / 1024.0), 1),
            p.fds_first,
            p.fds_last,
            p.fds_max,
            num(p.fds_slope_per_min, 2),
            num(p.fds_slope_second_half_per_min, 2)
        );
    }

    let p = &r.phantoms;
    let _ = writeln!(
        w,
        "\n## Instances at the end\n\nProbed {:.0} s after the last call ended (longest idle timeout {} s). \
         Real: {} instance(s) held by the workers' runtimes (one `Resources` sample each).\n",
        p.quiet_before_probe_s, p.longest_idle_timeout_s, p.real
    );
    let during = p
        .during_calls_at_s
        .map_or_else(|| "during calls".to_string(), |at| format!("during calls ({at:.0} s in)"));
    let _ = writeln!(w, "| view | {during} | at the end | phantoms |\n|---|---|---|---|");
    for v in &p.views {
        let busy = v.during_calls.map_or_else(|| "–".into(), |n| n.to_string());
        let _ = writeln!(w, "| {} | {busy} | {} | {} |", v.view, v.instances, v.phantoms);
    }
    out
}
