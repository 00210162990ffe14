//! Which trace functions to replay: a seeded sample stratified on invocation
//! rate and duration, or the functions a hash list names.
//!
//! Stratified sample: every candidate (a function with at least one
//! invocation in the window and a known duration) falls into one of
//! [`STRATA`]² strata: its quartile by invocations in the window times its
//! quartile by mean duration (quartiles by rank, ties broken by file order).
//! Each stratum gets its share of the `n` functions by size (largest
//! remainder), and its functions are drawn uniformly without replacement from
//! the selection stream. The same candidates and seed always give the same
//! functions; the result is in file order.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Quantile bins per dimension: quartiles.
pub const STRATA: usize = 4;

/// What selection needs to know of one function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Invocations in the trace window.
    pub invocations: u64,
    /// Mean duration in ms.
    pub mean_duration_ms: f64,
}

/// Indices into `candidates` of a stratified sample of `n`, in ascending
/// order. All of them when `n` is at least their number.
pub fn stratified(candidates: &[Candidate], n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let total = candidates.len();
    if n >= total {
        return (0..total).collect();
    }
    let rate_bin = quantile_bins(candidates, |c| c.invocations as f64);
    let duration_bin = quantile_bins(candidates, |c| c.mean_duration_ms);
    let mut strata: Vec<Vec<usize>> = vec![Vec::new(); STRATA * STRATA];
    for i in 0..total {
        strata[rate_bin[i] * STRATA + duration_bin[i]].push(i);
    }
    // Shares by size; the remainder goes to the largest fractional parts.
    let mut shares: Vec<usize> = strata.iter().map(|s| n * s.len() / total).collect();
    let mut order: Vec<usize> = (0..strata.len()).collect();
    // Fraction of stratum s is (n·len mod total)/total: compare numerators.
    order.sort_by_key(|&s| (std::cmp::Reverse((n * strata[s].len()) % total), s));
    let mut left = n - shares.iter().sum::<usize>();
    for s in order {
        if left == 0 {
            break;
        }
        if shares[s] < strata[s].len() {
            shares[s] += 1;
            left -= 1;
        }
    }
    let mut chosen = Vec::with_capacity(n);
    for (stratum, share) in strata.iter_mut().zip(shares) {
        // Partial Fisher–Yates: the first `share` entries become the sample.
        for k in 0..share {
            let j = rng.random_range(k..stratum.len());
            stratum.swap(k, j);
        }
        chosen.extend_from_slice(&stratum[..share]);
    }
    chosen.sort_unstable();
    chosen
}

/// Each candidate's quantile bin (0..STRATA) of `value`, by rank.
fn quantile_bins(candidates: &[Candidate], value: impl Fn(&Candidate) -> f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| value(&candidates[a]).total_cmp(&value(&candidates[b])).then(a.cmp(&b)));
    let mut bins = vec![0; candidates.len()];
    for (rank, i) in order.into_iter().enumerate() {
        bins[i] = rank * STRATA / candidates.len();
    }
    bins
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::rng;

    fn candidates(n: usize) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                invocations: (i * 7919 % 1000) as u64,
                mean_duration_ms: (i * 104_729 % 997) as f64,
            })
            .collect()
    }

    #[test]
    fn takes_everything_when_asked_for_more() {
        assert_eq!(stratified(&candidates(5), 9, &mut rng(1, 0)), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn every_stratum_gets_its_share_and_the_sample_is_seeded() {
        let c = candidates(1600);
        let a = stratified(&c, 160, &mut rng(1, 0));
        assert_eq!(a.len(), 160);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        assert_eq!(a, stratified(&c, 160, &mut rng(1, 0)));
        assert_ne!(a, stratified(&c, 160, &mut rng(2, 0)));
        // Each quartile (of 400 candidates) holds a quarter of the sample: each
        // of its 4 strata's shares is off its exact share by less than 1.
        for value in [|c: &Candidate| c.invocations as f64, |c: &Candidate| c.mean_duration_ms] {
            let bins = quantile_bins(&c, value);
            for q in 0..STRATA {
                let taken = a.iter().filter(|&&i| bins[i] == q).count();
                assert!((37..=43).contains(&taken), "quartile {q}: {taken}");
            }
        }
    }
}
