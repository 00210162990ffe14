//! Distribution statistics on latencies (ns).

/// The `p`-quantile (0..=1) of sorted values by nearest rank; `None` if empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    nearest_rank(sorted, p)
}

/// [`percentile`] of signed values (durations that may be negative).
pub fn percentile_i64(sorted: &[i64], p: f64) -> Option<i64> {
    nearest_rank(sorted, p)
}

fn nearest_rank<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = ((p.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Two-sample Kolmogorov–Smirnov statistic: the largest vertical distance
/// between the two empirical CDFs (0 = identical, 1 = disjoint). Both inputs
/// must be sorted; `None` if either is empty.
pub fn ks_distance(a: &[u64], b: &[u64]) -> Option<f64> {
    ks_point(a, b).map(|(_, fa, fb)| (fa - fb).abs())
}

/// Where the KS distance occurs: the value `x` and both ECDFs at `x`
/// (`F_a(x)`, `F_b(x)`), the first such `x` if several. Same inputs as [`ks_distance`].
pub fn ks_point(a: &[u64], b: &[u64]) -> Option<(u64, f64, f64)> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (mut i, mut j) = (0usize, 0usize);
    let mut best = (a[0].min(b[0]), 0.0f64, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        let (fa, fb) = (i as f64 / a.len() as f64, j as f64 / b.len() as f64);
        if (fa - fb).abs() > (best.1 - best.2).abs() {
            best = (x, fa, fb);
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn ks_of_identical_disjoint_and_shifted_samples() {
        let a: Vec<u64> = (0..100).collect();
        assert_eq!(ks_distance(&a, &a), Some(0.0));
        let far: Vec<u64> = (1000..1100).collect();
        assert_eq!(ks_distance(&a, &far), Some(1.0));
        let half: Vec<u64> = (50..150).collect();
        assert!((ks_distance(&a, &half).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(ks_distance(&a, &[]), None);
        let (x, fa, fb) = ks_point(&a, &half).unwrap();
        assert_eq!((x, fa, fb), (49, 0.5, 0.0), "a is half done before b starts");
    }
}
