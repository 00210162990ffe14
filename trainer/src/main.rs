//! `trainer`: trains, exports, scores, compares and deploys function models.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use hyperfake_core::ImageTag;
use hyperfake_model::ModelKind;
use trainer::bench::{self, BenchConfig};
use trainer::compare;
use trainer::data::Table;
use trainer::deploy::{self, DeployFormat};
use trainer::evaluate::{self, EvalConfig};
use trainer::forest::ForestConfig;
use trainer::linear::{RidgeConfig, default_penalties};
use trainer::split::{SplitConfig, SplitMode};
use trainer::{Progress, TrainConfig};

/// Trains models of function behaviour (runtime, CPU, RAM per call) from
/// training databases and exports them for the fake worker.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Hide progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train one model per function image and kind; writes `<out>/<run>/`
    /// with JSON and ONNX models and report.{json,md,html}.
    Train(TrainArgs),
    /// Print and write a side-by-side table of runs' test metrics.
    Compare(CompareArgs),
    /// Score a model file (.onnx or .json, ours or HyperFake's) on a database.
    Evaluate(EvaluateArgs),
    /// Copy a run's model files atomically into a directory a fake worker watches.
    Deploy(DeployArgs),
    /// Benchmark the random forest against scikit-learn, linear/ridge fit time
    /// on 1 M rows and per-prediction latency of the exported models.
    Bench(BenchArgs),
    /// Write a synthetic training database with known ground truth (echo:
    /// linear, thumbnailer: nonlinear), to try the trainer without a real run.
    Synth(SynthArgs),
}

#[derive(Debug, Args)]
struct SynthArgs {
    /// Database to create (tables are added if it exists).
    #[arg(long)]
    out: PathBuf,
    /// Rows per image.
    #[arg(long, default_value_t = 2000)]
    rows: usize,
    /// Fraction of rows with a NULL column.
    #[arg(long, default_value_t = 0.02)]
    null_fraction: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also write `hyperfaas-bfs`, whose runtime depends only on a payload
    /// feature (`graph_nodes`), the `response_size_bytes` and
    /// `worker_overhead_ns` targets, and a `cold_starts` table.
    #[arg(long)]
    with_payload: bool,
}

/// Which model kinds to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum KindArg {
    /// Ordinary least squares (linfa-linear).
    Linear,
    /// Ridge regression, penalty by k-fold cross-validation (linfa-elasticnet).
    Ridge,
    /// Random forest (smartcore), one forest per target.
    RandomForest,
    /// All three.
    All,
}

impl KindArg {
    fn kinds(self) -> Vec<ModelKind> {
        match self {
            KindArg::Linear => vec![ModelKind::Linear],
            KindArg::Ridge => vec![ModelKind::Ridge],
            KindArg::RandomForest => vec![ModelKind::RandomForest],
            KindArg::All => vec![ModelKind::Linear, ModelKind::Ridge, ModelKind::RandomForest],
        }
    }
}

/// A trained kind (for deploy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TrainedKind {
    /// Ordinary least squares.
    Linear,
    /// Ridge regression.
    Ridge,
    /// Random forest.
    RandomForest,
}

impl From<TrainedKind> for ModelKind {
    fn from(k: TrainedKind) -> ModelKind {
        match k {
            TrainedKind::Linear => ModelKind::Linear,
            TrainedKind::Ridge => ModelKind::Ridge,
            TrainedKind::RandomForest => ModelKind::RandomForest,
        }
    }
}

/// How rows are split into train, validation and test sets.
#[derive(Debug, Args)]
struct SplitArgs {
    /// `random` (by a hash of seed and row) or `time` (test = end of the run).
    #[arg(long, value_enum, default_value = "random")]
    split: SplitMode,
    /// Seed of the split, the cross-validation folds and the forests.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Fraction of rows held out for validation.
    #[arg(long, default_value_t = 0.15)]
    val_fraction: f64,
    /// Fraction of rows held out for the test metrics.
    #[arg(long, default_value_t = 0.15)]
    test_fraction: f64,
}

impl SplitArgs {
    fn config(&self) -> SplitConfig {
        SplitConfig {
            mode: self.split,
            seed: self.seed,
            val_fraction: self.val_fraction,
            test_fraction: self.test_fraction,
        }
    }
}

/// Random-forest hyper-parameters.
#[derive(Debug, Args)]
struct ForestArgs {
    /// Trees per target forest.
    #[arg(long, default_value_t = 100)]
    trees: usize,
    /// Maximum tree depth (0 = unlimited). Deeper trees fit more but make
    /// larger ONNX files.
    #[arg(long, default_value_t = 12)]
    max_depth: u16,
    /// Minimum rows in a leaf.
    #[arg(long, default_value_t = 5)]
    min_samples_leaf: usize,
    /// Minimum rows to split a node.
    #[arg(long, default_value_t = 2)]
    min_samples_split: usize,
    /// Inputs tried per split (0 = all inputs, scikit-learn's regression
    /// default; the input count is 5 plus the image's payload features).
    #[arg(long, default_value_t = 0)]
    max_features: usize,
    /// Threads for fitting the three target forests.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

impl ForestArgs {
    fn config(&self, seed: u64) -> ForestConfig {
        ForestConfig {
            n_trees: self.trees,
            max_depth: (self.max_depth > 0).then_some(self.max_depth),
            min_samples_leaf: self.min_samples_leaf,
            min_samples_split: self.min_samples_split,
            max_features: self.max_features,
            threads: self.threads,
            seed,
        }
    }
}

#[derive(Debug, Args)]
struct TrainArgs {
    /// Training database (repeat to train on several runs together).
    #[arg(long = "db", required = true)]
    dbs: Vec<PathBuf>,
    /// Table to train on.
    #[arg(long, value_enum, default_value = "training_data")]
    table: Table,
    /// Model kind(s) to train.
    #[arg(long, value_enum, default_value = "all")]
    model: KindArg,
    /// Models directory; the run is written to `<out>/<run>/`.
    #[arg(long, default_value = "models")]
    out: PathBuf,
    /// Run name (default: the first database's file name without extension).
    #[arg(long)]
    run: Option<String>,
    #[command(flatten)]
    split: SplitArgs,
    /// Ridge: folds of the cross-validation choosing the penalty.
    #[arg(long, default_value_t = 5)]
    ridge_folds: usize,
    /// Ridge: candidate penalties, comma-separated (default 1e-5 … 10 in half decades).
    #[arg(long, value_delimiter = ',')]
    ridge_penalties: Option<Vec<f64>>,
    #[command(flatten)]
    forest: ForestArgs,
    /// Images with fewer training rows are skipped.
    #[arg(long, default_value_t = 20)]
    min_train_rows: usize,
    /// Skip the SVG plots.
    #[arg(long)]
    no_plots: bool,
    /// Ignore the payload features the database declares (table
    /// `payload_features`): train on the five fixed inputs only.
    #[arg(long)]
    no_payload_features: bool,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// Run directories (`models/<run>`), each with a report.json.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where to write comparison.{md,json} (default: the first run's parent, under compare/).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct EvaluateArgs {
    /// Model file: `.onnx` or `.json`.
    #[arg(long)]
    model: PathBuf,
    /// Database(s) to score on.
    #[arg(long = "db", required = true)]
    dbs: Vec<PathBuf>,
    /// Table to score on.
    #[arg(long, value_enum, default_value = "training_data")]
    table: Table,
    /// Only this image (default: every image the file has a model for).
    #[arg(long)]
    image: Option<String>,
    /// Score only the test rows of the split given by --split/--seed/--*-fraction
    /// (as `train` would hold out); by default every row.
    #[arg(long)]
    test_rows_only: bool,
    #[command(flatten)]
    split: SplitArgs,
    /// Also write the evaluation here as JSON (and Markdown beside it).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DeployArgs {
    /// The run directory (`models/<run>`).
    run: PathBuf,
    /// The directory the fake worker watches.
    #[arg(long)]
    to: PathBuf,
    /// Which kind's models to deploy.
    #[arg(long, value_enum, default_value = "random-forest")]
    kind: TrainedKind,
    /// ONNX files, or the JSON file (linear and ridge only).
    #[arg(long, value_enum, default_value = "onnx")]
    format: DeployFormat,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Where to write bench.{json,md}.
    #[arg(long, default_value = "models/bench")]
    out: PathBuf,
    /// Rows for the forest comparison (synthetic, unless --db is given).
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Use this database's rows (its largest image) instead of synthetic rows.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Trees (scikit-learn's n_estimators).
    #[arg(long, default_value_t = 100)]
    trees: usize,
    /// max_depth for both implementations.
    #[arg(long, default_value_t = 12)]
    max_depth: u16,
    /// Threads for both (scikit-learn's n_jobs).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Rows for the linear/ridge fit-time measurement.
    #[arg(long, default_value_t = 1_000_000)]
    linear_rows: usize,
    /// Python interpreter with scikit-learn.
    #[arg(long, default_value = "python3")]
    python: String,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    hyperfake_cli::init_tracing("info");
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed stdout (`trainer compare … | head`) is not a failure.
            if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let progress = Progress::new(!cli.quiet);
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Train(a) => {
            let split = a.split.config();
            let cfg = TrainConfig {
                dbs: a.dbs,
                table: a.table,
                kinds: a.model.kinds(),
                out: a.out,
                run: a.run,
                split,
                ridge: RidgeConfig {
                    penalties: a.ridge_penalties.unwrap_or_else(default_penalties),
                    folds: a.ridge_folds,
                    seed: split.seed,
                },
                forest: a.forest.config(split.seed),
                min_train_rows: a.min_train_rows,
                plots: !a.no_plots,
                payload_features: !a.no_payload_features,
            };
            let outcome = trainer::train(&cfg, &progress)?;
            writeln!(stdout, "{}", outcome.report.markdown())?;
            writeln!(stdout, "Models and report written to {}", outcome.run_dir.display())?;
        }
        Command::Compare(a) => {
            let cmp = compare::compare(&a.runs)?;
            for w in &cmp.warnings {
                tracing::warn!("{w}");
            }
            let out = match a.out {
                Some(o) => o,
                None => {
                    let parent = a.runs[0].parent().map(PathBuf::from).unwrap_or_default();
                    parent.join("compare").join(cmp.runs.join("__"))
                }
            };
            cmp.write(&out)?;
            writeln!(stdout, "{}", cmp.markdown())?;
            writeln!(stdout, "Written to {}", out.display())?;
        }
        Command::Evaluate(a) => {
            let cfg = EvalConfig {
                model: a.model,
                dbs: a.dbs,
                table: a.table,
                image: a.image.map(ImageTag::from),
                split: a.test_rows_only.then(|| a.split.config()),
            };
            let ev = evaluate::evaluate(&cfg, &progress)?;
            if let Some(out) = &a.out {
                let mut json = serde_json::to_string_pretty(&ev)?;
                json.push('\n');
                trainer::export::write_atomic(out, json.as_bytes())?;
                trainer::export::write_atomic(&out.with_extension("md"), ev.markdown().as_bytes())?;
            }
            writeln!(stdout, "{}", ev.markdown())?;
        }
        Command::Deploy(a) => {
            let written = deploy::deploy(&a.run, &a.to, a.kind.into(), a.format)
                .with_context(|| format!("deploying {} to {}", a.run.display(), a.to.display()))?;
            for f in written {
                writeln!(stdout, "{}", f.display())?;
            }
        }
        Command::Bench(a) => {
            let cfg = BenchConfig {
                out: a.out,
                rows: a.rows,
                db: a.db,
                trees: a.trees,
                max_depth: a.max_depth,
                threads: a.threads,
                linear_rows: a.linear_rows,
                python: a.python,
                seed: a.seed,
            };
            let result = bench::run(&cfg, &progress)?;
            writeln!(stdout, "{}", result.markdown())?;
            writeln!(stdout, "Written to {}", cfg.out.display())?;
        }
        Command::Synth(a) => {
            let run = if a.with_payload {
                trainer::synth::SyntheticRun::with_payload(a.seed)
            } else {
                trainer::synth::SyntheticRun::standard(a.seed)
            };
            let run = run.with_rows_per_image(a.rows).with_null_fraction(a.null_fraction);
            run.write(&a.out)?;
            writeln!(stdout, "{}", a.out.display())?;
        }
    }
    Ok(())
}
