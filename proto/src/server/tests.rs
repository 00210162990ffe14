//! The limits, seen from a client on loopback: a real tonic server built by
//! [`ServerLimits::builder`], and a real client (tonic's, or a few raw
//! HTTP/2 frames where tonic hides what the server announced).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tonic::{Code, Request, Response, Status};

use super::*;
use crate::common::{CallRequest, CallResponse};
use crate::function::function_service_client::FunctionServiceClient;
use crate::function::function_service_server::{FunctionService, FunctionServiceServer};

/// Longest a test waits for something that must happen; only a broken limit
/// gets there (the call, or the connection, would otherwise wait forever).
const HANG_GUARD: Duration = Duration::from_secs(30);

/// Answers with the deadline its handler was given, in ms (`none` without
/// one); a call with data `hang` never answers and ignores its deadline.
struct Probe;

#[tonic::async_trait]
impl FunctionService for Probe {
    async fn call(&self, request: Request<CallRequest>) -> Result<Response<CallResponse>, Status> {
        if request.get_ref().data == b"hang" {
            std::future::pending::<()>().await;
        }
        let deadline = crate::deadline::from_metadata(request.metadata());
        let text = deadline.map_or_else(|| "none".to_string(), |d| d.as_millis().to_string());
        Ok(Response::new(CallResponse { data: text.into_bytes(), ..Default::default() }))
    }
}

/// A probe server on 127.0.0.1:0, stopped when dropped.
struct Served {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(limits: ServerLimits) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        limits
            .builder()
            .add_service(FunctionServiceServer::new(Probe))
            .serve_with_incoming(crate::net::incoming(listener))
            .await
            .unwrap();
    });
    Served { address, task }
}

async fn call(served: &Served, data: &[u8]) -> Result<String, Status> {
    let channel = crate::endpoint(&served.address.to_string()).unwrap().connect().await.unwrap();
    let request = CallRequest { data: data.to_vec(), ..Default::default() };
    let response = FunctionServiceClient::new(channel).call(request).await?;
    Ok(String::from_utf8(response.into_inner().data).unwrap())
}

#[tokio::test]
async fn a_call_without_a_deadline_reaches_its_handler_with_the_maximum() {
    let limits = ServerLimits { max_call_duration: Duration::from_secs(7), ..ServerLimits::default() };
    let served = serve(limits).await;
    let seen: u128 = call(&served, b"").await.unwrap().parse().expect("a deadline, not `none`");
    let expected = (limits.max_call_duration - crate::deadline::SERVER_MARGIN).as_millis();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_handler_that_ignores_its_deadline_is_ended_by_the_outer_bound() {
    let limits = ServerLimits {
        max_call_duration: Duration::from_millis(100),
        transport_timeout_margin: Duration::from_millis(100),
        ..ServerLimits::default()
    };
    let served = serve(limits).await;
    let status = tokio::time::timeout(HANG_GUARD, call(&served, b"hang"))
        .await
        .expect("the server's timeout ends the call")
        .unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert!(status.message().contains("Timeout expired"), "{status:?}");
}

#[tokio::test]
async fn a_request_over_the_decoding_limit_is_resource_exhausted() {
    let served = serve(ServerLimits::default()).await;
    let channel = crate::endpoint(&served.address.to_string()).unwrap().connect().await.unwrap();
    // tonic's default decoding limit (the probe sets none) is 4 MiB.
    let request = CallRequest { data: vec![0; 4 << 20], ..Default::default() };
    let status = FunctionServiceClient::new(channel)
        .max_encoding_message_size(64 << 20)
        .call(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "not tonic's OUT_OF_RANGE: {status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
    let after = call(&served, b"").await;
    assert!(after.is_ok(), "the server still answers: {after:?}");
}

#[test]
fn payloads_over_the_limit_are_resource_exhausted() {
    assert!(check_payload(MAX_PAYLOAD_SIZE).is_ok());
    let status = check_payload(MAX_PAYLOAD_SIZE + 1).unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains(&(MAX_PAYLOAD_SIZE + 1).to_string()), "{status:?}");
}

// === raw HTTP/2 ===

const FRAME_DATA: u8 = 0x0;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_RST_STREAM: u8 = 0x3;
const FRAME_SETTINGS: u8 = 0x4;
const FRAME_PING: u8 = 0x6;
const FRAME_GOAWAY: u8 = 0x7;
const FLAG_ACK: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const ERROR_CANCEL: u32 = 0x8;

/// Appends one frame on stream `id` to `out`.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, id: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    out.extend_from_slice(&[len[1], len[2], len[3], kind, flags]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
}

async fn write_frame(stream: &mut TcpStream, kind: u8, flags: u8, payload: &[u8]) {
    let mut out = Vec::new();
    frame(&mut out, kind, flags, 0, payload);
    stream.write_all(&out).await.unwrap();
}

/// The next frame: its type, flags and payload.
async fn read_frame(stream: &mut TcpStream) -> (u8, u8, Vec<u8>) {
    let mut header = [0u8; 9];
    stream.read_exact(&mut header).await.unwrap();
    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).await.unwrap();
    (header[3], header[4], payload)
}

#[tokio::test]
async fn the_server_announces_its_stream_limit_and_pings_an_idle_connection() {
    let limits = ServerLimits {
        max_concurrent_streams: 3,
        keepalive_interval: Duration::from_millis(100),
        ..ServerLimits::default()
    };
    let served = serve(limits).await;
    let mut stream = TcpStream::connect(served.address).await.unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    write_frame(&mut stream, FRAME_SETTINGS, 0, &[]).await;

    // The server's first frame is its SETTINGS: 6-byte (id, value) entries.
    let (kind, flags, payload) = read_frame(&mut stream).await;
    assert_eq!((kind, flags), (FRAME_SETTINGS, 0));
    let settings: Vec<(u16, u32)> = payload
        .chunks_exact(6)
        .map(|e| (u16::from_be_bytes([e[0], e[1]]), u32::from_be_bytes([e[2], e[3], e[4], e[5]])))
        .collect();
    assert!(settings.contains(&(SETTINGS_MAX_CONCURRENT_STREAMS, 3)), "{settings:?}");
    write_frame(&mut stream, FRAME_SETTINGS, FLAG_ACK, &[]).await;

    // Nothing else is sent on the connection: the keepalive PING comes.
    let ping = tokio::time::timeout(HANG_GUARD, async {
        loop {
            let (kind, flags, _) = read_frame(&mut stream).await;
            if kind == FRAME_PING && flags & FLAG_ACK == 0 {
                return;
            }
        }
    })
    .await;
    assert!(ping.is_ok(), "no keepalive PING on an idle connection");
}

#[tokio::test]
async fn a_peer_that_cancels_many_calls_before_they_are_accepted_keeps_its_connection() {
    // What a leaf does to a starved worker: calls whose deadline passed are
    // cancelled before the server got to accept them. h2's default (20 such
    // resets at once) answered with GOAWAY ENHANCE_YOUR_CALM, failing every
    // call on the connection (the scale benchmark at 2 000 calls/s).
    let cancelled = 200;
    assert!(cancelled > 20, "h2's default limit must be exceeded for this to test anything");
    survives_burst(cancelled, |burst, id| {
        frame(burst, FRAME_RST_STREAM, 0, id, &ERROR_CANCEL.to_be_bytes());
    })
    .await;
}

#[tokio::test]
async fn a_burst_of_small_calls_to_a_busy_server_keeps_its_connection() {
    // Each call's request is one small DATA frame, and the server reads the
    // whole burst before any handler runs (the burst is one write into the
    // socket, and one poll of the connection decodes it all), as a starved
    // server does. h2 lets a peer have half the connection window in small
    // frames that no handler has read (255 bytes each for a 1-byte one):
    // with hyper's 1 MiB window that is about 2 000, fewer than a client may
    // have open, and the load generator's warm-up (10 000 calls at once to
    // the load-balancer node) lost its connection to the GOAWAY in 4 of 11
    // full-size scale runs.
    let calls = 2500;
    assert!(calls <= MAX_CONCURRENT_STREAMS as usize);
    survives_burst(calls, |burst, id| frame(burst, FRAME_DATA, 0, id, &[0])).await;
}

/// Opens `streams` calls in one write, each HEADERS followed by what `then`
/// appends for it, then a PING: the server reads them all before it accepts
/// any call, and answers the PING after them. Panics if the server closes the
/// connection (GOAWAY) instead.
async fn survives_burst(streams: usize, then: impl Fn(&mut Vec<u8>, u32)) {
    let served = serve(ServerLimits::default()).await;
    let mut stream = TcpStream::connect(served.address).await.unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    write_frame(&mut stream, FRAME_SETTINGS, 0, &[]).await;
    assert_eq!(read_frame(&mut stream).await.0, FRAME_SETTINGS);
    write_frame(&mut stream, FRAME_SETTINGS, FLAG_ACK, &[]).await;

    // HPACK: :method POST (static 3), :scheme http (static 6), and :path,
    // the first time a literal added to the dynamic table (name: static 4),
    // then that entry (dynamic 62): small frames, so the burst fits the
    // socket's buffers and arrives whole.
    let path = b"/function.FunctionService/Call";
    let mut first = vec![0x83, 0x86, 0x44, u8::try_from(path.len()).unwrap()];
    first.extend_from_slice(path);
    let mut burst = Vec::new();
    for (i, id) in (1..).step_by(2).take(streams).enumerate() {
        let block: &[u8] = if i == 0 { &first } else { &[0x83, 0x86, 0xbe] };
        frame(&mut burst, FRAME_HEADERS, FLAG_END_HEADERS, id, block);
        then(&mut burst, id);
    }
    frame(&mut burst, FRAME_PING, 0, 0, b"burst!!!");
    stream.write_all(&burst).await.unwrap();

    let answered = tokio::time::timeout(HANG_GUARD, async {
        loop {
            match read_frame(&mut stream).await {
                (FRAME_GOAWAY, _, payload) => {
                    let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                    let debug = String::from_utf8_lossy(&payload[8..]).into_owned();
                    panic!("the server closed the connection after a burst of {streams} streams: GOAWAY {code} {debug:?}");
                }
                (FRAME_PING, flags, payload) if flags & FLAG_ACK != 0 => return payload,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(answered.expect("no PING ACK").as_slice(), b"burst!!!");
}
