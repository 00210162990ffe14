//! Conditional residual distributions ([`Spread`]) and quantile helpers.
//!
//! A model predicts a mean; a [`Spread`] says how far the actual value lies
//! from that mean, depending on the mean. It is a list of regions of the
//! predicted value, each holding evenly spaced quantiles of `actual − predicted`
//! measured on held-out rows whose prediction fell into the region. The fake
//! worker draws `u ~ U(0, 1)` and adds [`Spread::sample`]`(predicted, u)`.

use serde::{Deserialize, Serialize};

/// How many evenly spaced quantiles (0 %, 1 %, …, 100 %) the trainer stores
/// for each spread region and for the cold-start distribution.
pub const SPREAD_QUANTILES: usize = 101;

/// One region of a [`Spread`]: predictions up to `upto` (and above the
/// previous region's `upto`) use these residual quantiles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpreadRegion {
    /// Upper bound of the predicted values in this region (inclusive). The
    /// last region also serves every larger prediction.
    pub upto: f64,
    /// Evenly spaced quantiles of `actual − predicted` (0 % first, 100 %
    /// last), non-decreasing. [`SPREAD_QUANTILES`] of them when the trainer
    /// writes it; any non-zero count loads.
    pub quantiles: Vec<f64>,
}

/// A residual distribution conditional on the prediction: regions ordered by
/// strictly increasing [`SpreadRegion::upto`]. Serialised as the JSON array of
/// its regions, `[{"upto": 1e6, "quantiles": [..]}, ..]`. Validated when built
/// or deserialised: at least one region, finite values, `upto` strictly
/// increasing, each region's quantiles non-empty and non-decreasing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<SpreadRegion>", into = "Vec<SpreadRegion>")]
pub struct Spread {
    regions: Vec<SpreadRegion>,
}

/// Why a [`Spread`] or a quantile list is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpreadError(pub String);

impl Spread {
    /// A validated spread.
    pub fn new(regions: Vec<SpreadRegion>) -> Result<Spread, SpreadError> {
        if regions.is_empty() {
            return Err(SpreadError("a spread needs at least one region".into()));
        }
        for (i, r) in regions.iter().enumerate() {
            if !r.upto.is_finite() {
                return Err(SpreadError(format!("region {i}: upto {} is not finite", r.upto)));
            }
            if i > 0 && r.upto <= regions[i - 1].upto {
                return Err(SpreadError(format!(
                    "region {i}: upto {} is not above the previous region's {}",
                    r.upto,
                    regions[i - 1].upto
                )));
            }
            check_quantiles(&r.quantiles)
                .map_err(|SpreadError(e)| SpreadError(format!("region {i}: {e}")))?;
        }
        Ok(Spread { regions })
    }

    /// One region for every prediction: an unconditional residual
    /// distribution (e.g. an old file's `runtime_residual_quantiles`).
    pub fn unconditional(quantiles: Vec<f64>) -> Result<Spread, SpreadError> {
        Spread::new(vec![SpreadRegion { upto: 0.0, quantiles }])
    }

    /// Builds a spread from `(predicted, actual − predicted)` pairs: the pairs
    /// are sorted by prediction and cut into at most `regions` groups of equal
    /// size (pairs with the same prediction stay in one group); each group
    /// stores `quantiles` evenly spaced quantiles of its residuals. Pairs with
    /// a non-finite value are ignored. `None` when no pair is left or
    /// `regions`/`quantiles` is 0.
    pub fn from_residuals(pairs: &[(f64, f64)], regions: usize, quantiles: usize) -> Option<Spread> {
        let mut pairs: Vec<(f64, f64)> =
            pairs.iter().copied().filter(|(p, r)| p.is_finite() && r.is_finite()).collect();
        if pairs.is_empty() || regions == 0 || quantiles == 0 {
            return None;
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = pairs.len();
        let per = n.div_ceil(regions.min(n));
        let mut out: Vec<SpreadRegion> = Vec::new();
        let mut start = 0;
        while start < n {
            let mut end = (start + per).min(n);
            // Equal predictions must not straddle two regions.
            while end < n && pairs[end].0 == pairs[end - 1].0 {
                end += 1;
            }
            let mut residuals: Vec<f64> = pairs[start..end].iter().map(|p| p.1).collect();
            out.push(SpreadRegion {
                upto: pairs[end - 1].0,
                quantiles: evenly_spaced_quantiles(&mut residuals, quantiles)?,
            });
            start = end;
        }
        Spread::new(out).ok()
    }

    /// The regions, by increasing `upto`.
    pub fn regions(&self) -> &[SpreadRegion] {
        &self.regions
    }

    /// The region a prediction falls into: the first whose `upto` is at or
    /// above it, else the last (also for NaN).
    pub fn region_for(&self, predicted: f64) -> &SpreadRegion {
        self.regions.iter().find(|r| predicted <= r.upto).unwrap_or_else(|| {
            self.regions.last().expect("a spread has at least one region (checked in Spread::new)")
        })
    }

    /// The residual to add to `predicted` at quantile `u` ∈ [0, 1] of the
    /// prediction's region, interpolated linearly between stored quantiles.
    /// Deterministic: the same `(predicted, u)` always gives the same value.
    /// `u` outside [0, 1] (or NaN) is clamped to it.
    pub fn sample(&self, predicted: f64, u: f64) -> f64 {
        quantile_at(&self.region_for(predicted).quantiles, u)
    }

    /// Every `upto` and quantile multiplied by `factor` (a unit conversion).
    pub fn scaled(&self, factor: f64) -> Spread {
        Spread {
            regions: self
                .regions
                .iter()
                .map(|r| SpreadRegion {
                    upto: r.upto * factor,
                    quantiles: r.quantiles.iter().map(|q| q * factor).collect(),
                })
                .collect(),
        }
    }
}

impl TryFrom<Vec<SpreadRegion>> for Spread {
    type Error = SpreadError;
    fn try_from(regions: Vec<SpreadRegion>) -> Result<Self, Self::Error> {
        Spread::new(regions)
    }
}

impl From<Spread> for Vec<SpreadRegion> {
    fn from(s: Spread) -> Self {
        s.regions
    }
}

/// Checks a list of evenly spaced quantiles: non-empty, finite, non-decreasing.
pub fn check_quantiles(q: &[f64]) -> Result<(), SpreadError> {
    if q.is_empty() {
        return Err(SpreadError("no quantiles".into()));
    }
    if let Some(i) = q.iter().position(|v| !v.is_finite()) {
        return Err(SpreadError(format!("quantile {i} is {} (not finite)", q[i])));
    }
    if let Some(i) = q.windows(2).position(|w| w[1] < w[0]) {
        return Err(SpreadError(format!("quantiles decrease at {}: {} then {}", i + 1, q[i], q[i + 1])));
    }
    Ok(())
}

/// The value at quantile `u` ∈ [0, 1] of evenly spaced quantiles `q` (0 %
/// first, 100 % last), interpolated linearly. `u` is clamped to [0, 1] (NaN
/// reads as 0). 0 for an empty list.
pub fn quantile_at(q: &[f64], u: f64) -> f64 {
    match q.len() {
        0 => 0.0,
        1 => q[0],
        n => {
            let u = if u.is_nan() { 0.0 } else { u.clamp(0.0, 1.0) };
            let pos = u * (n - 1) as f64;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let i = (pos.floor() as usize).min(n - 2);
            let frac = pos - i as f64;
            q[i] + (q[i + 1] - q[i]) * frac
        }
    }
}

/// `count` evenly spaced quantiles (0 %, …, 100 %) of `values`, linearly
/// interpolated between order statistics (sorts `values` in place). `None`
/// when `values` is empty or `count` is 0; non-finite values are not allowed
/// (they sort to the ends and make the result non-finite).
pub fn evenly_spaced_quantiles(values: &mut [f64], count: usize) -> Option<Vec<f64>> {
    if values.is_empty() || count == 0 {
        return None;
    }
    values.sort_by(f64::total_cmp);
    if count == 1 {
        return Some(vec![values[values.len() / 2]]);
    }
    Some((0..count).map(|i| quantile_at(values, i as f64 / (count - 1) as f64)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread() -> Spread {
        Spread::new(vec![
            SpreadRegion { upto: 10.0, quantiles: vec![-1.0, 0.0, 1.0] },
            SpreadRegion { upto: 100.0, quantiles: vec![-10.0, 0.0, 30.0] },
        ])
        .unwrap()
    }

    #[test]
    fn sample_picks_the_region_and_interpolates() {
        let s = spread();
        assert_eq!(s.sample(5.0, 0.0), -1.0);
        assert_eq!(s.sample(10.0, 0.75), 0.5);
        assert_eq!(s.sample(10.5, 0.75), 15.0);
        // Beyond the last region and NaN use the last one.
        assert_eq!(s.sample(1e9, 1.0), 30.0);
        assert_eq!(s.sample(f64::NAN, 0.5), 0.0);
        // u is clamped.
        assert_eq!(s.sample(5.0, -3.0), -1.0);
        assert_eq!(s.sample(5.0, 7.0), 1.0);
        assert_eq!(s.sample(5.0, f64::NAN), -1.0);
        // Deterministic.
        assert_eq!(s.sample(42.0, 0.3), s.sample(42.0, 0.3));
    }

    #[test]
    fn invalid_spreads_are_refused_with_the_reason() {
        let r = |upto: f64, q: Vec<f64>| SpreadRegion { upto, quantiles: q };
        let err = |regions| Spread::new(regions).unwrap_err().0;
        assert!(err(vec![]).contains("at least one region"));
        assert!(err(vec![r(2.0, vec![0.0]), r(1.0, vec![0.0])]).contains("region 1: upto 1"));
        assert!(err(vec![r(f64::INFINITY, vec![0.0])]).contains("not finite"));
        assert!(err(vec![r(1.0, vec![])]).contains("no quantiles"));
        assert!(err(vec![r(1.0, vec![0.0, f64::NAN])]).contains("quantile 1"));
        assert!(err(vec![r(1.0, vec![2.0, 1.0])]).contains("decrease"));
        let json = serde_json::from_str::<Spread>(r#"[{"upto": 1, "quantiles": [3, 2]}]"#);
        assert!(json.unwrap_err().to_string().contains("decrease"));
    }

    #[test]
    fn serde_form_is_the_array_of_regions() {
        let s = spread();
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            text,
            r#"[{"upto":10.0,"quantiles":[-1.0,0.0,1.0]},{"upto":100.0,"quantiles":[-10.0,0.0,30.0]}]"#
        );
        assert_eq!(serde_json::from_str::<Spread>(&text).unwrap(), s);
    }

    #[test]
    fn from_residuals_groups_by_prediction() {
        // Small predictions have small residuals, large ones large.
        let pairs: Vec<(f64, f64)> = (0..100)
            .map(|i| {
                let p = f64::from(i);
                (p, if i < 50 { f64::from(i % 5) - 2.0 } else { 10.0 * (f64::from(i % 5) - 2.0) })
            })
            .collect();
        let s = Spread::from_residuals(&pairs, 2, 5).unwrap();
        assert_eq!(s.regions().len(), 2);
        assert_eq!(s.regions()[0].upto, 49.0);
        assert_eq!(s.regions()[0].quantiles, vec![-2.0, -1.0, 0.0, 1.0, 2.0]);
        assert_eq!(s.regions()[1].quantiles, vec![-20.0, -10.0, 0.0, 10.0, 20.0]);
        // Ties stay together: every prediction equal gives one region.
        let same: Vec<(f64, f64)> = (0..10).map(|i| (1.0, f64::from(i))).collect();
        assert_eq!(Spread::from_residuals(&same, 4, 3).unwrap().regions().len(), 1);
        assert!(Spread::from_residuals(&[(f64::NAN, 1.0)], 2, 3).is_none());
    }

    #[test]
    fn quantile_helpers() {
        let mut v = vec![4.0, 0.0, 2.0];
        assert_eq!(evenly_spaced_quantiles(&mut v, 5), Some(vec![0.0, 1.0, 2.0, 3.0, 4.0]));
        assert_eq!(evenly_spaced_quantiles(&mut [], 5), None);
        assert_eq!(quantile_at(&[], 0.5), 0.0);
        assert_eq!(quantile_at(&[7.0], 0.5), 7.0);
    }
}
