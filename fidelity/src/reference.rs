//! How much the real platform differs from itself (`fidelity compare
//! --reference`): a second real run of the same workload (the pipeline uses
//! the training run, another seed) is compared with the real run the fake is
//! judged against, with the same statistics as the fake. A fake cannot be
//! expected to match a real run more closely than the real platform matches
//! itself: on the committed 3-minute sample two real runs of `configs/local.yaml`
//! differ by a p99 ratio of 0.74 for echo and 0.77 for the thumbnailer, and
//! KS 0.12 for echo, outside the targets. The report shows these numbers next
//! to the fake's, and says for each miss whether the fake is within the real
//! platform's own run-to-run variation or beyond it.

use std::fmt::Write as _;
use std::path::PathBuf;

use hyperfake_core::format::{Column, Unit};
use serde::Serialize;

use crate::data::ImageCalls;
use crate::report::{ImageComparison, md_escape};
use crate::stats::{ks_distance, percentile};

/// The second real run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reference {
    pub db: PathBuf,
    pub run: String,
}

/// The reference run against the judged real run, for one function: the
/// same statistics as the fake's (ratio = reference / real).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RealVsReal {
    pub latency_ratio_p50: Option<f64>,
    pub latency_ratio_p99: Option<f64>,
    pub ks_distance: Option<f64>,
}

impl RealVsReal {
    /// `None` when either run has no successful call of the function.
    pub fn new(reference: Option<&ImageCalls>, real: Option<&ImageCalls>) -> Option<RealVsReal> {
        let (reference, real) = (reference?, real?);
        let ratio = |p: f64| match (percentile(&reference.latencies_ok, p), percentile(&real.latencies_ok, p))
        {
            (Some(a), Some(b)) if b > 0 => Some(a as f64 / b as f64),
            _ => None,
        };
        (!reference.latencies_ok.is_empty() && !real.latencies_ok.is_empty()).then(|| RealVsReal {
            latency_ratio_p50: ratio(0.50),
            latency_ratio_p99: ratio(0.99),
            ks_distance: ks_distance(&reference.latencies_ok, &real.latencies_ok),
        })
    }

    /// The reference's value of a [`crate::Miss`] statistic (`p50_ratio`,
    /// `p99_ratio`, `ks`).
    fn statistic(&self, name: &str) -> Option<f64> {
        match name {
            "p50_ratio" => self.latency_ratio_p50,
            "p99_ratio" => self.latency_ratio_p99,
            "ks" => self.ks_distance,
            _ => None,
        }
    }
}

/// How far a statistic is from perfect: |ln ratio| for ratios (0.8 and 1.25
/// are equally far), the distance itself for KS.
fn distance(statistic: &str, value: f64) -> f64 {
    if statistic == "ks" { value } else { value.ln().abs() }
}

/// The sentence appended to a function's "why it misses": for each missed
/// statistic, the real platform's own value and whether the fake is within
/// it. `None` without a reference or without misses.
pub fn within_variation(image: &ImageComparison) -> Option<String> {
    let rr = image.real_vs_real?;
    let ratio = Column::fit(Unit::Ratio, []);
    let mut within = Vec::new();
    let mut beyond = Vec::new();
    for miss in &image.misses {
        let Some(own) = rr.statistic(&miss.statistic) else { continue };
        let label = match miss.statistic.as_str() {
            "ks" => "KS",
            "p50_ratio" => "p50 ratio",
            _ => "p99 ratio",
        };
        let text = format!("{label} {} (real vs real {})", ratio.cell(miss.value), ratio.cell(own));
        if distance(&miss.statistic, miss.value) <= distance(&miss.statistic, own) {
            within.push(text);
        } else {
            beyond.push(text);
        }
    }
    let mut parts = Vec::new();
    if !within.is_empty() {
        parts.push(format!("within the real platform's own run-to-run variation: {}", within.join(", ")));
    }
    if !beyond.is_empty() {
        parts.push(format!("beyond it: {}", beyond.join(", ")))
    }
    (!parts.is_empty()).then(|| format!("Against a second real run of the workload, {}.", parts.join("; ")))
}

/// Explains the reference columns (Markdown and HTML).
pub const NOTE: &str = "Real vs real: a second real run of the same workload (another seed) against the real run \
     above, with the same statistics (ratio = second / first). The fake cannot be expected to match a real run \
     more closely than the real platform matches itself.";

/// One function's row: p50 ratio, p99 ratio and KS, each the fake's then
/// the real platform's own (`–` where unknown).
fn cells(i: &ImageComparison) -> [String; 6] {
    let ratio = Column::fit(Unit::Ratio, []);
    let r = |v: Option<f64>| ratio.cell_opt(v);
    let rr = i.real_vs_real;
    [
        r(i.latency_ratio_p50),
        r(rr.and_then(|x| x.latency_ratio_p50)),
        r(i.latency_ratio_p99),
        r(rr.and_then(|x| x.latency_ratio_p99)),
        r(i.ks_distance),
        r(rr.and_then(|x| x.ks_distance)),
    ]
}

/// The Markdown section: one row per function with the fake's and the real
/// platform's own statistics. Empty without a reference.
pub fn markdown(reference: Option<&Reference>, images: &[ImageComparison]) -> String {
    let Some(reference) = reference else { return String::new() };
    let mut md = String::from("\n## Real vs real\n\n");
    let _ = writeln!(
        md,
        "{} Second real run: {} run {}.\n",
        NOTE,
        md_escape(&reference.db.display().to_string()),
        md_escape(&reference.run)
    );
    md.push_str(
        "| function | p50 ratio fake / real vs real | p99 ratio fake / real vs real | KS fake / real vs real |\n\
         |---|---:|---:|---:|\n",
    );
    for i in images {
        let [p50, p50_own, p99, p99_own, ks, ks_own] = cells(i);
        let _ = writeln!(
            md,
            "| {} | {p50} / {p50_own} | {p99} / {p99_own} | {ks} / {ks_own} |",
            md_escape(&i.image_tag)
        );
    }
    md
}

/// The HTML section, like [`markdown`]. Empty without a reference.
pub fn html(reference: Option<&Reference>, images: &[ImageComparison]) -> String {
    let Some(reference) = reference else { return String::new() };
    let e = crate::report::html_escape;
    let mut h = String::from("<h2>Real vs real</h2>\n");
    let _ = writeln!(
        h,
        "<p class=\"note\">{} Second real run: <code>{}</code> run <code>{}</code>.</p>",
        e(NOTE),
        e(&reference.db.display().to_string()),
        e(&reference.run)
    );
    h.push_str(
        "<table class=\"numbers\"><thead><tr><th rowspan=\"2\">function</th><th colspan=\"2\">p50 ratio</th>\
         <th colspan=\"2\">p99 ratio</th><th colspan=\"2\">KS</th></tr>\n<tr>\
         <th>fake</th><th>real vs real</th><th>fake</th><th>real vs real</th><th>fake</th><th>real vs real</th>\
         </tr></thead><tbody>\n",
    );
    for i in images {
        let cells: String = cells(i).iter().map(|c| format!("<td>{c}</td>")).collect();
        let _ = writeln!(h, "<tr><th>{}</th>{cells}</tr>", e(&i.image_tag));
    }
    h.push_str("</tbody></table>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Miss;

    fn calls(latencies_ms: &[u64]) -> ImageCalls {
        let mut latencies_ok: Vec<u64> = latencies_ms.iter().map(|ms| ms * 1_000_000).collect();
        latencies_ok.sort_unstable();
        ImageCalls {
            calls: latencies_ok.len() as u64,
            ok: latencies_ok.len() as u64,
            latencies_ok,
            ..Default::default()
        }
    }

    #[test]
    fn real_vs_real_uses_the_fakes_statistics() {
        let real = calls(&(1..=100).collect::<Vec<_>>());
        let slower = calls(&(1..=100).map(|v| v * 2).collect::<Vec<_>>());
        let rr = RealVsReal::new(Some(&slower), Some(&real)).unwrap();
        assert_eq!(rr.latency_ratio_p50, Some(2.0));
        assert_eq!(rr.latency_ratio_p99, Some(2.0));
        assert_eq!(rr.ks_distance, Some(0.5));
        assert_eq!(RealVsReal::new(None, Some(&real)), None);
        assert_eq!(RealVsReal::new(Some(&calls(&[])), Some(&real)), None);
    }

    #[test]
    fn a_miss_is_within_or_beyond_the_real_platforms_own_variation() {
        let miss =
            |statistic: &str, value: f64| Miss { statistic: statistic.into(), value, target: String::new() };
        let mut image = ImageComparison {
            misses: vec![miss("p99_ratio", 0.80), miss("ks", 0.15)],
            real_vs_real: Some(RealVsReal {
                latency_ratio_p50: Some(1.0),
                latency_ratio_p99: Some(1.3),
                ks_distance: Some(0.12),
            }),
            image_tag: "hyperfaas-echo:latest".into(),
            ..Default::default()
        };
        let text = within_variation(&image).unwrap();
        // |ln 0.80| = 0.22 ≤ |ln 1.3| = 0.26: within; KS 0.15 > 0.12: beyond.
        assert!(
            text.contains(
                "within the real platform's own run-to-run variation: p99 ratio 0.800 (real vs real 1.300)"
            ),
            "{text}"
        );
        assert!(text.contains("beyond it: KS 0.150 (real vs real 0.120)"), "{text}");
        image.real_vs_real = None;
        assert_eq!(within_variation(&image), None);
    }
}
