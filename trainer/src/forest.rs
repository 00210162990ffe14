//! Random forests with smartcore, one single-target forest per target (that is
//! all smartcore offers), fitted in parallel. smartcore keeps tree nodes
//! private; serialising the fitted forest with serde exposes them, so they
//! are read that way into [`Forest`], which predicts and exports. That layout
//! is not smartcore's public API: the version is pinned (`=0.7.0`) and a test
//! checks that walking the trees reproduces smartcore's `predict`.

use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_regressor::{RandomForestRegressor, RandomForestRegressorParameters};
use smartcore::linalg::basic::matrix::DenseMatrix;

/// Forest hyper-parameters (scikit-learn's names in the comments).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForestConfig {
    /// Trees per target (`n_estimators`).
    pub n_trees: usize,
    /// Maximum depth (`max_depth`); `None` grows until leaves are pure.
    pub max_depth: Option<u16>,
    /// Minimum rows in a leaf (`min_samples_leaf`).
    pub min_samples_leaf: usize,
    /// Minimum rows to split a node (`min_samples_split`).
    pub min_samples_split: usize,
    /// Inputs tried per split (`max_features`); 0 (or at least the input
    /// count) = all, scikit-learn's regression default.
    pub max_features: usize,
    /// Threads fitting trees concurrently.
    pub threads: usize,
    pub seed: u64,
}

type SmartForest = RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>;

/// One node of a regression tree. Node 0 is the root.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum TreeNode {
    /// Go to `if_leq` when `x[feature] <= threshold`, else to `otherwise`.
    Split {
        feature: usize,
        threshold: f64,
        if_leq: usize,
        otherwise: usize,
    },
    Leaf {
        value: f64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<TreeNode>,
}

impl Tree {
    pub fn predict(&self, x: &[f64]) -> f64 {
        let mut i = 0;
        loop {
            match self.nodes[i] {
                TreeNode::Leaf { value } => return value,
                TreeNode::Split { feature, threshold, if_leq, otherwise } => {
                    i = if x[feature] <= threshold { if_leq } else { otherwise };
                }
            }
        }
    }
}

/// A forest per target; a target's prediction is the mean of its trees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    /// Trees per target, in the schema's target order.
    pub targets: Vec<Vec<Tree>>,
    /// Inputs per row.
    pub n_inputs: usize,
}

impl Forest {
    pub fn predict(&self, x: &[f64]) -> Vec<f64> {
        self.targets
            .iter()
            .map(|trees| trees.iter().map(|t| t.predict(x)).sum::<f64>() / trees.len().max(1) as f64)
            .collect()
    }

    /// Total node count (a size measure for reports).
    pub fn node_count(&self) -> usize {
        self.targets.iter().flatten().map(|t| t.nodes.len()).sum()
    }
}

/// Fits one forest per target.
pub fn fit(x: &[Vec<f64>], y: &[Vec<f64>], cfg: &ForestConfig) -> Result<Forest> {
    let n_inputs = x.first().map_or(0, Vec::len);
    let mut targets: Vec<Vec<Tree>> = vec![vec![]; y.first().map_or(0, Vec::len)];
    for (t, f) in fit_smartcore(x, y, cfg)? {
        targets[t].extend(extract(&f, n_inputs)?);
    }
    Ok(Forest { targets, n_inputs })
}

/// The smartcore forests, as `(target, forest)` pairs. smartcore grows the
/// trees of one forest one after another, so each target's trees are split
/// into `threads` smaller forests with their own seeds (a forest is just its
/// trees: the union is a forest of `n_trees` with independent bootstraps),
/// and all of them are fitted by `threads` workers. Splitting by target only
/// would leave one of two cores idle for a third of the time.
pub fn fit_smartcore(
    x: &[Vec<f64>],
    y: &[Vec<f64>],
    cfg: &ForestConfig,
) -> Result<Vec<(usize, SmartForest)>> {
    if x.is_empty() {
        return Err(anyhow!("no rows to fit a forest on"));
    }
    let m = matrix(x)?;
    let width = x[0].len();
    let n_targets = y[0].len();
    let max_features = if cfg.max_features == 0 { width } else { cfg.max_features.clamp(1, width) };
    let threads = cfg.threads.max(1);
    let chunks = threads.min(cfg.n_trees.max(1));
    // (target, chunk, trees in it)
    let jobs: Vec<(usize, usize, usize)> = (0..n_targets)
        .flat_map(|t| {
            (0..chunks).map(move |c| (t, c, cfg.n_trees / chunks + usize::from(c < cfg.n_trees % chunks)))
        })
        .filter(|j| j.2 > 0)
        .collect();
    let fit_job = |&(t, chunk, n_trees): &(usize, usize, usize)| -> Result<(usize, SmartForest)> {
        let yt: Vec<f64> = y.iter().map(|r| r[t]).collect();
        // smartcore seeds tree i with `seed + i`: chunks are spaced far apart.
        let seed = cfg.seed.wrapping_add((t * 1_000 + chunk) as u64 * 1_000_003);
        let mut params = RandomForestRegressorParameters::default()
            .with_n_trees(n_trees)
            .with_min_samples_leaf(cfg.min_samples_leaf)
            .with_min_samples_split(cfg.min_samples_split)
            .with_m(max_features)
            .with_seed(seed);
        if let Some(d) = cfg.max_depth {
            params = params.with_max_depth(d);
        }
        let f = RandomForestRegressor::fit(&m, &yt, params)
            .map_err(|e| anyhow!("random forest (target {t}): {e}"))?;
        Ok((t, f))
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|s| {
        for _ in 0..threads.min(jobs.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let r = fit_job(job);
                    results.lock().unwrap_or_else(|p| p.into_inner()).push((i, r));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    // Job order, so the forest does not depend on thread timing.
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Rows as a smartcore matrix.
pub fn matrix(x: &[Vec<f64>]) -> Result<DenseMatrix<f64>> {
    let width = x.first().map_or(0, Vec::len);
    if x.iter().any(|r| r.len() != width) {
        return Err(anyhow!("rows of different widths"));
    }
    let flat: Vec<f64> = x.iter().flatten().copied().collect();
    DenseMatrix::new(x.len(), width, flat, false).map_err(|e| anyhow!("{e}"))
}

// === smartcore's serialised layout (0.7.0) ===

#[derive(Deserialize)]
struct SerForest {
    forest_regressor: Option<SerBaseForest>,
}

#[derive(Deserialize)]
struct SerBaseForest {
    trees: Option<Vec<SerTree>>,
}

#[derive(Deserialize)]
struct SerTree {
    nodes: Vec<SerNode>,
}

#[derive(Deserialize)]
struct SerNode {
    output: f64,
    split_feature: usize,
    split_value: Option<f64>,
    true_child: Option<usize>,
    false_child: Option<usize>,
}

/// Reads the trees of a fitted smartcore forest.
/// `n_inputs` is the row width: a split on a column beyond it is a layout error.
pub fn extract(f: &SmartForest, n_inputs: usize) -> Result<Vec<Tree>> {
    let layout = |what: &str| anyhow!("smartcore forest layout changed ({what}); is smartcore still =0.7.0?");
    let bytes = serde_json::to_vec(f)?;
    let ser: SerForest = serde_json::from_slice(&bytes).map_err(|e| layout(&e.to_string()))?;
    let trees = ser.forest_regressor.and_then(|b| b.trees).ok_or_else(|| layout("no trees"))?;
    trees
        .into_iter()
        .map(|t| {
            let n = t.nodes.len();
            let nodes = t
                .nodes
                .into_iter()
                .map(|node| match (node.true_child, node.false_child, node.split_value) {
                    (Some(a), Some(b), Some(threshold))
                        if a < n && b < n && node.split_feature < n_inputs =>
                    {
                        Ok(TreeNode::Split {
                            feature: node.split_feature,
                            threshold,
                            if_leq: a,
                            otherwise: b,
                        })
                    }
                    (None, _, _) => Ok(TreeNode::Leaf { value: node.output }),
                    _ => Err(layout("split node without children or threshold")),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Tree { nodes })
        })
        .collect()
}
