//! What every hyperfake binary does the same way, so each `main` is only its
//! own job:
//!
//! - [`init_tracing`]: logs to stderr through `tracing`, filtered by `RUST_LOG`,
//!   coloured only on a terminal ([`colour`]);
//! - [`shutdown_signal`]: one future for Ctrl-C and SIGTERM, installed before
//!   start-up so an early SIGTERM is not lost;
//! - [`exit_code`]: `run()`'s result as an exit code, with the whole error
//!   chain on stderr.
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! #[tokio::main]
//! async fn main() -> ExitCode {
//!     hyperfake_cli::init_tracing("info");
//!     hyperfake_cli::exit_code("server", run().await)
//! }
//!
//! async fn run() -> anyhow::Result<()> {
//!     let shutdown = hyperfake_cli::shutdown_signal()?;
//!     // ... serve until `shutdown` resolves ...
//!     shutdown.await;
//!     Ok(())
//! }
//! ```

use std::ffi::OsString;
use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

/// Logs to stderr, filtered by `RUST_LOG`, else by `default_filter` (e.g.
/// `"info"`, `"warn,processing=info"`). Stdout stays free for results.
pub fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour()).with_writer(std::io::stderr).init();
}

/// Whether what goes to stderr may be coloured: only when it is a terminal
/// (a log file gets plain text) and `NO_COLOR` is unset or empty
/// (<https://no-color.org>).
pub fn colour() -> bool {
    colour_for(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR"))
}

fn colour_for(terminal: bool, no_color: Option<OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Listens for Ctrl-C (SIGINT) and SIGTERM from now on; the future resolves at
/// the first of them, logging which. Call it inside a tokio runtime, before
/// start-up work, so a signal during start-up is not missed.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("Ctrl-C: shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        }
    })
}

/// Success, or failure with `<program>: <error: cause: cause ...>` on stderr.
pub fn exit_code(program: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_for(true, None));
        assert!(colour_for(true, Some(OsString::new())));
        assert!(!colour_for(true, Some("1".into())));
        assert!(!colour_for(false, None));
    }

    #[tokio::test]
    async fn a_sigterm_resolves_the_shutdown_future() {
        let shutdown = shutdown_signal().unwrap();
        // The handler installed above turns our own SIGTERM into an event
        // instead of terminating the test process.
        let pid = std::process::id();
        std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), shutdown)
            .await
            .expect("SIGTERM resolves the future");
    }

    #[test]
    fn errors_fail_with_their_chain() {
        assert_eq!(exit_code("x", Ok(())), ExitCode::SUCCESS);
        let e = anyhow::anyhow!("root cause").context("outer");
        assert_eq!(exit_code("x", Err(e)), ExitCode::FAILURE);
    }
}
