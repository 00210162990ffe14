//! Least-squares lines and nearest-rank quantiles: the two statistics the
//! soak report is made of.

use serde::Serialize;

/// `y = intercept + slope · x`, fitted by ordinary least squares.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Line {
    pub slope: f64,
    pub intercept: f64,
    /// Coefficient of determination; 0 when `y` does not vary.
    pub r2: f64,
    pub points: usize,
}

impl Line {
    /// The fit of `points` (x, y); `None` with fewer than two distinct x.
    pub fn fit(points: &[(f64, f64)]) -> Option<Line> {
        let n = points.len();
        if n < 2 {
            return None;
        }
        let nf = n as f64;
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / nf;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / nf;
        let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
        for &(x, y) in points {
            let (dx, dy) = (x - mean_x, y - mean_y);
            sxx += dx * dx;
            sxy += dx * dy;
            syy += dy * dy;
        }
        if sxx <= 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        let r2 = if syy > 0.0 { (sxy * sxy) / (sxx * syy) } else { 0.0 };
        Some(Line { slope, intercept: mean_y - slope * mean_x, r2, points: n })
    }
}

/// The nearest-rank `q` quantile (0 < q ≤ 1) of `sorted` (ascending);
/// `None` when empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    // q · n is in [0, n] for q in [0, 1] (clamped for any other q): the
    // cast neither truncates nor loses a sign.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = (q * sorted.len() as f64).ceil().clamp(1.0, sorted.len() as f64) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_recovered_exactly() {
        let points: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), 3.0 - 0.5 * f64::from(i))).collect();
        let line = Line::fit(&points).unwrap();
        assert!((line.slope + 0.5).abs() < 1e-12 && (line.intercept - 3.0).abs() < 1e-12);
        assert!((line.r2 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_flat_series_has_slope_zero_and_too_few_points_no_fit() {
        let line = Line::fit(&[(0.0, 5.0), (1.0, 5.0), (2.0, 5.0)]).unwrap();
        assert_eq!((line.slope, line.r2), (0.0, 0.0));
        assert_eq!(Line::fit(&[(1.0, 1.0)]), None);
        assert_eq!(Line::fit(&[(1.0, 1.0), (1.0, 2.0)]), None, "one distinct x");
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&[7.0], 0.01), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
