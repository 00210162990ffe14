use std::path::PathBuf;
use std::time::Duration;

use fakeworker::{ExplicitModel, ModelRegistry, RegistryError};
use hyperfake_core::{ImageTag, trailers};

use crate::common::*;

#[test]
fn corrupt_files_in_the_directory_are_skipped_by_path() {
    let dir = tempfile::tempdir().unwrap();
    write_json(dir.path(), "good.json", IMAGE, constant(1e6), constant(0.1), constant(1e6), Some("ns"));
    std::fs::write(dir.path().join("broken.onnx"), b"this is not a protobuf").unwrap();
    std::fs::write(dir.path().join("short.json"), br#"{"hyperfaas-x:latest": {"image_tag": "hyperfaas-x:latest", "runtime_coeffs": [1,2], "cpu_coeffs": [0,0,0,0,0,0], "ram_coeffs": [0,0,0,0,0,0]}}"#).unwrap();
    let (registry, skipped) = ModelRegistry::load(Some(dir.path().into()), vec![]).unwrap();
    let mut paths: Vec<_> =
        skipped.iter().map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned()).collect();
    paths.sort();
    assert_eq!(paths, ["broken.onnx", "short.json"]);
    for s in &skipped {
        let message = format!("{:#}", s.error);
        assert!(message.contains(&s.path.display().to_string()), "error does not name the file: {message}");
    }
    assert_eq!(registry.current().images(), vec![ImageTag::from(IMAGE)]);
}

#[test]
fn a_bad_explicit_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.onnx");
    std::fs::write(&bad, b"\x08\x07garbage").unwrap();
    let err = ModelRegistry::load(None, vec![ExplicitModel { path: bad.clone(), image: IMAGE.into() }])
        .unwrap_err();
    assert!(matches!(err, RegistryError::Explicit { ref path, .. } if *path == bad), "{err:?}");
    assert!(err.to_string().contains("bad.onnx"));
    let missing = PathBuf::from("/nonexistent/model.json");
    assert!(ModelRegistry::load(None, vec![ExplicitModel { path: missing, image: IMAGE.into() }]).is_err());
}

#[test]
fn explicit_models_override_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    write_json(dir.path(), "dir.json", IMAGE, constant(1e6), constant(0.1), constant(1e6), Some("ns"));
    let other = tempfile::tempdir().unwrap();
    let explicit = write_onnx(other.path(), IMAGE, constant(2e6), constant(0.1), constant(1e6));
    let (registry, _) = ModelRegistry::load(
        Some(dir.path().into()),
        vec![ExplicitModel { path: explicit.clone(), image: IMAGE.into() }],
    )
    .unwrap();
    assert_eq!(registry.current().get(&IMAGE.into()).unwrap().path(), explicit);
}

#[tokio::test]
async fn hot_reload_under_load_loses_no_call() {
    let ctx = FakeContext::new(|dir| {
        write_json(dir, "m.json", IMAGE, constant(20e6), constant(0.1), constant(1e6), Some("ns"));
    })
    .await;
    let f = ctx.function(IMAGE, config(64, None, 0, 0)).await;
    ctx.start(&f).await;
    let _watcher = ctx.registry.spawn_watcher(Duration::from_millis(20));
    let calls = futures::future::join_all((0..300).map(|i| {
        let ctx = &ctx;
        let f = f.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(i)).await;
            ctx.call(&f, b"x").await
        }
    }));
    let swap = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        write_json(
            ctx.models_dir.path(),
            "m.json",
            IMAGE,
            constant(5e6),
            constant(0.1),
            constant(1e6),
            Some("ns"),
        );
    };
    let (responses, ()) = tokio::join!(calls, swap);
    let handler_times: Vec<u64> = responses
        .iter()
        .map(|r| metadata_u64(r.as_ref().expect("no call may fail"), trailers::FUNCTION_HANDLER_TIME))
        .collect();
    assert!(handler_times.contains(&20_000_000), "no call used the old model");
    assert!(handler_times.contains(&5_000_000), "no call used the new model");
    assert!(handler_times.iter().all(|t| *t == 20_000_000 || *t == 5_000_000));
}
