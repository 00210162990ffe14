//! `fakeworker`: serves `controller.Controller` like `worker`, simulating
//! instances with trained models.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use fakeworker::{ExplicitModel, ModelRegistry, ResponseMode, Sampling, SimFleet, SimSettings};
use hyperfake_core::{Bytes, ImageTag};
use worker::ServeArgs;

/// Serves the worker's gRPC API (Start, Call, Stop, Status, Metrics, State,
/// Resources) but simulates each call with a model's predicted runtime, CPU
/// and RAM instead of running a container. Thousands of simulated instances fit
/// on one machine.
///
/// Each call's model inputs are the five simulated inputs plus the model's
/// payload features computed from the request. By default the runtime and the
/// worker overhead are drawn from the model's spreads (seeded by --seed, so a
/// run is reproducible) and cold starts from its Start→ready quantiles;
/// --mean uses the means instead. The answer has the predicted response size
/// (--response).
///
/// Models: every .onnx/.json file in --models (bad files are reported and
/// skipped; the directory is watched and reloaded on change or SIGHUP), plus
/// each `-m <path> <image-tag>` (a bad explicit model stops the start).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    serve: ServeArgs,
    /// Simulated workers this process serves, each its own
    /// `controller.Controller` on its own port (see --address) with its own
    /// id, instances, events, resource stream and simulated host, sharing the
    /// models. Each announces itself as a JSON line on stdout.
    #[arg(long, default_value_t = NonZeroUsize::MIN)]
    workers: NonZeroUsize,
    /// Directory of model files to serve and watch (`trainer deploy` writes here).
    #[arg(long, default_value = "models/deployed")]
    models: PathBuf,
    /// A model file for one image, e.g. `-m hyperfaas-echo.onnx hyperfaas-echo:latest` (repeatable).
    #[arg(short = 'm', long = "model", num_args = 2, value_names = ["PATH", "IMAGE_TAG"])]
    model: Vec<String>,
    /// Simulated cold-start time of an instance whose model records no
    /// cold-start distribution.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "400ms")]
    cold_start: Duration,
    /// Seed of the draws of runtimes, overheads and cold starts: the same seed
    /// and the same calls give the same values. (`--noise-seed` is an old name.)
    #[arg(long, alias = "noise-seed", default_value_t = 0)]
    seed: u64,
    /// Use each model's mean prediction and mean cold start; draw nothing.
    #[arg(long)]
    mean: bool,
    /// Cores the simulated host has (Metrics). Default: this machine's.
    #[arg(long)]
    cores: Option<usize>,
    /// RAM the simulated host has (Metrics), e.g. 16GB.
    #[arg(long, value_parser = parse_size, default_value = "16GB")]
    ram: Bytes,
    /// What a simulated call answers with: `predicted` (a payload of the
    /// model's predicted response size; the request for models that predict
    /// none), `echo` (the request) or `empty`.
    #[arg(long, value_enum, default_value_t = ResponseMode::Predicted)]
    response: ResponseMode,
    /// How often the models directory is checked for changes.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    reload_interval: Duration,
}

fn parse_size(s: &str) -> Result<Bytes, String> {
    Bytes::parse_size(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    hyperfake_cli::init_tracing("info");
    hyperfake_cli::exit_code("fakeworker", run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let explicit = args
        .model
        .chunks(2)
        .map(|pair| ExplicitModel { path: PathBuf::from(&pair[0]), image: ImageTag::new(pair[1].clone()) })
        .collect();
    let dir = args.models.is_dir().then(|| args.models.clone());
    if dir.is_none() {
        tracing::warn!(dir = %args.models.display(), "models directory does not exist; serving only -m models");
    }
    let (registry, skipped) = ModelRegistry::load(dir, explicit)?;
    fakeworker::models::report_skipped(&skipped);
    let registry = Arc::new(registry);
    let images = registry.current().images();
    if images.is_empty() {
        tracing::warn!("no models loaded: every Start will fail until models are deployed");
    } else {
        let names: Vec<&str> = images.iter().map(|i| i.as_str()).collect();
        tracing::info!("models for {}", names.join(", "));
    }
    let _watcher = registry.spawn_watcher(args.reload_interval);

    let sampling = if args.mean { Sampling::Mean } else { Sampling::Spread };
    let mut sim =
        SimSettings { cold_start: args.cold_start, seed: args.seed, sampling, ..Default::default() };
    sim.ram_total = args.ram;
    sim.response = args.response;
    if let Some(cores) = args.cores {
        sim.cores = cores;
    }
    worker::cli::run(args.serve, args.workers.get(), SimFleet::new(registry, sim)).await
}
