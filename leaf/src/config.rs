//! The node's settings in three shapes:
//!
//! - what the user wrote: [`Args`] (flags and env) and [`FileConfig`] (YAML);
//! - [`merge`]: the one function that applies precedence
//!   (flag > env > file > default) and validates, naming every bad field;
//! - what the code runs on: [`NodeSettings`] with typed [`Duration`]s.
//!
//! Parsing validates and records; nothing connects here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use hyperfake_core::defaults;
use proto::auth::{Token, TokenError};
use serde::Deserialize;

// === Defaults ===

/// How long callers wait for a cold start before DEADLINE_EXCEEDED. Matches the
/// worker's ready timeout: the worker gives up first and says why.
pub const DEFAULT_COLD_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Calls per instance before scaling up, for functions with `max_concurrency = 0`
/// (unlimited). Beyond this many concurrent calls a second instance is cheaper
/// than queueing on one; a guess, not a measurement: tune per platform.
pub const DEFAULT_TARGET_CONCURRENCY: u32 = 16;
/// Instances one function may have across all workers of a leaf.
pub const DEFAULT_MAX_INSTANCES: u32 = 8;
/// Calls one function may have inside the leaf (forwarded plus waiting for a
/// cold start). Beyond it calls are refused with RESOURCE_EXHAUSTED instead of
/// queueing without bound. Large enough for a burst of a few hundred callers.
pub const DEFAULT_MAX_PENDING_CALLS: u32 = 1024;
/// Extra attempts for a call that failed before reaching a function.
pub const DEFAULT_CALL_RETRIES: u32 = 2;
/// How often idle instances are looked for. Timeouts are whole seconds, so a
/// quarter second keeps scale-to-zero within 250 ms of `Config.timeout`.
pub const DEFAULT_SCALE_DOWN_INTERVAL: Duration = Duration::from_millis(250);
/// How often each worker's `State` is compared with what the leaf believes, so a
/// lost event cannot leave phantom instances for longer than this.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(2);
/// First and largest wait between reconnection attempts to a worker or child.
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(100);
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Dialling a worker or child: they are on the same network, so a slow connect
/// means it is gone, and the call should move on.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a load-balancer node asks its children for their warm capacity.
pub const DEFAULT_STATE_INTERVAL: Duration = Duration::from_millis(250);
/// How long a starting node waits for the database to answer before giving up
/// (in compose, the database may come up after the leaf).
pub const DEFAULT_DATABASE_WAIT: Duration = Duration::from_secs(30);

// === What the user wrote ===

/// A HyperFaaS leaf (`--worker`) or load-balancer node (`--child`) serving
/// `leaf.Leaf`. Every setting can also be given in `--config <file.yaml>`
/// under the same name with `_` instead of `-`; flags and env win over the file.
#[derive(Debug, Default, Parser)]
#[command(name = "leaf", version)]
pub struct Args {
    /// YAML file with any of the settings below.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to serve `leaf.Leaf` on (port 0: any free port; the bound address
    /// is printed). Default: 127.0.0.1:50050.
    #[arg(long, env = defaults::env::LEAF_ADDRESS)]
    pub address: Option<String>,
    /// The function database. Default: 127.0.0.1:8999.
    #[arg(long, env = defaults::env::DATABASE_ADDRESS)]
    pub database: Option<String>,
    /// A worker this leaf schedules onto (repeatable, or comma-separated).
    #[arg(long = "worker", value_delimiter = ',')]
    pub workers: Vec<String>,
    /// Run as a load-balancer node over these children: leaves or other
    /// load-balancer nodes (repeatable, or comma-separated).
    #[arg(long = "child", value_delimiter = ',')]
    pub children: Vec<String>,
    /// How long callers wait for a cold start. Default: 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub cold_start_timeout: Option<Duration>,
    /// Calls per instance before scaling up when `Config.max_concurrency` is 0. Default: 16.
    #[arg(long)]
    pub target_concurrency: Option<u32>,
    /// Most instances of one function across the leaf's workers. Default: 8.
    #[arg(long)]
    pub max_instances: Option<u32>,
    /// Most calls of one function inside the leaf; more are refused with
    /// RESOURCE_EXHAUSTED. Default: 1024.
    #[arg(long)]
    pub max_pending_calls: Option<u32>,
    /// Extra attempts for a call that failed before reaching a function. Default: 2.
    #[arg(long)]
    pub call_retries: Option<u32>,
    /// How often idle instances are looked for. Default: 250ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub scale_down_interval: Option<Duration>,
    /// How often workers' `State` is reconciled with the leaf's view. Default: 2s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub reconcile_interval: Option<Duration>,
    /// First wait before reconnecting to a worker or child (doubles). Default: 100ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub reconnect_min: Option<Duration>,
    /// Largest wait before reconnecting. Default: 5s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub reconnect_max: Option<Duration>,
    /// Timeout for dialling a worker or child. Default: 1s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// Load-balancer nodes: how often children report warm capacity. Default: 250ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub state_interval: Option<Duration>,
    /// How long to wait for the database at start. Default: 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub database_wait: Option<Duration>,
    /// Shared token: required from clients (`authorization: Bearer <token>`),
    /// and sent to the database, workers and children. Default: none. Shows
    /// in `ps`: prefer --token-file.
    #[arg(long, env = defaults::env::TOKEN, hide_env_values = true)]
    pub token: Option<String>,
    /// Read the shared token from this file (one line; readable by its owner
    /// only, e.g. mode 0600). Conflicts with --token / HYPERFAKE_TOKEN; wins
    /// over `token` in the config file.
    #[arg(long, value_name = "PATH", env = proto::auth::TOKEN_FILE_ENV, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
}

/// The config file: the same settings as [`Args`]; durations as `"250ms"`, `"2s"`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub address: Option<String>,
    pub database: Option<String>,
    #[serde(default)]
    pub workers: Vec<String>,
    #[serde(default)]
    pub children: Vec<String>,
    pub cold_start_timeout: Option<String>,
    pub target_concurrency: Option<u32>,
    pub max_instances: Option<u32>,
    pub max_pending_calls: Option<u32>,
    pub call_retries: Option<u32>,
    pub scale_down_interval: Option<String>,
    pub reconcile_interval: Option<String>,
    pub reconnect_min: Option<String>,
    pub reconnect_max: Option<String>,
    pub connect_timeout: Option<String>,
    pub state_interval: Option<String>,
    pub database_wait: Option<String>,
    pub token: Option<String>,
}

// === What the code runs on ===

/// Which node this is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Schedules calls onto these workers.
    Leaf { workers: Vec<String> },
    /// Routes calls to these children (leaves or load-balancer nodes).
    Balancer { children: Vec<String> },
}

/// How a leaf scales and forwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerSettings {
    pub cold_start_timeout: Duration,
    pub target_concurrency: u32,
    pub max_instances: u32,
    pub max_pending_calls: u32,
    pub call_retries: u32,
    pub scale_down_interval: Duration,
}

/// How a node keeps in touch with the nodes below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    pub reconcile_interval: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub connect_timeout: Duration,
    pub state_interval: Duration,
}

/// Validated settings of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSettings {
    pub address: String,
    pub database: String,
    pub role: Role,
    pub scheduler: SchedulerSettings,
    pub pool: PoolSettings,
    pub database_wait: Duration,
    /// The shared token: required from callers, sent to every node below and
    /// to the database. `None`: no authentication.
    pub token: Option<Token>,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            cold_start_timeout: DEFAULT_COLD_START_TIMEOUT,
            target_concurrency: DEFAULT_TARGET_CONCURRENCY,
            max_instances: DEFAULT_MAX_INSTANCES,
            max_pending_calls: DEFAULT_MAX_PENDING_CALLS,
            call_retries: DEFAULT_CALL_RETRIES,
            scale_down_interval: DEFAULT_SCALE_DOWN_INTERVAL,
        }
    }
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            reconcile_interval: DEFAULT_RECONCILE_INTERVAL,
            reconnect_min: DEFAULT_RECONNECT_MIN,
            reconnect_max: DEFAULT_RECONNECT_MAX,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            state_interval: DEFAULT_STATE_INTERVAL,
        }
    }
}

impl NodeSettings {
    /// A leaf over `workers` with every other setting at its default.
    pub fn leaf(database: impl Into<String>, workers: Vec<String>) -> Self {
        NodeSettings {
            address: defaults::LEAF_ADDRESS.to_string(),
            database: database.into(),
            role: Role::Leaf { workers },
            scheduler: SchedulerSettings::default(),
            pool: PoolSettings::default(),
            database_wait: DEFAULT_DATABASE_WAIT,
            token: None,
        }
    }

    /// A load-balancer node over `children` with every other setting at its default.
    pub fn balancer(database: impl Into<String>, children: Vec<String>) -> Self {
        NodeSettings { role: Role::Balancer { children }, ..Self::leaf(database, Vec::new()) }
    }
}

// === Errors ===

/// A bad setting, naming where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeafConfigError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{field}: {value:?} is not a duration (examples: 250ms, 2s, 1m)")]
    Duration { field: &'static str, value: String },
    #[error("{field}: must be greater than zero")]
    Zero { field: &'static str },
    #[error("give either --worker (a leaf) or --child (a load-balancer node), not both")]
    BothRoles,
    #[error("no --worker and no --child: a leaf needs workers, a load-balancer node children")]
    NoRole,
    #[error("reconnect_min ({min:?}) is larger than reconnect_max ({max:?})")]
    Backoff { min: Duration, max: Duration },
    #[error("token: {0}")]
    Token(TokenError),
}

/// Every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid settings:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
pub struct LeafConfigErrors(pub Vec<LeafConfigError>);

// === Merge ===

/// Reads the file named by `--config`, if any.
pub fn read_file(path: &Path) -> Result<FileConfig, LeafConfigErrors> {
    let file_error =
        |message: String| LeafConfigErrors(vec![LeafConfigError::File { path: path.into(), message }]);
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| file_error(e.to_string()))
}

/// Parses the command line, reads the config file it names and merges them.
pub fn from_args(args: Args) -> Result<NodeSettings, LeafConfigErrors> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => FileConfig::default(),
    };
    merge(args, file)
}

/// The one place precedence is decided: flag > env (both in `args`) > file >
/// default. Reports every bad value, not just the first.
pub fn merge(args: Args, file: FileConfig) -> Result<NodeSettings, LeafConfigErrors> {
    // Destructured exhaustively so a new setting forces a decision here.
    let Args {
        config: _,
        address,
        database,
        workers,
        children,
        cold_start_timeout,
        target_concurrency,
        max_instances,
        max_pending_calls,
        call_retries,
        scale_down_interval,
        reconcile_interval,
        reconnect_min,
        reconnect_max,
        connect_timeout,
        state_interval,
        database_wait,
        token,
        token_file,
    } = args;
    let FileConfig {
        address: f_address,
        database: f_database,
        workers: f_workers,
        children: f_children,
        cold_start_timeout: f_cold_start_timeout,
        target_concurrency: f_target_concurrency,
        max_instances: f_max_instances,
        max_pending_calls: f_max_pending_calls,
        call_retries: f_call_retries,
        scale_down_interval: f_scale_down_interval,
        reconcile_interval: f_reconcile_interval,
        reconnect_min: f_reconnect_min,
        reconnect_max: f_reconnect_max,
        connect_timeout: f_connect_timeout,
        state_interval: f_state_interval,
        database_wait: f_database_wait,
        token: f_token,
    } = file;

    let mut errors = Vec::new();
    let mut duration = |field: &'static str, flag: Option<Duration>, file: Option<String>, default| {
        let value = match (flag, file) {
            (Some(d), _) => d,
            (None, Some(text)) => match humantime::parse_duration(text.trim()) {
                Ok(d) => d,
                Err(_) => {
                    errors.push(LeafConfigError::Duration { field, value: text });
                    return default;
                }
            },
            (None, None) => default,
        };
        if value.is_zero() {
            errors.push(LeafConfigError::Zero { field });
        }
        value
    };
    let cold_start_timeout =
        duration("cold_start_timeout", cold_start_timeout, f_cold_start_timeout, DEFAULT_COLD_START_TIMEOUT);
    let scale_down_interval = duration(
        "scale_down_interval",
        scale_down_interval,
        f_scale_down_interval,
        DEFAULT_SCALE_DOWN_INTERVAL,
    );
    let reconcile_interval =
        duration("reconcile_interval", reconcile_interval, f_reconcile_interval, DEFAULT_RECONCILE_INTERVAL);
    let reconnect_min = duration("reconnect_min", reconnect_min, f_reconnect_min, DEFAULT_RECONNECT_MIN);
    let reconnect_max = duration("reconnect_max", reconnect_max, f_reconnect_max, DEFAULT_RECONNECT_MAX);
    let connect_timeout =
        duration("connect_timeout", connect_timeout, f_connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    let state_interval = duration("state_interval", state_interval, f_state_interval, DEFAULT_STATE_INTERVAL);
    let database_wait = duration("database_wait", database_wait, f_database_wait, DEFAULT_DATABASE_WAIT);

    let mut count = |field: &'static str, flag: Option<u32>, file: Option<u32>, default: u32| {
        let value = flag.or(file).unwrap_or(default);
        if value == 0 {
            errors.push(LeafConfigError::Zero { field });
        }
        value
    };
    let target_concurrency =
        count("target_concurrency", target_concurrency, f_target_concurrency, DEFAULT_TARGET_CONCURRENCY);
    let max_instances = count("max_instances", max_instances, f_max_instances, DEFAULT_MAX_INSTANCES);
    let max_pending_calls =
        count("max_pending_calls", max_pending_calls, f_max_pending_calls, DEFAULT_MAX_PENDING_CALLS);
    // Zero retries is a valid choice.
    let call_retries = call_retries.or(f_call_retries).unwrap_or(DEFAULT_CALL_RETRIES);

    if reconnect_min > reconnect_max {
        errors.push(LeafConfigError::Backoff { min: reconnect_min, max: reconnect_max });
    }
    // Flag or env (token or token file) > the file's `token`.
    let token = match Token::from_flags(token.as_deref(), token_file.as_deref())
        .transpose()
        .or_else(|| f_token.map(|t| Token::new(&t)))
        .transpose()
    {
        Ok(token) => token,
        Err(e) => {
            errors.push(LeafConfigError::Token(e));
            None
        }
    };
    let workers = if workers.is_empty() { f_workers } else { workers };
    let children = if children.is_empty() { f_children } else { children };
    let role = match (workers.is_empty(), children.is_empty()) {
        (false, true) => Role::Leaf { workers },
        (true, false) => Role::Balancer { children },
        (false, false) => {
            errors.push(LeafConfigError::BothRoles);
            Role::Leaf { workers }
        }
        (true, true) => {
            errors.push(LeafConfigError::NoRole);
            Role::Leaf { workers }
        }
    };
    if !errors.is_empty() {
        return Err(LeafConfigErrors(errors));
    }
    Ok(NodeSettings {
        address: address.or(f_address).unwrap_or_else(|| defaults::LEAF_ADDRESS.to_string()),
        database: database.or(f_database).unwrap_or_else(|| defaults::DATABASE_ADDRESS.to_string()),
        role,
        scheduler: SchedulerSettings {
            cold_start_timeout,
            target_concurrency,
            max_instances,
            max_pending_calls,
            call_retries,
            scale_down_interval,
        },
        pool: PoolSettings {
            reconcile_interval,
            reconnect_min,
            reconnect_max,
            connect_timeout,
            state_interval,
        },
        database_wait,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(argv: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("leaf").chain(argv.iter().copied())).unwrap()
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file: FileConfig = serde_yaml_ng::from_str(
            "workers: [a:1, b:2]\nmax_instances: 3\ncold_start_timeout: 5s\nreconcile_interval: 1s\n",
        )
        .unwrap();
        let s = merge(args(&["--max-instances", "4", "--reconcile-interval", "500ms"]), file).unwrap();
        assert_eq!(s.role, Role::Leaf { workers: vec!["a:1".into(), "b:2".into()] });
        assert_eq!(s.scheduler.max_instances, 4);
        assert_eq!(s.scheduler.cold_start_timeout, Duration::from_secs(5));
        assert_eq!(s.pool.reconcile_interval, Duration::from_millis(500));
        assert_eq!(s.scheduler.target_concurrency, DEFAULT_TARGET_CONCURRENCY);
        assert_eq!(s.address, defaults::LEAF_ADDRESS);
    }

    #[test]
    fn every_bad_value_is_reported_by_name() {
        let file = FileConfig {
            children: vec!["c:1".into()],
            state_interval: Some("soon".into()),
            ..Default::default()
        };
        let err = merge(args(&["--worker", "w:1", "--max-instances", "0", "--reconnect-min", "9s"]), file)
            .unwrap_err();
        assert_eq!(
            err.0,
            vec![
                LeafConfigError::Duration { field: "state_interval", value: "soon".into() },
                LeafConfigError::Zero { field: "max_instances" },
                LeafConfigError::Backoff { min: Duration::from_secs(9), max: DEFAULT_RECONNECT_MAX },
                LeafConfigError::BothRoles,
            ]
        );
        assert_eq!(merge(args(&[]), FileConfig::default()).unwrap_err().0, vec![LeafConfigError::NoRole]);
    }

    #[test]
    fn unknown_file_fields_are_refused() {
        assert!(serde_yaml_ng::from_str::<FileConfig>("max_instance: 3\n").is_err());
    }

    #[test]
    fn the_token_comes_from_the_flag_or_the_file_and_is_validated() {
        let file =
            FileConfig { workers: vec!["w:1".into()], token: Some("from-file".into()), ..Default::default() };
        let s = merge(args(&[]), file).unwrap();
        assert_eq!(s.token.as_ref().map(Token::as_str), Some("from-file"));
        assert!(!format!("{s:?}").contains("from-file"), "settings must not print the secret");
        let s = merge(args(&["--worker", "w:1", "--token", "flag"]), FileConfig::default()).unwrap();
        assert_eq!(s.token.as_ref().map(Token::as_str), Some("flag"));
        let err =
            merge(args(&["--worker", "w:1", "--token", "two words"]), FileConfig::default()).unwrap_err();
        assert_eq!(err.0, vec![LeafConfigError::Token(TokenError::NotPrintable)]);
    }

    #[test]
    fn the_token_file_flag_is_read_and_conflicts_with_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-token-file\n").unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let path = path.to_str().unwrap();
        let file = FileConfig { token: Some("from-config".into()), ..Default::default() };
        let s = merge(args(&["--worker", "w:1", "--token-file", path]), file).unwrap();
        assert_eq!(s.token.as_ref().map(Token::as_str), Some("from-token-file"));
        let both = Args::try_parse_from(["leaf", "--worker", "w:1", "--token", "t", "--token-file", path]);
        assert_eq!(both.unwrap_err().kind(), clap::error::ErrorKind::ArgumentConflict);
        let missing = dir.path().join("missing");
        let err = merge(
            args(&["--worker", "w:1", "--token-file", missing.to_str().unwrap()]),
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains(missing.to_str().unwrap()), "{err}");
    }

    #[test]
    fn children_make_a_balancer() {
        let s = merge(args(&["--child", "a:1,b:2"]), FileConfig::default()).unwrap();
        assert_eq!(s.role, Role::Balancer { children: vec!["a:1".into(), "b:2".into()] });
    }
}
