//! How much of a target the request's payload can explain at all.
//!
//! When two requests ask for nearly the same work (every payload feature
//! within [`NEAR`] of each other) their targets still differ: that part of
//! the variance is noise no model of the payload can predict (a busy host,
//! caches, the CPU quota's period). Half the mean squared difference over
//! such pairs estimates the noise variance σ² (the difference of two
//! independent draws has variance 2σ²), and `1 − σ² / Var(y)` is the R² a
//! perfect function of the payload features would reach on these rows: the
//! ceiling a reader compares a model's R² with.

use serde::{Deserialize, Serialize};

/// Two values are "nearly the same" within this relative difference.
pub const NEAR: f64 = 0.01;
/// Fewer near-identical pairs than this give no estimate.
pub const MIN_PAIRS: usize = 20;
/// Rows searched for pairs (the first ones; the search is quadratic).
pub const MAX_ROWS: usize = 4000;

/// The estimated ceiling and the pairs it rests on.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseCeiling {
    /// `1 − σ² / Var(y)`, at most 1 (it can be negative when the noise
    /// between near-identical requests exceeds the spread of all of them).
    pub r2: f64,
    /// Near-identical pairs used (each row with its nearest such partner).
    pub pairs: usize,
}

fn relative_gap(a: f64, b: f64) -> f64 {
    let scale = a.abs().max(b.abs());
    if scale == 0.0 { 0.0 } else { (a - b).abs() / scale }
}

/// Each request's nearest near-identical partner, found once per image and
/// shared by every target's ceiling (the search is the quadratic part).
#[derive(Clone, Debug, PartialEq)]
pub struct NearPairs {
    /// Rows searched (at most [`MAX_ROWS`]).
    rows: usize,
    /// `(i, j)`: row `i`'s nearest partner `j` within [`NEAR`].
    pairs: Vec<(usize, usize)>,
}

/// The near-identical pairs among `features` (one row per request, the
/// payload features only); `None` without features.
pub fn near_pairs(features: &[Vec<f64>]) -> Option<NearPairs> {
    let rows = features.len().min(MAX_ROWS);
    if rows < 2 || features[0].is_empty() {
        return None;
    }
    let pairs = (0..rows)
        .filter_map(|i| {
            (0..rows)
                .filter(|&j| j != i)
                .map(|j| {
                    let gap = features[i]
                        .iter()
                        .zip(&features[j])
                        .map(|(a, b)| relative_gap(*a, *b))
                        .fold(0.0, f64::max);
                    (gap, j)
                })
                .filter(|(gap, _)| *gap <= NEAR)
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, j)| (i, j))
        })
        .collect();
    Some(NearPairs { rows, pairs })
}

/// The ceiling of `y` (one value per row of the features `pairs` came from);
/// `None` with fewer than [`MIN_PAIRS`] near-identical pairs.
pub fn noise_ceiling(pairs: &NearPairs, y: &[f64]) -> Option<NoiseCeiling> {
    let n = pairs.rows.min(y.len());
    let squared: Vec<f64> =
        pairs.pairs.iter().filter(|(i, j)| *i < n && *j < n).map(|&(i, j)| (y[i] - y[j]).powi(2)).collect();
    if squared.len() < MIN_PAIRS {
        return None;
    }
    let noise = squared.iter().sum::<f64>() / (2.0 * squared.len() as f64);
    let mean = y[..n].iter().sum::<f64>() / n as f64;
    let var = y[..n].iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    (var > 0.0).then(|| NoiseCeiling { r2: 1.0 - noise / var, pairs: squared.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn recovers_the_share_of_variance_the_feature_explains() {
        // y = x + noise with Var(x) = Var(noise): a perfect model of x reaches R² 0.5.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let sd = 1000.0 / 12f64.sqrt();
        let (mut xs, mut ys) = (vec![], vec![]);
        for _ in 0..3000 {
            let x: f64 = rng.random_range(10_000.0..11_000.0);
            // Uniform noise with the same variance as x.
            let noise: f64 = rng.random_range(-0.5..0.5) * sd * 12f64.sqrt();
            xs.push(vec![x]);
            ys.push(x + noise);
        }
        let pairs = near_pairs(&xs).unwrap();
        let c = noise_ceiling(&pairs, &ys).unwrap();
        assert!((c.r2 - 0.5).abs() < 0.05, "{c:?}");
        // Without noise the ceiling is (nearly) 1.
        let exact: Vec<f64> = xs.iter().map(|x| x[0]).collect();
        assert!(noise_ceiling(&pairs, &exact).unwrap().r2 > 0.99);
    }

    #[test]
    fn none_without_features_or_near_pairs() {
        assert_eq!(near_pairs(&[vec![], vec![]]), None);
        // Every request asks for twice the previous one's work: no near pairs.
        let xs: Vec<Vec<f64>> = (0..40).map(|i| vec![2f64.powi(i)]).collect();
        let ys: Vec<f64> = (0..40).map(f64::from).collect();
        assert_eq!(noise_ceiling(&near_pairs(&xs).unwrap(), &ys), None);
    }
}
