//! The comparison and its JSON / Markdown / HTML forms.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::{ImageCalls, RunData};
use crate::stats::{ks_distance, percentile};

/// One side's numbers for one function.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Side {
    pub calls: u64,
    pub ok: u64,
    pub error_rate: f64,
    /// Successful calls per second over the run.
    pub throughput_per_s: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p90_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub handler_p50_ms: Option<f64>,
    pub instances_used: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageComparison {
    pub image_tag: String,
    pub real: Side,
    pub fake: Side,
    /// fake / real for each latency percentile (1.0 = identical).
    pub latency_ratio_p50: Option<f64>,
    pub latency_ratio_p90: Option<f64>,
    pub latency_ratio_p99: Option<f64>,
    /// Two-sample KS statistic of the successful calls' latencies.
    pub ks_distance: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub real_db: PathBuf,
    pub real_run: String,
    pub fake_db: PathBuf,
    pub fake_run: String,
    /// Same seed and same workload file: the two runs sent the same calls.
    pub same_workload: bool,
    pub images: Vec<ImageComparison>,
    pub real_instances_over_time: Vec<(f64, i64)>,
    pub fake_instances_over_time: Vec<(f64, i64)>,
}

fn ms(ns: Option<u64>) -> Option<f64> {
    ns.map(|v| v as f64 / 1e6)
}

fn side(calls: Option<&ImageCalls>, duration_s: f64) -> Side {
    let Some(c) = calls else { return Side::default() };
    Side {
        calls: c.calls,
        ok: c.ok,
        error_rate: if c.calls == 0 { 0.0 } else { (c.calls - c.ok) as f64 / c.calls as f64 },
        throughput_per_s: c.ok as f64 / duration_s,
        latency_p50_ms: ms(percentile(&c.latencies_ok, 0.50)),
        latency_p90_ms: ms(percentile(&c.latencies_ok, 0.90)),
        latency_p99_ms: ms(percentile(&c.latencies_ok, 0.99)),
        handler_p50_ms: ms(percentile(&c.handler_ok, 0.50)),
        instances_used: c.instances_used,
    }
}

fn ratio(fake: Option<f64>, real: Option<f64>) -> Option<f64> {
    match (fake, real) {
        (Some(f), Some(r)) if r > 0.0 => Some(f / r),
        _ => None,
    }
}

impl Comparison {
    pub fn new(real: &RunData, fake: &RunData) -> Self {
        let mut images: Vec<String> = real.by_image.keys().chain(fake.by_image.keys()).cloned().collect();
        images.sort();
        images.dedup();
        let images = images
            .into_iter()
            .map(|image| {
                let (r, f) = (real.by_image.get(&image), fake.by_image.get(&image));
                let (rs, fs) = (side(r, real.duration_s), side(f, fake.duration_s));
                ImageComparison {
                    latency_ratio_p50: ratio(fs.latency_p50_ms, rs.latency_p50_ms),
                    latency_ratio_p90: ratio(fs.latency_p90_ms, rs.latency_p90_ms),
                    latency_ratio_p99: ratio(fs.latency_p99_ms, rs.latency_p99_ms),
                    ks_distance: match (r, f) {
                        (Some(r), Some(f)) => ks_distance(&r.latencies_ok, &f.latencies_ok),
                        _ => None,
                    },
                    image_tag: image,
                    real: rs,
                    fake: fs,
                }
            })
            .collect();
        Comparison {
            real_db: real.path.clone(),
            real_run: real.run_id.clone(),
            fake_db: fake.path.clone(),
            fake_run: fake.run_id.clone(),
            same_workload: real.seed == fake.seed && real.config_yaml == fake.config_yaml,
            images,
            real_instances_over_time: real.instances_over_time.clone(),
            fake_instances_over_time: fake.instances_over_time.clone(),
        }
    }

    pub fn to_markdown(&self) -> String {
        let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
        let mut md = String::from("# Fidelity: real vs. fake\n\n");
        let _ = writeln!(md, "- real: `{}` run `{}`", self.real_db.display(), self.real_run);
        let _ = writeln!(md, "- fake: `{}` run `{}`", self.fake_db.display(), self.fake_run);
        if !self.same_workload {
            md.push_str("\n**Warning:** the runs used different seeds or workload files; they did not send the same calls.\n");
        }
        md.push_str(
            "\nLatency is client-measured for successful calls, in ms. Ratio = fake / real. \
             KS = two-sample Kolmogorov–Smirnov distance of the latency distributions (0 = identical).\n\n\
             | function | calls real/fake | errors real/fake | throughput/s real/fake | p50 real/fake (ratio) | p90 real/fake (ratio) | p99 real/fake (ratio) | KS | instances real/fake |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        for i in &self.images {
            let _ = writeln!(
                md,
                "| {} | {}/{} | {:.1}%/{:.1}% | {:.2}/{:.2} | {}/{} ({}) | {}/{} ({}) | {}/{} ({}) | {} | {}/{} |",
                i.image_tag,
                i.real.calls,
                i.fake.calls,
                100.0 * i.real.error_rate,
                100.0 * i.fake.error_rate,
                i.real.throughput_per_s,
                i.fake.throughput_per_s,
                f(i.real.latency_p50_ms),
                f(i.fake.latency_p50_ms),
                f(i.latency_ratio_p50),
                f(i.real.latency_p90_ms),
                f(i.fake.latency_p90_ms),
                f(i.latency_ratio_p90),
                f(i.real.latency_p99_ms),
                f(i.fake.latency_p99_ms),
                f(i.latency_ratio_p99),
                f(i.ks_distance),
                i.real.instances_used,
                i.fake.instances_used,
            );
        }
        md
    }

    /// Writes `fidelity.{json,md,html}` and the plots into `dir`; returns the files.
    pub fn write(&self, dir: &Path, real: &RunData, fake: &RunData) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut files = Vec::new();
        let json = dir.join("fidelity.json");
        std::fs::write(&json, serde_json::to_string_pretty(self)?)?;
        files.push(json);
        let md = self.to_markdown();
        let md_path = dir.join("fidelity.md");
        std::fs::write(&md_path, &md)?;
        files.push(md_path);
        let plots = crate::plots::write_all(dir, real, fake, self)?;
        let mut html = String::from(
            "<!doctype html><meta charset=utf-8><title>hyperfake fidelity</title>\
             <style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse}\
             td,th{border:1px solid #ccc;padding:4px 8px}</style>\n<pre>",
        );
        html.push_str(&md.replace('&', "&amp;").replace('<', "&lt;"));
        html.push_str("</pre>\n");
        for p in &plots {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let _ = writeln!(html, "<h3>{name}</h3><img src=\"{name}\" style=\"max-width:100%\">");
        }
        let html_path = dir.join("fidelity.html");
        std::fs::write(&html_path, html)?;
        files.push(html_path);
        files.extend(plots);
        Ok(files)
    }
}
