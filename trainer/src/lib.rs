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
//!
//! # Inputs and targets per image
//!
//! Each image is trained on its own [`data::Schema`]:
//!
//! - inputs: the five fixed columns (`request_size_bytes`,
//!   `function_instances_count`, `active_function_calls_count`,
//!   `worker_cpu_usage`, `worker_ram_usage`), then the payload features the
//!   image declares in table `payload_features` (`image_tag`, `position`,
//!   `name`, `declaration`), in `position` order, read from the columns
//!   `feature_<name>`. A declared feature whose column is missing is left out
//!   and noted in the report; `trainer train --no-payload-features` ignores
//!   them all.
//! - targets: `function_processing_time_ns`, `function_cpu_usage`,
//!   `function_ram_usage`, plus `response_size_bytes` and `worker_overhead_ns`
//!   when the table has both columns (in every database given).
//!
//! A row with a NULL (or non-finite value) in any used column is dropped; the
//! report counts the NULLs per column. Databases without the new tables and
//! columns (HyperFake's, older hyperfake runs) train exactly as before: 5
//! inputs, 3 targets, ONNX `[N,5]` → `[N,3]`.
//!
//! Each model file also carries, besides the model: the payload feature
//! declarations and their defaults (training medians), the runtime and
//! worker-overhead spreads (residual quantiles by region of the predicted
//! value, from the held-out validation and test rows; see [`spread`]), and 101
//! quantiles of the image's measured start durations (table `cold_starts`,
//! column `duration_ns`).

pub mod baseline;
pub mod bench;
pub mod ceiling;
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
pub mod spread;
pub mod synth;
pub mod train;

pub use data::{Dataset, Table};
pub use progress::Progress;
pub use report::Report;
pub use train::{TrainConfig, TrainOutcome, train};
