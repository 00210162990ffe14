//! h. Payloads at the 16 MiB message limit through every hop (client → leaf
//! → worker → function container and back, echoed). A payload up to
//! `MAX_PAYLOAD_SIZE` (16 MiB − 64 KiB, room for every hop's envelope) passes
//! intact; a larger one gets one code wherever it is refused (the leaf's
//! check or decoder, the worker's, straight to the worker):
//! RESOURCE_EXHAUSTED, gRPC's code for a message over the limit. The
//! platform still answers after.

use std::collections::BTreeSet;
use std::time::Duration;

use hyperfake_core::defaults::{MAX_MESSAGE_SIZE, MAX_PAYLOAD_SIZE};
use hyperfake_testkit::{ECHO, config, unique};

use super::report::Report;
use super::support::*;

/// Payload sizes: around the payload limit (16 MiB − 64 KiB), and through
/// the last hundred bytes below 16 MiB, where each hop's envelope used to tip
/// a payload over (16 MiB − 88 passed the leaf's decoder and failed its
/// encoder towards the worker as INTERNAL; − 40 was the leaf's OUT_OF_RANGE).
fn sizes() -> Vec<usize> {
    let (max, payload) = (MAX_MESSAGE_SIZE, MAX_PAYLOAD_SIZE);
    vec![
        payload - 1,
        payload,
        payload + 1,
        max - 1024,
        max - 128,
        max - 88,
        max - 72,
        max - 56,
        max - 40,
        max - 8,
        max,
        max + 1,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payloads_at_the_16_mib_limit_pass_or_get_one_code_at_every_hop() {
    let p = Platform::start(1).await;
    let mut report = Report::new("h-payload-limit", "payloads at the 16 MiB boundary through every hop");
    let f = create(&p.client, ECHO, &config(256, None, 0, 0)).await;
    let warm = call(&p.client, &f, b"warm".to_vec(), Duration::from_secs(60)).await;
    assert!(warm.ok(), "{:?}\n{}", warm.result, p.debug());
    let mut worker = hyperfake_testkit::connect_controller(&p.workers[0].address)
        .await
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);

    let mut rows = Vec::new();
    let mut codes = BTreeSet::new();
    let (mut largest_ok, mut smallest_refused) = ((0, 0), (usize::MAX, usize::MAX));
    let mut intact = true;
    for size in sizes() {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let leaf = call(&p.client, &f, data.clone(), Duration::from_secs(60)).await;
        let mut request = tonic::Request::new(proto::common::CallRequest {
            request_id: unique("req"),
            instance_id: None,
            data: data.clone(),
            function_id: Some((&f).into()),
        });
        request.set_timeout(Duration::from_secs(60));
        let direct = worker.call(request).await;
        match &leaf.result {
            Ok((answer, _)) => {
                intact &= answer == &data;
                largest_ok.0 = largest_ok.0.max(size);
            }
            Err(s) => {
                codes.insert(format!("{:?}", s.code()));
                smallest_refused.0 = smallest_refused.0.min(size);
            }
        }
        match &direct {
            Ok(r) => {
                intact &= r.get_ref().data == data;
                largest_ok.1 = largest_ok.1.max(size);
            }
            Err(s) => {
                codes.insert(format!("{:?}", s.code()));
                smallest_refused.1 = smallest_refused.1.min(size);
            }
        }
        let show = |r: Result<(), &tonic::Status>| match r {
            Ok(()) => "OK".to_string(),
            Err(s) => format!("{:?}: {}", s.code(), s.message().chars().take(100).collect::<String>()),
        };
        rows.push(format!(
            "{} (16 MiB {:+}): leaf {} | worker {}",
            size,
            i64::try_from(size).unwrap() - i64::try_from(MAX_MESSAGE_SIZE).unwrap(),
            show(leaf.result.as_ref().map(|_| ())),
            show(direct.as_ref().map(|_| ()))
        ));
    }
    let after = call(&p.client, &f, b"still here".to_vec(), Duration::from_secs(10)).await;

    let under = |n: usize| i64::try_from(n).unwrap_or(i64::MAX) - i64::try_from(MAX_MESSAGE_SIZE).unwrap();
    report.figure("limit (every hop)", MAX_MESSAGE_SIZE, "bytes");
    report.figure(
        "largest payload passed through the leaf",
        format!("{} (16 MiB {:+})", largest_ok.0, under(largest_ok.0)),
        "bytes",
    );
    report.figure(
        "smallest payload refused through the leaf",
        format!("{} (16 MiB {:+})", smallest_refused.0, under(smallest_refused.0)),
        "bytes",
    );
    report.figure(
        "largest payload passed straight to the worker",
        format!("{} (16 MiB {:+})", largest_ok.1, under(largest_ok.1)),
        "bytes",
    );
    report.figure(
        "smallest payload refused straight to the worker",
        format!("{} (16 MiB {:+})", smallest_refused.1, under(smallest_refused.1)),
        "bytes",
    );
    report.figure("codes of refused calls", format!("{codes:?}"), "");
    report.figure("sizes tried", rows.len(), "");
    for row in &rows {
        eprintln!("  {row}");
    }
    report.figure("payload limit (MAX_PAYLOAD_SIZE)", MAX_PAYLOAD_SIZE, "bytes");
    report.check(
        "the largest payload allowed (16 MiB − 64 KiB) passes through the leaf and the worker",
        largest_ok == (MAX_PAYLOAD_SIZE, MAX_PAYLOAD_SIZE),
    );
    report.check("every answer that passed is the payload, intact", intact);
    report.check(
        "one byte more is refused at both, and so is everything up to 16 MiB + 1",
        smallest_refused == (MAX_PAYLOAD_SIZE + 1, MAX_PAYLOAD_SIZE + 1),
    );
    report.check(
        "every refusal, at every hop, is RESOURCE_EXHAUSTED",
        codes.iter().all(|c| c == "ResourceExhausted") && !codes.is_empty(),
    );
    report.check(
        "passing and refused sizes do not interleave (one boundary per entry point)",
        largest_ok.0 < smallest_refused.0 && largest_ok.1 < smallest_refused.1,
    );
    report.check("the platform answers afterwards", after.ok());
    report.finish(|| format!("{}\n{}", rows.join("\n"), p.debug()));
}
