//! Synthetic training databases with known ground truth: what tests and the
//! benchmark train on until (and besides) real runs exist. Writes the tables
//! of `rundb::training`: by default only the base columns
//! (`BASE_SCHEMA`: HyperFake's 5 inputs, 3 targets); with a payload-driven image, also its
//! `feature_<name>` column and the `payload_features` table; with extra
//! targets, `response_size_bytes` and `worker_overhead_ns`; with cold starts,
//! the `cold_starts` table.

use std::path::Path;

use anyhow::{Context, Result};
use hyperfake_core::payload::{FeatureSource, PayloadFeature, PayloadFeatures};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::params;

use rundb::training::{
    BASE_SCHEMA, COLD_STARTS_DDL, COLD_STARTS_TABLE, EXTRA_TARGETS, PAYLOAD_FEATURES_DDL,
    PAYLOAD_FEATURES_TABLE,
};

use crate::data::Sample;

/// The payload feature of [`Truth::PayloadDriven`] images: the graph size
/// of a bfs call, read from the request's JSON field `/size`.
pub const PAYLOAD_FEATURE: &str = "graph_nodes";

/// How an image's targets depend on its inputs.
#[derive(Clone, Debug)]
pub enum Truth {
    /// `y_t = Σ w·x + b` (coefficients `[w0..w4, b]` per target) plus Gaussian
    /// noise with the given standard deviation per target.
    Linear { coeffs: [[f64; 6]; 3], noise_sd: [f64; 3] },
    /// A nonlinear function of the inputs (steps and a sine) that a linear
    /// model cannot fit, plus 1 % noise.
    Nonlinear,
    /// Runtime driven by a payload feature ([`PAYLOAD_FEATURE`], input 5):
    /// `1 ms + 2 µs · graph_nodes`, independent of the five fixed inputs, plus
    /// 2 % noise; CPU and RAM as [`Truth::Nonlinear`]. Without the feature a
    /// model cannot explain the runtime.
    PayloadDriven,
}

impl Truth {
    /// The noise-free targets for inputs `x` (5 fixed, then the payload features).
    pub fn eval(&self, x: &[f64]) -> [f64; 3] {
        match self {
            Truth::Linear { coeffs, .. } => {
                coeffs.map(|c| c[5] + x.iter().take(5).zip(&c).map(|(x, w)| x * w).sum::<f64>())
            }
            Truth::Nonlinear => {
                let (size, instances, active, cpu) = (x[0], x[1], x[2], x[3]);
                let runtime = 2e6
                    + 1.5e6 * (size / 150_000.0).sin().abs()
                    + if active > 8.0 { 6e6 } else { 1e6 * active }
                    + 4e5 * instances.sqrt();
                let fcpu = if cpu > 1.0 { 0.8 } else { 0.2 + 0.3 * cpu * cpu };
                let ram = 3e7 + if size > 400_000.0 { 2.5e7 } else { 40.0 * size };
                [runtime, fcpu, ram]
            }
            Truth::PayloadDriven => {
                let [_, fcpu, ram] = Truth::Nonlinear.eval(x);
                [1e6 + 2e3 * x.get(5).copied().unwrap_or(0.0), fcpu, ram]
            }
        }
    }

    /// The noise-free extra targets: response size (bytes) and worker
    /// overhead (ns), which grows with the request and the response size.
    pub fn eval_extra(&self, x: &[f64]) -> [f64; 2] {
        let response = match self {
            Truth::PayloadDriven => 200.0 + 8.0 * x.get(5).copied().unwrap_or(0.0),
            _ => 100.0 + 0.01 * x[0],
        };
        [response, 8e5 + 50.0 * response + 0.05 * x[0]]
    }

    fn noise_sd(&self, clean: &[f64; 3]) -> [f64; 3] {
        match self {
            Truth::Linear { noise_sd, .. } => *noise_sd,
            Truth::Nonlinear => clean.map(|v| 0.01 * v.abs()),
            Truth::PayloadDriven => [0.02 * clean[0], 0.01 * clean[1], 0.01 * clean[2]],
        }
    }

    /// The payload features an image with this truth declares.
    pub fn payload_features(&self) -> PayloadFeatures {
        match self {
            Truth::PayloadDriven => PayloadFeatures::try_from(vec![
                PayloadFeature::new(PAYLOAD_FEATURE, FeatureSource::Json { pointer: "/size".into() })
                    .expect("a valid declaration"),
            ])
            .expect("one feature"),
            _ => PayloadFeatures::default(),
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
    /// Write `response_size_bytes` and `worker_overhead_ns`.
    pub extra_targets: bool,
    /// Start durations per image written to `cold_starts` (0: no table).
    pub cold_starts_per_image: usize,
    pub seed: u64,
}

/// Known linear coefficients used by tests: runtime grows with payload size
/// and load, CPU with load, RAM with payload size.
pub const KNOWN_LINEAR: [[f64; 6]; 3] = [
    [2.0, 1.5e5, 8.0e5, 1.0e6, 1.0e-4, 3.0e6],
    [1.0e-7, 0.01, 0.02, 0.05, 0.0, 0.1],
    [30.0, 1.0e6, 2.0e6, 0.0, 1.0e-3, 2.0e7],
];

/// The median of the synthetic start durations (ns); they are log-normal
/// around it.
pub const COLD_START_MEDIAN_NS: f64 = 4.0e8;

impl SyntheticRun {
    /// An empty run: add images with [`SyntheticRun::with_image`]. By default,
    /// 2 000 rows per image.
    pub fn new(seed: u64) -> SyntheticRun {
        SyntheticRun {
            run_id: format!("synthetic-{seed}"),
            images: vec![],
            rows_per_image: 2000,
            null_fraction: 0.02,
            extra_targets: false,
            cold_starts_per_image: 0,
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

    /// Also write the `response_size_bytes` and `worker_overhead_ns` targets.
    pub fn with_extra_targets(mut self) -> Self {
        self.extra_targets = true;
        self
    }

    /// Also write `n` start durations per image into `cold_starts`.
    pub fn with_cold_starts(mut self, n: usize) -> Self {
        self.cold_starts_per_image = n;
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

    /// The standard fixture plus `hyperfaas-bfs` ([`Truth::PayloadDriven`],
    /// declaring [`PAYLOAD_FEATURE`]), the extra targets and 500 cold starts
    /// per image: a database in the full issue-10 schema.
    pub fn with_payload(seed: u64) -> SyntheticRun {
        SyntheticRun::standard(seed)
            .with_image("hyperfaas-bfs:latest", Truth::PayloadDriven)
            .with_extra_targets()
            .with_cold_starts(500)
    }

    /// Generates the rows of one image (complete rows only), in call order:
    /// `x` = 5 fixed inputs then the image's payload features, `y` = 3
    /// targets then, with extra targets, response size and overhead.
    pub fn samples(&self, image: usize) -> Vec<Sample> {
        self.generate(image).into_iter().map(|r| r.sample).collect()
    }

    fn generate(&self, image: usize) -> Vec<GenRow> {
        let img = &self.images[image];
        let n_features = img.truth.payload_features().len();
        let width = 5 + n_features + 3 + if self.extra_targets { EXTRA_TARGETS.len() } else { 0 };
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
                let mut x = vec![size, instances, active, cpu, ram];
                for _ in 0..n_features {
                    // Graph sizes log-uniform between 10 and 100 000 nodes.
                    x.push((10f64.ln() + rng.random::<f64>() * 1e4f64.ln()).exp().round());
                }
                let clean = img.truth.eval(&x);
                let sd = img.truth.noise_sd(&clean);
                let mut y = vec![0.0; 3];
                for t in 0..3 {
                    y[t] = clean[t] + sd[t] * gaussian(&mut rng);
                }
                if self.extra_targets {
                    let [response, overhead] = img.truth.eval_extra(&x);
                    y.push((response * (1.0 + 0.01 * gaussian(&mut rng))).round().max(0.0));
                    y.push((overhead * (1.0 + 0.05 * gaussian(&mut rng))).round());
                }
                // Column index in `x` then `y` order: 0..5 inputs, 5.. features, then targets.
                let null_col = (rng.random::<f64>() < self.null_fraction).then(|| rng.random_range(0..width));
                GenRow {
                    request_id: format!("{}-{image}-{i}", self.run_id),
                    null_col,
                    sample: Sample { key: String::new(), started_ns: Some(t_ns), x, y },
                }
            })
            .collect()
    }

    /// Every payload feature any image declares (column order of the table).
    fn feature_columns(&self) -> Vec<String> {
        let mut cols: Vec<String> = vec![];
        for img in &self.images {
            for f in img.truth.payload_features().iter() {
                if !cols.contains(&f.column()) {
                    cols.push(f.column());
                }
            }
        }
        cols
    }

    /// Writes the tables into `path` (created, with its directory, if missing).
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut conn = rundb::open(path).with_context(|| format!("creating {}", path.display()))?;
        // With the extra targets, the tables as processing makes them;
        // without, only the base columns (5 inputs, 3 targets).
        if self.extra_targets {
            rundb::training::create(&conn)?;
        } else {
            conn.execute_batch(BASE_SCHEMA)?;
        }
        let feature_cols = self.feature_columns();
        rundb::training::add_missing_columns(&conn, "training_data", &feature_cols)?;
        let mut extra_cols: Vec<String> = feature_cols.clone();
        if self.extra_targets {
            extra_cols.extend(EXTRA_TARGETS.iter().map(|s| s.to_string()));
        }
        if !feature_cols.is_empty() {
            conn.execute_batch(PAYLOAD_FEATURES_DDL)?;
        }
        if self.cold_starts_per_image > 0 {
            conn.execute_batch(COLD_STARTS_DDL)?;
        }
        let tx = conn.transaction()?;
        {
            let base = rundb::training::TRAINING_COLUMNS[..13].join(", ");
            let cols: Vec<String> = std::iter::once(base).chain(extra_cols.iter().cloned()).collect();
            let n = 13 + extra_cols.len();
            let marks: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
            let mut ins = tx.prepare(&format!(
                "INSERT INTO training_data ({}) VALUES ({})",
                cols.join(", "),
                marks.join(", ")
            ))?;
            let mut avg = tx.prepare(&format!(
                "INSERT INTO training_data_avg ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                rundb::training::AVG_COLUMNS[..10].join(", ")
            ))?;
            let mut decl = if feature_cols.is_empty() {
                None
            } else {
                Some(tx.prepare(&format!(
                    "INSERT INTO {PAYLOAD_FEATURES_TABLE} (run_id, image_tag, position, name, declaration) \
                     VALUES (?1, ?2, ?3, ?4, ?5)"
                ))?)
            };
            for (i, img) in self.images.iter().enumerate() {
                let features = img.truth.payload_features();
                if let Some(decl) = decl.as_mut() {
                    for (pos, f) in features.iter().enumerate() {
                        decl.execute(params![
                            self.run_id,
                            img.image_tag,
                            pos as i64,
                            f.name(),
                            serde_json::to_string(f)?
                        ])?;
                    }
                }
                let k = features.len();
                let rows = self.generate(i);
                // Means per (instances, active calls), as the processing step groups them.
                let mut groups: std::collections::BTreeMap<(u32, u32), ([f64; 8], u64)> = Default::default();
                for r in &rows {
                    let s = &r.sample;
                    // x then y, with the NULL column blanked.
                    let mut v: Vec<Option<f64>> = s.x.iter().chain(&s.y).copied().map(Some).collect();
                    if let Some(c) = r.null_col {
                        v[c] = None;
                    }
                    #[allow(clippy::cast_possible_truncation)]
                    let int = |v: Option<f64>| v.map(|v| v.round() as i64);
                    let t0 = 5 + k;
                    let mut values: Vec<rusqlite::types::Value> = vec![
                        self.run_id.clone().into(),
                        r.request_id.clone().into(),
                        img.image_tag.clone().into(),
                        s.started_ns.into(),
                        int(v[0]).into(),
                        int(v[1]).into(),
                        int(v[2]).into(),
                        v[3].into(),
                        int(v[4]).into(),
                        int(v[t0]).into(),
                        v[t0 + 1].into(),
                        int(v[t0 + 2]).into(),
                        int(v[t0]).map(|t| t + 150_000).into(),
                    ];
                    for col in &feature_cols {
                        let own = features.iter().position(|f| &f.column() == col);
                        values.push(own.and_then(|j| v[5 + j]).into());
                    }
                    if self.extra_targets {
                        values.push(int(v[t0 + 3]).into());
                        values.push(int(v[t0 + 4]).into());
                    }
                    ins.execute(rusqlite::params_from_iter(values))?;
                    if r.null_col.is_none() {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let g = groups.entry((s.x[1] as u32, s.x[2] as u32)).or_default();
                        let fixed = s.x[..5].iter().chain(&s.y[..3]);
                        for (acc, v) in g.0.iter_mut().zip(fixed) {
                            *acc += v;
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
            if self.cold_starts_per_image > 0 {
                let mut cs = tx.prepare(&format!(
                    "INSERT INTO {COLD_STARTS_TABLE} (run_id, image_tag, instance_id, worker, duration_ns) \
                     VALUES (?1, ?2, ?3, ?4, ?5)"
                ))?;
                for (i, img) in self.images.iter().enumerate() {
                    for (j, d) in self.cold_starts(i).into_iter().enumerate() {
                        #[allow(clippy::cast_possible_truncation)]
                        cs.execute(params![
                            self.run_id,
                            img.image_tag,
                            format!("{}-{i}-instance-{j}", self.run_id),
                            "worker-0",
                            d.round() as i64
                        ])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The start durations (ns) written for image `image`: log-normal around
    /// [`COLD_START_MEDIAN_NS`] (σ = 0.3).
    pub fn cold_starts(&self, image: usize) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xc01d_57a7 ^ image as u64);
        (0..self.cold_starts_per_image)
            .map(|_| COLD_START_MEDIAN_NS * (0.3 * gaussian(&mut rng)).exp())
            .collect()
    }
}

struct GenRow {
    request_id: String,
    /// Index into the row's `x` then `y` values.
    null_col: Option<usize>,
    sample: Sample,
}

/// Standard normal by Box–Muller (keeps the dependency set to `rand`).
fn gaussian(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
