use hyperfake_core::ImageTag;
use hyperfake_model::{ModelKind, TARGETS};
use trainer::forest::{self, ForestConfig};
use trainer::synth::{KNOWN_LINEAR, SyntheticRun, Truth};
use trainer::train::Fitted;

use crate::common::{TestContext, all_kinds};

#[test]
#[allow(clippy::needless_range_loop)]
fn linear_and_ridge_recover_known_coefficients() {
    let ctx = TestContext::new();
    let run = SyntheticRun::new(1)
        .with_image(
            "hyperfaas-echo:latest",
            Truth::Linear { coeffs: KNOWN_LINEAR, noise_sd: [1e4, 1e-4, 1e3] },
        )
        .with_rows_per_image(1500);
    let db = ctx.with_db("lin", &run);
    let out = ctx.train(&ctx.config(vec![db], vec![ModelKind::Linear, ModelKind::Ridge]));
    let rows = run.samples(0);
    let tag = ImageTag::from("hyperfaas-echo:latest");
    for kind in [ModelKind::Linear, ModelKind::Ridge] {
        let Some(Fitted::Linear(fit)) = out.models.get(&(tag.clone(), kind)) else {
            panic!("no {kind} model; have {:?}", out.models.keys().collect::<Vec<_>>());
        };
        for t in 0..3 {
            let ys: Vec<f64> = rows.iter().map(|r| r.y[t]).collect();
            let y_range =
                ys.iter().cloned().fold(f64::MIN, f64::max) - ys.iter().cloned().fold(f64::MAX, f64::min);
            for j in 0..5 {
                let xs = rows.iter().map(|r| r.x[j]);
                let x_range = xs.clone().fold(f64::MIN, f64::max) - xs.fold(f64::MAX, f64::min);
                // A weight is right when its effect over the input's range is
                // within 1 % of the target's range.
                let err = (fit.coeffs[t][j] - KNOWN_LINEAR[t][j]).abs() * x_range;
                assert!(
                    err <= 0.01 * y_range,
                    "{kind} {}: weight {j} is {} (true {}), effect error {err} vs target range {y_range}",
                    TARGETS[t],
                    fit.coeffs[t][j],
                    KNOWN_LINEAR[t][j]
                );
            }
            // Predictions (which include the intercept) match the truth inside the data.
            for r in rows.iter().step_by(97) {
                let truth = Truth::Linear { coeffs: KNOWN_LINEAR, noise_sd: [0.0; 3] }.eval(&r.x)[t];
                let pred = fit.predict(&r.x)[t];
                assert!((pred - truth).abs() <= 0.01 * y_range, "{kind} {}: {pred} vs {truth}", TARGETS[t]);
            }
        }
        let img = &out.report.images[0];
        let m = img.models.iter().find(|m| m.kind == kind).unwrap();
        for t in TARGETS {
            let r2 = m.test[t].r2.unwrap();
            assert!(r2 > 0.99, "{kind} {t}: test R² {r2}");
        }
        if kind == ModelKind::Ridge {
            assert!(m.ridge_penalties.is_some());
        }
    }
}

#[test]
fn forest_fits_a_nonlinear_function_that_linear_cannot() {
    let ctx = TestContext::new();
    let run = SyntheticRun::new(2)
        .with_image("hyperfaas-thumbnailer:latest", Truth::Nonlinear)
        .with_rows_per_image(2500);
    let db = ctx.with_db("nonlin", &run);
    let out = ctx.train(&ctx.config(vec![db], all_kinds()));
    let img = &out.report.images[0];
    let r2 =
        |kind: ModelKind, t: &str| img.models.iter().find(|m| m.kind == kind).unwrap().test[t].r2.unwrap();
    for t in TARGETS {
        let forest = r2(ModelKind::RandomForest, t);
        let linear = r2(ModelKind::Linear, t);
        assert!(forest > 0.9, "forest {t}: test R² {forest}");
        // The forest leaves at most half of the variance that linear leaves unexplained.
        assert!(
            1.0 - forest < 0.5 * (1.0 - linear),
            "{t}: forest R² {forest} is not clearly above linear {linear}"
        );
    }
}

#[test]
fn walked_trees_reproduce_smartcore_predict() {
    // smartcore's node layout is read through serde; this guards the pinned version.
    let run = SyntheticRun::new(3).with_image("x:latest", Truth::Nonlinear).with_rows_per_image(600);
    let rows = run.samples(0);
    let x: Vec<Vec<f64>> = rows.iter().map(|r| r.x.clone()).collect();
    let y: Vec<Vec<f64>> = rows.iter().map(|r| r.y.clone()).collect();
    let cfg = ForestConfig {
        n_trees: 7,
        max_depth: Some(8),
        min_samples_leaf: 1,
        min_samples_split: 2,
        max_features: 3,
        threads: 2,
        seed: 11,
    };
    let fitted = forest::fit_smartcore(&x, &y, &cfg).unwrap();
    let matrix = forest::matrix(&x).unwrap();
    // 7 trees over 2 threads: chunks of 4 and 3 per target.
    assert_eq!(fitted.iter().map(|(t, _)| *t).collect::<Vec<_>>(), vec![0, 0, 1, 1, 2, 2]);
    for (t, f) in &fitted {
        let trees = forest::extract(f, 5).unwrap();
        assert!(trees.len() == 4 || trees.len() == 3);
        let expected = f.predict(&matrix).unwrap();
        for (i, row) in x.iter().enumerate() {
            let walked = trees.iter().map(|tr| tr.predict(row)).sum::<f64>() / trees.len() as f64;
            assert!((walked - expected[i]).abs() <= 1e-9 * expected[i].abs().max(1.0), "target {t} row {i}");
        }
    }
}

#[test]
fn rows_with_null_are_dropped_and_counted() {
    let ctx = TestContext::new();
    let run = SyntheticRun::standard(4).with_rows_per_image(800).with_null_fraction(0.1);
    let db = ctx.with_db("nulls", &run);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let out = ctx.train(&ctx.config(vec![db.clone()], vec![ModelKind::Linear]));
    for img in &out.report.images {
        let nulls: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM training_data WHERE image_tag = ?1 AND (request_size_bytes IS NULL \
                 OR function_instances_count IS NULL OR active_function_calls_count IS NULL \
                 OR worker_cpu_usage IS NULL OR worker_ram_usage IS NULL OR function_processing_time_ns IS NULL \
                 OR function_cpu_usage IS NULL OR function_ram_usage IS NULL)",
                [&img.image_tag],
                |r| r.get(0),
            )
            .unwrap();
        assert!(nulls > 40, "fixture should have NULLs, has {nulls}");
        assert_eq!(img.rows_dropped_null, u64::try_from(nulls).unwrap());
        assert_eq!(img.rows_read, 800);
        assert_eq!(img.rows_train + img.rows_val + img.rows_test + usize::try_from(nulls).unwrap(), 800);
    }
}
