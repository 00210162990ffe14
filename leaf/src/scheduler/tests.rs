//! The scheduler's bookkeeping without workers: events and `State` answers
//! fed to [`Scheduler::on_pool_event`] directly.

use std::time::{Duration, Instant};

use database::{DatabaseClient, Function};
use hyperfake_core::{Bytes, FunctionConfig, ImageTag, Nanos};
use proto::auth::BearerToken;
use proto::controller::{Event, FunctionState, InstanceState, StateResponse, StatusUpdate};

use super::*;
use crate::config::PoolSettings;
use crate::instances::WorkerIndex;
use crate::workers::PoolEvent;

/// A scheduler over `workers` addresses nothing listens on (nothing is
/// dialled; the lazy channels need a runtime, hence `tokio::test`).
fn scheduler(workers: usize) -> Arc<Scheduler> {
    let addresses: Vec<_> = (0..workers).map(|i| format!("127.0.0.1:{}", 1 + i)).collect();
    let pool = WorkerPool::new(&addresses, PoolSettings::default(), &BearerToken::default()).unwrap();
    let database = DatabaseClient::connect("127.0.0.1:1").unwrap();
    Scheduler::new(SchedulerSettings::default(), pool, database)
}

fn function(scheduler: &Scheduler, id: &str) -> Arc<FunctionSlot> {
    scheduler.insert(Function {
        id: FunctionId::from(id),
        image_tag: ImageTag::from("hyperfaas-echo:latest"),
        config: FunctionConfig {
            memory: Bytes::mib(64),
            cpu: None,
            idle_timeout: Some(Duration::from_secs(1)),
            max_concurrency: None,
        },
        created_at: Nanos(0),
    })
}

/// What the index should say: every slot's instances, by worker and function.
fn from_slots(scheduler: &Scheduler) -> Vec<(WorkerIndex, FunctionId, u32)> {
    let mut counts = std::collections::BTreeMap::new();
    for slot in scheduler.slots() {
        for (_, p) in slot.lock().instances.iter() {
            *counts.entry((p.worker, slot.function.id.clone())).or_insert(0) += 1;
        }
    }
    counts.into_iter().map(|((w, f), n)| (w, f, n)).collect()
}

fn listing(entries: &[(&str, &[&str])]) -> StateResponse {
    StateResponse {
        functions: entries
            .iter()
            .map(|(f, ids)| FunctionState {
                function_id: (*f).to_string(),
                running: ids
                    .iter()
                    .map(|i| InstanceState { instance_id: (*i).to_string(), ..Default::default() })
                    .collect(),
                idle: vec![],
            })
            .collect(),
    }
}

fn gone(function: &str, instance: &str, event: Event) -> StatusUpdate {
    let mut update = StatusUpdate {
        function_id: Some((&FunctionId::from(function)).into()),
        instance_id: Some((&InstanceId::from(instance)).into()),
        ..Default::default()
    };
    update.set_event(event);
    update
}

#[tokio::test]
async fn the_worker_index_matches_the_instance_sets_through_starts_events_reaping_and_reconciliation() {
    let s = scheduler(3);
    let (f, g, h) = (function(&s, "f"), function(&s, "g"), function(&s, "h"));
    let t0 = Instant::now();
    let check = |what: &str| assert_eq!(s.worker_functions().counts(), from_slots(&s), "after {what}");
    // Started (what start_instance records).
    f.lock().instances.insert(InstanceId::from("f0"), 0, t0);
    f.lock().instances.insert(InstanceId::from("f1"), 1, t0);
    g.lock().instances.insert(InstanceId::from("g1"), 1, t0);
    h.lock().instances.insert(InstanceId::from("h2"), 2, t0);
    check("starts");
    assert_eq!(s.worker_functions().on(0), vec![FunctionId::from("f")]);
    // Adopted: worker 2 lists an instance of g the leaf did not know.
    let asked_at = Instant::now();
    s.on_pool_event(PoolEvent::Reconciled {
        worker: 2,
        state: listing(&[("h", &["h2"]), ("g", &["g2"])]),
        asked_at,
    });
    check("adoption");
    assert!(g.lock().instances.contains(&InstanceId::from("g2")));
    // STOP, TIMEOUT and DOWN events; one naming the wrong worker changes nothing.
    s.on_pool_event(PoolEvent::Status(1, gone("f", "f1", Event::Stop)));
    s.on_pool_event(PoolEvent::Status(0, gone("g", "g1", Event::Timeout)));
    assert!(g.lock().instances.contains(&InstanceId::from("g1")), "g1 is on worker 1, not 0");
    s.on_pool_event(PoolEvent::Status(1, gone("g", "g1", Event::Down)));
    check("events");
    // A call that found its instance gone (forward removes it).
    assert!(h.lock().instances.remove(&InstanceId::from("h2")).is_some());
    check("a removal by forward");
    // The reaper's idle removal.
    let idle = g.lock().instances.take_idle(Duration::from_secs(1), t0 + Duration::from_secs(3600));
    assert_eq!(idle, vec![(InstanceId::from("g2"), 2)]);
    check("reaping");
    // Reconciliation: worker 0 no longer lists f0; worker 1 lists nothing of f.
    f.lock().instances.insert(InstanceId::from("f1b"), 1, t0);
    let asked_at = Instant::now();
    s.on_pool_event(PoolEvent::Reconciled { worker: 0, state: listing(&[]), asked_at });
    check("reconciling worker 0");
    assert!(!f.lock().instances.contains(&InstanceId::from("f0")));
    assert!(f.lock().instances.contains(&InstanceId::from("f1b")), "another worker's instance stays");
    s.on_pool_event(PoolEvent::Reconciled { worker: 1, state: listing(&[]), asked_at });
    check("reconciling worker 1");
    assert!(s.worker_functions().counts().is_empty(), "{:?}", s.worker_functions().counts());
}

#[tokio::test]
async fn reconciling_a_worker_keeps_instances_learnt_after_it_was_asked() {
    let s = scheduler(1);
    let f = function(&s, "f");
    let asked_at = Instant::now();
    std::thread::sleep(Duration::from_millis(2));
    f.lock().instances.insert(InstanceId::from("new"), 0, Instant::now());
    s.on_pool_event(PoolEvent::Reconciled { worker: 0, state: listing(&[]), asked_at });
    assert!(f.lock().instances.contains(&InstanceId::from("new")));
    assert_eq!(s.worker_functions().on(0), vec![FunctionId::from("f")]);
}
