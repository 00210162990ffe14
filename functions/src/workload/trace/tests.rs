use hyperfake_core::{Bytes as ByteSize, Cores};

use super::*;

fn function(memory_mib: Option<u64>) -> Arc<TraceFunction> {
    let limits = Limits { cpu: Some(Cores(0.5)), memory: memory_mib.map(|m| ByteSize(m * MIB)) };
    TraceFunction::with(limits, Calibration::measure())
}

async fn call(function: &Arc<TraceFunction>, body: &str) -> Result<TraceResponse, TraceError> {
    let out = Arc::clone(function).handle(Bytes::from(body.to_string())).await?;
    Ok(serde_json::from_slice(&out).unwrap())
}

#[tokio::test]
async fn answers_with_what_it_did() {
    let f = function(Some(256));
    let response = call(&f, r#"{"duration_us": 20000, "memory_mib": 8}"#).await.unwrap();
    assert_eq!(response.duration_us, 20_000);
    assert_eq!(response.memory_mib, 8);
    assert_eq!(response.cpu_share, Some(0.5));
    assert!(response.elapsed_us >= 20_000, "{response:?}");
    assert!(response.busy_us <= response.elapsed_us, "{response:?}");
    assert_eq!(f.memory_bytes(), 8 * MIB, "the instance keeps the memory for the next call");
}

#[tokio::test]
async fn memory_and_pace_are_optional() {
    let response = call(&function(None), r#"{"duration_us": 0}"#).await.unwrap();
    assert_eq!(response.memory_mib, 0);
    let request: TraceRequest = serde_json::from_str(r#"{"duration_us": 5}"#).unwrap();
    assert_eq!(request, TraceRequest { duration_us: 5, memory_mib: 0, pace: true });
    let request: TraceRequest = serde_json::from_str(r#"{"duration_us": 5, "pace": false}"#).unwrap();
    assert!(!request.pace);
}

#[tokio::test]
async fn refuses_absurd_requests_naming_the_field() {
    let f = function(Some(128));
    let cases: [(&str, &str); 6] = [
        (r#"{"duration_us": 600000001}"#, "duration_us: 600000001 is above the limit"),
        (r#"{"duration_us": 1, "memory_mib": 16385}"#, "memory_mib: 16385 is above the limit"),
        (
            r#"{"duration_us": 1, "memory_mib": 113}"#,
            "memory_mib: 113 MiB does not fit this instance's memory limit of 128 MiB",
        ),
        (r#"{"duration_us": -5}"#, "non-negative integers"),
        (r#"{"duration_us": 1.5}"#, "non-negative integers"),
        (r#"{"memory_mib": 3}"#, "missing field `duration_us`"),
    ];
    for (body, expected) in cases {
        let err = call(&f, body).await.unwrap_err().to_string();
        assert!(err.starts_with("invalid argument: "), "{body}: {err}");
        assert!(err.contains(expected), "{body}: {err}");
    }
    // Exactly the limit less the reserve fits.
    call(&f, r#"{"duration_us": 0, "memory_mib": 112}"#).await.unwrap();
    let err = call(&f, r#"{"duration_us": 1, "extra": 2}"#).await.unwrap_err().to_string();
    assert!(err.contains("unknown field `extra`"), "{err}");
}

#[tokio::test]
async fn calls_share_the_instances_memory_which_grows_to_the_largest_request() {
    let f = function(Some(128));
    // Two calls in flight of 100 MiB each fit a 128 MiB instance: they
    // write the same pages, as an app's invocations share its memory.
    let (a, b) = tokio::join!(
        call(&f, r#"{"duration_us": 20000, "memory_mib": 100}"#),
        call(&f, r#"{"duration_us": 20000, "memory_mib": 100}"#)
    );
    assert_eq!((a.unwrap().memory_mib, b.unwrap().memory_mib), (100, 100));
    assert_eq!(f.memory_bytes(), 100 * MIB);
    call(&f, r#"{"duration_us": 0, "memory_mib": 20}"#).await.unwrap();
    assert_eq!(f.memory_bytes(), 100 * MIB, "a smaller call uses the first 20 MiB");
    call(&f, r#"{"duration_us": 0, "memory_mib": 112}"#).await.unwrap();
    assert_eq!(f.memory_bytes(), 112 * MIB);
    let err = f.hold(&TraceRequest { duration_us: 0, memory_mib: 113, pace: true }).unwrap_err();
    assert_eq!(err, TraceError::MemoryLimit { requested: 113, limit_mib: 128 });
}

#[test]
fn without_a_memory_limit_only_the_fixed_bound_applies() {
    let f = function(None);
    f.hold(&TraceRequest { duration_us: MAX_DURATION_US, memory_mib: MAX_MEMORY_MIB, pace: true }).unwrap();
}
