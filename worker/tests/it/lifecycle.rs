use std::time::Duration;

use base64::Engine;
use hyperfake_core::trailers;
use proto::common::InstanceId;

use crate::common::*;

#[tokio::test]
async fn echo_returns_its_input_byte_for_byte_including_1_mib() {
    let ctx = TestContext::new().await;
    let f = ctx.function(ECHO, config(64, None, 0, 0)).await;
    let instance = ctx.start(&f).await;
    let small = ctx.call(&f, b"hello hyperfake").await.unwrap();
    let body = small.get_ref();
    assert_eq!(body.data, b"hello hyperfake");
    assert_eq!(body.instance_id.as_ref().unwrap().id, instance);
    assert!(body.error.is_none());
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let response = ctx.call(&f, &big).await.unwrap();
    assert!(response.get_ref().data == big, "1 MiB payload came back altered");
    for key in trailers::WORKER_KEYS {
        assert!(response.metadata().get(key).is_some(), "metadata {key} missing");
    }
    let queued = metadata_u64(&response, trailers::CALL_QUEUED_TIMESTAMP);
    let got = metadata_u64(&response, trailers::GOT_RESPONSE_TIMESTAMP);
    let processing = metadata_u64(&response, trailers::FUNCTION_PROCESSING_TIME);
    let handler = metadata_u64(&response, trailers::FUNCTION_HANDLER_TIME);
    assert!(queued <= got && processing <= got - queued, "timestamps out of order");
    assert!(handler <= processing, "handler time {handler} exceeds processing time {processing}");
    ctx.client.clone().stop(InstanceId { id: instance.clone() }).await.unwrap();
    assert!(containers_labelled(&ctx.label()).is_empty(), "stop must remove the container");
}

#[tokio::test]
async fn hello_simul_bfs_and_thumbnailer_answer() {
    let ctx = TestContext::new().await;
    let hello = ctx.function(HELLO, config(64, None, 0, 0)).await;
    ctx.start(&hello).await;
    assert_eq!(ctx.call(&hello, b"").await.unwrap().get_ref().data, b"HELLO WORLD!");

    let simul = ctx.function(SIMUL, config(64, None, 0, 0)).await;
    ctx.start(&simul).await;
    let r = ctx.call(&simul, b"").await.unwrap();
    let handler = metadata_u64(&r, trailers::FUNCTION_HANDLER_TIME);
    assert!((100_000_000..250_000_000).contains(&handler), "simul handler took {handler} ns");

    let bfs = ctx.function(BFS, config(128, None, 0, 0)).await;
    ctx.start(&bfs).await;
    let a = ctx.call(&bfs, br#"{"Size":500,"Seed":7}"#).await.unwrap().into_inner();
    assert!(a.error.is_none(), "bfs failed: {:?}", a.error);
    let json: serde_json::Value = serde_json::from_slice(&a.data).unwrap();
    assert_eq!(json["result"].as_array().unwrap().len(), 500);
    let bad = ctx.call(&bfs, b"not json").await.unwrap().into_inner();
    assert!(bad.error.is_some(), "malformed input must come back as a function error");

    let thumb = ctx.function(THUMBNAILER, config(256, None, 0, 0)).await;
    ctx.start(&thumb).await;
    let mut jpeg = Vec::new();
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]))
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    let request = serde_json::json!({
        "image": base64::engine::general_purpose::STANDARD.encode(&jpeg),
        "width": 16, "height": 12,
    });
    let out = ctx.call(&thumb, request.to_string().as_bytes()).await.unwrap().into_inner();
    assert!(out.error.is_none(), "thumbnailer failed: {:?}", out.error);
    let small = image::load_from_memory_with_format(&out.data, image::ImageFormat::Jpeg).unwrap();
    assert!(small.width() <= 16 && small.height() <= 12, "got {}x{}", small.width(), small.height());
}

#[tokio::test]
async fn sleep_runs_until_the_callers_deadline_then_stops_cleanly() {
    let ctx = TestContext::new().await;
    let f = ctx.function(SLEEP, config(64, None, 0, 0)).await;
    let instance = ctx.start(&f).await;
    let mut request = tonic::Request::new(call_request(&f, b""));
    request.set_timeout(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let err = ctx.client.clone().call(request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "the deadline was not propagated");
    ctx.client.clone().stop(InstanceId { id: instance }).await.unwrap();
    assert!(containers_labelled(&ctx.label()).is_empty());
}
