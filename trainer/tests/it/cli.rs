use std::path::Path;
use std::process::{Command, Output};

use trainer::synth::SyntheticRun;

use crate::common::TestContext;

fn trainer(args: &[&str], cwd: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_trainer")).args(args).current_dir(cwd).output().unwrap();
    if !out.status.success() {
        panic!(
            "trainer {args:?} failed ({}) in {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            cwd.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

#[test]
fn train_compare_evaluate_deploy_from_the_command_line() {
    let ctx = TestContext::new();
    ctx.with_db("r1", &SyntheticRun::standard(13).with_rows_per_image(400));
    let dir = ctx.path();
    trainer(&["synth", "--out", "training_data/r2.db", "--rows", "400", "--seed", "14"], dir);
    for run in ["r1", "r2"] {
        let db = format!("training_data/{run}.db");
        let out = trainer(
            &[
                "train",
                "-q",
                "--db",
                &db,
                "--model",
                "all",
                "--trees",
                "10",
                "--max-depth",
                "6",
                "--no-plots",
            ],
            dir,
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("models/{run}")));
        assert!(dir.join(format!("models/{run}/random-forest/hyperfaas-echo.onnx")).is_file());
    }
    let out = trainer(&["compare", "models/r1", "models/r2"], dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("r1/random-forest") && stdout.contains("r2/ridge"), "{stdout}");
    // Different databases mean different test rows: compare says so.
    assert!(stdout.contains("Warning"), "{stdout}");
    assert!(dir.join("models/compare/r1__r2/comparison.md").is_file());

    let out = trainer(
        &[
            "evaluate",
            "-q",
            "--model",
            "models/r1/linear.json",
            "--db",
            "training_data/r2.db",
            "--out",
            "eval.json",
        ],
        dir,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hyperfaas-thumbnailer:latest"));
    assert!(dir.join("eval.json").is_file() && dir.join("eval.md").is_file());

    let out = trainer(&["deploy", "models/r2", "--to", "watched"], dir);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);

    // A bad model file is an error naming it, with a non-zero exit.
    std::fs::write(dir.join("bad.onnx"), b"not onnx").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["evaluate", "-q", "--model", "bad.onnx", "--db", "training_data/r1.db"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error:") && stderr.contains("bad.onnx"), "{stderr}");
}

#[test]
fn synth_with_payload_trains_and_evaluates_from_the_command_line() {
    let ctx = TestContext::new();
    let dir = ctx.path();
    trainer(
        &["synth", "--out", "training_data/p.db", "--rows", "500", "--seed", "15", "--with-payload"],
        dir,
    );
    trainer(
        &["train", "-q", "--db", "training_data/p.db", "--model", "ridge", "--no-plots", "--run", "p"],
        dir,
    );
    let report = std::fs::read_to_string(dir.join("models/p/report.md")).unwrap();
    assert!(report.contains("Inputs (6):") && report.contains("feature_graph_nodes"), "{report}");
    assert!(report.contains("Cold starts: 500"), "{report}");
    let out = trainer(
        &["evaluate", "-q", "--model", "models/p/ridge/hyperfaas-bfs.onnx", "--db", "training_data/p.db"],
        dir,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for target in ["function_processing_time_ns", "response_size_bytes", "worker_overhead_ns"] {
        assert!(stdout.contains(&format!("**{target}**")), "{stdout}");
    }
    assert_eq!(stdout.matches("| hyperfaas-bfs:latest | ridge |").count(), 5, "a row per target: {stdout}");
    // Without the features the same database trains 5-input models.
    trainer(
        &[
            "train",
            "-q",
            "--db",
            "training_data/p.db",
            "--model",
            "linear",
            "--no-plots",
            "--run",
            "p5",
            "--no-payload-features",
        ],
        dir,
    );
    let report = std::fs::read_to_string(dir.join("models/p5/report.md")).unwrap();
    assert!(
        !report.contains("Inputs (6):") && report.contains("not used (--no-payload-features)"),
        "{report}"
    );
}
