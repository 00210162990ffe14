use database::{ClientError, DatabaseClient, Store};
use hyperfake_core::{Bytes, FunctionConfig, ImageTag};
use proto::auth::RequireToken;
use tokio::net::TcpListener;

const TOKEN: &str = "db-token-42";

/// With `--token`, calls without the token (or with another) are refused
/// with UNAUTHENTICATED naming the problem; with it they are served.
#[tokio::test]
async fn a_database_with_a_token_serves_only_clients_that_send_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("functions.db")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let auth = RequireToken::new(Some(TOKEN)).unwrap();
    let server = tokio::spawn(database::serve_with(listener, store, std::future::pending(), auth));

    let refused = |err: ClientError, expected: &str| match err {
        ClientError::Server { source, .. } => {
            assert_eq!(source.code(), tonic::Code::Unauthenticated);
            assert!(source.message().starts_with(expected), "{}", source.message());
        }
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    };
    let anonymous = DatabaseClient::connect(&address).unwrap();
    refused(anonymous.list().await.unwrap_err(), "missing token");
    let wrong = DatabaseClient::connect(&address).unwrap().with_token(Some("nope")).unwrap();
    refused(wrong.list().await.unwrap_err(), "wrong token");

    let client = DatabaseClient::connect(&address).unwrap().with_token(Some(TOKEN)).unwrap();
    let config =
        FunctionConfig { memory: Bytes::mib(64), cpu: None, idle_timeout: None, max_concurrency: None };
    let created = client.create(&ImageTag::from("hyperfaas-echo:latest"), &config).await.unwrap();
    assert_eq!(client.list().await.unwrap(), vec![created]);
    server.abort();
}

/// The `database` binary, killed on drop.
struct Binary(std::process::Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn database_command(dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_database"));
    command
        .args(["--address", "127.0.0.1:0", "--db"])
        .arg(dir.join("functions.db"))
        .env_remove(hyperfake_core::defaults::env::TOKEN)
        .env_remove(proto::auth::TOKEN_FILE_ENV)
        .stdin(std::process::Stdio::null());
    command
}

/// Writes `text` to `dir/name` with `mode`.
fn token_file(dir: &std::path::Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// Runs the binary expecting it to refuse to start; returns its stderr.
fn refused_start(command: &mut std::process::Command) -> String {
    let out = command.output().unwrap();
    assert!(!out.status.success(), "the database started: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `--token-file`: the binary reads the token from the file (ignoring the
/// trailing newline), requires it, and the token is not on its command line.
#[tokio::test]
async fn the_binary_reads_its_token_from_a_file() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let file = token_file(dir.path(), "token", &format!("{TOKEN}\n"), 0o600);
    let mut child = database_command(dir.path())
        .arg("--token-file")
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let binary = Binary(child);
    let mut address = String::new();
    std::io::BufReader::new(stdout).read_line(&mut address).unwrap();
    let address = address.trim().to_string();
    assert!(!address.is_empty(), "the database printed no address");

    let cmdline = std::fs::read(format!("/proc/{}/cmdline", binary.0.id())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(TOKEN), "the token is on the command line");
    let anonymous = DatabaseClient::connect(&address).unwrap();
    match anonymous.list().await.unwrap_err() {
        ClientError::Server { source, .. } => assert_eq!(source.code(), tonic::Code::Unauthenticated),
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    }
    let client = DatabaseClient::connect(&address).unwrap().with_token(Some(TOKEN)).unwrap();
    assert_eq!(client.list().await.unwrap(), vec![]);
}

/// A token file that is missing, empty, or readable by others stops the
/// binary with an error naming the file; so do --token and --token-file together.
#[test]
fn bad_token_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-token");
    let err = refused_start(database_command(dir.path()).arg("--token-file").arg(&missing));
    assert!(err.contains("cannot read the token file") && err.contains("no-such-token"), "{err}");

    let empty = token_file(dir.path(), "empty-token", "\n", 0o600);
    let err = refused_start(database_command(dir.path()).arg("--token-file").arg(&empty));
    assert!(err.contains(&format!("the token file {} is empty", empty.display())), "{err}");

    let open = token_file(dir.path(), "open-token", TOKEN, 0o644);
    let err = refused_start(database_command(dir.path()).arg("--token-file").arg(&open));
    assert!(err.contains("open-token has mode 644") && err.contains("chmod 600"), "{err}");

    let good = token_file(dir.path(), "token", TOKEN, 0o400);
    let err = refused_start(database_command(dir.path()).args(["--token", TOKEN, "--token-file"]).arg(&good));
    assert!(err.contains("cannot be used with"), "{err}");
    assert!(!dir.path().join("functions.db").exists(), "nothing is opened before the token is read");
}
