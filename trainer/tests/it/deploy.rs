use hyperfake_core::ImageTag;
use hyperfake_model::{ModelKind, ModelSet};
use trainer::deploy::{DeployFormat, deploy};
use trainer::synth::SyntheticRun;

use crate::common::TestContext;

#[test]
fn deploy_copies_loadable_models_and_leaves_no_temporaries() {
    let ctx = TestContext::new();
    let db = ctx.with_db("dep", &SyntheticRun::standard(8).with_rows_per_image(400));
    let out = ctx.train(&ctx.config(vec![db], vec![ModelKind::Ridge, ModelKind::RandomForest]));
    let watched = ctx.path().join("watched");
    let written = deploy(&out.run_dir, &watched, ModelKind::RandomForest, DeployFormat::Onnx).unwrap();
    assert_eq!(written.len(), 2);
    let names: Vec<String> = std::fs::read_dir(&watched)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.ends_with(".onnx") && !n.starts_with('.')), "{names:?}");
    let set = ModelSet::load_dir(&watched).unwrap();
    assert_eq!(
        set.get(&ImageTag::from("hyperfaas-thumbnailer:latest")).unwrap().info().kind,
        ModelKind::RandomForest
    );

    // Redeploying another kind over it replaces files atomically.
    let json_dir = ctx.path().join("watched-json");
    deploy(&out.run_dir, &json_dir, ModelKind::Ridge, DeployFormat::Json).unwrap();
    assert_eq!(ModelSet::load_dir(&json_dir).unwrap().len(), 2);

    let err = deploy(&out.run_dir, &json_dir, ModelKind::RandomForest, DeployFormat::Json).unwrap_err();
    assert!(format!("{err:#}").contains("only as ONNX"), "{err:#}");
    let err = deploy(&out.run_dir, &json_dir, ModelKind::Linear, DeployFormat::Onnx).unwrap_err();
    assert!(format!("{err:#}").contains("no linear models"), "{err:#}");
}
