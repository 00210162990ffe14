//! OLS (linfa-linear) and ridge (smartcore, penalty by k-fold
//! cross-validation). Both fit on standardised inputs and targets, so one
//! penalty grid suits every target whatever its unit, then convert the
//! coefficients back to raw units for export.
//!
//! Ridge uses smartcore's closed-form solver rather than linfa-elasticnet:
//! elasticnet's coordinate descent needed ~250 s for the cross-validation of
//! two images of 400 rows (it rarely met its duality-gap tolerance and ran to
//! the iteration limit), while the closed form is exact and takes
//! milliseconds.

use anyhow::{Context, Result, anyhow};
use linfa::prelude::*;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::ridge_regression::{
    RidgeRegression, RidgeRegressionParameters, RidgeRegressionSolverName,
};

/// A fitted linear model: per target `[w0..w(k-1), b]` in raw units (one
/// weight per input, then the intercept).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearFit {
    pub coeffs: Vec<Vec<f64>>,
    /// The ridge penalty chosen per target (None for OLS).
    pub penalties: Option<Vec<f64>>,
}

impl LinearFit {
    pub fn predict(&self, x: &[f64]) -> Vec<f64> {
        self.coeffs.iter().map(|c| predict_one(c, x)).collect()
    }

    /// Inputs per row.
    pub fn n_inputs(&self) -> usize {
        self.coeffs.first().map_or(0, |c| c.len() - 1)
    }
}

/// `Σ wᵢ·xᵢ + b` for `c = [w.., b]`.
fn predict_one(c: &[f64], x: &[f64]) -> f64 {
    c[c.len() - 1] + dot(c, x)
}

/// Ridge hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RidgeConfig {
    /// Candidate penalties, on standardised data: the objective is
    /// `1/(2n)·‖y − Zw‖² + penalty/2·‖w‖²` (scikit-learn's `alpha` = penalty · n).
    pub penalties: Vec<f64>,
    pub folds: usize,
    pub seed: u64,
}

/// The default penalty grid: 10⁻⁵ … 10¹ in half decades.
pub fn default_penalties() -> Vec<f64> {
    (0..=12).map(|i| 10f64.powf(-5.0 + 0.5 * f64::from(i))).collect()
}

/// Standardisation of the columns that vary; constant columns get weight 0
/// (a constant input carries no information and makes OLS singular).
struct Scaling {
    active: Vec<usize>,
    mean: Vec<f64>,
    sd: Vec<f64>,
}

impl Scaling {
    fn of(x: &[Vec<f64>]) -> Scaling {
        let n = x.len().max(1) as f64;
        let width = x.first().map_or(0, Vec::len);
        let mut mean = vec![0.0; width];
        let mut sd = vec![0.0; width];
        for j in 0..width {
            mean[j] = x.iter().map(|r| r[j]).sum::<f64>() / n;
            sd[j] = (x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n).sqrt();
        }
        let active = (0..width).filter(|&j| sd[j] > 1e-12 * mean[j].abs().max(1e-300)).collect();
        Scaling { active, mean, sd }
    }

    fn matrix(&self, x: &[Vec<f64>], rows: &[usize]) -> Array2<f64> {
        Array2::from_shape_fn((rows.len(), self.active.len()), |(i, k)| {
            let j = self.active[k];
            (x[rows[i]][j] - self.mean[j]) / self.sd[j]
        })
    }
}

/// Fits OLS to every target.
pub fn fit_ols(x: &[Vec<f64>], y: &[Vec<f64>]) -> Result<LinearFit> {
    let prepared = Prepared::new(x, y)?;
    let mut coeffs = vec![vec![]; prepared.targets.len()];
    for (t, c) in coeffs.iter_mut().enumerate() {
        *c = prepared.solve(t, |p, yt| {
            let fitted = LinearRegression::new()
                .fit(&Dataset::new(p.z.clone(), Array1::from_vec(yt.to_vec())))
                .map_err(|e| anyhow!("least squares failed: {e}"))?;
            Ok((fitted.params().to_vec(), fitted.intercept()))
        })?;
    }
    Ok(LinearFit { coeffs, penalties: None })
}

/// Fits ridge to every target, choosing each target's penalty by k-fold
/// cross-validation (lowest mean squared error over the folds).
pub fn fit_ridge(x: &[Vec<f64>], y: &[Vec<f64>], cfg: &RidgeConfig) -> Result<LinearFit> {
    if cfg.penalties.is_empty() || cfg.folds < 2 {
        return Err(anyhow!("ridge needs at least one penalty and 2 folds"));
    }
    let n = x.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed));
    let folds = cfg.folds.min(n);
    let n_targets = y.first().map_or(0, Vec::len);
    // sse[penalty][target], summed over the folds.
    let mut sse = vec![vec![0.0f64; n_targets]; cfg.penalties.len()];
    for f in 0..folds {
        let (mut held, mut kept) = (vec![], vec![]);
        for (pos, &i) in order.iter().enumerate() {
            if pos % folds == f { held.push(i) } else { kept.push(i) }
        }
        let xk: Vec<Vec<f64>> = kept.iter().map(|&i| x[i].clone()).collect();
        let yk: Vec<Vec<f64>> = kept.iter().map(|&i| y[i].clone()).collect();
        // Standardised once per fold; each penalty is one closed-form solve.
        let prepared = Prepared::new(&xk, &yk)?;
        for (p, sse) in cfg.penalties.iter().zip(&mut sse) {
            for (t, sse) in sse.iter_mut().enumerate() {
                let c = prepared.solve(t, |prep, yt| ridge_one(prep, yt, *p))?;
                *sse += held.iter().map(|&i| (predict_one(&c, &x[i]) - y[i][t]).powi(2)).sum::<f64>();
            }
        }
    }
    let mut chosen = vec![0.0; n_targets];
    for (t, c) in chosen.iter_mut().enumerate() {
        let best = (0..cfg.penalties.len()).min_by(|&a, &b| sse[a][t].total_cmp(&sse[b][t])).unwrap_or(0);
        *c = cfg.penalties[best];
    }
    // Refit on all rows with each target's penalty.
    let prepared = Prepared::new(x, y)?;
    let mut coeffs = vec![vec![]; n_targets];
    for (t, c) in coeffs.iter_mut().enumerate() {
        *c = prepared.solve(t, |prep, yt| ridge_one(prep, yt, chosen[t]))?;
    }
    Ok(LinearFit { coeffs, penalties: Some(chosen) })
}

/// Ridge on standardised, centred data: closed form
/// `w = (ZᵀZ + α·I)⁻¹ Zᵀy` (smartcore, Cholesky) with `α = penalty · n`, so
/// the penalty means the same at every row count. Centred data needs no
/// intercept.
fn ridge_one(p: &Prepared, yt: &[f64], penalty: f64) -> Result<(Vec<f64>, f64)> {
    let (n, cols) = p.z.dim();
    let params = RidgeRegressionParameters::default()
        .with_alpha(penalty * n as f64)
        .with_solver(RidgeRegressionSolverName::Cholesky)
        .with_normalize(false);
    let fitted = RidgeRegression::fit(&p.dense, &yt.to_vec(), params)
        .map_err(|e| anyhow!("ridge (penalty {penalty}) failed: {e}"))?;
    let w = fitted.coefficients();
    Ok(((0..cols).map(|j| *w.get((j, 0))).collect(), 0.0))
}

fn dot(c: &[f64], x: &[f64]) -> f64 {
    x.iter().zip(c).map(|(x, w)| x * w).sum()
}

/// Rows standardised once: inputs (varying columns only) and each target.
struct Prepared {
    scaling: Scaling,
    /// Standardised inputs, as ndarray (linfa) and smartcore matrices.
    z: Array2<f64>,
    dense: DenseMatrix<f64>,
    /// Per target: mean, standard deviation, standardised values.
    targets: Vec<(f64, f64, Vec<f64>)>,
    width: usize,
}

impl Prepared {
    fn new(x: &[Vec<f64>], y: &[Vec<f64>]) -> Result<Prepared> {
        if x.len() < 2 {
            return Err(anyhow!("too few rows to fit ({})", x.len()));
        }
        let scaling = Scaling::of(x);
        let rows: Vec<usize> = (0..x.len()).collect();
        let z = scaling.matrix(x, &rows);
        let (n, cols) = z.dim();
        let dense =
            DenseMatrix::new(n, cols, z.iter().copied().collect(), false).map_err(|e| anyhow!("{e}"))?;
        let n_targets = y.first().map_or(0, Vec::len);
        let targets = (0..n_targets)
            .map(|t| {
                let nf = n as f64;
                let mean = y.iter().map(|r| r[t]).sum::<f64>() / nf;
                let sd = (y.iter().map(|r| (r[t] - mean).powi(2)).sum::<f64>() / nf).sqrt();
                let std = if sd > 0.0 { y.iter().map(|r| (r[t] - mean) / sd).collect() } else { vec![] };
                (mean, sd, std)
            })
            .collect();
        Ok(Prepared { width: scaling.mean.len(), scaling, z, dense, targets })
    }

    /// Fits target `t` with `solve` (weights and intercept on standardised
    /// data) and converts back to raw units `[w0..w(k-1), b]`.
    fn solve(
        &self,
        t: usize,
        solve: impl Fn(&Prepared, &[f64]) -> Result<(Vec<f64>, f64)>,
    ) -> Result<Vec<f64>> {
        let (mean, sd, yt) = &self.targets[t];
        let k = self.width;
        let mut c = vec![0.0; k + 1];
        if *sd == 0.0 || self.scaling.active.is_empty() {
            c[k] = *mean;
            return Ok(c);
        }
        let (w, b) = solve(self, yt).with_context(|| format!("fitting target {t}"))?;
        let mut intercept = mean + sd * b;
        for (k, &j) in self.scaling.active.iter().enumerate() {
            c[j] = sd * w[k] / self.scaling.sd[j];
            intercept -= c[j] * self.scaling.mean[j];
        }
        c[k] = intercept;
        Ok(c)
    }
}
