//! a. A Docker daemon restart with warm instances under load. Never the
//! machine's own engine: a second engine this case starts itself
//! (`scripts/lib/second-engine.sh`: its own network namespace, data root,
//! socket and containerd), with the worker in that namespace (it reaches its
//! containers on the engine's loopback) serving on the engine's address,
//! which the leaf and the database on this host share a fabric with.
//!
//! A restart stops every container and loses the engine's event log, so no
//! `die` event reaches the worker. Promised (README, "Reliability"): the
//! worker reconciles after its event stream reconnects and every 10 s, so
//! every instance becomes DOWN, no phantom instance is left after 30 s, and
//! calls recover on new instances. Needs root; `#[ignore]`d (it restarts a
//! daemon and takes about a minute): run with `--include-ignored`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hyperfake_testkit::{ContainerSweeper, SIMUL, config, unique};
use tokio::sync::watch;

use super::report::Report;
use super::support::*;

const RATE: u32 = 10;
const DEADLINE: Duration = Duration::from_secs(2);

/// Runs `script` in bash with `scripts/lib/second-engine.sh` sourced.
fn bash(script: &str) -> String {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lib/second-engine.sh");
    let out =
        Command::new("bash").args(["-c", &format!("source {}; {script}", lib.display())]).output().unwrap();
    assert!(
        out.status.success(),
        "`{script}` failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A second engine, removed (with its containers and namespaces) on drop.
struct Engine {
    name: String,
}

impl Engine {
    fn start() -> Engine {
        let name = format!("flt-{:04x}", rand_u16());
        let subnet = 200 + rand_u16() % 50;
        let engine = Engine { name };
        bash(&format!("engine_start {} 198.18.{subnet}.2/24", engine.name));
        engine
    }

    fn socket(&self) -> String {
        bash(&format!("engine_socket {}", self.name))
    }

    fn address(&self) -> String {
        bash(&format!("engine_address {}", self.name))
    }

    /// This host's address on the engine's fabric.
    fn host_address(&self) -> String {
        let a = self.address();
        let (net, _) = a.rsplit_once('.').unwrap();
        format!("{net}.1")
    }

    fn docker(&self, args: &str) -> String {
        bash(&format!("engine_docker {} {args}", self.name))
    }

    fn restart(&self) {
        bash(&format!("engine_restart {}", self.name));
    }

    /// Ids of instances whose containers run in the engine.
    fn running_instances(&self) -> Vec<String> {
        self.docker("ps --filter label=hyperfake.instance --format '{{.Label \"hyperfake.instance\"}}'")
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lib/second-engine.sh");
        let _ = Command::new("bash")
            .args(["-c", &format!("source {}; engine_stop {}", lib.display(), self.name)])
            .status();
    }
}

fn rand_u16() -> u16 {
    let id = unique("r");
    u16::from_str_radix(&id[id.len() - 4..], 16).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "restarts a Docker engine of its own (root, about a minute): run with --include-ignored"]
async fn a_docker_daemon_restart_leaves_no_phantom_instances() {
    hyperfake_testkit::require_image(SIMUL);
    let mut report = Report::new("a-daemon-restart", "Docker daemon restart with warm instances under load");
    let dir = tempfile::tempdir().unwrap();
    let sweeper = ContainerSweeper::new();
    let started = Instant::now();
    let engine = Engine::start();
    report.figure("second engine up", secs(started.elapsed()), "s");
    sh(&format!("docker save {SIMUL} | docker -H {} load", engine.socket()));

    let database =
        database(&dir.path().join("functions.db"), &format!("{}:0", engine.host_address()), dir.path());
    let worker = {
        let mut command = Command::new("nsenter");
        command.arg(format!("--net=/run/netns/hfe-{}", engine.name)).arg("--").arg(binary("worker")).args([
            "--address",
            &format!("{}:0", engine.address()),
            "--database",
            &database.address,
            "--worker-id",
            &unique("fw-daemon"),
            "--label",
            &format!("hyperfake.test={}", sweeper.test_id),
        ]);
        command.env("DOCKER_HOST", engine.socket());
        Proc::start("worker", command, dir.path())
    };
    let leaf = leaf(&database.address, &[&worker], dir.path());
    let client = leaf_client(&leaf.address);
    let debug = || {
        format!(
            "{}{}{}--- dockerd\n{}",
            leaf.log_tail(40),
            worker.log_tail(60),
            database.log_tail(10),
            bash(&format!(
                "tail -n 30 ${{HYPERFAKE_ENGINES_DIR:-/tmp/hyperfake-engines}}/{}/dockerd.log",
                engine.name
            ))
        )
    };

    // Several warm instances: one call each at a time, a burst of 4.
    let f = create(&client, SIMUL, &config(64, None, 0, 1)).await;
    let burst: Vec<_> = (0..4)
        .map(|_| {
            let (client, f) = (client.clone(), f.clone());
            tokio::spawn(async move { call(&client, &f, Vec::new(), Duration::from_secs(60)).await })
        })
        .collect();
    for b in burst {
        let o = b.await.unwrap();
        assert!(o.ok(), "warm-up: {:?}\n{}", o.result, debug());
    }
    let before = worker_instances(&worker.address).await.expect("the worker's State");
    assert!(!before.is_empty(), "no warm instances\n{}", debug());

    let (stop_tx, stop) = watch::channel(false);
    let load = load(client.clone(), f.clone(), RATE, DEADLINE, stop);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let restart_began = Instant::now();
    engine.restart();
    let restart_took = restart_began.elapsed();
    let (address, old) = (&worker.address, &before);
    let all_down = wait_until(Duration::from_secs(30), || async move {
        worker_instances(address).await.is_ok_and(|now| old.iter().all(|i| !now.contains(i)))
    })
    .await
    .map(|_| restart_began.elapsed());
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(restart_began.elapsed())).await;
    let listed = worker_instances(&worker.address).await.unwrap_or_default();
    let running = engine.running_instances();
    let phantoms: Vec<_> = listed.iter().filter(|i| !running.contains(i)).cloned().collect();
    let leaf_ready = leaf_state(&client)
        .await
        .ok()
        .and_then(|s| {
            s.functions.into_iter().find(|l| l.function_id.as_ref().is_some_and(|id| id.id == f.as_str()))
        })
        .map_or(0, |l| l.ready_instances);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_tx.send(true).unwrap();
    let outcomes = load.await.unwrap();

    let after_restart: Vec<_> = outcomes.iter().filter(|o| o.started >= restart_began).collect();
    let last_failure_end = after_restart
        .iter()
        .filter(|o| !o.ok())
        .map(|o| (o.started + o.took).saturating_duration_since(restart_began))
        .max();
    let recovered = last_failure_end.unwrap_or_default();
    let tail: Vec<_> =
        outcomes.iter().filter(|o| o.started >= restart_began + Duration::from_secs(30)).collect();
    report.figure("warm instances before the restart", before.len(), "");
    report.figure("load", format!("{RATE} calls/s of simul, deadline {} s", DEADLINE.as_secs()), "");
    report.figure("engine restart (stop + start until it answers)", secs(restart_took), "s");
    report.figure("restart began → every old instance DOWN at the worker", all_down.map(secs), "s");
    report.figure(
        "phantom instances 30 s after the restart (worker lists, engine does not run)",
        phantoms.len(),
        "",
    );
    report.figure(
        "instances the worker lists / containers running, at 30 s",
        format!("{} / {}", listed.len(), running.len()),
        "",
    );
    report.figure("ready instances in the leaf at 30 s", leaf_ready, "");
    report.figure(
        "calls after the restart began: codes",
        format!("{:?}", codes(&after_restart.iter().map(|o| (*o).clone()).collect::<Vec<_>>())),
        "",
    );
    report.figure("restart began → full recovery (end of the last failed call)", secs(recovered), "s");
    report.check("every old instance goes DOWN", all_down.is_some());
    report.check("no phantom instance after 30 s", phantoms.is_empty());
    report.check(
        "the leaf lists no more ready instances than really run",
        usize::try_from(leaf_ready).unwrap_or(usize::MAX) <= running.len(),
    );
    report.check(
        "calls work again: every call sent from 30 s on works",
        !tail.is_empty() && tail.iter().all(|o| o.ok()),
    );
    report.finish(debug);
    drop((client, leaf, worker, database, engine, sweeper));
}
