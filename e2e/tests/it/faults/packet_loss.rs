//! g. Silent packet loss between the leaf and one worker: an iptables rule
//! drops every packet to the worker's port on loopback for 12 s under load
//! (no reset, no ICMP), then is removed. The rule is removed on drop too,
//! even when the case fails. Needs root. The scenario and its promises:
//! [`super::isolated_worker`].

use super::isolated_worker::{Fault, cut_off_one_worker};
use super::support::{Proc, Undo};

#[derive(Default)]
struct Dropped(Option<Undo>);

fn rule(action: &str, worker: &Proc) -> String {
    let port = worker.address.rsplit(':').next().unwrap();
    format!("iptables -w -{action} INPUT -i lo -p tcp --dport {port} -j DROP")
}

impl Fault for Dropped {
    fn apply(&mut self, worker: &Proc) {
        self.0 = Some(Undo::apply(&rule("I", worker), &rule("D", worker)));
    }

    fn undo(&mut self, _worker: &Proc) {
        if let Some(mut rule) = self.0.take() {
            rule.now();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_packet_loss_to_a_worker_times_out_cleanly_and_recovers() {
    cut_off_one_worker(
        "g-packet-loss",
        "silent packet loss between leaf and worker (iptables DROP), then removed",
        Dropped::default(),
    )
    .await;
}
