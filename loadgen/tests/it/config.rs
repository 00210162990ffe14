use loadgen::config::{Arrival, DataProvider, PhaseKind, PhaseSource};
use loadgen::{Problem, Workload, WorkloadErrors};

use crate::common::{BASE, configs_dir};

fn errors(yaml: &str) -> WorkloadErrors {
    match Workload::from_yaml(yaml) {
        Ok(w) => panic!("expected an error, got {w:#?}\n--- yaml ---\n{yaml}"),
        Err(e) => e,
    }
}

/// Asserts there is an error at `path`, on `line`, whose message contains `needle`.
fn expect(yaml: &str, path: &str, line: Option<usize>, needle: &str) -> WorkloadErrors {
    let all = errors(yaml);
    let Some(e) = all.at(path) else { panic!("no error at {path}; got:\n{all}") };
    assert_eq!(e.line, line, "line of {path}; got:\n{all}");
    let text = e.to_string();
    assert!(text.contains(needle), "{text:?} should contain {needle:?}");
    assert!(text.starts_with(path), "{text:?} should start with the path");
    all
}

#[test]
fn base_workload_is_valid() {
    let w = Workload::from_yaml(BASE).unwrap();
    assert_eq!(w.seed, 7);
    assert_eq!(w.call_timeout.as_secs(), 30);
    let PhaseSource::Manual(phases) = &w.phases else { panic!("manual phases") };
    assert_eq!(phases.len(), 2);
    assert_eq!(phases[1].kind, PhaseKind::Variable);
    assert_eq!(phases[1].arrival, Arrival::Uniform);
}

#[test]
fn every_shipped_example_parses() {
    let mut seen = 0;
    for entry in std::fs::read_dir(configs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            // Trace file paths in examples are relative to the repository root.
            if let Err(e) = Workload::from_yaml_in(&text, &configs_dir().join("..")) {
                panic!("{}: {e}", path.display());
            }
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected at least 3 example configs, found {seen}");
}

#[test]
fn hyperfaas_format_is_read_as_hyperfaas_meant_it() {
    let text = std::fs::read_to_string(configs_dir().join("hyperfaas-example.yaml")).unwrap();
    let w = Workload::from_yaml(&text).unwrap();
    // `timeout: 60` is seconds; patterns are a map; the thumbnailer has defaults.
    assert_eq!(w.call_timeout.as_secs(), 60);
    assert_eq!(w.max_duration.as_secs(), 300);
    let PhaseSource::Generated(patterns) = &w.phases else { panic!("generated") };
    let names: Vec<_> = patterns.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["echo", "bfs", "thumbnailer"], "file order is kept");
    let thumb = &w.functions[&"hyperfaas-thumbnailer-json:latest".into()];
    assert!(
        matches!(&thumb.provider, DataProvider::ThumbnailerJson { sources, .. } if sources == &[(1920, 1080)])
    );
    assert_eq!(thumb.config.memory, hyperfake_core::Bytes(1024 * 1024 * 1024));
    let bfs = &w.functions[&"hyperfaas-bfs-json:latest".into()];
    assert_eq!(bfs.provider, DataProvider::BfsJson { min_nodes: 100, max_nodes: 250 });
}

#[test]
fn unknown_key_at_top_level() {
    let yaml = format!("{BASE}colour: blue\n");
    expect(&yaml, "colour", Some(32), "unknown field `colour`");
}

#[test]
fn unknown_key_nested_in_a_phase() {
    let yaml = BASE.replace("      step: 1\n", "      step: 1\n      stepp: 2\n");
    expect(&yaml, "workload.phases[1].stepp", Some(20), "unknown field `stepp`");
}

#[test]
fn unknown_key_in_function_config() {
    let yaml = BASE.replace("    memory: 256MB\n", "    memory: 256MB\n    memroy: 1GB\n");
    let all = errors(&yaml);
    let e = &all.0[0];
    assert!(e.path.ends_with("memroy"), "{all}");
    assert!(e.path.starts_with("function_config"), "{all}");
    assert_eq!(e.line, Some(24));
}

#[test]
fn missing_function_config_for_a_used_image() {
    let yaml = BASE.replace(
        "      end_rps: 5\n      step: 1\n      image_tag: hyperfaas-echo:latest",
        "      end_rps: 5\n      step: 1\n      image_tag: hyperfaas-bfs:latest",
    );
    let all = expect(&yaml, "workload.phases[1].image_tag", Some(20), "function_config");
    assert!(all.0.iter().any(|e| e.problem == Problem::MissingFunctionConfig("hyperfaas-bfs:latest".into())));
    assert!(all.0.iter().any(|e| e.problem == Problem::MissingDataProvider("hyperfaas-bfs:latest".into())));
}

#[test]
fn missing_data_provider_for_a_used_image() {
    let yaml = BASE.split("data_providers:").next().unwrap().to_string();
    let all = expect(&yaml, "workload.phases[0].image_tag", Some(12), "data_providers");
    assert_eq!(all.0.len(), 1, "{all}");
}

#[test]
fn bad_duration() {
    let yaml = BASE.replace("duration: 20s", "duration: 20 seconds");
    expect(&yaml, "workload.phases[1].duration", Some(16), "invalid duration \"20 seconds\"");
    let yaml = BASE.replace("max_duration: 1m", "max_duration: 60");
    expect(&yaml, "max_duration", Some(2), "missing unit");
    let yaml = BASE.replace("timeout: 30s", "timeout: 30x");
    expect(&yaml, "timeout", Some(3), "unknown unit");
}

#[test]
fn bad_size() {
    let yaml = BASE.replace("memory: 256MB", "memory: 256XB");
    expect(&yaml, "function_config.hyperfaas-echo:latest.memory", Some(23), "invalid size \"256XB\"");
    let yaml = BASE.replace("max_body_size: 1KB", "max_body_size: lots");
    expect(&yaml, "data_providers.hyperfaas-echo:latest.max_body_size", Some(31), "invalid size");
    let yaml = BASE.replace("memory: 256MB", "memory: 1MB");
    expect(&yaml, "function_config.hyperfaas-echo:latest.memory", Some(23), "not a valid memory limit");
}

#[test]
fn bad_phase_type() {
    let yaml = BASE.replace("type: variable", "type: ramping");
    let all = errors(&yaml);
    let e = &all.0[0];
    assert_eq!(e.path, "workload.phases[1].type");
    assert_eq!(e.line, Some(14));
    assert!(e.to_string().contains("unknown variant `ramping`, expected `constant` or `variable`"), "{e}");
}

#[test]
fn negative_rps_and_step_direction() {
    let yaml = BASE.replace("start_rps: 2", "start_rps: -2");
    expect(&yaml, "workload.phases[0].start_rps", Some(11), "must not be negative, got -2");
    let yaml = BASE.replace("end_rps: 5", "end_rps: -5");
    expect(&yaml, "workload.phases[1].end_rps", Some(18), "must not be negative");
    let yaml = BASE.replace("step: 1", "step: -1");
    expect(&yaml, "workload.phases[1].step", Some(19), "moves away from end_rps");
    let yaml = BASE.replace("step: 1", "step: 0");
    expect(&yaml, "workload.phases[1].step", Some(19), "non-zero step");
}

#[test]
fn constant_phase_rules() {
    let yaml = BASE.replace("      start_rps: 2\n", "      start_rps: 2\n      end_rps: 9\n");
    expect(&yaml, "workload.phases[0].end_rps", Some(12), "constant phase");
    let yaml = BASE.replace("start_rps: 2", "start_rps: 0");
    expect(&yaml, "workload.phases[0].start_rps", Some(11), "at least 1");
}

#[test]
fn phase_starting_after_max_duration() {
    let yaml = BASE.replace("start_time: 10s", "start_time: 2m");
    expect(&yaml, "workload.phases[1].start_time", Some(15), "before max_duration");
}

#[test]
fn missing_required_fields() {
    let yaml = BASE.replace("max_duration: 1m\n", "");
    expect(&yaml, "max_duration", None, "required");
    let yaml = BASE.replace("      duration: 10s\n", "");
    let all = errors(&yaml);
    assert_eq!(all.0[0].path, "workload.phases[0].duration", "{all}");
    assert!(all.0[0].line.is_some());
}

#[test]
fn data_provider_fields_must_fit_the_type() {
    let yaml = BASE.replace("    min_body_size: 16\n", "    min_body_size: 16\n    min_nodes: 5\n");
    expect(
        &yaml,
        "data_providers.hyperfaas-echo:latest.min_nodes",
        Some(31),
        "not used by data provider type echo",
    );
    let yaml = BASE.replace("max_body_size: 1KB", "max_body_size: 8");
    expect(&yaml, "data_providers.hyperfaas-echo:latest.min_body_size", Some(30), "larger than max");
    let yaml = BASE.replace("type: echo", "type: mystery");
    let all = errors(&yaml);
    assert!(all.0[0].to_string().contains("unknown variant `mystery`"), "{all}");
    assert_eq!(all.0[0].line, Some(29));
}

#[test]
fn cpu_needs_period_and_quota_in_range() {
    let yaml = BASE.replace("period: 100000", "period: 10");
    expect(&yaml, "function_config.hyperfaas-echo:latest.cpu.period", Some(25), "outside the kernel's range");
}

#[test]
fn generated_workloads_need_patterns_and_check_them() {
    let yaml = BASE.replace("seed: 7\n", "seed: 7\ngenerate_workload: true\n");
    let all = errors(&yaml);
    assert!(all.at("patterns").is_some(), "{all}");
    assert!(all.at("workload.phases").is_some(), "{all}");
    let yaml = "\
max_duration: 1m
generate_workload: true
patterns:
  echo:
    image_tag: hyperfaas-echo:latest
    phase_count: {min: 3, max: 2}
    constant_likelihood: 1.5
    parameters:
      start_rps: {min: -1, max: 5}
      end_rps: {min: 1, max: 10}
      step: {min: 1, max: 2}
function_config:
  hyperfaas-echo:latest: {memory: 256MB}
data_providers:
  hyperfaas-echo:latest: {type: echo}
";
    expect(yaml, "patterns.echo.phase_count", Some(6), "larger than max");
    expect(yaml, "patterns.echo.constant_likelihood", Some(7), "0.0..=1.0");
    expect(yaml, "patterns.echo.parameters.start_rps.min", Some(9), "must not be negative");
}

#[test]
fn a_phase_count_too_large_to_generate_is_refused() {
    // Found by fuzzing: 4·10⁹ phases were generated during validation (an
    // abort for lack of memory).
    let yaml = "\
max_duration: 1m
generate_workload: true
patterns:
  echo:
    image_tag: hyperfaas-echo:latest
    phase_count: {min: 4000000000, max: 4000000000}
    constant_likelihood: 1.0
    parameters:
      start_rps: {min: 1, max: 5}
      end_rps: {min: 1, max: 10}
      step: {min: 1, max: 2}
function_config:
  hyperfaas-echo:latest: {memory: 256MB}
data_providers:
  hyperfaas-echo:latest: {type: echo}
";
    expect(yaml, "patterns.echo.phase_count.max", Some(6), "at most 100000");
}

#[test]
fn a_phase_far_longer_than_the_run_is_expanded_only_up_to_max_duration() {
    // Found by fuzzing: a 100 000 h phase in a 2 s run was expanded whole
    // (3.6·10⁸ arrivals) before the calls past max_duration were dropped.
    let yaml = with_phases(
        "    - {name: long, type: constant, duration: 100000h, start_rps: 1, image_tag: hyperfaas-echo:latest}\n",
        "",
    )
    .replace("max_duration: 1m", "max_duration: 2s");
    let workload = Workload::from_yaml(&yaml).unwrap();
    let schedule = loadgen::Schedule::resolve(&workload);
    assert_eq!(schedule.calls.len(), 2);
    // The seconds not expanded still count as calls past max_duration.
    assert_eq!(schedule.past_max_duration, 100_000 * 3600 - 2);
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let yaml = BASE
        .replace("duration: 20s", "duration: 20q")
        .replace("start_rps: 2", "start_rps: -2")
        .replace("memory: 256MB", "memory: big");
    let all = errors(&yaml);
    assert_eq!(all.0.len(), 3, "{all}");
    assert!(all.to_string().starts_with("3 problems in the workload file"));
}

#[test]
fn workload_level_fields_must_agree() {
    let yaml = BASE.replace("workload:\n", "workload:\n  timeout: 10\n");
    expect(&yaml, "workload.timeout", Some(6), "differs from timeout");
    let yaml = BASE.replace("workload:\n", "workload:\n  timeout: 30\n");
    Workload::from_yaml(&yaml).unwrap();
}

#[test]
fn copies_must_be_between_one_and_the_limit() {
    assert_eq!(Workload::from_yaml(BASE).unwrap().functions.values().next().unwrap().copies, 1);
    let three = BASE.replace("    memory: 256MB\n", "    memory: 256MB\n    copies: 3\n");
    assert_eq!(Workload::from_yaml(&three).unwrap().functions.values().next().unwrap().copies, 3);
    for bad in ["0", "-2", "10001"] {
        let yaml = BASE.replace("    memory: 256MB\n", &format!("    memory: 256MB\n    copies: {bad}\n"));
        expect(&yaml, "function_config.hyperfaas-echo:latest.copies", Some(24), "out of range");
    }
}

/// BASE with `features` (block-style YAML lines, indented under the function) added to the echo function.
fn with_features(lines: &str) -> String {
    BASE.replace("      quota: 50000\n", &format!("      quota: 50000\n    features:\n{lines}"))
}

#[test]
fn payload_features_are_read_in_the_payload_features_form() {
    let yaml = with_features(
        "      - {name: body_bytes, payload_bytes: true}\n      - name: graph_nodes\n        json: /Size\n",
    );
    let w = Workload::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}"));
    let f = &w.functions[&"hyperfaas-echo:latest".into()].features;
    assert_eq!(
        f.to_json(),
        r#"[{"name":"body_bytes","payload_bytes":true},{"name":"graph_nodes","json":"/Size"}]"#
    );
    // No `features:` is no features, not an error.
    let w = Workload::from_yaml(BASE).unwrap();
    assert!(w.functions[&"hyperfaas-echo:latest".into()].features.is_empty());
}

#[test]
fn a_bad_payload_feature_names_its_entry_and_line() {
    // Lines: features 27, entry 0 on 28, entry 1 on 29-30, entry 2 on 31.
    let yaml = with_features(
        "      - {name: ok, payload_bytes: true}\n      - name: size\n        json: Size\n      - {name: img, jsn: /image}\n",
    );
    let path = "function_config.hyperfaas-echo:latest.features";
    let all = expect(&yaml, &format!("{path}[1]"), Some(29), "\"Size\" is not a JSON pointer");
    let e = all.at(&format!("{path}[2]")).unwrap_or_else(|| panic!("no error for entry 2:\n{all}"));
    assert_eq!(e.line, Some(31));
    assert!(e.to_string().contains("unknown field `jsn`"), "{e}");
    assert!(all.at(&format!("{path}[0]")).is_none(), "entry 0 is fine:\n{all}");
    assert!(matches!(e.problem, Problem::Feature(_)));
}

#[test]
fn a_payload_feature_declared_twice_is_reported_at_the_second() {
    let yaml = with_features(
        "      - {name: n, payload_bytes: true}\n      - {name: px, product: [/width, /height]}\n      - {name: n, json: /Size}\n",
    );
    expect(
        &yaml,
        "function_config.hyperfaas-echo:latest.features[2]",
        Some(30),
        "feature n is declared twice",
    );
    let yaml = with_features("      - {name: px, product: [/width]}\n");
    expect(&yaml, "function_config.hyperfaas-echo:latest.features[0]", Some(28), "at least two pointers");
    let yaml = with_features("      - {name: Bad, json: /x}\n");
    expect(&yaml, "function_config.hyperfaas-echo:latest.features[0]", Some(28), "\"Bad\" is not valid");
}

#[test]
fn payload_features_that_are_not_a_list_or_of_an_unused_image_are_checked_too() {
    let yaml = BASE.replace("      quota: 50000\n", "      quota: 50000\n    features: 3\n");
    let all = errors(&yaml);
    let e = &all.0[0];
    assert!(e.path.ends_with("features"), "{all}");
    assert!(e.line.is_some(), "{all}");
    // An image no phase uses still has its features checked.
    let yaml = format!("{BASE}  unused:latest:\n    type: echo\n").replace(
        "data_providers:\n",
        "  unused:latest:\n    memory: 64MB\n    features:\n      - {name: x, json: nope}\ndata_providers:\n",
    );
    expect(&yaml, "function_config.unused:latest.features[0]", Some(30), "not a JSON pointer");
}

/// `BASE` with its phases replaced by `phases` (YAML list items).
fn with_phases(phases: &str, extra: &str) -> String {
    let start = BASE.find("  phases:\n").unwrap();
    let end = BASE.find("function_config:").unwrap();
    format!("{extra}{}  phases:\n{phases}{}", &BASE[..start], &BASE[end..])
}

#[test]
fn a_schedule_too_large_to_build_is_refused_naming_the_phases_and_the_count() {
    // 100 000 calls/s for an hour: 360 M calls, an out-of-memory kill if built.
    let yaml = with_phases(
        "    - {name: typo, type: constant, duration: 1h, start_rps: 100000, image_tag: hyperfaas-echo:latest}\n\
         \x20   - {name: fine, type: constant, duration: 10s, start_rps: 2, image_tag: hyperfaas-echo:latest}\n",
        "",
    )
    .replace("max_duration: 1m", "max_duration: 2h");
    // Counted from the phases: refused without building 360 M calls.
    let all = errors(&yaml);
    let e = all.at("workload.phases").unwrap_or_else(|| panic!("no error at workload.phases; got:\n{all}"));
    assert!(
        matches!(e.problem, Problem::TooManyCalls { planned: 360_000_020, cap: 20_000_000, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("360000020 calls") && text.contains("typo (360000000)"), "{text}");
    assert!(text.contains("max_scheduled_calls"), "says how to allow it: {text}");

    // The cap is the file's to raise; and a normal workload is far below it.
    let raised = format!("max_scheduled_calls: 400000000\n{yaml}");
    let yaml_ok = Workload::from_yaml(&raised).map(|_| ());
    assert!(yaml_ok.is_ok(), "{yaml_ok:?}");
    let lowered = format!("max_scheduled_calls: 100\n{BASE}");
    assert!(Workload::from_yaml(BASE).is_ok());
    let e = errors(&lowered);
    assert!(e.at("workload.phases").is_some(), "BASE schedules more than 100 calls: {e}");
    expect("max_scheduled_calls: 0\n", "max_scheduled_calls", Some(1), "at least 1");
}
