//! Building the conditional residual distributions written into model files
//! (`hyperfake.runtime_spread`, `hyperfake.overhead_spread`, as
//! `hyperfake_model::Spread`) and the cold-start quantiles
//! (`hyperfake.cold_start_ns_quantiles`).
//!
//! A spread's JSON form is an array of regions `[{"upto": <largest prediction
//! in the region>, "quantiles": [101 values of actual − predicted]}, …]`
//! with `upto` strictly increasing; the last region also serves larger
//! predictions.

use hyperfake_model::{QuantileMap, Range, SPREAD_QUANTILES, Spread, SpreadRegion};

use crate::metrics;

/// At most this many regions per spread.
pub const MAX_REGIONS: usize = 8;
/// Each region holds at least this many rows (fewer rows, fewer regions).
pub const MIN_ROWS_PER_REGION: usize = 30;

/// A runtime quantile map is written only for a model whose held-out runtime
/// R² is at most this: its prediction carries no information about a call,
/// so its variation is noise that the residuals hold a second time (simul:
/// R² −0.17), and a correction of the marginal distribution cannot distort a
/// dependence on the request. Where the prediction does carry it (bfs 0.72,
/// thumbnailer 0.74), a marginal map would bend it toward the training run's
/// mix of requests: measured out of sample on the 2026-12-03 sample's
/// validation inputs, the handler KS of bfs went from 0.040 to 0.065 with a
/// map, of simul from 0.133 to 0.092.
pub const MAP_MAX_R2: f64 = 0.1;

/// Stratified residual draws per row when measuring what a fake draws.
const MAP_DRAWS: usize = 32;

/// The runtime quantile map (see [`QuantileMap`]): quantiles of what a fake
/// worker draws for held-out rows (each row's prediction moved into `range`,
/// as the fake clamps it, plus [`MAP_DRAWS`] stratified draws of `spread`,
/// never below 0) against quantiles of the actual runtimes of every row. The
/// predictions must be held out (on training rows a forest's predictions are
/// close to the actual values already); the actual runtimes need not be, and
/// all of them estimate the measured distribution with less noise (the rows
/// are split at random, so both sides describe the same requests). `None`
/// with fewer than [`MIN_ROWS_PER_REGION`] predictions or actual runtimes.
pub fn runtime_quantile_map(
    predicted: &[f64],
    actual: &[f64],
    spread: &Spread,
    range: Range,
) -> Option<QuantileMap> {
    if predicted.len() < MIN_ROWS_PER_REGION || actual.len() < MIN_ROWS_PER_REGION {
        return None;
    }
    let us: Vec<f64> = (0..MAP_DRAWS).map(|k| (k as f64 + 0.5) / MAP_DRAWS as f64).collect();
    let drawn: Vec<f64> = predicted
        .iter()
        .filter(|p| p.is_finite())
        .flat_map(|&p| {
            let p = range.clamp(p);
            us.iter().map(move |&u| (p + spread.sample(p, u)).max(0.0))
        })
        .collect();
    let actual: Vec<f64> = actual.iter().copied().filter(|v| v.is_finite()).collect();
    if drawn.is_empty() || actual.is_empty() {
        return None;
    }
    let map = QuantileMap {
        drawn_ns: metrics::quantiles(&drawn, SPREAD_QUANTILES),
        actual_ns: metrics::quantiles(&actual, SPREAD_QUANTILES),
    };
    map.check().map_err(|e| tracing::warn!("no runtime quantile map: {e}")).ok()?;
    Some(map)
}

/// The spread of `(predicted, actual − predicted)` pairs: sorted by the
/// prediction and cut into groups of about equal size, at most
/// [`MAX_REGIONS`] and at least one, each of [`MIN_ROWS_PER_REGION`] rows or
/// more (equal predictions stay in one group; a short tail joins the group
/// before it). Each group stores [`SPREAD_QUANTILES`] residual quantiles.
/// `None` without a finite pair.
pub fn spread_of(pairs: &[(f64, f64)]) -> Option<Spread> {
    let mut pairs: Vec<(f64, f64)> =
        pairs.iter().copied().filter(|(p, r)| p.is_finite() && r.is_finite()).collect();
    if pairs.is_empty() {
        return None;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = pairs.len();
    let regions = (n / MIN_ROWS_PER_REGION).clamp(1, MAX_REGIONS);
    let per = n.div_ceil(regions);
    let mut out: Vec<SpreadRegion> = vec![];
    let mut start = 0;
    while start < n {
        let mut end = (start + per).min(n);
        while end < n && pairs[end].0 == pairs[end - 1].0 {
            end += 1;
        }
        if n - end < MIN_ROWS_PER_REGION.min(per) {
            end = n;
        }
        let residuals: Vec<f64> = pairs[start..end].iter().map(|p| p.1).collect();
        out.push(SpreadRegion {
            upto: pairs[end - 1].0,
            quantiles: metrics::quantiles(&residuals, SPREAD_QUANTILES),
        });
        start = end;
    }
    match Spread::new(out) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("no spread: {e}");
            None
        }
    }
}

/// [`SPREAD_QUANTILES`] quantiles of measured start durations (ns); `None` without any.
pub fn cold_start_quantiles(durations_ns: &[f64]) -> Option<Vec<f64>> {
    let finite: Vec<f64> = durations_ns.iter().copied().filter(|d| d.is_finite() && *d >= 0.0).collect();
    (!finite.is_empty()).then(|| metrics::quantiles(&finite, SPREAD_QUANTILES))
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// simul's case: the runtime is uniform in 100–200 ms whatever the
    /// request, but the model's prediction wanders (±40 ms) with inputs that
    /// do not matter, and 50 rows are held out (one region).
    /// Prediction + held-out residual is then wider than the runtimes;
    /// mapped through the quantile map it is distributed as they are.
    #[test]
    fn the_quantile_map_undoes_a_wandering_prediction() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        // 400 rows, the last 50 held out.
        let actual: Vec<f64> = (0..400).map(|_| rng.random_range(100e6..200e6)).collect();
        let predicted: Vec<f64> = (0..50).map(|_| 150e6 + rng.random_range(-40e6..40e6)).collect();
        let held_out = &actual[350..];
        let pairs: Vec<(f64, f64)> = predicted.iter().zip(held_out).map(|(p, y)| (*p, y - p)).collect();
        let spread = spread_of(&pairs).unwrap();
        let range = Range { min: 0.0, max: 1e9 };
        let map = runtime_quantile_map(&predicted, &actual, &spread, range).unwrap();
        // Fresh calls: new predictions and residual draws, as a fake makes them.
        let drawn: Vec<f64> = (0..4000)
            .map(|_| {
                let p = 150e6 + rng.random_range(-40e6..40e6);
                (p + spread.sample(p, rng.random())).max(0.0)
            })
            .collect();
        let mapped: Vec<f64> = drawn.iter().map(|d| map.apply(*d)).collect();
        // Distance to the uniform 100–200 ms: the largest gap of the ECDFs.
        let ks = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v.iter()
                .enumerate()
                .map(|(i, x)| {
                    let cdf = ((x - 100e6) / 100e6).clamp(0.0, 1.0);
                    (cdf - i as f64 / v.len() as f64).abs().max((cdf - (i + 1) as f64 / v.len() as f64).abs())
                })
                .fold(0.0, f64::max)
        };
        let (before, after) = (ks(&drawn), ks(&mapped));
        assert!(before > 0.1, "drawn alone is off: KS {before}");
        assert!(after < 0.08 && after < before / 2.0, "mapped: KS {after} (drawn {before})");
        // Too few rows: no map.
        assert!(runtime_quantile_map(&predicted[..10], &actual[..10], &spread, range).is_none());
    }

    #[test]
    fn regions_follow_the_prediction_and_keep_enough_rows() {
        // Residual spread grows with the prediction.
        let pairs: Vec<(f64, f64)> =
            (0..400).map(|i| (f64::from(i), f64::from(i % 7 - 3) * f64::from(i))).collect();
        let s = spread_of(&pairs).unwrap();
        let r = s.regions();
        assert_eq!(r.len(), 8);
        assert_eq!(r.last().unwrap().upto, 399.0);
        assert!(r.iter().all(|r| r.quantiles.len() == 101));
        let width = |r: &SpreadRegion| r.quantiles[100] - r.quantiles[0];
        assert!(width(&r[7]) > 5.0 * width(&r[0]));
        // 70 rows: two regions of ≥ 30; 10 rows: one.
        assert_eq!(spread_of(&pairs[..70]).unwrap().regions().len(), 2);
        assert_eq!(spread_of(&pairs[..10]).unwrap().regions().len(), 1);
        // 95 rows: three regions of 32, 32, 31 (no tail below 30).
        assert!(spread_of(&pairs[..95]).unwrap().regions().len() == 3);
        // All predictions equal: one region.
        let same: Vec<(f64, f64)> = (0..300).map(|i| (5.0, f64::from(i))).collect();
        assert_eq!(spread_of(&same).unwrap().regions().len(), 1);
        assert!(spread_of(&[(f64::NAN, 1.0)]).is_none());
        let json = serde_json::to_string(&spread_of(&pairs[..10]).unwrap()).unwrap();
        assert!(json.starts_with("[{\"upto\":9.0,\"quantiles\":["), "{json}");
    }
}
