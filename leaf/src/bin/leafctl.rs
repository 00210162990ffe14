//! `leafctl`: a small client of `leaf.Leaf` (a leaf or a load-balancer node),
//! for trying a platform by hand and for the deployment scripts.
//!
//! ```text
//! leafctl --address 127.0.0.1:50050 create hyperfaas-echo:latest --memory 64MB --timeout 30s
//! leafctl --address 127.0.0.1:50050 call <function-id> 'hello'
//! leafctl --address 127.0.0.1:50050 state
//! ```

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hyperfake_core::defaults::{self, MAX_MESSAGE_SIZE};
use hyperfake_core::{Bytes, FunctionConfig};
use proto::auth::BearerToken;
use proto::leaf::leaf_client::LeafClient;
use proto::leaf::{CreateFunctionRequest, LeafStateRequest, ScheduleCallRequest};

#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The leaf or load-balancer node.
    #[arg(long, env = defaults::env::LEAF_ADDRESS, default_value = defaults::LEAF_ADDRESS)]
    address: String,
    /// How long to wait for an answer.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    deadline: Duration,
    /// Shared token, for a node started with --token. Default: none. Shows
    /// in `ps`: prefer --token-file.
    #[arg(long, env = defaults::env::TOKEN, hide_env_values = true)]
    token: Option<String>,
    /// Read the shared token from this file (one line; readable by its owner
    /// only, e.g. mode 0600). Conflicts with --token / HYPERFAKE_TOKEN.
    #[arg(long, value_name = "PATH", env = proto::auth::TOKEN_FILE_ENV, conflicts_with = "token")]
    token_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates a function; prints its id.
    Create {
        image: String,
        /// Memory limit of one instance (256MB, 1GB, ...).
        #[arg(long, default_value = "64MB")]
        memory: String,
        /// Idle time after which an instance is stopped (0s: never).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        timeout: Duration,
        /// Calls one instance serves at once (0: unlimited).
        #[arg(long, default_value_t = 0)]
        max_concurrency: u32,
    },
    /// Calls a function; prints its response (and the timing metadata on stderr).
    Call { function_id: String, data: Option<String> },
    /// Prints what the node can serve now.
    State,
}

#[tokio::main]
async fn main() -> ExitCode {
    hyperfake_cli::exit_code("leafctl", run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let uri = format!("http://{}", args.address);
    let channel = tonic::transport::Endpoint::from_shared(uri)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.address))?;
    let token = proto::auth::Token::from_flags(args.token.as_deref(), args.token_file.as_deref())
        .context("invalid --token / --token-file")?;
    let token = BearerToken::from_token(token.as_ref());
    let mut client = LeafClient::with_interceptor(channel, token).max_decoding_message_size(MAX_MESSAGE_SIZE);
    match args.command {
        Command::Create { image, memory, timeout, max_concurrency } => {
            let config = FunctionConfig {
                memory: Bytes::parse_size(&memory)?,
                cpu: None,
                idle_timeout: (!timeout.is_zero()).then_some(timeout),
                max_concurrency: (max_concurrency > 0).then_some(max_concurrency),
            };
            let mut request = tonic::Request::new(CreateFunctionRequest {
                image_tag: Some(proto::common::ImageTag { tag: image }),
                config: Some((&config).into()),
                function_id: None,
            });
            request.set_timeout(args.deadline);
            let response = client.create_function(request).await?;
            println!("{}", response.into_inner().function_id.map(|f| f.id).unwrap_or_default());
        }
        Command::Call { function_id, data } => {
            let mut request = tonic::Request::new(ScheduleCallRequest {
                function_id: Some(proto::common::FunctionId { id: function_id }),
                data: data.unwrap_or_default().into_bytes(),
            });
            request.set_timeout(args.deadline);
            let response = client.schedule_call(request).await?;
            for (key, value) in response.metadata().clone().into_headers().iter() {
                if !key.as_str().starts_with("content-") && key.as_str() != "date" {
                    eprintln!("{key}: {}", value.to_str().unwrap_or("?"));
                }
            }
            let body = response.into_inner();
            if let Some(e) = body.error {
                anyhow::bail!("the function failed: {}", e.message);
            }
            println!("{}", String::from_utf8_lossy(&body.data));
        }
        Command::State => {
            let state = client.state(LeafStateRequest::default()).await?.into_inner();
            println!("nodes in rotation: {}", state.nodes_in_rotation);
            for f in state.functions {
                println!(
                    "{}  ready {}  starting {}  in flight {}  capacity {}",
                    f.function_id.map(|i| i.id).unwrap_or_default(),
                    f.ready_instances,
                    f.starting_instances,
                    f.in_flight_calls,
                    f.capacity
                );
            }
        }
    }
    Ok(())
}
