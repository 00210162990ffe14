//! The whole file: parse, then hand each section to its validator, then
//! check the calls the sections plan against `max_scheduled_calls`.

use std::collections::BTreeMap;
use std::path::Path;

use super::errors::{Problem, Problems, WorkloadError, WorkloadErrors};
use super::raw::RawWorkload;
use super::top_level::{self, TopLevel};
use super::validated::{PhaseSource, Workload};
use super::{functions, patterns, phases, traces, warmup};
use crate::yaml_path::YamlPath;

impl Workload {
    /// Parses and validates a workload file's text. Relative trace file
    /// paths (`trace:`) are taken from the working directory.
    pub fn from_yaml(text: &str) -> Result<Workload, WorkloadErrors> {
        Workload::from_yaml_in(text, Path::new(""))
    }

    /// [`Workload::from_yaml`], with relative trace file paths taken from `dir`.
    pub fn from_yaml_in(text: &str, dir: &Path) -> Result<Workload, WorkloadErrors> {
        let mut raw: RawWorkload =
            serde_yaml_ng::from_str(text).map_err(|e| WorkloadErrors(vec![WorkloadError::from_yaml(&e)]))?;
        if let Some(trace) = &mut raw.trace {
            trace.rebase(dir);
        }
        Workload::from_raw(raw, text)
    }

    /// Validates what the user wrote. `text` is the file the raw form came
    /// from, used only to find the line of each problem (may be empty).
    pub fn from_raw(raw: RawWorkload, text: &str) -> Result<Workload, WorkloadErrors> {
        let RawWorkload {
            leaf_address,
            max_duration,
            timeout,
            generate_workload,
            seed,
            patterns,
            workload,
            function_config,
            data_providers,
            arrival,
            max_in_flight,
            max_scheduled_calls,
            trace,
            warmup,
        } = raw;
        let mut p = Problems::new(text);
        let root = YamlPath::root();
        let arrival = arrival.unwrap_or_default();
        let top = top_level::validate(
            &mut p,
            &root,
            top_level::RawTopLevel {
                leaf_address,
                max_duration,
                timeout,
                max_in_flight,
                max_scheduled_calls,
            },
        );
        let raw_phases = workload.unwrap_or_default();
        let wpath = root.key("workload");
        top_level::check_repeated(&mut p, &wpath, &raw_phases, &top);

        // Phases, or patterns to generate them from; and the images they use,
        // with the path of the first use (for "missing function_config" errors).
        let mut used: BTreeMap<String, YamlPath> = BTreeMap::new();
        let trace = trace.and_then(|raw| traces::validate(&mut p, &root.key("trace"), raw));
        // The trace's image needs a function_config; its calls bring their own bodies.
        let trace_image = trace.as_ref().map(|t| t.image_tag.to_string());
        let phases = if generate_workload {
            if !raw_phases.phases.is_empty() {
                p.push(
                    &wpath.key("phases"),
                    Problem::Conflict("phases are given but generate_workload is true; remove one".into()),
                );
            }
            let patterns = patterns.map(|ps| ps.0).unwrap_or_default();
            PhaseSource::Generated(patterns::validate_all(&mut p, &root, patterns, arrival, &mut used))
        } else {
            if raw_phases.phases.is_empty() && trace_image.is_none() {
                p.push(&wpath.key("phases"), Problem::Missing);
            }
            PhaseSource::Manual(phases::validate_all(
                &mut p,
                &wpath,
                raw_phases.phases,
                arrival,
                top.max_duration,
                &mut used,
            ))
        };
        if let Some(tag) = &trace_image {
            used.entry(tag.clone()).or_insert_with(|| root.key("trace").key("image_tag"));
        }
        let trace_minute = trace.as_ref().map(|t| t.minute_length);
        let warmup = warmup.and_then(|raw| warmup::validate(&mut p, &root.key("warmup"), raw, trace_minute));
        let functions = functions::validate_all(
            &mut p,
            &root,
            &used,
            trace_image.as_deref(),
            &function_config,
            &data_providers,
        );

        if !p.errors.is_empty() {
            return Err(WorkloadErrors(p.errors));
        }
        let TopLevel {
            leaf_address,
            max_duration: Some(max_duration),
            call_timeout: Some(call_timeout),
            max_in_flight,
            max_scheduled_calls: Some(max_scheduled_calls),
        } = top
        else {
            unreachable!("a missing duration or bad cap was reported above; this is a bug")
        };
        // Go's int64 seed, reinterpreted: negative seeds stay distinct.
        let seed = seed.map_or(0, |s| u64::from_ne_bytes(s.to_ne_bytes()));
        // Counted from the phases, before anything is built.
        let (resolved, generated) = crate::schedule::resolve_phases(&phases, seed, max_duration);
        let mut planned: Vec<(&str, u64)> = resolved
            .iter()
            .map(|ph| (ph.name.as_str(), crate::schedule::planned_calls(ph, max_duration)))
            .collect();
        let Ok(trace) = traces::load_checked(&mut p, &root.key("trace"), trace, seed) else {
            return Err(WorkloadErrors(p.errors));
        };
        let trace_calls = trace.as_ref().map_or(0, crate::trace::Trace::planned_calls);
        planned.extend(trace.as_ref().map(|t| (t.spec.name.as_str(), trace_calls)));
        let total = planned.iter().fold(0u64, |sum, (_, n)| sum.saturating_add(*n));
        if total > max_scheduled_calls {
            planned.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
            let largest = planned.iter().take(3).map(|(name, n)| format!("{name} ({n})")).collect::<Vec<_>>();
            let path = if trace_calls * 2 > total {
                root.key("trace")
            } else if generated {
                root.key("patterns")
            } else {
                wpath.key("phases")
            };
            p.push(
                &path,
                Problem::TooManyCalls {
                    planned: total,
                    cap: max_scheduled_calls,
                    largest: largest.join(", "),
                },
            );
            return Err(WorkloadErrors(p.errors));
        }
        Ok(Workload {
            leaf_address,
            max_duration,
            call_timeout,
            seed,
            max_in_flight,
            phases,
            functions,
            trace,
            warmup,
        })
    }

    /// Images the workload calls.
    pub fn image_tags(&self) -> impl Iterator<Item = &hyperfake_core::ImageTag> {
        self.functions.keys()
    }
}
