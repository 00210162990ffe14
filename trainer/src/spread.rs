//! Building the conditional residual distributions written into model files
//! (`hyperfake.runtime_spread`, `hyperfake.overhead_spread`, as
//! `hyperfake_model::Spread`) and the cold-start quantiles
//! (`hyperfake.cold_start_ns_quantiles`).
//!
//! A spread's JSON form is an array of regions `[{"upto": <largest prediction
//! in the region>, "quantiles": [101 values of actual − predicted]}, …]`
//! with `upto` strictly increasing; the last region also serves larger
//! predictions.

use hyperfake_model::{SPREAD_QUANTILES, Spread, SpreadRegion};

use crate::metrics;

/// At most this many regions per spread.
pub const MAX_REGIONS: usize = 8;
/// Each region holds at least this many rows (fewer rows, fewer regions).
pub const MIN_ROWS_PER_REGION: usize = 30;

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
    use super::*;

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
