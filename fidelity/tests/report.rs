//! The report as people read it: the latency decomposition computed from a
//! run database, the header's sample relation, the why-it-misses lines, and
//! escaping of every string that comes from a database or the command line.

mod common;

use common::{ECHO, Parts, RunDb, ms};
use fidelity::{Comparison, Part, RunData, SampleRelation};

/// Parts (ms) of a call: leaf, leaf→worker, queue, overhead, handler, rest.
fn parts(v: [f64; 6]) -> Parts {
    Parts(v.map(ms))
}

/// A real run whose echo calls spend 0.1 ms in the leaf, 0.2 ms to the
/// worker, 0.3 ms queued, 1 ms of worker overhead, `handler_ms` in the
/// handler and 2 ms on the way there and back; `i`-th call jittered by i µs
/// in the handler so the median is a real order statistic.
fn decomposed_run(dir: &std::path::Path, name: &str, handler_ms: f64, calls: usize) -> RunData {
    let mut db = RunDb::create(dir, name, name, 7);
    for i in 0..calls {
        let jitter = i as f64 / 1000.0;
        db.timed_call(ECHO, parts([0.1, 0.2, 0.3, 1.0, handler_ms + jitter, 2.0]), 0);
    }
    RunData::load(&db.path, None).unwrap()
}

fn p50(summary: &fidelity::DecompositionSummary, part: Part) -> f64 {
    summary.part(part).and_then(|p| p.p50_ms).unwrap()
}

#[test]
fn the_decomposition_is_computed_from_the_calls_timings() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = RunDb::create(dir.path(), "real.db", "real", 7);
    // 101 calls: part k of call i is (k + 1) ms + i µs, so each median is (k + 1) ms + 50 µs.
    for i in 0..101 {
        let us = i as f64 / 1000.0;
        db.timed_call(ECHO, parts([1.0 + us, 2.0 + us, 3.0 + us, 4.0 + us, 5.0 + us, 6.0 + us]), 0);
    }
    // A call without leaf timings counts as incomplete; a failed call not at all.
    db.call(ECHO, "OK", Some(ms(30.0)), Some(ms(5.0)), "i");
    db.call(ECHO, "UNAVAILABLE", None, None, "i");
    let real = RunData::load(&db.path, None).unwrap();
    let d = &real.by_image[ECHO].decomposition;
    assert_eq!((d.complete(), d.incomplete, d.negative), (101, 1, 0));
    let summary = d.summary();
    for (k, part) in Part::ALL.iter().enumerate() {
        let median = p50(&summary, *part);
        assert!((median - (k as f64 + 1.050)).abs() < 1e-9, "{part:?}: median {median}");
        let p99 = summary.part(*part).unwrap().p99_ms.unwrap();
        assert!((p99 - (k as f64 + 1.099)).abs() < 1e-9, "{part:?}: p99 {p99}");
    }
    // Per call, the parts add up to the client latency.
    let calls = &real.by_image[ECHO];
    let sum_of_medians: f64 = Part::ALL.iter().map(|p| p50(&summary, *p)).sum();
    assert!((sum_of_medians - calls.latencies_ok[50] as f64 / 1e6).abs() < 1e-6);
}

#[test]
fn a_worker_clock_offset_moves_time_between_the_hop_and_the_return_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = RunDb::create(dir.path(), "real.db", "real", 7);
    // The worker's clock is 5 ms behind the leaf's.
    db.timed_call(ECHO, parts([0.1, 0.2, 0.3, 1.0, 4.0, 2.0]), -ms(5.0));
    let real = RunData::load(&db.path, None).unwrap();
    let d = &real.by_image[ECHO].decomposition;
    assert_eq!(d.negative, 1);
    let s = d.summary();
    assert!((p50(&s, Part::LeafToWorker) - (0.2 - 5.0)).abs() < 1e-9);
    assert!((p50(&s, Part::Rest) - (2.0 + 5.0)).abs() < 1e-9);
    assert!((p50(&s, Part::Handler) - 4.0).abs() < 1e-9, "same-host parts are unaffected");
    let c = Comparison::new(&real, &real);
    assert!(c.to_markdown().contains("1 with a negative part"), "{}", c.to_markdown());
}

#[test]
fn the_header_states_the_sample_relation_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let real = decomposed_run(dir.path(), "real.db", 5.0, 20);
    let fake = decomposed_run(dir.path(), "fake.db", 5.0, 20);

    let unstated = Comparison::new(&real, &fake);
    let out = dir.path().join("unstated");
    unstated.write(&out, &real, &fake).unwrap();
    for name in ["fidelity.md", "fidelity.html", "fidelity.json"] {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        assert!(text.contains("sample relation not stated"), "{name}: {text}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fidelity.json")).unwrap()).unwrap();
    assert!(json["trained_on"].is_null() && json["validation"].is_null(), "{json}");

    let sample = SampleRelation {
        trained_on: Some("training_data/run-a.db (seed 42)".into()),
        validation: Some("out of sample: same config, seed 43".into()),
    };
    let stated = Comparison::new(&real, &fake).with_sample(sample);
    let out = dir.path().join("stated");
    stated.write(&out, &real, &fake).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fidelity.json")).unwrap()).unwrap();
    assert_eq!(json["trained_on"], "training_data/run-a.db (seed 42)");
    assert_eq!(json["validation"], "out of sample: same config, seed 43");
    assert_eq!(
        json["sample_relation"],
        "out of sample: same config, seed 43; models trained on training_data/run-a.db (seed 42)"
    );
    let html = std::fs::read_to_string(out.join("fidelity.html")).unwrap();
    assert!(html.contains("<th>trained on</th><td>training_data/run-a.db (seed 42)</td>"), "{html}");
    assert!(html.contains("<th>validation</th><td>out of sample: same config, seed 43</td>"));
    assert!(!html.contains("sample relation not stated"));
    let md = std::fs::read_to_string(out.join("fidelity.md")).unwrap();
    assert!(md.contains("**validation:** out of sample: same config, seed 43"), "{md}");
    assert!(md.contains("**trained on:** training\\_data/run-a.db (seed 42)"), "{md}");
}

#[test]
fn a_faithful_function_has_no_why_line() {
    let dir = tempfile::tempdir().unwrap();
    let real = decomposed_run(dir.path(), "real.db", 5.0, 50);
    let fake = decomposed_run(dir.path(), "fake.db", 5.0, 50);
    let c = Comparison::new(&real, &fake);
    assert!(c.images[0].misses.is_empty());
    assert_eq!(c.images[0].why_it_misses, None);
    assert!(c.to_markdown().contains("Every function meets the targets."));
}

#[test]
fn why_it_misses_names_the_statistics_and_the_part_that_differs_most() {
    let dir = tempfile::tempdir().unwrap();
    // Real: handler 20 ms, latency 23.6 ms; fake: handler 5 ms, latency 8.6 ms.
    let real = decomposed_run(dir.path(), "real.db", 20.0, 50);
    let fake = decomposed_run(dir.path(), "fake.db", 5.0, 50);
    let c = Comparison::new(&real, &fake);
    let echo = &c.images[0];
    let missed: Vec<&str> = echo.misses.iter().map(|m| m.statistic.as_str()).collect();
    assert_eq!(missed, ["p50_ratio", "p99_ratio", "ks"]);
    let why = echo.why_it_misses.as_deref().unwrap();
    let p50_ratio = echo.latency_ratio_p50.unwrap();
    assert!(why.contains(&format!("p50 fake/real {p50_ratio:.3}")), "{why}");
    assert!(why.contains("fake too fast"), "{why}");
    assert!(why.contains("KS distance 1.000 (target ≤ 0.10, 0.900 over)"), "{why}");
    assert!(
        why.contains("at the median, handler differs most: fake 5.024 ms vs real 20.024 ms (−15.000 ms)"),
        "{why}"
    );
    assert!(why.contains("at the p99, handler differs most"), "{why}");
    // The same line in the Markdown and the HTML.
    assert!(c.to_markdown().contains("at the median, handler differs most"));
    let out = dir.path().join("report");
    c.write(&out, &real, &fake).unwrap();
    let html = std::fs::read_to_string(out.join("fidelity.html")).unwrap();
    assert!(html.contains("Why it misses: p50 fake/real"), "{html}");
}

#[test]
fn a_side_without_successful_calls_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let real = decomposed_run(dir.path(), "real.db", 5.0, 10);
    let mut db = RunDb::create(dir.path(), "fake.db", "fake", 7);
    db.call(ECHO, "UNAVAILABLE", None, None, "i");
    let fake = RunData::load(&db.path, None).unwrap();
    let c = Comparison::new(&real, &fake);
    let why = c.images[0].why_it_misses.as_deref().unwrap();
    assert!(why.contains("no successful calls with a latency on the fake side"), "{why}");
}

#[test]
fn strings_from_the_databases_and_the_command_line_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let tag = "evil<script>alert(1)</script>\"'&|:x";
    let run_id = "run<b>\"1\"</b>";
    let mut real = RunDb::create(dir.path(), "real<i>.db", run_id, 7);
    let mut fake = RunDb::create(dir.path(), "fake.db", "fake&co", 7);
    for i in 0..20 {
        real.timed_call(tag, parts([0.1, 0.2, 0.3, 1.0, 5.0 + i as f64, 2.0]), 0);
        fake.timed_call(tag, parts([0.1, 0.2, 0.3, 1.0, 1.0 + i as f64, 2.0]), 0);
    }
    let (real, fake) = (RunData::load(&real.path, None).unwrap(), RunData::load(&fake.path, None).unwrap());
    let sample = SampleRelation { trained_on: Some("<img src=x onerror=alert(2)>".into()), validation: None };
    let c = Comparison::new(&real, &fake).with_sample(sample);
    let out = dir.path().join("report");
    let files = c.write(&out, &real, &fake).unwrap();
    let html = std::fs::read_to_string(out.join("fidelity.html")).unwrap();
    for raw in ["<script>", "<b>", "<i>", "<img src=x", "fake&co", "\"1\""] {
        assert!(!html.contains(raw), "{raw} unescaped in the HTML");
    }
    for escaped in [
        "evil&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;|:x",
        "run&lt;b&gt;&quot;1&quot;&lt;/b&gt;",
        "real&lt;i&gt;.db",
        "fake&amp;co",
        "&lt;img src=x onerror=alert(2)&gt;",
    ] {
        assert!(html.contains(escaped), "{escaped} missing from the HTML");
    }
    // The plot files are named safely, and every <img> points at one that exists.
    let mut srcs = 0;
    for chunk in html.split("<img src=\"").skip(1) {
        let src = &chunk[..chunk.find('"').unwrap()];
        assert!(src.chars().all(|c| c.is_ascii_alphanumeric() || "-._%".contains(c)), "src {src}");
        assert!(out.join(src).is_file(), "{src} is not a file next to the page");
        srcs += 1;
    }
    assert_eq!(srcs, 2, "the ECDF and the decomposition of the one function");
    assert!(files.iter().all(|f| f.starts_with(&out)), "{files:?}");
    // The plots carry the tag in their titles, escaped too (opened on their own,
    // an SVG runs its scripts).
    for svg in files.iter().filter(|f| f.extension().is_some_and(|e| e == "svg")) {
        let text = std::fs::read_to_string(svg).unwrap();
        assert!(!text.contains("<script"), "{} holds a raw <script>", svg.display());
    }
    // Markdown: no raw HTML and no table-breaking pipe.
    let md = std::fs::read_to_string(out.join("fidelity.md")).unwrap();
    assert!(!md.contains("<script>") && !md.contains("<img"), "{md}");
    let row = md.lines().find(|l| l.starts_with("| evil")).unwrap();
    assert!(row.contains("\\|:x"), "{row}");
}

#[test]
fn the_page_is_a_real_html_report() {
    let dir = tempfile::tempdir().unwrap();
    let real = decomposed_run(dir.path(), "real.db", 20.0, 30);
    let fake = decomposed_run(dir.path(), "fake.db", 5.0, 30);
    let c = Comparison::new(&real, &fake);
    let out = dir.path().join("report");
    c.write(&out, &real, &fake).unwrap();
    let html = std::fs::read_to_string(out.join("fidelity.html")).unwrap();
    assert!(!html.contains("<pre>"), "no preformatted Markdown");
    assert_eq!(html.matches("<table").count(), 3, "header, summary and one decomposition table");
    assert!(html.contains("<img src=\"latency-ecdf-hyperfaas-echo_latest.svg\""));
    assert!(html.contains("<img src=\"decomposition-hyperfaas-echo_latest.svg\""));
    // The decomposition table: each part's medians with three decimals in ms.
    assert!(html.contains("<th>handler</th><td>20.014</td><td>5.014</td><td>−15.000</td>"), "{html}");
    let svg = std::fs::read_to_string(out.join("latency-ecdf-hyperfaas-echo_latest.svg")).unwrap();
    assert!(svg.contains("log scale"), "the ECDF's latency axis is logarithmic");
    let svg = std::fs::read_to_string(out.join("decomposition-hyperfaas-echo_latest.svg")).unwrap();
    for part in Part::ALL {
        assert!(svg.contains(&part.label().replace('>', "&gt;")), "legend lacks {part:?}");
    }
}

#[test]
fn the_cli_takes_the_sample_relation() {
    let dir = tempfile::tempdir().unwrap();
    let mut real = RunDb::create(dir.path(), "real.db", "real", 7);
    let mut fake = RunDb::create(dir.path(), "fake.db", "fake", 7);
    for i in 0..10 {
        real.timed_call(ECHO, parts([0.1, 0.2, 0.3, 1.0, 5.0 + i as f64, 2.0]), 0);
        fake.timed_call(ECHO, parts([0.1, 0.2, 0.3, 1.0, 5.0 + i as f64, 2.0]), 0);
    }
    let out = dir.path().join("report");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_fidelity"))
        .args(["compare", "--real"])
        .arg(&real.path)
        .arg("--fake")
        .arg(&fake.path)
        .arg("--out")
        .arg(&out)
        .args(["--trained-on", "training_data/run-a.db (seed 42)", "--validation", "out of sample: seed 43"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fidelity.json")).unwrap()).unwrap();
    assert_eq!(json["trained_on"], "training_data/run-a.db (seed 42)");
    assert_eq!(json["validation"], "out of sample: seed 43");
    assert!(json["images"][0]["real_decomposition"]["parts"].as_array().unwrap().len() == 6);
}

/// `--reference`: a second real run, twice as slow in the handler, gives the
/// "real vs real" numbers, and the fake's miss is judged against them.
#[test]
fn the_cli_measures_the_real_platforms_own_variation_with_a_reference_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut real = RunDb::create(dir.path(), "real.db", "real", 7);
    let mut fake = RunDb::create(dir.path(), "fake.db", "fake", 7);
    let mut again = RunDb::create(dir.path(), "again.db", "again", 8);
    for i in 0..100 {
        let handler = 5.0 + f64::from(i) / 10.0;
        real.timed_call(ECHO, parts([0.1, 0.2, 0.3, 1.0, handler, 2.0]), 0);
        fake.timed_call(ECHO, parts([0.1, 0.2, 0.3, 1.0, handler * 1.5, 2.0]), 0);
        again.timed_call(ECHO, parts([0.1, 0.2, 0.3, 1.0, handler * 2.0, 2.0]), 0);
    }
    let out = dir.path().join("report");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fidelity"))
        .args(["compare", "--real"])
        .arg(&real.path)
        .arg("--fake")
        .arg(&fake.path)
        .arg("--reference")
        .arg(&again.path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fidelity.json")).unwrap()).unwrap();
    assert_eq!(json["reference"]["run"], "again");
    let image = &json["images"][0];
    let own = image["real_vs_real"]["latency_ratio_p50"].as_f64().unwrap();
    let fake_ratio = image["latency_ratio_p50"].as_f64().unwrap();
    assert!(own > fake_ratio && fake_ratio > 1.1, "real vs real {own}, fake {fake_ratio}");
    let why = image["why_it_misses"].as_str().unwrap();
    assert!(why.contains("within the real platform's own run-to-run variation: p50 ratio"), "{why}");
    let md = std::fs::read_to_string(out.join("fidelity.md")).unwrap();
    assert!(md.contains("## Real vs real"), "{md}");
    let html = std::fs::read_to_string(out.join("fidelity.html")).unwrap();
    assert!(html.contains("<h2>Real vs real</h2>"));
    assert!(html.contains("again.db"));
}

/// Run databases come from other hosts: one whose `runs` is a view over a
/// virtual table that is not innocuous (it would put the reader's file paths
/// into the report) is refused.
#[test]
fn a_crafted_run_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crafted.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE VIEW runs AS SELECT file AS run_id, 0 AS started_at_ns FROM pragma_database_list;",
        )
        .unwrap();
    let err = RunData::load(&path, None).unwrap_err();
    assert!(err.to_string().contains("unsafe use of virtual table"), "{err}");
}
