//! d. A worker process stopped with SIGSTOP (a hung or swapped-out host: its
//! sockets stay open, nothing answers) for 12 s under load, then SIGCONT.
//! The scenario and its promises: [`super::isolated_worker`].

use super::isolated_worker::{Fault, cut_off_one_worker};
use super::support::Proc;

struct Stopped;

impl Fault for Stopped {
    fn apply(&mut self, worker: &Proc) {
        worker.signal("STOP");
    }

    fn undo(&mut self, worker: &Proc) {
        worker.signal("CONT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_worker_leaves_rotation_and_comes_back() {
    cut_off_one_worker("d-stopped-worker", "a worker process stopped (SIGSTOP, then SIGCONT)", Stopped).await;
}
