//! Each case's figures and checks, printed, and merged into
//! `<dir>/faults.{json,md}` when `HYPERFAKE_FAULTS_REPORT=<dir>` is set
//! (`bench-results/` for the committed report). Cases run in parallel, so the
//! merge holds an exclusive lock on a file in the temporary directory; each case replaces
//! its own entry, stamped with the machine, profile and load it ran with.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

/// Where the report is written, when set.
pub(crate) const REPORT_DIR_ENV: &str = "HYPERFAKE_FAULTS_REPORT";

/// One fault case's outcome.
#[derive(Debug)]
pub(crate) struct Report {
    case: &'static str,
    title: &'static str,
    figures: Vec<(String, Value, &'static str)>,
    checks: Vec<(String, bool)>,
}

impl Report {
    /// `case` is the brief's letter and a name (`"b-killed-container"`).
    pub(crate) fn new(case: &'static str, title: &'static str) -> Report {
        Report { case, title, figures: Vec::new(), checks: Vec::new() }
    }

    /// A measured figure with its unit (`"s"`, `"calls"`, `""`).
    pub(crate) fn figure(&mut self, name: &str, value: impl Into<Value>, unit: &'static str) {
        self.figures.push((name.to_string(), value.into(), unit));
    }

    /// A promise the case checks; the case fails when one does not hold.
    pub(crate) fn check(&mut self, what: &str, holds: bool) -> bool {
        self.checks.push((what.to_string(), holds));
        holds
    }

    pub(crate) fn passed(&self) -> bool {
        self.checks.iter().all(|(_, ok)| *ok)
    }

    /// Prints the case, records it when asked, and fails the test (with
    /// `debug`, e.g. the processes' logs) when a check did not hold.
    pub(crate) fn finish(self, debug: impl FnOnce() -> String) {
        let text = self.text();
        eprintln!("{text}");
        if let Some(dir) = std::env::var_os(REPORT_DIR_ENV) {
            if let Err(e) = self.merge_into(Path::new(&dir)) {
                panic!("writing the fault report into {}: {e}", Path::new(&dir).display());
            }
        }
        if !self.passed() {
            panic!("{text}\n{}", debug());
        }
    }

    fn text(&self) -> String {
        let mut out = format!("fault case {} ({}): {}\n", self.case, self.title, verdict(self.passed()));
        for (name, value, unit) in &self.figures {
            out.push_str(&format!("  {name}: {value} {unit}\n"));
        }
        for (what, ok) in &self.checks {
            out.push_str(&format!("  [{}] {what}\n", if *ok { "ok" } else { "FAILED" }));
        }
        out
    }

    fn json(&self) -> Value {
        json!({
            "title": self.title,
            "passed": self.passed(),
            "measured_at": now_utc(),
            "machine": hyperfake_testkit::bench::machine(),
            "load_average": hyperfake_testkit::bench::load_average(),
            "profile": hyperfake_core::build::profile(cfg!(debug_assertions)),
            "figures": self.figures.iter().map(|(n, v, u)| json!({"name": n, "value": v, "unit": u})).collect::<Vec<_>>(),
            "checks": self.checks.iter().map(|(w, ok)| json!({"check": w, "holds": ok})).collect::<Vec<_>>(),
        })
    }

    fn merge_into(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        // Beside the report, not in it: bench-results/ holds only reports.
        let lock = std::fs::File::create(std::env::temp_dir().join("hyperfake-faults-report.lock"))?;
        lock.lock()?;
        let path = dir.join("faults.json");
        let mut cases: BTreeMap<String, Value> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.get("cases").cloned())
            .and_then(|c| serde_json::from_value(c).ok())
            .unwrap_or_default();
        cases.insert(self.case.to_string(), self.json());
        let all = json!({ "report": "fault-injection suite (issue 14)", "cases": cases });
        std::fs::write(&path, serde_json::to_string_pretty(&all)? + "\n")?;
        std::fs::write(dir.join("faults.md"), markdown(&cases))?;
        Ok(())
    }
}

fn verdict(passed: bool) -> &'static str {
    if passed { "pass" } else { "FAIL" }
}

fn markdown(cases: &BTreeMap<String, Value>) -> String {
    let mut out = String::from(
        "# Fault-injection suite\n\n\
         Written by `e2e/tests/it/faults` (issue 14): each case injects one fault into the real platform \
         (the `database`, `worker` and `leaf` binaries as processes, real Docker containers) and records \
         what it measured and which promises held. Regenerate with\n\n\
         ```sh\nHYPERFAKE_FAULTS_REPORT=$PWD/bench-results \\\n  \
         cargo test --workspace --test it -- faults --include-ignored --test-threads 1\n```\n\n\
         (as root: the packet-loss and full-disk cases use iptables and a tmpfs mount; \
         `--include-ignored` adds the long cases and the Docker daemon restart). Each case states the machine, build profile and \
         load average it ran with.\n\n\
         Found by this suite and fixed with it: a payload near 16 MiB was refused with OUT_OF_RANGE, \
         INTERNAL (an HTTP/2 error from the next hop's encoder) or RESOURCE_EXHAUSTED depending on \
         the hop; now every server answers RESOURCE_EXHAUSTED for an oversized message \
         (`proto::server::OversizedLayer`) and leaf and worker refuse a payload over 16 MiB − 64 KiB \
         before forwarding it (`check_payload`). A call whose container was killed under it ended \
         UNKNOWN \"transport error\"; it is now ABORTED (it may have run, so the leaf does not retry \
         it). Still open: a call to the id of a stored row that no longer validates is answered \
         UNAVAILABLE (\"database failed\"), which reads as retryable.\n\n\
         | case | title | result |\n|---|---|---|\n",
    );
    for (case, v) in cases {
        out.push_str(&format!(
            "| {case} | {} | {} |\n",
            v["title"].as_str().unwrap_or(""),
            verdict(v["passed"].as_bool().unwrap_or(false))
        ));
    }
    for (case, v) in cases {
        out.push_str(&format!("\n## {case}: {}\n\n", v["title"].as_str().unwrap_or("")));
        out.push_str(&format!(
            "Measured {} on {}; profile: {}; load average (1/5/15 min) {}.\n\n",
            v["measured_at"].as_str().unwrap_or("?"),
            v["machine"].as_str().unwrap_or("?"),
            v["profile"].as_str().unwrap_or("?"),
            v["load_average"].as_str().unwrap_or("?"),
        ));
        out.push_str("| figure | value |\n|---|---|\n");
        for f in v["figures"].as_array().into_iter().flatten() {
            let value = match &f["value"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!(
                "| {} | {} {} |\n",
                f["name"].as_str().unwrap_or(""),
                value,
                f["unit"].as_str().unwrap_or("")
            ));
        }
        out.push_str("\n| check | holds |\n|---|---|\n");
        for c in v["checks"].as_array().into_iter().flatten() {
            let holds = if c["holds"].as_bool().unwrap_or(false) { "yes" } else { "**no**" };
            out.push_str(&format!("| {} | {holds} |\n", c["check"].as_str().unwrap_or("")));
        }
    }
    out
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`, from the Unix clock (civil-from-days).
fn now_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}
