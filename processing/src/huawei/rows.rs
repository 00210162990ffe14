//! The two tables' columns (sir-lab/data-release, `README_data_release_2025.md`)
//! and one row of each in hyperfake's units (`docs/units.md`, "Huawei 2025
//! per-request data").

use hyperfake_core::{Bytes, Nanos};

use super::csv::Record;
use super::error::{RowError, SkipReason};

/// The per-request table's columns the import reads, in [`RequestRow::parse`]'s order.
pub(crate) const REQUEST_COLUMNS: [&str; 13] = [
    "time_worker",
    "requestID",
    "clusterName",
    "funcName",
    "userID",
    "podID",
    "totalCost_worker",
    "workerCost",
    "runtimeCost",
    "totalCost_frontend",
    "cpu_usage",
    "memory_usage",
    "requestBodySize",
];

/// The cold-start table's columns the import reads, in [`ColdStartRow::parse`]'s order.
pub(crate) const COLD_START_COLUMNS: [&str; 5] =
    ["clusterName", "funcName", "userID", "podID", "totalCost_cold_start"];

/// The image repository every imported function's tag starts with.
pub const IMAGE_PREFIX: &str = "huawei-";

/// One request in hyperfake's units; `None` where the trace's cell is empty.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RequestRow {
    pub(crate) request_id: Option<String>,
    pub(crate) image_tag: String,
    /// `time_worker`, ns since the trace's time 0.
    pub(crate) started_ns: i64,
    pub(crate) request_size_bytes: Option<i64>,
    pub(crate) runtime_ns: i64,
    pub(crate) cpu_cores: f64,
    pub(crate) ram_bytes: i64,
    pub(crate) worker_time_ns: Option<i64>,
    pub(crate) worker_overhead_ns: Option<i64>,
    pub(crate) latency_ns: Option<i64>,
    pub(crate) pod: String,
    pub(crate) cluster: Option<String>,
}

impl RequestRow {
    /// `cols` are the positions of [`REQUEST_COLUMNS`] in the file's header.
    pub(crate) fn parse(r: &Record<'_>, cols: &[usize; 13], at: &Where<'_>) -> Result<RequestRow, RowError> {
        let cell =
            |i: usize| Cell { name: REQUEST_COLUMNS[i], text: r.fields[cols[i]].trim(), at, line: r.line };
        let pod = cell(5).required()?.to_owned();
        let image_tag = image_tag(cell(3).required()?, cell(4).required()?, &pod)
            .ok_or_else(|| cell(3).error(SkipReason::BadFunction, "no valid image reference".into()))?;
        Ok(RequestRow {
            request_id: cell(1).optional().map(str::to_owned),
            image_tag,
            started_ns: cell(0).seconds()?.ok_or_else(|| cell(0).missing())?,
            runtime_ns: cell(8).seconds()?.ok_or_else(|| cell(8).missing())?,
            cpu_cores: cell(10).number()?.ok_or_else(|| cell(10).missing())?,
            ram_bytes: cell(11).mib()?.ok_or_else(|| cell(11).missing())?,
            request_size_bytes: cell(12).bytes()?,
            worker_time_ns: cell(6).seconds()?,
            worker_overhead_ns: cell(7).seconds()?,
            latency_ns: cell(9).seconds()?,
            cluster: cell(2).optional().map(str::to_owned),
            pod,
        })
    }

    /// The end of the request's interval: `time_worker + totalCost_worker`,
    /// or `+ runtimeCost` without the former.
    pub(crate) fn ended_ns(&self) -> i64 {
        self.started_ns.saturating_add(self.worker_time_ns.unwrap_or(self.runtime_ns))
    }
}

/// One cold start in hyperfake's units.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ColdStartRow {
    pub(crate) image_tag: String,
    pub(crate) pod: String,
    pub(crate) cluster: String,
    pub(crate) duration_ns: i64,
}

impl ColdStartRow {
    pub(crate) fn parse(r: &Record<'_>, cols: &[usize; 5], at: &Where<'_>) -> Result<ColdStartRow, RowError> {
        let cell =
            |i: usize| Cell { name: COLD_START_COLUMNS[i], text: r.fields[cols[i]].trim(), at, line: r.line };
        let pod = cell(3).required()?.to_owned();
        let image_tag = image_tag(cell(1).required()?, cell(2).required()?, &pod)
            .ok_or_else(|| cell(1).error(SkipReason::BadFunction, "no valid image reference".into()))?;
        Ok(ColdStartRow {
            image_tag,
            cluster: cell(0).required()?.to_owned(),
            duration_ns: cell(4).seconds()?.ok_or_else(|| cell(4).missing())?,
            pod,
        })
    }
}

/// The file a row comes from, for errors.
#[derive(Debug)]
pub(crate) struct Where<'a> {
    pub(crate) path: &'a std::path::Path,
}

/// One cell being converted.
struct Cell<'a> {
    name: &'static str,
    text: &'a str,
    at: &'a Where<'a>,
    line: u64,
}

impl<'a> Cell<'a> {
    fn error(&self, reason: SkipReason, message: String) -> RowError {
        RowError {
            path: self.at.path.to_owned(),
            line: self.line,
            column: Some(self.name.to_owned()),
            reason,
            message,
        }
    }

    fn missing(&self) -> RowError {
        self.error(SkipReason::MissingValue, "empty".into())
    }

    fn optional(&self) -> Option<&'a str> {
        // pandas writes a missing value as an empty cell (or NaN).
        (!self.text.is_empty() && !self.text.eq_ignore_ascii_case("nan")).then_some(self.text)
    }

    fn required(&self) -> Result<&'a str, RowError> {
        self.optional().ok_or_else(|| self.missing())
    }

    /// A finite, non-negative number (`1018`, `0.023`, `6e-06`), `None` when empty.
    fn number(&self) -> Result<Option<f64>, RowError> {
        let Some(text) = self.optional() else { return Ok(None) };
        match text.parse::<f64>() {
            Ok(v) if !v.is_finite() => {
                Err(self.error(SkipReason::BadNumber, format!("{text:?} is not finite")))
            }
            Ok(v) if v < 0.0 => Err(self.error(SkipReason::Negative, format!("{text} is negative"))),
            Ok(v) => Ok(Some(v)),
            Err(_) => Err(self.error(SkipReason::BadNumber, format!("{text:?} is not a number"))),
        }
    }

    /// `number × scale`, rounded, as an `i64` (too large: a bad number).
    fn scaled(&self, scale: f64) -> Result<Option<u64>, RowError> {
        let Some(v) = self.number()? else { return Ok(None) };
        let scaled = (v * scale).round();
        // i64::MAX as f64 rounds up to 2^63, which is already out of range.
        if scaled >= i64::MAX as f64 {
            return Err(self.error(SkipReason::BadNumber, format!("{} is too large", self.text)));
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(Some(scaled as u64))
    }

    /// Seconds → ns.
    fn seconds(&self) -> Result<Option<i64>, RowError> {
        Ok(self.scaled(1e9)?.map(|ns| Nanos(ns).as_i64()))
    }

    /// MB (the trace's MB are MiB: `32.308594` is 33 084 KiB) → bytes.
    fn mib(&self) -> Result<Option<i64>, RowError> {
        Ok(self.scaled(Bytes::MIB as f64)?.map(|b| Bytes(b).as_i64()))
    }

    /// Bytes, as given (rounded if fractional).
    fn bytes(&self) -> Result<Option<i64>, RowError> {
        Ok(self.scaled(1.0)?.map(|b| Bytes(b).as_i64()))
    }
}

/// The pool a pod belongs to: its id without the trailing `-<number>`
/// (`pool22-300-128-0000618412` → `pool22-300-128`).
pub(crate) fn pool_of(pod: &str) -> &str {
    match pod.rsplit_once('-') {
        Some((pool, n)) if !pool.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => pool,
        _ => pod,
    }
}

/// `huawei-<funcID>:latest`, with the trace's function id
/// `<funcName>---<userID>---<poolName>` (one function per name, user and
/// resource pool, as the trace's own time series identify them), made a
/// valid image name ([`sanitise`]). `None` when one of the three has no
/// letter or digit.
pub fn image_tag(func_name: &str, user_id: &str, pod: &str) -> Option<String> {
    let parts = [func_name, user_id, pool_of(pod)];
    if parts.iter().any(|p| !p.bytes().any(|b| b.is_ascii_alphanumeric())) {
        return None;
    }
    let name = sanitise(&format!("{IMAGE_PREFIX}{func_name}---{user_id}---{}", pool_of(pod)))?;
    Some(format!("{name}:latest"))
}

/// Makes `raw` match the image name grammar `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`:
/// lower case; any other character becomes `-`; a run of separators that is
/// not `.`, `_`, `__` or only dashes becomes one `-`; separators at either
/// end are dropped. `None` when no letter or digit is left.
pub fn sanitise(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut run = String::new();
    let flush = |out: &mut String, run: &mut String| {
        if !out.is_empty() && !run.is_empty() {
            let valid = run == "." || run == "_" || run == "__" || run.bytes().all(|b| b == b'-');
            out.push_str(if valid { run } else { "-" });
        }
        run.clear();
    };
    for c in raw.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            flush(&mut out, &mut run);
            out.push(c);
        } else if matches!(c, '.' | '_') {
            run.push(c);
        } else {
            run.push('-');
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_follow_the_grammar() {
        assert_eq!(
            image_tag("296", "224", "pool22-300-128-0000618412").unwrap(),
            "huawei-296---224---pool22-300-128:latest"
        );
        assert_eq!(sanitise("Huawei-Fn Name").unwrap(), "huawei-fn-name");
        assert_eq!(sanitise("a.b_c__d---e").unwrap(), "a.b_c__d---e");
        assert_eq!(sanitise("a..b_.c___d-.e/f").unwrap(), "a-b-c-d-e-f");
        assert_eq!(sanitise("--._x_-").unwrap(), "x");
        assert_eq!(sanitise("é!?"), None);
        assert_eq!(image_tag("!!", "224", "pool22-300-128-0000618412"), None);
        assert_eq!(image_tag("Fn 7", "u/1", "p").unwrap(), "huawei-fn-7---u-1---p:latest");
        assert_eq!(pool_of("pool22-300-128-0000618412"), "pool22-300-128");
        assert_eq!(pool_of("pod-x"), "pod-x");
        assert_eq!(pool_of("7"), "7");
    }
}
