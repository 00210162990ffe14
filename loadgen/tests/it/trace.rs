use std::path::{Path, PathBuf};

use loadgen::schedule::RequestParams;
use loadgen::trace::TraceErrorKind;
use loadgen::{Payloads, Problem, Schedule, Workload, WorkloadErrors};

use crate::common::configs_dir;

/// `hyperfake` test fixtures in the Azure formats (made by the project).
fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/azure")
}

const INV_2019: &str = "invocations_per_function_md.anon.d01.csv";
const DUR_2019: &str = "function_durations_percentiles.anon.d01.csv";
const MEM_2019: &str = "app_memory_percentiles.anon.d01.csv";
const TRACE_2021: &str = "AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt";
/// sha256 of the fixture's names: function f1 (app a1) of the 2019 fixture.
const F1: &str = "3f524cdc07a11d7c6220bdb049fe8dd41b27483c96cc59b581e022d547290d69";
const A1: &str = "f55ff16f66f43360266b95db6f8fec01d76031054306ae4a4b380598f6cfd114";
/// f6 has invocations but no durations row.
const F6: &str = "3efda6ee78c31bab6995b1122ec13f6adf73e55fb20b18be11027cba91bcc254";
/// 2021: `main` is a function of two apps; `resize` of one.
const MAIN: &str = "0d6e4079e36703ebd37c00722f5891d28b0e2811dc114b129215123adcce3605";

/// A workload whose only source is a trace section with these extra lines.
fn yaml_2019(dir: &Path, extra: &str) -> String {
    format!(
        "max_duration: 1h\nseed: 5\ntrace:\n  format: azure_2019\n  invocations: {}\n  durations: {}\n  \
         memory: {}\n  image_tag: hyperfaas-simul:latest\n{extra}function_config:\n  \
         hyperfaas-simul:latest: {{memory: 64MB, copies: 2}}\n",
        dir.join(INV_2019).display(),
        dir.join(DUR_2019).display(),
        dir.join(MEM_2019).display(),
    )
}

fn yaml_2021(file: &Path, extra: &str) -> String {
    format!(
        "max_duration: 1h\nseed: 5\ntrace:\n  format: azure_2021\n  invocations: {}\n  \
         image_tag: hyperfaas-simul:latest\n{extra}function_config:\n  hyperfaas-simul:latest: {{memory: 64MB}}\n",
        file.display()
    )
}

fn load(yaml: &str) -> Workload {
    Workload::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n--- yaml ---\n{yaml}"))
}

fn errors(yaml: &str) -> WorkloadErrors {
    match Workload::from_yaml(yaml) {
        Ok(_) => panic!("expected an error\n--- yaml ---\n{yaml}"),
        Err(e) => e,
    }
}

/// The one trace-file error at `trace.<key>`: its file, line and kind.
fn trace_error(yaml: &str, key: &str) -> loadgen::trace::TraceError {
    let all = errors(yaml);
    let e = all.at(&format!("trace.{key}")).unwrap_or_else(|| panic!("no error at trace.{key}: {all}"));
    let Problem::Trace(t) = &e.problem else { panic!("not a trace file error: {e}") };
    // The message names the file and line.
    let text = all.to_string();
    assert!(text.contains(&t.path.display().to_string()), "{text}");
    if let Some(line) = t.line {
        assert!(text.contains(&format!("{}:{line}: ", t.path.display())), "{text}");
    }
    t.clone()
}

fn per_minute(schedule: &Schedule, minute_ns: u64, minutes: usize) -> Vec<u32> {
    let mut out = vec![0; minutes];
    for c in &schedule.calls {
        out[(c.offset_ns / minute_ns) as usize] += 1;
    }
    out
}

#[test]
fn azure_2019_hash_selection_keeps_the_counts_durations_and_memory() {
    let w = load(&yaml_2019(&fixtures(), &format!("  hashes: [{F1}]\n  arrival: equidistant\n")));
    let trace = w.trace.as_ref().unwrap();
    assert_eq!((trace.functions_in_file, trace.candidates, trace.minutes), (6, 4, 10));
    let f = &trace.functions[0];
    assert_eq!((f.app.as_str(), f.trigger.as_deref(), f.line), (A1, Some("http"), 2));
    assert_eq!(f.counts, [(0, 3), (2, 2), (3, 5), (5, 1), (8, 4), (9, 2)]);
    assert!(f.memory.is_some());
    let s = Schedule::resolve(&w);
    assert_eq!(per_minute(&s, 60_000_000_000, 10), [3, 0, 2, 5, 0, 1, 0, 0, 4, 2]);
    assert_eq!(s.phases[0].name, format!("trace/{A1}/{F1}"));
    // Equidistant, not shifted: minute 0's three calls at 0 s, 20 s, 40 s.
    let first: Vec<u64> = s.calls.iter().take(3).map(|c| c.offset_ns / 1_000_000_000).collect();
    assert_eq!(first, [0, 20, 40]);
    let payloads = Payloads::for_schedule(&s).unwrap();
    for c in &s.calls {
        let RequestParams::Trace { duration_us, memory_mib: Some(m) } = c.request else { panic!("{c:?}") };
        // Between the fixture's 0th and 100th percentiles (10..900 ms; app a1 100..170 MB).
        assert!((10_000..=900_000).contains(&duration_us), "{duration_us}");
        assert!((100..=170).contains(&m), "{m}");
        let body: serde_json::Value = serde_json::from_slice(&payloads.body(c)).unwrap();
        assert_eq!(body, serde_json::json!({"duration_us": duration_us, "memory_mib": m}));
    }
}

#[test]
fn azure_2019_sample_takes_only_functions_with_calls_and_durations() {
    let w = load(&yaml_2019(&fixtures(), "  sample: 100\n"));
    let t = w.trace.as_ref().unwrap();
    // f3 has no invocation, f6 no durations row: 4 of 6 are candidates, all taken.
    assert_eq!(t.functions.len(), 4);
    assert!(t.functions.iter().all(|f| f.function != F6 && !f.counts.is_empty()));
    let two = load(&yaml_2019(&fixtures(), "  sample: 2\n"));
    let picked =
        |w: &Workload| w.trace.as_ref().unwrap().functions.iter().map(|f| f.line).collect::<Vec<_>>();
    assert_eq!(picked(&two).len(), 2);
    assert_eq!(picked(&two), picked(&load(&yaml_2019(&fixtures(), "  sample: 2\n"))), "seeded");
    // Each trace function goes to its own copy of the image (k mod copies).
    let s = Schedule::resolve(&w);
    for c in &s.calls {
        assert_eq!(c.copy, (c.phase % 2), "{c:?}");
    }
}

#[test]
fn window_compression_and_rate_scale() {
    let extra = format!("  hashes: [{F1}]\n  first_minute: 3\n  minutes: 4\n  minute_length: 10s\n");
    let w = load(&yaml_2019(&fixtures(), &extra));
    let s = Schedule::resolve(&w);
    // Trace minutes 3..=6 of f1 (2, 5, 0, 1 calls), each played in 10 s.
    assert_eq!(per_minute(&s, 10_000_000_000, 4), [2, 5, 0, 1]);
    assert_eq!(s.phases[0].duration.as_secs(), 40);
    let doubled = load(&yaml_2019(&fixtures(), &format!("{extra}  rate_scale: 2\n")));
    assert_eq!(per_minute(&Schedule::resolve(&doubled), 10_000_000_000, 4), [4, 10, 0, 2]);
    let halved = load(&yaml_2019(&fixtures(), &format!("{extra}  rate_scale: 0.5\n")));
    assert_eq!(halved.trace.as_ref().unwrap().planned_calls(), 1 + 3 + 1, "each count rounded up");
    let n = Schedule::resolve(&halved).calls.len();
    assert!((3..=5).contains(&n), "{n}: 1 from 2, 2 or 3 from 5, 0 or 1 from 1");
    // Calls past max_duration are counted, not scheduled: equidistant, the
    // second trace minute's 5 calls are at 10, 12, 14, 16 and 18 s.
    let short = format!("{extra}  arrival: equidistant\n");
    let short = load(&yaml_2019(&fixtures(), &short).replace("max_duration: 1h", "max_duration: 15s"));
    let s = Schedule::resolve(&short);
    assert_eq!((s.calls.len(), s.past_max_duration), (2 + 3, 2 + 1));
}

#[test]
fn same_seed_and_files_give_byte_identical_schedules_and_bodies() {
    let yaml = yaml_2019(&fixtures(), "  sample: 3\n  shift: true\n");
    let (a, b) = (Schedule::resolve(&load(&yaml)), Schedule::resolve(&load(&yaml)));
    assert!(!a.calls.is_empty());
    assert_eq!(a.to_json(), b.to_json());
    let bodies = |s: &Schedule| {
        let p = Payloads::for_schedule(s).unwrap();
        s.calls.iter().map(|c| p.body(c)).collect::<Vec<_>>()
    };
    assert_eq!(bodies(&a), bodies(&b));
    let other = Schedule::resolve(&load(&yaml.replace("seed: 5", "seed: 6")));
    let times = |s: &Schedule| s.calls.iter().map(|c| c.offset_ns).collect::<Vec<_>>();
    assert_ne!(times(&a), times(&other));
    assert!(a.to_json().contains("\"format\": \"azure_2019\""), "the schedule records the trace settings");
}

#[test]
fn azure_2021_counts_invocations_by_start_minute_with_their_own_durations() {
    let file = fixtures().join(TRACE_2021);
    let w = load(&yaml_2021(&file, &format!("  hashes: [{MAIN}]\n")));
    let t = w.trace.as_ref().unwrap();
    // `main` is in two apps: both are taken.
    assert_eq!(t.functions.len(), 2);
    assert_eq!((t.functions_in_file, t.candidates), (3, 3));
    // b1/main starts at 5, 30, 65, 70 and 130 s: minutes 1, 1, 2, 2, 3.
    let b1 = t.functions.iter().find(|f| f.counts.len() == 3).expect("b1/main");
    assert_eq!(b1.counts, [(0, 2), (1, 2), (2, 1)]);
    let s = Schedule::resolve(&w);
    for c in &s.calls {
        let RequestParams::Trace { duration_us, memory_mib: None } = c.request else { panic!("{c:?}") };
        let recorded = [50_000, 200_000, 100_000, 1_500_000, 300_000, 2_000_000, 2_500_000, 3_000_000];
        assert!(recorded.contains(&duration_us), "{duration_us} is a recorded duration");
    }
    let sample = load(&yaml_2021(&file, "  sample: 1\n  first_minute: 2\n  minutes: 2\n"));
    assert_eq!(sample.trace.as_ref().unwrap().functions.len(), 1);
}

/// One function, `n` invocations in each of `minutes` minutes.
fn steady_trace(dir: &Path, n: u32, minutes: u32) {
    let header: Vec<String> = (1..=minutes).map(|m| m.to_string()).collect();
    let row: Vec<String> = (0..minutes).map(|_| n.to_string()).collect();
    std::fs::write(
        dir.join(INV_2019),
        format!(
            "HashOwner,HashApp,HashFunction,Trigger,{}\no,a,f,http,{}\n",
            header.join(","),
            row.join(",")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join(DUR_2019),
        "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,percentile_Average_1,\
         percentile_Average_25,percentile_Average_50,percentile_Average_75,percentile_Average_99,percentile_Average_100\n\
         o,a,f,10,1,1,20,1,2,5,10,15,19,20\n",
    )
    .unwrap();
    std::fs::write(dir.join(MEM_2019), std::fs::read_to_string(fixtures().join(MEM_2019)).unwrap()).unwrap();
}

#[test]
fn inter_arrival_times_have_the_expected_mean_and_variance() {
    let dir = tempfile::tempdir().unwrap();
    let (n, minutes) = (600u32, 200u32);
    steady_trace(dir.path(), n, minutes);
    let l = 60.0;
    let nf = f64::from(n);
    let mean = l / nf;
    // (arrival, expected variance of a gap): Dirichlet(1, …, 1) spacings for
    // exponential gaps; uniform gaps scaled to the minute ≈ L²/(3n²).
    let cases = [
        ("exponential", l * l * (nf - 1.0) / (nf * nf * (nf + 1.0))),
        ("uniform", l * l / (3.0 * nf * nf)),
        ("equidistant", 0.0),
    ];
    for (arrival, variance) in cases {
        let yaml = yaml_2019(dir.path(), &format!("  sample: 1\n  arrival: {arrival}\n"));
        let w = load(&yaml.replace("max_duration: 1h", "max_duration: 4h"));
        let s = Schedule::resolve(&w);
        assert_eq!(s.calls.len() as u32, n * minutes);
        let gaps: Vec<f64> =
            s.calls.windows(2).map(|c| (c[1].offset_ns - c[0].offset_ns) as f64 / 1e9).collect();
        let m = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let v = gaps.iter().map(|g| (g - m).powi(2)).sum::<f64>() / (gaps.len() - 1) as f64;
        // The gaps of each minute add up to it: the mean is exact but for ns rounding.
        assert!((m - mean).abs() < mean * 1e-3, "{arrival}: mean {m}, expected {mean}");
        // 120 000 gaps: the sample variance's standard error is under 1 %
        // (exponential) or 0.3 % (uniform) of it, so 5 % cannot fail by chance.
        assert!(
            (v - variance).abs() <= variance * 0.05 + 1e-12,
            "{arrival}: variance {v}, expected {variance}"
        );
    }
    // Shifted: the same counts per minute, and not all at second 0.
    let yaml = yaml_2019(dir.path(), "  sample: 1\n  arrival: equidistant\n  shift: true\n");
    let w = load(&yaml.replace("max_duration: 1h", "max_duration: 4h"));
    let s = Schedule::resolve(&w);
    assert!(per_minute(&s, 60_000_000_000, minutes as usize).iter().all(|&c| c == n));
    let at_zero = s.calls.iter().filter(|c| c.offset_ns % 60_000_000_000 == 0).count();
    assert!(at_zero < minutes as usize, "{at_zero} minutes start with a call");
}

#[test]
fn the_trace_counts_toward_max_scheduled_calls() {
    let yaml =
        yaml_2019(&fixtures(), "  sample: 10\n").replace("seed: 5", "seed: 5\nmax_scheduled_calls: 100");
    let all = errors(&yaml);
    let e = all.at("trace").unwrap_or_else(|| panic!("{all}"));
    assert!(matches!(e.problem, Problem::TooManyCalls { .. }), "{e}");
}

#[test]
fn bad_trace_sections_name_their_key() {
    let dir = fixtures();
    let cases: [(String, &str, &str); 7] = [
        (yaml_2019(&dir, "  sample: 2\n  hashes: [x]\n"), "trace.hashes", "not both"),
        (yaml_2019(&dir, ""), "trace.sample", "required"),
        (yaml_2019(&dir, "  sample: 2\n  minute_length: 10\n"), "trace.minute_length", "missing unit"),
        (yaml_2019(&dir, "  sample: 2\n  rate_scale: 0\n"), "trace.rate_scale", "above 0"),
        (yaml_2019(&dir, "  sample: 2\n  first_minute: 1441\n"), "trace.first_minute", "1..=1440"),
        (yaml_2019(&dir, "  sample: 2\n  hashes_typo: 1\n"), "trace.hashes_typo", "unknown field"),
        (
            yaml_2021(&dir.join(TRACE_2021), "  sample: 2\n  durations: x.csv\n"),
            "trace.durations",
            "azure_2021",
        ),
    ];
    for (yaml, path, needle) in cases {
        let all = errors(&yaml);
        let e = all.at(path).unwrap_or_else(|| panic!("no error at {path}: {all}"));
        assert!(e.to_string().contains(needle), "{e} should contain {needle:?}");
    }
    let no_durations = yaml_2019(&dir, "  sample: 2\n")
        .replace(&format!("  durations: {}\n", dir.join(DUR_2019).display()), "");
    assert!(errors(&no_durations).at("trace.durations").is_some());
}

/// Writes the 2019 fixture into a temp dir with `file` replaced by `text`.
fn broken_2019(file: &str, text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    for f in [INV_2019, DUR_2019, MEM_2019] {
        std::fs::copy(fixtures().join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join(file), text).unwrap();
    let yaml = yaml_2019(dir.path(), "  sample: 3\n");
    (dir, yaml)
}

fn fixture_text(file: &str) -> String {
    std::fs::read_to_string(fixtures().join(file)).unwrap()
}

/// The fixture with `line` (1-based) replaced.
fn with_line(file: &str, line: usize, text: &str) -> String {
    let mut lines: Vec<String> = fixture_text(file).lines().map(str::to_string).collect();
    lines[line - 1] = text.to_string();
    lines.join("\n") + "\n"
}

#[test]
fn every_malformed_2019_file_is_an_error_naming_file_and_line() {
    let inv_line3 = fixture_text(INV_2019).lines().nth(2).unwrap().to_string();
    let dur_header = fixture_text(DUR_2019).lines().next().unwrap().to_string();
    let mem_line2 = fixture_text(MEM_2019).lines().nth(1).unwrap().to_string();
    let cases: Vec<(&str, String, &str, Option<u64>, fn(&TraceErrorKind) -> bool)> = vec![
        (INV_2019, String::new(), "invocations", None, |k| *k == TraceErrorKind::Empty),
        (
            INV_2019,
            with_line(INV_2019, 3, &inv_line3.replacen(",1,", ",x,", 1)),
            "invocations",
            Some(3),
            |k| matches!(k, TraceErrorKind::BadCount { column, value } if column == "minute 1" && value == "x"),
        ),
        (INV_2019, with_line(INV_2019, 4, "a,b,c"), "invocations", Some(4), |k| {
            *k == TraceErrorKind::FieldCount { expected: 14, found: 3 }
        }),
        (
            INV_2019,
            with_line(INV_2019, 1, "HashOwner,HashApp,HashFunction,Trigger,1,3"),
            "invocations",
            Some(1),
            |k| *k == TraceErrorKind::MinuteGap(2),
        ),
        (
            INV_2019,
            with_line(INV_2019, 1, "HashOwner,HashApp,HashFunction,1,2"),
            "invocations",
            Some(1),
            |k| *k == TraceErrorKind::MissingColumn("Trigger".into()),
        ),
        (
            INV_2019,
            with_line(INV_2019, 2, "\"o\",a,f,http,1,1,1,1,1,1,1,1,1,1"),
            "invocations",
            Some(2),
            |k| *k == TraceErrorKind::Quoted,
        ),
        (
            DUR_2019,
            with_line(DUR_2019, 1, &dur_header.replace(",percentile_Average_99", ",p99")),
            "durations",
            Some(1),
            |k| *k == TraceErrorKind::MissingColumn("percentile_Average_99".into()),
        ),
        (DUR_2019, with_line(DUR_2019, 3, &",".repeat(13)), "durations", Some(3), |k| {
            *k == TraceErrorKind::EmptyField("HashApp".into())
        }),
        (
            MEM_2019,
            with_line(MEM_2019, 2, &mem_line2.replacen(",100,", ",-4,", 1)),
            "memory",
            Some(2),
            |k| matches!(k, TraceErrorKind::BadNumber { column, value } if column == "AverageAllocatedMb_pct1" && value == "-4"),
        ),
    ];
    for (file, text, key, line, check) in cases {
        let (_dir, yaml) = broken_2019(file, &text);
        let e = trace_error(&yaml, key);
        assert!(e.path.ends_with(file), "{e}");
        assert_eq!(e.line, line, "{e}");
        assert!(check(&e.kind), "{file} line {line:?}: {e}");
    }
}

#[test]
fn missing_files_and_unknown_hashes_are_errors_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let e = trace_error(&yaml_2019(dir.path(), "  sample: 2\n"), "durations");
    assert!(matches!(e.kind, TraceErrorKind::Open(_)), "{e}");
    let e = trace_error(&yaml_2019(&fixtures(), "  hashes: [beef]\n"), "hashes");
    assert_eq!(e.kind, TraceErrorKind::HashNotFound("beef".into()));
    let e = trace_error(&yaml_2019(&fixtures(), &format!("  hashes: [{F6}]\n")), "durations");
    assert!(matches!(e.kind, TraceErrorKind::NoDuration(_)), "{e}");
    let e =
        trace_error(&yaml_2019(&fixtures(), "  sample: 2\n  first_minute: 5\n  minutes: 7\n"), "invocations");
    assert_eq!((e.line, e.kind), (Some(1), TraceErrorKind::Window { first: 5, last: 11, available: 10 }));
    // A file without line breaks is refused, not read into memory.
    let (_dir, yaml) = broken_2019(INV_2019, &"0,".repeat(600_000));
    assert!(matches!(trace_error(&yaml, "invocations").kind, TraceErrorKind::LineTooLong(_)));
}

#[test]
fn every_malformed_2021_row_is_an_error_naming_file_and_line() {
    let good = fixture_text(TRACE_2021);
    let line3 = good.lines().nth(2).unwrap().to_string();
    let cases: [(String, u64, fn(&TraceErrorKind) -> bool); 4] = [
        (good.replacen("end_timestamp", "end", 1), 1, |k| {
            *k == TraceErrorKind::MissingColumn("end_timestamp".into())
        }),
        (good.replace(&line3, &line3.replacen(",", ",,x", 1)), 3, |k| {
            matches!(k, TraceErrorKind::FieldCount { .. })
        }),
        (
            good.replace(&line3, &format!("{},abc", line3.rsplit_once(',').unwrap().0)),
            3,
            |k| matches!(k, TraceErrorKind::BadNumber { column, .. } if column == "duration"),
        ),
        (good.replace(&line3, &line3.replacen(&line3[..64], "", 1)), 3, |k| {
            *k == TraceErrorKind::EmptyField("app".into())
        }),
    ];
    for (text, line, check) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(TRACE_2021);
        std::fs::write(&file, text).unwrap();
        let e = trace_error(&yaml_2021(&file, "  sample: 2\n"), "invocations");
        assert_eq!(e.line, Some(line), "{e}");
        assert!(check(&e.kind), "{e}");
    }
}

#[test]
fn the_example_replays_its_slice_with_payload_features() {
    let text = std::fs::read_to_string(configs_dir().join("azure-2019-example.yaml")).unwrap();
    let w = Workload::from_yaml_in(&text, &configs_dir().join("..")).unwrap();
    let s = Schedule::resolve(&w);
    assert_eq!(w.trace.as_ref().unwrap().functions.len(), 10);
    assert!(s.calls.len() > 300, "{} calls", s.calls.len());
    let features = w.functions.iter().map(|(tag, spec)| (tag.clone(), spec.features.clone()));
    let payloads = Payloads::for_schedule(&s).unwrap().with_features(features);
    for c in s.calls.iter().take(50) {
        let values = payloads.feature_values(c, &payloads.body(c)).unwrap();
        assert!(values.iter().all(Option::is_some), "{values:?}");
    }
}
