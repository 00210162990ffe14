//! The Azure Functions 2021 invocation trace (`AzureFunctionsInvocationTrace2021.md`
//! in Azure/AzurePublicDataset): one row per invocation, `app,func,end_timestamp,duration`,
//! times in seconds from the trace's start; `func` is unique only within its app.
//!
//! Each invocation counts in the minute it started (`end_timestamp −
//! duration`, 1-based: seconds 0–59 are minute 1), so the per-minute counts
//! go through the same arrival model as the 2019 trace; the calls of a
//! function carry durations drawn from its own recorded durations in the
//! window. The trace has no memory column, so calls carry no memory. Two
//! streaming passes: totals per function (to select), then the selected
//! functions' minutes and durations.

use std::collections::{BTreeMap, HashMap};

use rand_chacha::ChaCha8Rng;

use super::csv::{CsvReader, number};
use super::error::{TraceError, TraceErrorKind};
use super::select::{Candidate, stratified};
use super::{Selection, Trace, TraceFunction, TraceSpec, WorkDist, window};

pub const COLUMNS: [&str; 4] = ["app", "func", "end_timestamp", "duration"];

/// What the first pass keeps of one function.
#[derive(Debug)]
struct Seen {
    line: u64,
    app: String,
    function: String,
    invocations: u64,
    duration_sum_ms: f64,
}

/// One parsed row: its key, 1-based start minute and duration in ms.
fn read_row(row: &super::csv::Row<'_>, cols: &[usize]) -> Result<(String, String, u32, f64), TraceError> {
    let app = row.text(cols[0], COLUMNS[0])?.to_string();
    let function = row.text(cols[1], COLUMNS[1])?.to_string();
    let end = row.field((cols[2], COLUMNS[2]), number)?;
    let duration = row.field((cols[3], COLUMNS[3]), number)?;
    let start = (end - duration).max(0.0);
    let minute = u32::try_from(super::arrivals::to_u64(start / 60.0)).unwrap_or(u32::MAX - 1) + 1;
    Ok((app, function, minute, duration * 1000.0))
}

pub(crate) fn load(spec: TraceSpec, rng: &mut ChaCha8Rng) -> Result<Trace, TraceError> {
    // Pass 1: per function, invocations from first_minute (to the window's
    // end when it has one); and the last minute of the file.
    let mut reader = CsvReader::open(&spec.invocations)?;
    let cols: Vec<usize> = COLUMNS.iter().map(|c| reader.column(c)).collect::<Result<_, _>>()?;
    let bound = spec.minutes.map(|n| spec.first_minute.saturating_add(n - 1));
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut seen: Vec<Seen> = Vec::new();
    let mut last_minute = 0;
    while let Some(row) = reader.next_row()? {
        let line = row.line;
        let (app, function, minute, duration_ms) = read_row(&row, &cols)?;
        last_minute = last_minute.max(minute);
        let i = *index.entry((app.clone(), function.clone())).or_insert_with(|| {
            seen.push(Seen { line, app, function, invocations: 0, duration_sum_ms: 0.0 });
            seen.len() - 1
        });
        if minute >= spec.first_minute && bound.is_none_or(|b| minute <= b) {
            seen[i].invocations += 1;
            seen[i].duration_sum_ms += duration_ms;
        }
    }
    let (first, last) =
        window(&spec, last_minute).map_err(|k| TraceError::new(&spec.invocations, None, k))?;

    let eligible: Vec<usize> = (0..seen.len()).filter(|&i| seen[i].invocations > 0).collect();
    let chosen: Vec<usize> = match &spec.selection {
        Selection::Hashes(hashes) => {
            let mut out = Vec::new();
            for h in hashes {
                let before = out.len();
                out.extend((0..seen.len()).filter(|&i| match h.split_once('/') {
                    Some((app, function)) => seen[i].app == app && seen[i].function == function,
                    None => seen[i].function == *h,
                }));
                if out.len() == before {
                    return Err(TraceError::new(
                        &spec.invocations,
                        None,
                        TraceErrorKind::HashNotFound(h.clone()),
                    ));
                }
            }
            out.sort_unstable();
            out.dedup();
            out
        }
        Selection::Sample(n) => {
            if eligible.is_empty() {
                return Err(TraceError::new(&spec.invocations, None, TraceErrorKind::NothingToSelect));
            }
            let candidates: Vec<Candidate> = eligible
                .iter()
                .map(|&i| Candidate {
                    invocations: seen[i].invocations,
                    mean_duration_ms: seen[i].duration_sum_ms / seen[i].invocations as f64,
                })
                .collect();
            stratified(&candidates, *n as usize, rng).into_iter().map(|k| eligible[k]).collect()
        }
    };

    // Pass 2: the chosen functions' minutes and durations in the window.
    let slot: HashMap<(&str, &str), usize> = chosen
        .iter()
        .enumerate()
        .map(|(k, &i)| ((seen[i].app.as_str(), seen[i].function.as_str()), k))
        .collect();
    let mut minutes: Vec<BTreeMap<u32, u32>> = vec![BTreeMap::new(); chosen.len()];
    let mut durations: Vec<Vec<f64>> = vec![Vec::new(); chosen.len()];
    let mut reader = CsvReader::open(&spec.invocations)?;
    while let Some(row) = reader.next_row()? {
        let (app, function, minute, duration_ms) = read_row(&row, &cols)?;
        if !(first..=last).contains(&minute) {
            continue;
        }
        if let Some(&k) = slot.get(&(app.as_str(), function.as_str())) {
            *minutes[k].entry(minute - first).or_insert(0) += 1;
            durations[k].push(duration_ms);
        }
    }

    let functions = chosen
        .iter()
        .zip(minutes.into_iter().zip(durations))
        .map(|(&i, (counts, durations))| TraceFunction {
            owner: None,
            app: seen[i].app.clone(),
            function: seen[i].function.clone(),
            trigger: None,
            line: seen[i].line,
            counts: counts.into_iter().collect(),
            // A listed function without calls in the window draws nothing.
            duration: WorkDist::Samples(if durations.is_empty() { vec![0.0] } else { durations }),
            memory: None,
        })
        .collect();
    let candidates = eligible.len() as u64;
    Ok(Trace { spec, functions, minutes: last - first + 1, functions_in_file: seen.len() as u64, candidates })
}
