use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyperfake_core::{InstanceId, trailers};
use hyperfake_testkit::{ContainerSweeper, TestDatabase, TestLeaf};

use crate::common::*;

#[tokio::test]
async fn with_two_workers_calls_land_only_where_instances_exist_and_load_spreads() {
    let ctx = TestContext::with(2, |s| s.scheduler.max_instances = 2).await;
    let f = ctx.function(SIMUL, config(64, None, 0, 1)).await;
    let mut by_worker: HashMap<String, HashSet<String>> = HashMap::new();
    for _ in 0..3 {
        let responses = futures::future::join_all((0..8).map(|_| ctx.call(&f, b""))).await;
        for r in responses {
            let r = r.unwrap_or_else(|s| panic!("{s:?}\n{}", ctx.debug()));
            let worker = metadata_str(&r, trailers::WORKER_ADDRESS);
            let instance = r.get_ref().instance_id.clone().unwrap().id;
            by_worker.entry(worker).or_default().insert(instance);
        }
    }
    // Placement put one instance on each worker, and both served calls.
    assert_eq!(by_worker.len(), 2, "{by_worker:?}");
    for (i, w) in ctx.workers.iter().enumerate() {
        let served = &by_worker[&w.address];
        let live: HashSet<_> = ctx.worker_instances(i, &f).into_iter().collect();
        assert_eq!(served, &live, "worker {i} served calls on exactly its own instances");
    }
    // No call was sent where the instance was not (that would be retried).
    assert_eq!(ctx.leaf.scheduler().stats.calls_retried.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn killing_one_worker_mid_run_leaves_the_other_serving() {
    let sweeper = ContainerSweeper::new();
    let database = TestDatabase::start().await;
    let mut doomed = WorkerProcess::start(&sweeper, &database.address);
    let survivor = WorkerProcess::start(&sweeper, &database.address);
    let mut settings =
        leaf_settings(&database.address, vec![doomed.address.clone(), survivor.address.clone()]);
    settings.scheduler.max_instances = 2;
    let leaf = TestLeaf::start(settings).await;
    let client = leaf.client().await;
    let f = create(&client, ECHO, config(64, None, 0, 1)).await;

    // Load until both workers have served calls.
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let (client, f, stop) = (client.clone(), f.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = call(&client, &f, b"x").await;
                    outcomes
                        .push(r.map(|r| metadata_str(&r, trailers::WORKER_ADDRESS)).map_err(|s| s.code()));
                }
                outcomes
            })
        })
        .collect();
    eventually(Duration::from_secs(20), "both workers have an instance", || {
        let placed: HashSet<_> = leaf.scheduler().instances_of(&f).into_iter().map(|(_, w)| w).collect();
        placed.len() == 2
    })
    .await;
    doomed.kill();
    let killed_at = std::time::Instant::now();
    eventually(Duration::from_secs(10), "the killed worker is out of rotation", || {
        leaf.scheduler().pool().in_rotation_count() == 1
    })
    .await;
    // Calls made after the kill are served by the survivor.
    for _ in 0..20 {
        let r = call(&client, &f, b"after").await.expect("the surviving worker serves");
        assert_eq!(metadata_str(&r, trailers::WORKER_ADDRESS), survivor.address);
    }
    stop.store(true, Ordering::Relaxed);
    let mut failed = 0;
    let mut total = 0;
    for task in loops {
        for outcome in task.await.unwrap() {
            total += 1;
            if let Err(code) = outcome {
                failed += 1;
                assert_eq!(code, tonic::Code::Unavailable, "only calls caught in the kill may fail");
            }
        }
    }
    // A call in flight on the killed worker may fail; nothing else may.
    assert!(failed <= 4, "{failed} of {total} calls failed (killed {:?} ago)", killed_at.elapsed());
}

#[tokio::test]
async fn reconciliation_drops_an_instance_whose_stop_event_was_lost() {
    let ctx = TestContext::new().await;
    let f = ctx.function(ECHO, config(64, None, 0, 0)).await;
    let r = ctx.call(&f, b"x").await.unwrap();
    let id = InstanceId::new(r.get_ref().instance_id.clone().unwrap().id);
    // Remove the instance behind the leaf's back: no STOP event is published.
    let worker = &ctx.workers[0].worker;
    let instance = worker.instances.remove(&id).expect("the worker has the instance");
    let believed = ctx.leaf.scheduler().instances_of(&f);
    assert!(believed.iter().any(|(i, _)| i == &id), "the leaf believes in {id}: {believed:?}");
    worker.runtime.stop(&instance.handle).await.unwrap();
    eventually(Duration::from_secs(5), "reconciliation forgot the phantom instance", || {
        !ctx.leaf.scheduler().instances_of(&f).iter().any(|(i, _)| i == &id)
    })
    .await;
    // And calls keep working (a new instance).
    let r = ctx.call(&f, b"y").await.unwrap_or_else(|s| panic!("{s:?}\n{}", ctx.debug()));
    assert_ne!(r.get_ref().instance_id.clone().unwrap().id, id.to_string());
}
