//! Trains models of function behaviour from the processing step's training
//! databases, exports them (JSON for linear models, ONNX for every kind), and
//! writes accuracy reports. The `trainer` binary is a thin CLI over this.
//!
//! Loading and predicting lives in `hyperfake-model`, shared with the fake
//! worker; this crate only trains, exports, scores and compares.
//!
//! ```text
//! trainer synth --out training_data/synthetic.db          # a database with known ground truth
//! trainer train --db training_data/run1.db --model all    # models/run1/{linear,ridge,random-forest}/…
//! trainer compare models/run1 models/run2                 # side-by-side test metrics
//! trainer evaluate --model models/run1/linear.json --db training_data/run2.db
//! trainer deploy models/run1 --to /var/lib/fakeworker/models
//! trainer bench                                           # vs scikit-learn; writes models/bench/
//! ```
//!
//! File formats: `docs/units.md`, "Training database schema" and "Model files".

pub mod bench;
pub mod compare;
pub mod data;
pub mod deploy;
pub mod evaluate;
pub mod export;
pub mod forest;
pub mod linear;
pub mod metrics;
pub mod onnx;
pub mod plots;
pub mod progress;
pub mod report;
pub mod split;
pub mod synth;
pub mod train;

pub use data::{Dataset, Table};
pub use progress::Progress;
pub use report::Report;
pub use train::{TrainConfig, TrainOutcome, train};
