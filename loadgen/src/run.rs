//! One run, start to finish: resolve the schedule, open the run database,
//! create the functions, send every call, record every outcome, mark the run,
//! and (unless kept) delete the functions it created.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use database::DatabaseClient;
use hyperfake_core::defaults::MAX_MESSAGE_SIZE;
use hyperfake_core::ids::valid_run_id;
use hyperfake_core::{FunctionId, ImageTag};
use indicatif::{ProgressBar, ProgressStyle};
use proto::auth::{AuthChannel, BearerToken};
use proto::leaf::CreateFunctionRequest;
use proto::leaf::leaf_client::LeafClient;
use tokio::sync::watch;

use crate::config::Workload;
use crate::payload::Payloads;
use crate::record::{self, RunRow, RunStatus, WriterSettings};
use crate::schedule::Schedule;
use crate::sender::{self, Clock, Counters, Dispatcher, SendOptions, Stop, Target};

/// Where run databases go unless `--out` says otherwise.
pub const DEFAULT_OUT_DIR: &str = "training_data";
/// Time between the last preparation step and the schedule's time 0, so the
/// first calls' bodies are ready when they are due.
const START_LEAD: Duration = Duration::from_millis(200);
/// Bodies built ahead of their send time. Bounded so MiB bodies cannot pile up.
const LOOKAHEAD: usize = 256;
/// Records queued for the writer thread; at 2 kB a record, 32 MB at most.
const RECORD_QUEUE: usize = 16_384;
/// How long to wait for the leaf's TCP connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections the measured calls go over, each with a task of its own
/// ([`crate::sender`]): as many as the no-op leaf's ceiling client opens.
const SEND_CONNECTIONS: usize = 4;
/// Deadline for one `CreateFunction`: the leaf may pull or register an image.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything a run needs; `None` fields fall back to the workload file.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub workload: Workload,
    /// The workload file's text, stored with the run.
    pub config_yaml: String,
    pub config_path: Option<PathBuf>,
    /// The run database; default `training_data/<run_id>.db`.
    pub out: Option<PathBuf>,
    pub leaf_address: Option<String>,
    pub run_id: Option<String>,
    pub max_in_flight: Option<usize>,
    /// Shared token sent with every request (`--token` / `HYPERFAKE_TOKEN`).
    pub token: BearerToken,
    pub progress: bool,
    /// How the call writer rides out a run database it cannot write: retry
    /// interval, give-up time, lock wait ([`WriterSettings::default`]: 500 ms,
    /// 60 s, 10 s; the lock wait also applies to marking the run). Tests
    /// make them short.
    pub writer: WriterSettings,
}

/// How a run went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    pub run_id: String,
    pub db_path: PathBuf,
    pub status: RunStatus,
    pub scheduled: u64,
    /// Calls whose time came before the run stopped.
    pub due: u64,
    /// Rows written to `calls`; equal to `due` unless something was lost.
    pub recorded: u64,
    pub errors: u64,
}

/// A new run id: UTC time to the second plus 6 random hex digits, e.g.
/// `20261123T031500Z-3fa2c1`. Sorts by start time; safe in file names.
pub fn new_run_id() -> String {
    let suffix: u32 = rand::random::<u32>() & 0xFF_FFFF;
    format!("{}-{suffix:06x}", hyperfake_core::time::UtcTime::now().compact())
}

/// Connects to a leaf with hyperfake's message size limits, sending `token`
/// with every request.
pub async fn connect(address: &str, token: BearerToken) -> anyhow::Result<LeafClient<AuthChannel>> {
    let endpoint = proto::endpoint(address).with_context(|| format!("invalid leaf address {address:?}"))?;
    let uri = endpoint.uri().clone();
    let channel = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("cannot connect to the leaf at {uri}"))?;
    Ok(LeafClient::with_interceptor(channel, token)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE))
}

/// What happens to the functions a run created, once it has ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FunctionCleanup {
    /// Leave them registered (`loadgen run --keep-functions`, and [`run`]).
    Keep,
    /// Delete them from the function store at `database` (`host:port`), so
    /// that runs do not pile functions up in it. The leaf has no delete call,
    /// so this goes to the store that leaf and workers read.
    Delete { database: String },
}

/// Runs a workload and keeps the functions it created ([`FunctionCleanup::Keep`]).
/// Returns once every call that came due is recorded; `stop` ends sending
/// early (the run is then `interrupted`), see [`Stop`].
pub async fn run(options: RunOptions, stop: watch::Receiver<Stop>) -> anyhow::Result<RunReport> {
    run_with_cleanup(options, FunctionCleanup::Keep, stop).await
}

/// [`run`], then `cleanup` of every function this run created, whether the run
/// completed, failed or was interrupted. The run is recorded and marked before
/// the cleanup starts; a cleanup failure is logged and changes nothing else.
pub async fn run_with_cleanup(
    options: RunOptions,
    cleanup: FunctionCleanup,
    stop: watch::Receiver<Stop>,
) -> anyhow::Result<RunReport> {
    let token = options.token.clone();
    let created = Mutex::new(Vec::new());
    let result = execute(options, &created, stop).await;
    let created = created.into_inner().unwrap_or_else(PoisonError::into_inner);
    match cleanup {
        FunctionCleanup::Keep if !created.is_empty() => {
            tracing::info!(functions = created.len(), "keeping the functions this run created");
        }
        FunctionCleanup::Keep => {}
        FunctionCleanup::Delete { database } => delete_functions(&database, token, &created).await,
    }
    result
}

/// Deletes `ids` from the function store at `database`, logging what fails.
/// A function already gone counts as deleted; an unreachable store ends the
/// cleanup at once instead of timing out once per function.
async fn delete_functions(database: &str, token: BearerToken, ids: &[FunctionId]) {
    if ids.is_empty() {
        return;
    }
    let client = match DatabaseClient::connect(database) {
        Ok(client) => client.with_bearer(token),
        Err(e) => {
            tracing::warn!(functions = ids.len(), "cannot delete the functions this run created: {e:#}");
            return;
        }
    };
    let mut failed = 0usize;
    for (done, id) in ids.iter().enumerate() {
        match client.delete(id).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) if e.is_unavailable() => {
                let e = anyhow::Error::new(e);
                tracing::warn!(
                    left = ids.len() - done,
                    "stopped deleting the functions this run created: {e:#}"
                );
                return;
            }
            Err(e) => {
                failed += 1;
                let e = anyhow::Error::new(e);
                tracing::warn!(function = %id, "cannot delete a function this run created: {e:#}");
            }
        }
    }
    tracing::info!(deleted = ids.len() - failed, failed, database, "deleted the functions this run created");
}

/// The run itself; every function it creates is added to `created`.
async fn execute(
    options: RunOptions,
    created: &Mutex<Vec<FunctionId>>,
    stop: watch::Receiver<Stop>,
) -> anyhow::Result<RunReport> {
    let RunOptions {
        workload,
        config_yaml,
        config_path,
        out,
        leaf_address,
        run_id,
        max_in_flight,
        token,
        progress,
        writer,
    } = options;
    let run_id = run_id.unwrap_or_else(new_run_id);
    if !valid_run_id(&run_id) {
        bail!("run id {run_id:?}: use letters, digits, '-', '_' and '.' only (at most 128)");
    }
    let leaf_address = leaf_address.unwrap_or_else(|| workload.leaf_address.clone());
    let max_in_flight = max_in_flight.or(workload.max_in_flight);
    let db_path = out.unwrap_or_else(|| PathBuf::from(DEFAULT_OUT_DIR).join(format!("{run_id}.db")));

    let schedule = Arc::new(Schedule::resolve(&workload));
    let payloads = {
        let schedule = schedule.clone();
        tokio::task::spawn_blocking(move || Payloads::for_schedule(&schedule))
            .await
            .context("building payloads panicked")?
            .context("cannot generate a thumbnailer source image")?
            .with_features(workload.functions.iter().map(|(tag, spec)| (tag.clone(), spec.features.clone())))
    };

    let mut conn =
        record::open(&db_path).with_context(|| format!("cannot open run database {}", db_path.display()))?;
    // Marking the run waits for a lock as long as the writer's commits do.
    conn.busy_timeout(writer.busy_timeout).context("cannot set the run database's busy timeout")?;
    let exists: bool = conn
        .query_row("SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = ?1)", [&run_id], |r| r.get(0))
        .context("cannot read the runs table")?;
    if exists {
        bail!("run {run_id} already exists in {}; choose another --run-id", db_path.display());
    }
    let config_path_text = config_path.as_ref().map(|p| p.display().to_string());
    record::insert_run(
        &mut conn,
        &RunRow {
            run_id: &run_id,
            started_at_ns: hyperfake_core::time::now_unix().as_i64(),
            seed: workload.seed,
            leaf_address: &leaf_address,
            config_path: config_path_text.as_deref(),
            config_yaml: &config_yaml,
            schedule: &schedule,
        },
    )
    .context("cannot write the run and its schedule")?;
    tracing::info!(run_id, db = %db_path.display(), calls = schedule.calls.len(), "run recorded; connecting");

    let fail = |conn: &rusqlite::Connection, e: &anyhow::Error, status: RunStatus| {
        let now = hyperfake_core::time::now_unix().as_i64();
        if let Err(db) = record::finish_run(conn, &run_id, now, status, None, None, Some(&format!("{e:#}"))) {
            tracing::error!("cannot mark the run {}: {db}", status.as_str());
        }
    };
    let prepared =
        prepare_target(&leaf_address, token, &workload, &conn, &run_id, progress, created, stop.clone())
            .await;
    let target = match prepared {
        Ok(target) => target,
        Err(e) => {
            let status =
                if *stop.borrow() == Stop::Running { RunStatus::Failed } else { RunStatus::Interrupted };
            fail(&conn, &e, status);
            return Err(e);
        }
    };

    if let Some(warmup) = &workload.warmup {
        let warming = crate::warmup::Warming {
            warmup,
            workload: &workload,
            schedule: &schedule,
            payloads: &payloads,
            target: &target,
            run_id: &run_id,
            progress,
        };
        if let Err(e) = warming.run(&mut conn, stop.clone()).await {
            let status =
                if *stop.borrow() == Stop::Running { RunStatus::Failed } else { RunStatus::Interrupted };
            fail(&conn, &e, status);
            return Err(e);
        }
    }

    let writer_conn =
        record::open(&db_path).context("cannot open a second connection for the call writer")?;
    let (recorder, records) = record::Recorder::start_with(writer_conn, run_id.clone(), RECORD_QUEUE, writer);
    let counters = Arc::new(Counters::default());
    let bar = progress_bar(progress, schedule.calls.len() as u64, "calls due");
    let ticker = tokio::spawn(tick_progress(bar.clone(), counters.clone()));

    let clock = Clock::starting_in(START_LEAD);
    conn.execute(
        "UPDATE runs SET started_at_ns = ?2 WHERE run_id = ?1",
        rusqlite::params![run_id, clock.unix_ns],
    )
    .context("cannot record the run's start time")?;
    let report = Dispatcher {
        schedule: schedule.clone(),
        payloads: Arc::new(payloads),
        target,
        options: SendOptions {
            run_id: run_id.clone(),
            call_timeout: workload.call_timeout,
            max_in_flight,
            lookahead: LOOKAHEAD,
        },
        clock,
        records,
        stop,
        counters: counters.clone(),
    }
    .send_all()
    .await;
    ticker.abort();
    bar.finish_and_clear();

    let recorded = match tokio::task::spawn_blocking(move || recorder.finish()).await {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            let e = anyhow::Error::new(e).context("the call writer failed; rows may be missing");
            fail(&conn, &e, RunStatus::Failed);
            return Err(e);
        }
        Err(e) => bail!("the call writer panicked: {e}"),
    };
    let status = if report.interrupted { RunStatus::Interrupted } else { RunStatus::Completed };
    let lost = report.due.saturating_sub(recorded);
    let error = (lost > 0).then(|| format!("{lost} of {} calls were not recorded", report.due));
    record::finish_run(
        &conn,
        &run_id,
        hyperfake_core::time::now_unix().as_i64(),
        status,
        Some(report.due),
        Some(recorded),
        error.as_deref(),
    )
    .context("cannot mark the run finished")?;
    // Fold the WAL into the main file, so the .db alone is the whole run.
    if let Err(e) = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
        tracing::warn!("WAL checkpoint failed (the data is safe in the -wal file): {e}");
    }
    if let Some(error) = error {
        tracing::error!("{error}");
    }
    Ok(RunReport {
        run_id,
        db_path,
        status,
        scheduled: schedule.calls.len() as u64,
        due: report.due,
        recorded,
        errors: counters.errors.load(Ordering::Relaxed),
    })
}

/// Connects and creates the functions of every image (`copies` of each),
/// recording each in the run database and in `created`.
#[allow(clippy::too_many_arguments)]
async fn prepare_target(
    leaf_address: &str,
    token: BearerToken,
    workload: &Workload,
    conn: &rusqlite::Connection,
    run_id: &str,
    progress: bool,
    created: &Mutex<Vec<FunctionId>>,
    mut stop: watch::Receiver<Stop>,
) -> anyhow::Result<Target> {
    let work = async {
        let mut client = connect(leaf_address, token.clone()).await?;
        let total: u64 = workload.functions.values().map(|spec| u64::from(spec.copies)).sum();
        let bar = progress_bar(progress, total, "functions created");
        let mut functions = HashMap::new();
        for (image_tag, spec) in &workload.functions {
            let config_json = serde_json::to_string(&spec.config).expect("a config always serializes");
            let features_json = spec.features.to_json();
            let mut ids = Vec::with_capacity(spec.copies as usize);
            for copy in 0..spec.copies {
                let function_id = create_function(&mut client, image_tag, &spec.config).await?;
                created.lock().unwrap_or_else(PoisonError::into_inner).push(function_id.clone());
                record::insert_function(
                    conn,
                    run_id,
                    image_tag.as_str(),
                    copy,
                    function_id.as_str(),
                    &config_json,
                    &features_json,
                )
                .context("cannot record a created function")?;
                tracing::debug!(image = %image_tag, copy, function = %function_id, "function created");
                ids.push(function_id);
                bar.inc(1);
            }
            match ids.as_slice() {
                [one] => tracing::info!(image = %image_tag, function = %one, "function created"),
                many => tracing::info!(image = %image_tag, copies = many.len(), "functions created"),
            }
            functions.insert(image_tag.clone(), ids);
        }
        bar.finish_and_clear();
        let mut clients = vec![client];
        for _ in 1..SEND_CONNECTIONS {
            clients.push(connect(leaf_address, token.clone()).await?);
        }
        anyhow::Ok(Target::new(clients, functions))
    };
    tokio::select! {
        result = work => result,
        () = sender::reaches(&mut stop, Stop::Drain) => bail!("interrupted before any call was sent"),
    }
}

/// `CreateFunction` for one image.
pub async fn create_function(
    client: &mut LeafClient<AuthChannel>,
    image_tag: &ImageTag,
    config: &hyperfake_core::FunctionConfig,
) -> anyhow::Result<FunctionId> {
    let mut request = tonic::Request::new(CreateFunctionRequest {
        image_tag: Some(image_tag.into()),
        config: Some(config.into()),
        ..Default::default()
    });
    request.set_timeout(CREATE_TIMEOUT);
    let response = client
        .create_function(request)
        .await
        .with_context(|| format!("CreateFunction for {image_tag} failed"))?
        .into_inner();
    proto::convert::function_id(response.function_id.as_ref())
        .with_context(|| format!("CreateFunction for {image_tag} returned no function id"))
}

fn progress_bar(enabled: bool, total: u64, what: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {what}  {{msg}}"
        ))
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar
}

/// Updates the bar 4 times a second: calls due, current send rate, calls in
/// flight and errors so far.
async fn tick_progress(bar: ProgressBar, counters: Arc<Counters>) {
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    let mut last = (tokio::time::Instant::now(), 0u64);
    loop {
        interval.tick().await;
        let now = tokio::time::Instant::now();
        let sent = counters.sent.load(Ordering::Relaxed);
        let rate = (sent - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-3);
        last = (now, sent);
        bar.set_position(counters.due.load(Ordering::Relaxed));
        bar.set_message(format!(
            "{rate:.0} calls/s  in flight {}  errors {}",
            counters.in_flight.load(Ordering::Relaxed),
            counters.errors.load(Ordering::Relaxed)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time_and_are_safe() {
        let id = new_run_id();
        assert!(valid_run_id(&id), "{id}");
        assert_eq!(id.len(), "20261123T031500Z-3fa2c1".len());
    }
}
