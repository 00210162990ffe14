//! Accuracy metrics of one target on one set of rows.

use serde::{Deserialize, Serialize};

/// A row counts towards MAPE only when `|actual|` is at least this fraction of
/// the mean `|actual|`: near-zero targets (an idle function's CPU) would
/// otherwise dominate the mean with huge percentages.
pub const MAPE_MIN_FRACTION_OF_MEAN: f64 = 0.01;

/// Percentiles of the absolute error that reports show.
pub const ERROR_PERCENTILES: [f64; 4] = [50.0, 90.0, 95.0, 99.0];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub rows: usize,
    /// Coefficient of determination; `None` when the actual values are constant.
    pub r2: Option<f64>,
    pub mae: f64,
    pub rmse: f64,
    /// Mean absolute percentage error (%), over `mape_rows` rows (see
    /// [`MAPE_MIN_FRACTION_OF_MEAN`]); `None` when no row qualifies.
    pub mape: Option<f64>,
    pub mape_rows: usize,
    /// Absolute error at [`ERROR_PERCENTILES`] (p50, p90, p95, p99).
    pub abs_error_percentiles: Vec<(f64, f64)>,
    /// Mean of `actual - predicted` (bias).
    pub mean_residual: f64,
}

impl Metrics {
    /// Metrics of `predicted` against `actual` (same length, non-empty).
    pub fn compute(actual: &[f64], predicted: &[f64]) -> Option<Metrics> {
        let n = actual.len();
        if n == 0 || predicted.len() != n {
            return None;
        }
        let nf = n as f64;
        let mean = actual.iter().sum::<f64>() / nf;
        let ss_tot: f64 = actual.iter().map(|a| (a - mean).powi(2)).sum();
        let res: Vec<f64> = actual.iter().zip(predicted).map(|(a, p)| a - p).collect();
        let ss_res: f64 = res.iter().map(|r| r * r).sum();
        let mut abs: Vec<f64> = res.iter().map(|r| r.abs()).collect();
        let mae = abs.iter().sum::<f64>() / nf;
        let mean_abs_actual = actual.iter().map(|a| a.abs()).sum::<f64>() / nf;
        let floor = (MAPE_MIN_FRACTION_OF_MEAN * mean_abs_actual).max(f64::MIN_POSITIVE);
        let (mut pct_sum, mut mape_rows) = (0.0, 0usize);
        for (a, r) in actual.iter().zip(&res) {
            if a.abs() >= floor {
                pct_sum += (r / a).abs() * 100.0;
                mape_rows += 1;
            }
        }
        abs.sort_by(f64::total_cmp);
        Some(Metrics {
            rows: n,
            r2: (ss_tot > 0.0).then(|| 1.0 - ss_res / ss_tot),
            mae,
            rmse: (ss_res / nf).sqrt(),
            mape: (mape_rows > 0).then(|| pct_sum / mape_rows as f64),
            mape_rows,
            abs_error_percentiles: ERROR_PERCENTILES
                .iter()
                .map(|&p| (p, quantile_sorted(&abs, p / 100.0)))
                .collect(),
            mean_residual: res.iter().sum::<f64>() / nf,
        })
    }
}

/// Linear-interpolated quantile `q` ∈ [0, 1] of sorted values.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let i = (pos.floor() as usize).min(n - 2);
            sorted[i] + (sorted[i + 1] - sorted[i]) * (pos - i as f64)
        }
    }
}

/// `count` evenly spaced quantiles (0 … 1) of `values`.
pub fn quantiles(values: &[f64], count: usize) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    (0..count).map(|i| quantile_sorted(&v, i as f64 / (count.max(2) - 1) as f64)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_known_errors() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let m = Metrics::compute(&a, &a).unwrap();
        assert_eq!(m.r2, Some(1.0));
        assert_eq!(m.mae, 0.0);
        let p = [2.0, 3.0, 4.0, 5.0];
        let m = Metrics::compute(&a, &p).unwrap();
        assert_eq!(m.mae, 1.0);
        assert_eq!(m.rmse, 1.0);
        assert_eq!(m.mean_residual, -1.0);
        assert_eq!(m.r2, Some(1.0 - 4.0 / 5.0));
        let mape = (100.0 + 50.0 + 100.0 / 3.0 + 25.0) / 4.0;
        assert!((m.mape.unwrap() - mape).abs() < 1e-9);
    }

    #[test]
    fn mape_skips_near_zero_actuals() {
        let m = Metrics::compute(&[0.0, 1e-9, 10.0], &[1.0, 1.0, 11.0]).unwrap();
        assert_eq!(m.mape_rows, 1);
        assert!((m.mape.unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(Metrics::compute(&[5.0, 5.0], &[5.0, 6.0]).unwrap().r2, None);
    }

    #[test]
    fn quantiles_interpolate() {
        let q = quantiles(&[3.0, 1.0, 2.0], 5);
        assert_eq!(q, vec![1.0, 1.5, 2.0, 2.5, 3.0]);
    }
}
