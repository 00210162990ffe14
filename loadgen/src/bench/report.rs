//! Reading a bench step back from its run database, and the reports.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::{BenchReport, BenchStep};

/// What the run database says about one step; CPU figures are filled in by the caller.
pub(super) fn measure(
    db: &Path,
    rate: u32,
    scheduled: u64,
    due: u64,
    max_lag_p99: Duration,
) -> anyhow::Result<BenchStep> {
    let conn = rusqlite::Connection::open(db)?;
    let column = |sql: &str| -> anyhow::Result<Vec<i64>> {
        let mut stmt = conn.prepare(sql)?;
        let values = stmt.query_map([], |r| r.get::<_, i64>(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(values)
    };
    let lags = column("SELECT send_lag_ns FROM calls WHERE send_lag_ns IS NOT NULL ORDER BY send_lag_ns")?;
    let latencies = column("SELECT latency_ns FROM calls WHERE latency_ns IS NOT NULL ORDER BY latency_ns")?;
    let sent = column("SELECT sent_ns FROM calls WHERE sent_ns IS NOT NULL ORDER BY sent_ns")?;
    let rows: i64 = conn.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0))?;
    let errors: i64 = conn.query_row("SELECT COUNT(*) FROM calls WHERE status != 'OK'", [], |r| r.get(0))?;
    let rows = u64::try_from(rows).unwrap_or(0);
    {
        let mut examples =
            conn.prepare("SELECT status, MIN(error) FROM calls WHERE status != 'OK' GROUP BY status")?;
        for row in examples.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))? {
            let (status, error) = row?;
            tracing::warn!(rate, status, example = error.unwrap_or_default(), "calls not OK");
        }
    }
    let mut stmt = conn.prepare("SELECT status, COUNT(*) FROM calls WHERE status != 'OK' GROUP BY status")?;
    let errors_by_status = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0))))?
        .collect::<Result<_, _>>()?;
    let errors = u64::try_from(errors).unwrap_or(0);
    let seconds = match (sent.first(), sent.last()) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
        _ => 0.0,
    };
    // n calls span n-1 gaps.
    let achieved_rps = if seconds > 0.0 { (sent.len() as f64 - 1.0) / seconds } else { 0.0 };
    let us = |sorted: &[i64], q: f64| percentile(sorted, q) / 1e3;
    let lost_rows = scheduled.saturating_sub(rows);
    let send_lag_p99_us = us(&lags, 0.99);
    Ok(BenchStep {
        target_rps: rate,
        round: 1,
        seconds,
        scheduled,
        due,
        rows,
        lost_rows,
        errors,
        errors_by_status,
        achieved_rps,
        send_lag_p50_us: us(&lags, 0.50),
        send_lag_p99_us,
        send_lag_max_us: lags.last().map_or(0.0, |v| *v as f64 / 1e3),
        latency_p50_us: us(&latencies, 0.50),
        latency_p99_us: us(&latencies, 0.99),
        loadgen_cpu_cores: f64::NAN,
        leaf_cpu_cores: f64::NAN,
        wakeup: super::Lateness::default(),
        sustained: lost_rows == 0
            && errors == 0
            && achieved_rps >= 0.95 * f64::from(rate)
            && send_lag_p99_us <= max_lag_p99.as_secs_f64() * 1e6,
    })
}

/// Nearest-rank percentile of sorted values.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // rank is in 1..=len
pub(super) fn percentile(sorted: &[i64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64
}

pub(super) fn write_reports(dir: &Path, report: &BenchReport) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = dir.join("loadgen.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    let md = dir.join("loadgen.md");
    std::fs::write(&md, markdown(report)).with_context(|| format!("cannot write {}", md.display()))?;
    Ok(())
}

pub fn markdown(report: &BenchReport) -> String {
    let mut out = String::from("# loadgen benchmark: open-loop send rate against a no-op leaf\n\n");
    out.push_str(&format!(
        "Machine: {} × {}, load average {:.2} when the run started (other work on the machine shares its CPUs). \
         Build profile: {}. Body {} bytes. The no-op leaf runs as a process of its own (`loadgen noop-leaf`). \
         Sustained = no lost row, no error, achieved ≥ 95 % of target, send lag p99 ≤ {:.0} µs.\n\n",
        report.cpus, report.cpu_model, report.load_average, report.profile, report.body_bytes, report.max_lag_p99_us
    ));
    match &report.ceiling {
        Some(c) => out.push_str(&format!(
            "**Baseline, the no-op leaf's own ceiling** (same run): {:.0} calls/s answered to a closed-loop client \
             recording nothing ({} calls outstanding on {} connections, {:.1} s, {} errors); leaf CPU {:.2} cores, \
             client CPU {:.2} cores.\n\n",
            c.rps, c.concurrency, c.connections, c.seconds, c.errors, c.leaf_cpu_cores, c.client_cpu_cores
        )),
        None => out.push_str("The no-op leaf's ceiling was not measured in this run (`--ceiling-seconds 0`).\n\n"),
    }
    let w = &report.idle_wakeup;
    out.push_str(&format!(
        "**Baseline, the machine's own wake-up lateness**: a thread that only sleeps 1 ms at a time woke late by \
         p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, at most {:.0} µs with nothing of the bench running ({} wake-ups). \
         The same thread runs beside every step (columns *probe*): how late a thread woke under the load the generator \
         and the leaf put on the machine then, the part of the send lag that is waiting for a CPU.\n\n",
        w.p50_us, w.p99_us, w.p999_us, w.max_us, w.samples
    ));
    out.push_str(
        "| target rps | round | achieved rps | of ceiling | calls | rows | lost | errors | lag p50 µs | lag p99 µs | lag max µs | latency p50 µs | latency p99 µs | loadgen CPU cores | leaf CPU cores | probe p99 µs | probe max µs | sustained |\n",
    );
    out.push_str(
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|\n",
    );
    let mut errors = String::new();
    for s in &report.steps {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} | {} |\n",
            s.target_rps,
            s.round,
            s.achieved_rps,
            // No ceiling measured (`--ceiling-seconds 0`): nothing to compare with.
            report.ceiling.as_ref().map_or("–".to_string(), |c| format!("{:.2}", s.achieved_rps / c.rps)),
            s.scheduled,
            s.rows,
            s.lost_rows,
            s.errors,
            s.send_lag_p50_us,
            s.send_lag_p99_us,
            s.send_lag_max_us,
            s.latency_p50_us,
            s.latency_p99_us,
            s.loadgen_cpu_cores,
            s.leaf_cpu_cores,
            s.wakeup.p99_us,
            s.wakeup.max_us,
            if s.sustained { "yes" } else { "no" }
        ));
        for (status, n) in &s.errors_by_status {
            errors.push_str(&format!("- {} calls/s, round {}: {n} × {status}\n", s.target_rps, s.round));
        }
    }
    if !errors.is_empty() {
        out.push_str("\nErrors:\n");
        out.push_str(&errors);
    }
    if report.rounds > 1 {
        out.push_str("\nRounds that met every criterion, per rate:");
        let mut rates: Vec<u32> = Vec::new();
        for step in &report.steps {
            if !rates.contains(&step.target_rps) {
                rates.push(step.target_rps);
            }
        }
        for rate in rates {
            let of_rate = report.steps.iter().filter(|s| s.target_rps == rate);
            let met = of_rate.clone().filter(|s| s.sustained).count();
            out.push_str(&format!(" {rate} calls/s {met} of {};", of_rate.count()));
        }
        out.pop();
        out.push_str(".\n");
    }
    out.push_str(&format!(
        "\nSustained rate (every criterion met in every round): **{}**. Zero lost rows: **{}**.\n",
        report.sustained_rps.map_or("none".to_string(), |r| format!("{r} calls/s")),
        if report.zero_lost_rows { "yes" } else { "no" }
    ));
    out
}
