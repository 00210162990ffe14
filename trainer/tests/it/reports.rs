use hyperfake_core::ImageTag;
use hyperfake_model::{ModelKind, TARGETS};
use trainer::Progress;
use trainer::compare::compare;
use trainer::data::Table;
use trainer::evaluate::{EvalConfig, evaluate};
use trainer::report::Report;
use trainer::split::{SplitConfig, SplitMode};
use trainer::synth::SyntheticRun;

use crate::common::{TestContext, all_kinds};

#[test]
fn report_has_every_metric_in_every_format() {
    let ctx = TestContext::new();
    let db = ctx.with_db("rep", &SyntheticRun::standard(9).with_rows_per_image(600));
    let out = ctx.train(&ctx.config(vec![db.clone()], all_kinds()));
    let report = Report::read(&out.run_dir).unwrap();
    assert_eq!(report, out.report);
    assert_eq!(report.sources, vec![db.display().to_string()]);
    assert_eq!(report.images.len(), 2);
    for img in &report.images {
        assert!(img.skipped.is_none());
        assert_eq!(img.models.len(), 3);
        assert_eq!(img.rows_read, 600);
        for m in &img.models {
            for t in TARGETS {
                let x = m
                    .test
                    .get(t)
                    .unwrap_or_else(|| panic!("{} {} has no test metrics for {t}", img.image_tag, m.kind));
                assert_eq!(x.rows, img.rows_test);
                assert!(x.r2.is_some() && x.mape.is_some() && x.mae.is_finite() && x.rmse >= x.mae * 0.999);
                assert_eq!(
                    x.abs_error_percentiles.iter().map(|p| p.0).collect::<Vec<_>>(),
                    vec![50.0, 90.0, 95.0, 99.0]
                );
                assert!(m.validation.contains_key(t));
            }
            let plot = out.run_dir.join(m.plot.as_ref().unwrap());
            let svg = std::fs::read_to_string(&plot).unwrap();
            assert!(svg.contains("<svg") && svg.contains("circle"), "{}", plot.display());
            for f in &m.files {
                assert!(out.run_dir.join(f).is_file(), "{f} listed but missing");
            }
        }
    }
    let md = std::fs::read_to_string(out.run_dir.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out.run_dir.join("report.html")).unwrap();
    for needle in ["R²", "MAE", "RMSE", "MAPE", "p99", "hyperfaas-echo:latest", "random-forest", "dropped"] {
        assert!(md.contains(needle), "report.md lacks {needle}");
        assert!(html.contains(needle), "report.html lacks {needle}");
    }
    assert_eq!(html.matches("<svg").count(), 6, "one plot per image and kind inline");
}

#[test]
fn compare_marks_the_best_and_warns_about_different_test_rows() {
    let ctx = TestContext::new();
    let db = ctx.with_db("cmp", &SyntheticRun::standard(10).with_rows_per_image(600));
    let mut a = ctx.config(vec![db.clone()], vec![ModelKind::Linear, ModelKind::RandomForest]);
    a.run = Some("a".into());
    let mut b = ctx.config(vec![db.clone()], vec![ModelKind::Ridge]);
    b.run = Some("b".into());
    let mut c = ctx.config(vec![db], vec![ModelKind::Linear]);
    c.run = Some("c".into());
    c.split.seed = 99;
    let (ra, rb, rc) = (ctx.train(&a).run_dir, ctx.train(&b).run_dir, ctx.train(&c).run_dir);

    let cmp = compare(&[ra.clone(), rb]).unwrap();
    assert!(cmp.warnings.is_empty(), "{:?}", cmp.warnings);
    assert_eq!(cmp.columns, vec!["a/linear", "a/random-forest", "b/ridge"]);
    assert_eq!(cmp.rows.len(), 2 * 3 * 4);
    let r2 = cmp
        .rows
        .iter()
        .find(|r| r.image_tag == "hyperfaas-thumbnailer:latest" && r.target == TARGETS[0] && r.metric == "R²")
        .unwrap();
    let best = r2.values.iter().flatten().cloned().fold(f64::MIN, f64::max);
    assert_eq!(r2.values[r2.best.unwrap()], Some(best));
    let md = cmp.markdown();
    assert!(md.contains("**") && md.contains("a/random-forest"), "{md}");
    cmp.write(&ctx.path().join("cmp")).unwrap();
    assert!(ctx.path().join("cmp/comparison.json").is_file());

    let cmp = compare(&[ra, rc]).unwrap();
    assert_eq!(cmp.warnings.len(), 2, "{:?}", cmp.warnings);
    assert!(cmp.warnings[0].contains("different rows"));
    assert!(cmp.markdown().contains("Warning"));
}

#[test]
fn evaluate_scores_models_of_one_run_on_another_runs_database() {
    let ctx = TestContext::new();
    let db1 = ctx.with_db("one", &SyntheticRun::standard(11).with_rows_per_image(600));
    let db2 = ctx.with_db("two", &SyntheticRun::standard(12).with_rows_per_image(600));
    let cfg = ctx.config(vec![db1.clone()], all_kinds());
    let out = ctx.train(&cfg);

    // On its own test rows, evaluate reproduces the training report.
    let forest_file = out.run_dir.join("random-forest/hyperfaas-thumbnailer.onnx");
    let ev = evaluate(
        &EvalConfig {
            model: forest_file.clone(),
            dbs: vec![db1],
            table: Table::TrainingData,
            image: None,
            split: Some(cfg.split),
        },
        &Progress::hidden(),
    )
    .unwrap();
    let img = out.report.images.iter().find(|i| i.image_tag == "hyperfaas-thumbnailer:latest").unwrap();
    let trained = &img.models.iter().find(|m| m.kind == ModelKind::RandomForest).unwrap().test;
    assert_eq!(ev.images.len(), 1);
    for t in TARGETS {
        let (a, b) = (ev.images[0].metrics[t].r2.unwrap(), trained[t].r2.unwrap());
        assert!((a - b).abs() < 1e-3, "{t}: evaluate R² {a} vs report {b}");
        assert_eq!(ev.images[0].metrics[t].rows, img.rows_test);
    }

    // On the other run's database, every row, both file kinds.
    for (model, images) in [(forest_file, 1), (out.run_dir.join("linear.json"), 2)] {
        let ev = evaluate(
            &EvalConfig {
                model,
                dbs: vec![db2.clone()],
                table: Table::TrainingData,
                image: None,
                split: None,
            },
            &Progress::hidden(),
        )
        .unwrap();
        assert_eq!(ev.images.len(), images);
        for i in &ev.images {
            assert!(i.rows > 500, "{} rows", i.rows);
            // Linear fits the thumbnailer's nonlinear runtime only partly.
            let r2 = i.metrics[TARGETS[0]].r2.unwrap();
            assert!(r2 > 0.3, "{} runtime R² {r2}", i.image_tag);
        }
        assert!(ev.markdown().contains("MAPE"));
    }

    // The averaged table works too.
    let ev = evaluate(
        &EvalConfig {
            model: out.run_dir.join("ridge.json"),
            dbs: vec![db2.clone()],
            table: Table::TrainingDataAvg,
            image: Some(ImageTag::from("hyperfaas-echo")),
            split: None,
        },
        &Progress::hidden(),
    )
    .unwrap();
    assert_eq!(ev.images.len(), 1);
    assert!(ev.images[0].rows > 10);

    // A split by time needs call_started_ns, which the averaged table lacks.
    let err = evaluate(
        &EvalConfig {
            model: out.run_dir.join("ridge.json"),
            dbs: vec![db2],
            table: Table::TrainingDataAvg,
            image: None,
            split: Some(SplitConfig { mode: SplitMode::Time, ..cfg.split }),
        },
        &Progress::hidden(),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("call_started_ns"), "{err:#}");
}
