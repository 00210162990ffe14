//! Deterministic train / validation / test split.
//!
//! `random`: each row goes to a set by a hash of (seed, row key), so the same
//! seed gives the same test rows whatever the model, the row order, or which
//! other rows the databases hold. `time`: rows sorted by their time
//! (`call_started_ns`, or HyperFake's `timestamp`: `data::TIME_COLUMNS`); the
//! test set is the end of the run and validation the stretch just before it.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::data::Sample;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SplitMode {
    /// By a hash of seed and row key.
    Random,
    /// By call start time: the test set is the end of the run.
    Time,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    pub mode: SplitMode,
    pub seed: u64,
    pub val_fraction: f64,
    pub test_fraction: f64,
}

/// Row indices of each set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

impl SplitConfig {
    pub fn validate(&self) -> Result<()> {
        let ok = |f: f64| (0.0..1.0).contains(&f);
        if !ok(self.val_fraction) || !ok(self.test_fraction) || self.val_fraction + self.test_fraction >= 1.0
        {
            bail!(
                "--val-fraction ({}) and --test-fraction ({}) must be in [0, 1) and leave rows for training",
                self.val_fraction,
                self.test_fraction
            );
        }
        Ok(())
    }

    pub fn split(&self, rows: &[Sample]) -> Result<Split> {
        let mut s = Split::default();
        match self.mode {
            SplitMode::Random => {
                for (i, r) in rows.iter().enumerate() {
                    let u = unit_hash(self.seed, &r.key);
                    if u < self.test_fraction {
                        s.test.push(i);
                    } else if u < self.test_fraction + self.val_fraction {
                        s.val.push(i);
                    } else {
                        s.train.push(i);
                    }
                }
            }
            SplitMode::Time => {
                if rows.iter().any(|r| r.started_ns.is_none()) {
                    bail!(
                        "--split time needs a time (call_started_ns or timestamp) on every row (training_data_avg has none)"
                    );
                }
                let mut order: Vec<usize> = (0..rows.len()).collect();
                order.sort_by(|&a, &b| {
                    (rows[a].started_ns, &rows[a].key).cmp(&(rows[b].started_ns, &rows[b].key))
                });
                let n = rows.len() as f64;
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let n_test = (n * self.test_fraction).round() as usize;
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let n_val = (n * self.val_fraction).round() as usize;
                let n_train = rows.len().saturating_sub(n_test + n_val);
                s.train = order[..n_train].to_vec();
                s.val = order[n_train..(n_train + n_val).min(rows.len())].to_vec();
                s.test = order[(n_train + n_val).min(rows.len())..].to_vec();
            }
        }
        Ok(s)
    }
}

/// A stable hash of (seed, key) mapped to [0, 1). FNV-1a then SplitMix64:
/// fixed algorithms, so splits do not change with the Rust version.
pub fn unit_hash(seed: u64, key: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Fingerprint of a set of row keys (order-independent): lets `compare` tell
/// whether two runs were tested on the same rows.
pub fn fingerprint<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let mut acc: u64 = 0;
    let mut n: u64 = 0;
    for k in keys {
        // Sum of per-key hashes: independent of order. `unit_hash` is in
        // [0, 1), so the product is a non-negative integer below 2⁵³.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let h = (unit_hash(0x5eed, k) * (1u64 << 53) as f64) as u64;
        acc = acc.wrapping_add(h);
        n += 1;
    }
    format!("{n}:{acc:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                key: format!("db/{i}"),
                started_ns: Some(1000 - i64::try_from(i).unwrap()),
                x: vec![0.0; 5],
                y: vec![0.0; 3],
            })
            .collect()
    }

    #[test]
    fn random_split_is_stable_under_reordering() {
        let cfg = SplitConfig { mode: SplitMode::Random, seed: 7, val_fraction: 0.15, test_fraction: 0.15 };
        let r = rows(1000);
        let a = cfg.split(&r).unwrap();
        let mut rev = r.clone();
        rev.reverse();
        let b = cfg.split(&rev).unwrap();
        let keys = |rows: &[Sample], idx: &[usize]| {
            let mut k: Vec<String> = idx.iter().map(|&i| rows[i].key.clone()).collect();
            k.sort();
            k
        };
        assert_eq!(keys(&r, &a.test), keys(&rev, &b.test));
        assert!((100..200).contains(&a.test.len()), "test size {}", a.test.len());
        let other = SplitConfig { seed: 8, ..cfg }.split(&r).unwrap();
        assert_ne!(a.test, other.test);
    }

    #[test]
    fn time_split_tests_on_the_end() {
        let cfg = SplitConfig { mode: SplitMode::Time, seed: 0, val_fraction: 0.1, test_fraction: 0.2 };
        let r = rows(100);
        let s = cfg.split(&r).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (70, 10, 20));
        let latest_train = s.train.iter().map(|&i| r[i].started_ns).max();
        let earliest_test = s.test.iter().map(|&i| r[i].started_ns).min();
        assert!(latest_train < earliest_test);
    }
}
