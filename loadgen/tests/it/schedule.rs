use loadgen::schedule::RequestParams;
use loadgen::{Payloads, Schedule, Workload};

use crate::common::configs_dir;

fn workload(name: &str, seed: Option<i64>) -> Workload {
    let mut text = std::fs::read_to_string(configs_dir().join(name)).unwrap();
    if let Some(seed) = seed {
        let line = text.lines().find(|l| l.starts_with("seed:")).unwrap().to_string();
        text = text.replace(&line, &format!("seed: {seed}"));
    }
    Workload::from_yaml(&text).unwrap()
}

/// Every body of a schedule, concatenated with separators.
fn all_bodies(schedule: &Schedule) -> Vec<Vec<u8>> {
    let payloads = Payloads::for_schedule(schedule).unwrap();
    schedule.calls.iter().map(|c| payloads.body(c)).collect()
}

#[test]
fn same_seed_gives_byte_identical_schedules_and_bodies() {
    for name in ["local.yaml", "hyperfaas-example.yaml", "manual.yaml"] {
        let a = Schedule::resolve(&workload(name, None));
        let b = Schedule::resolve(&workload(name, None));
        assert!(!a.calls.is_empty(), "{name} schedules no calls");
        assert_eq!(a.to_json(), b.to_json(), "{name}");
        if name != "hyperfaas-example.yaml" {
            // The example's 1920x1080 thumbnails take long to encode unoptimised.
            assert_eq!(all_bodies(&a), all_bodies(&b), "{name}");
        }
    }
}

#[test]
fn different_seed_gives_a_different_schedule_and_bodies() {
    // Generated phases depend on the seed.
    let a = Schedule::resolve(&workload("hyperfaas-example.yaml", Some(1)));
    let b = Schedule::resolve(&workload("hyperfaas-example.yaml", Some(2)));
    assert_ne!(a.phases, b.phases);
    // Poisson arrivals and request parameters depend on the seed.
    let a = Schedule::resolve(&workload("local.yaml", Some(1)));
    let b = Schedule::resolve(&workload("local.yaml", Some(2)));
    let times = |s: &Schedule| s.calls.iter().map(|c| c.offset_ns).collect::<Vec<_>>();
    assert_ne!(times(&a), times(&b));
    let params = |s: &Schedule| s.calls.iter().map(|c| c.request.clone()).collect::<Vec<_>>();
    assert_ne!(params(&a), params(&b));
    // Same parameters, different seed: the random bytes still differ.
    let echo =
        |s: &Schedule| s.calls.iter().find(|c| matches!(c.request, RequestParams::Bytes { .. })).cloned();
    let (mut ca, cb) = (echo(&a).unwrap(), echo(&b).unwrap());
    ca.request = cb.request.clone();
    ca.index = cb.index;
    let pa = Payloads::for_schedule(&a).unwrap();
    let pb = Payloads::for_schedule(&b).unwrap();
    assert_ne!(pa.body(&ca), pb.body(&cb));
}

#[test]
fn generated_phases_follow_the_patterns() {
    let w = workload("hyperfaas-example.yaml", None);
    let s = Schedule::resolve(&w);
    assert!(s.generated);
    for phase in &s.phases {
        assert!(phase.start_time + phase.duration <= w.max_duration, "{phase:?}");
    }
    let echo: Vec<_> = s.phases.iter().filter(|p| p.image_tag.as_str() == "hyperfaas-echo:latest").collect();
    assert!((2..=4).contains(&echo.len()));
    // Back to back, covering max_duration.
    for pair in echo.windows(2) {
        assert_eq!(pair[0].start_time + pair[0].duration, pair[1].start_time);
    }
}

#[test]
fn manual_schedule_counts_match_the_phases() {
    let s = Schedule::resolve(&workload("manual.yaml", None));
    let summary = s.summary();
    // warmup: 2 rps x 30 s; ramp 1..8 by 1 over 60 s: 1+2+...+8 + 52*8;
    // ramp-down 8,6,4,2,2,... over 30 s.
    let ramp = (1..=8).sum::<u64>() + 52 * 8;
    let down = 8 + 6 + 4 + 27 * 2;
    assert_eq!(summary.calls_per_phase, vec![60, ramp, down]);
    assert_eq!(summary.calls, 60 + ramp + down);
    assert!(s.calls.windows(2).all(|w| w[0].offset_ns <= w[1].offset_ns));
    assert!(s.calls.iter().enumerate().all(|(i, c)| c.index == i as u64));
}

#[test]
fn bodies_have_the_documented_shapes() {
    let s = Schedule::resolve(&workload("local.yaml", None));
    let payloads = Payloads::for_schedule(&s).unwrap();
    let mut kinds = 0;
    for call in &s.calls {
        let body = payloads.body(call);
        match &call.request {
            RequestParams::Bytes { size } => assert_eq!(body.len() as u64, *size),
            RequestParams::Bfs { size, seed } => {
                assert_eq!(body, format!(r#"{{"Size":{size},"Seed":{seed}}}"#).into_bytes());
            }
            RequestParams::Thumbnail { width, height, .. } => {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["width"], *width);
                assert_eq!(v["height"], *height);
                use base64::Engine;
                let jpeg =
                    base64::engine::general_purpose::STANDARD.decode(v["image"].as_str().unwrap()).unwrap();
                assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG starts with SOI");
                kinds += 1;
                if kinds > 3 {
                    break;
                }
            }
            RequestParams::Trace { .. } => panic!("local.yaml has no trace: {call:?}"),
        }
    }
    assert!(kinds > 0, "local.yaml has thumbnail calls");
}

#[test]
fn copies_spread_an_image_over_its_functions_without_changing_other_draws() {
    let one = workload("manual.yaml", None);
    let mut text = std::fs::read_to_string(configs_dir().join("manual.yaml")).unwrap();
    text = text.replace(
        "hyperfaas-echo:latest: {memory: 256MB,",
        "hyperfaas-echo:latest: {copies: 4, memory: 256MB,",
    );
    let four = Workload::from_yaml(&text).unwrap();
    let (a, b) = (Schedule::resolve(&one), Schedule::resolve(&four));
    assert!(a.calls.iter().all(|c| c.copy == 0));
    let echo_copies: std::collections::BTreeSet<u32> =
        b.calls.iter().filter(|c| c.image_tag.as_str().contains("echo")).map(|c| c.copy).collect();
    assert_eq!(echo_copies, (0..4).collect(), "every copy gets calls, no call goes past the last");
    assert!(b.calls.iter().filter(|c| c.image_tag.as_str().contains("bfs")).all(|c| c.copy == 0));
    // Times, images and request parameters are the same draws as without copies.
    let without_copy = |s: &Schedule| -> Vec<_> {
        s.calls.iter().map(|c| (c.index, c.offset_ns, c.image_tag.clone(), c.request.clone())).collect()
    };
    assert_eq!(without_copy(&a), without_copy(&b));
    assert_eq!(Schedule::resolve(&four).to_json(), b.to_json(), "copies are drawn from the seed");
    assert!(!a.to_json().contains("\"copy\""), "schedules without copies print as before");
}
