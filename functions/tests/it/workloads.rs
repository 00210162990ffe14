use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use functions::workload::{bfs, echo, hello, thumbnailer};
use image::{GenericImageView, ImageFormat, RgbImage};

use crate::common::{TestServer, call};

#[tokio::test]
async fn echo_and_hello() {
    let server = TestServer::start(echo::handle).await;
    let mut client = server.client().await;
    let (response, _) = call(&mut client, "e", vec![0, 255, 1, 254]).await.unwrap();
    assert_eq!(response.data, [0, 255, 1, 254]);

    let server = TestServer::start(hello::handle).await;
    let mut client = server.client().await;
    let (response, _) = call(&mut client, "h", b"ignored".to_vec()).await.unwrap();
    assert_eq!(response.data, b"HELLO WORLD!");
}

#[tokio::test]
async fn bfs_over_grpc_is_deterministic_and_complete() {
    let server = TestServer::start(bfs::handle).await;
    let mut client = server.client().await;
    let request = br#"{"Size": 3000, "Seed": 17}"#.to_vec();
    let (first, handler_time) = call(&mut client, "b1", request.clone()).await.unwrap();
    let (second, _) = call(&mut client, "b2", request).await.unwrap();
    assert!(first.error.is_none(), "{:?}", first.error);
    let first: bfs::BfsResponse = serde_json::from_slice(&first.data).unwrap();
    let second: bfs::BfsResponse = serde_json::from_slice(&second.data).unwrap();
    assert_eq!(first.result, second.result);
    assert_eq!(first.result.len(), 3000);
    let measured = first.measurement.graph_generating_time_ns + first.measurement.compute_time_ns;
    assert!(measured <= handler_time, "measurement {measured} ns exceeds handler time {handler_time} ns");

    let (refused, _) = call(&mut client, "b3", br#"{"Size": 0}"#.to_vec()).await.unwrap();
    assert!(refused.error.unwrap().message.starts_with("Size: 0"));
    let (malformed, _) = call(&mut client, "b4", b"{\"Size\":".to_vec()).await.unwrap();
    assert!(malformed.error.unwrap().message.starts_with("invalid bfs request"));
}

#[tokio::test]
async fn thumbnailer_over_grpc_returns_a_jpeg_of_the_requested_size() {
    let picture =
        RgbImage::from_fn(300, 200, |x, y| image::Rgb([x.to_le_bytes()[0], y.to_le_bytes()[0], 60]));
    let mut jpeg = Vec::new();
    picture.write_to(&mut std::io::Cursor::new(&mut jpeg), ImageFormat::Jpeg).unwrap();
    let request = serde_json::json!({"image": STANDARD.encode(&jpeg), "width": 75, "height": 50});

    let server = TestServer::start(thumbnailer::handle).await;
    let mut client = server.client().await;
    let (response, _) = call(&mut client, "t", serde_json::to_vec(&request).unwrap()).await.unwrap();
    assert!(response.error.is_none(), "{:?}", response.error);
    let thumbnail = image::load_from_memory_with_format(&response.data, ImageFormat::Jpeg).unwrap();
    assert_eq!(thumbnail.dimensions(), (75, 50));

    let bad = serde_json::json!({"image": "%%%", "width": 75, "height": 50});
    let (refused, _) = call(&mut client, "t2", serde_json::to_vec(&bad).unwrap()).await.unwrap();
    assert!(refused.error.unwrap().message.starts_with("image: not valid base64"));
    let (malformed, _) = call(&mut client, "t3", b"not json".to_vec()).await.unwrap();
    assert!(malformed.error.unwrap().message.starts_with("invalid thumbnailer request"));
}
