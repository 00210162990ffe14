//! Synthetic training databases with known ground truth: what tests and the
//! benchmark train on until (and besides) real runs exist. Writes exactly the
//! schema of `docs/units.md`, "Training database schema".

use std::path::Path;

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::{Connection, params};

use crate::data::Sample;

/// The two tables the processing step writes.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS training_data (
    run_id TEXT,
    request_id TEXT,
    image_tag TEXT,
    call_started_ns INTEGER,
    request_size_bytes INTEGER,
    function_instances_count INTEGER,
    active_function_calls_count INTEGER,
    worker_cpu_usage REAL,
    worker_ram_usage INTEGER,
    function_processing_time_ns INTEGER,
    function_cpu_usage REAL,
    function_ram_usage INTEGER,
    worker_processing_time_ns INTEGER
);
CREATE TABLE IF NOT EXISTS training_data_avg (
    image_tag TEXT,
    request_size_bytes REAL,
    function_instances_count REAL,
    active_function_calls_count REAL,
    worker_cpu_usage REAL,
    worker_ram_usage REAL,
    function_processing_time_ns REAL,
    function_cpu_usage REAL,
    function_ram_usage REAL,
    sample_count INTEGER
);
";

/// How an image's targets depend on its inputs.
#[derive(Clone, Debug)]
pub enum Truth {
    /// `y_t = Σ w·x + b` (coefficients `[w0..w4, b]` per target) plus Gaussian
    /// noise with the given standard deviation per target.
    Linear { coeffs: [[f64; 6]; 3], noise_sd: [f64; 3] },
    /// A nonlinear function of the inputs (steps and a sine) that a linear
    /// model cannot fit, plus 1 % noise.
    Nonlinear,
}

impl Truth {
    /// The noise-free targets.
    pub fn eval(&self, x: &[f64; 5]) -> [f64; 3] {
        match self {
            Truth::Linear { coeffs, .. } => {
                coeffs.map(|c| c[5] + x.iter().zip(&c).map(|(x, w)| x * w).sum::<f64>())
            }
            Truth::Nonlinear => {
                let [size, instances, active, cpu, _ram] = *x;
                let runtime = 2e6
                    + 1.5e6 * (size / 150_000.0).sin().abs()
                    + if active > 8.0 { 6e6 } else { 1e6 * active }
                    + 4e5 * instances.sqrt();
                let fcpu = if cpu > 1.0 { 0.8 } else { 0.2 + 0.3 * cpu * cpu };
                let ram = 3e7 + if size > 400_000.0 { 2.5e7 } else { 40.0 * size };
                [runtime, fcpu, ram]
            }
        }
    }

    fn noise_sd(&self, clean: &[f64; 3]) -> [f64; 3] {
        match self {
            Truth::Linear { noise_sd, .. } => *noise_sd,
            Truth::Nonlinear => clean.map(|v| 0.01 * v.abs()),
        }
    }
}

/// One function image of a synthetic run.
#[derive(Clone, Debug)]
pub struct SyntheticImage {
    pub image_tag: String,
    pub truth: Truth,
}

/// A synthetic run: images, rows per image, the fraction of rows with a NULL
/// feature, and a seed. `SyntheticRun::new(seed).with_image(..).write(path)`.
#[derive(Clone, Debug)]
pub struct SyntheticRun {
    pub run_id: String,
    pub images: Vec<SyntheticImage>,
    pub rows_per_image: usize,
    /// Fraction of rows with a NULL in one column. By default 2 %.
    pub null_fraction: f64,
    pub seed: u64,
}

/// Known linear coefficients used by tests: runtime grows with payload size
/// and load, CPU with load, RAM with payload size.
pub const KNOWN_LINEAR: [[f64; 6]; 3] = [
    [2.0, 1.5e5, 8.0e5, 1.0e6, 1.0e-4, 3.0e6],
    [1.0e-7, 0.01, 0.02, 0.05, 0.0, 0.1],
    [30.0, 1.0e6, 2.0e6, 0.0, 1.0e-3, 2.0e7],
];

impl SyntheticRun {
    /// An empty run: add images with [`SyntheticRun::with_image`]. By default,
    /// 2 000 rows per image.
    pub fn new(seed: u64) -> SyntheticRun {
        SyntheticRun {
            run_id: format!("synthetic-{seed}"),
            images: vec![],
            rows_per_image: 2000,
            null_fraction: 0.02,
            seed,
        }
    }

    pub fn with_image(mut self, image_tag: &str, truth: Truth) -> Self {
        self.images.push(SyntheticImage { image_tag: image_tag.into(), truth });
        self
    }

    pub fn with_rows_per_image(mut self, n: usize) -> Self {
        self.rows_per_image = n;
        self
    }

    pub fn with_null_fraction(mut self, f: f64) -> Self {
        self.null_fraction = f;
        self
    }

    /// The usual fixture: `hyperfaas-echo` linear with [`KNOWN_LINEAR`] and
    /// small noise, `hyperfaas-thumbnailer` nonlinear.
    pub fn standard(seed: u64) -> SyntheticRun {
        SyntheticRun::new(seed)
            .with_image(
                "hyperfaas-echo:latest",
                Truth::Linear { coeffs: KNOWN_LINEAR, noise_sd: [1e4, 1e-4, 1e3] },
            )
            .with_image("hyperfaas-thumbnailer:latest", Truth::Nonlinear)
    }

    /// Generates the rows of one image (complete rows only), in call order.
    pub fn samples(&self, image: usize) -> Vec<Sample> {
        self.generate(image).into_iter().map(|r| r.sample).collect()
    }

    fn generate(&self, image: usize) -> Vec<GenRow> {
        let img = &self.images[image];
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed.wrapping_mul(1_000_003).wrapping_add(image as u64));
        let mut t_ns: i64 = 1_700_000_000_000_000_000;
        (0..self.rows_per_image)
            .map(|i| {
                t_ns += rng.random_range(100_000..5_000_000);
                // Payloads are log-uniform between 16 B and 1 MiB.
                let size =
                    (16f64.ln() + rng.random::<f64>() * ((1u64 << 20) as f64 / 16.0).ln()).exp().round();
                let instances = f64::from(rng.random_range(1u32..=10));
                let active = f64::from(rng.random_range(1u32..=16));
                let cpu = (0.1 * active * rng.random_range(0.5..1.5)).min(2.0);
                let ram = 1.0e9 + instances * 5.0e7 + rng.random_range(0.0..2.0e8);
                let x = [size, instances, active, cpu, ram];
                let clean = img.truth.eval(&x);
                let sd = img.truth.noise_sd(&clean);
                let mut y = [0.0; 3];
                for t in 0..3 {
                    y[t] = clean[t] + sd[t] * gaussian(&mut rng);
                }
                let null_col =
                    (rng.random::<f64>() < self.null_fraction).then(|| rng.random_range(0..8usize));
                GenRow {
                    request_id: format!("{}-{image}-{i}", self.run_id),
                    null_col,
                    sample: Sample { key: String::new(), started_ns: Some(t_ns), x, y },
                }
            })
            .collect()
    }

    /// Writes both tables into `path` (created if missing).
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut conn = Connection::open(path).with_context(|| format!("creating {}", path.display()))?;
        conn.execute_batch(SCHEMA)?;
        let tx = conn.transaction()?;
        {
            let mut ins = tx.prepare(
                "INSERT INTO training_data VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            let mut avg =
                tx.prepare("INSERT INTO training_data_avg VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")?;
            for (i, img) in self.images.iter().enumerate() {
                let rows = self.generate(i);
                // Means per (instances, active calls), as the processing step groups them.
                let mut groups: std::collections::BTreeMap<(u32, u32), ([f64; 8], u64)> = Default::default();
                for r in &rows {
                    let s = &r.sample;
                    let mut v: [Option<f64>; 8] =
                        [s.x[0], s.x[1], s.x[2], s.x[3], s.x[4], s.y[0], s.y[1], s.y[2]].map(Some);
                    if let Some(c) = r.null_col {
                        v[c] = None;
                    }
                    #[allow(clippy::cast_possible_truncation)]
                    let int = |v: Option<f64>| v.map(|v| v.round() as i64);
                    ins.execute(params![
                        self.run_id,
                        r.request_id,
                        img.image_tag,
                        s.started_ns,
                        int(v[0]),
                        int(v[1]),
                        int(v[2]),
                        v[3],
                        int(v[4]),
                        int(v[5]),
                        v[6],
                        int(v[7]),
                        int(v[5]).map(|t| t + 150_000),
                    ])?;
                    if r.null_col.is_none() {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let g = groups.entry((s.x[1] as u32, s.x[2] as u32)).or_default();
                        for (acc, v) in g.0.iter_mut().zip(v) {
                            *acc += v.unwrap_or(0.0);
                        }
                        g.1 += 1;
                    }
                }
                for (sums, n) in groups.values() {
                    let m = sums.map(|s| s / *n as f64);
                    avg.execute(params![
                        img.image_tag,
                        m[0],
                        m[1],
                        m[2],
                        m[3],
                        m[4],
                        m[5],
                        m[6],
                        m[7],
                        *n as i64
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

struct GenRow {
    request_id: String,
    null_col: Option<usize>,
    sample: Sample,
}

/// Standard normal by Box–Muller (keeps the dependency set to `rand`).
fn gaussian(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
