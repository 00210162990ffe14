//! The Azure Functions 2019 trace (`AzureFunctionsDataset2019.md` in
//! Azure/AzurePublicDataset), one day per file set:
//!
//! - `invocations_per_function_md.anon.dNN.csv`: `HashOwner, HashApp,
//!   HashFunction, Trigger, 1, 2, …, 1440` (invocations per minute). A slice
//!   may have fewer minute columns, but they must be `1..=K` without a gap.
//! - `function_durations_percentiles.anon.dNN.csv`: `HashOwner, HashApp,
//!   HashFunction, Average, Count, Minimum, Maximum, percentile_Average_0, _1,
//!   _25, _50, _75, _99, _100` (ms). Only `Average` and the percentiles are read.
//! - `app_memory_percentiles.anon.dNN.csv` (optional): `HashOwner, HashApp,
//!   SampleCount, AverageAllocatedMb, AverageAllocatedMb_pct1, _pct5, _pct25,
//!   _pct50, _pct75, _pct95, _pct99, _pct100` (MB, per application).
//!
//! Durations and memory (one row per function or application, tens of
//! thousands) are held in maps; the invocations file, the large one, is read
//! twice as a stream: once for each function's total in the window (to
//! select), once for the selected functions' per-minute counts. Only the
//! window's minute columns are parsed. A function or app listed twice in the
//! durations or memory file keeps its first row.

use std::collections::HashMap;
use std::path::Path;

use rand_chacha::ChaCha8Rng;

use super::csv::{CsvReader, number};
use super::error::{TraceError, TraceErrorKind};
use super::select::{Candidate, stratified};
use super::{Selection, Trace, TraceFunction, TraceSpec, WorkDist, window};

/// Percentile columns of the durations file, with their percentile.
pub const DURATION_PERCENTILES: [(&str, f64); 7] = [
    ("percentile_Average_0", 0.0),
    ("percentile_Average_1", 1.0),
    ("percentile_Average_25", 25.0),
    ("percentile_Average_50", 50.0),
    ("percentile_Average_75", 75.0),
    ("percentile_Average_99", 99.0),
    ("percentile_Average_100", 100.0),
];
/// Percentile columns of the memory file, with their percentile.
pub const MEMORY_PERCENTILES: [(&str, f64); 8] = [
    ("AverageAllocatedMb_pct1", 1.0),
    ("AverageAllocatedMb_pct5", 5.0),
    ("AverageAllocatedMb_pct25", 25.0),
    ("AverageAllocatedMb_pct50", 50.0),
    ("AverageAllocatedMb_pct75", 75.0),
    ("AverageAllocatedMb_pct95", 95.0),
    ("AverageAllocatedMb_pct99", 99.0),
    ("AverageAllocatedMb_pct100", 100.0),
];
const KEY_COLUMNS: [&str; 4] = ["HashOwner", "HashApp", "HashFunction", "Trigger"];

/// One function's durations row.
#[derive(Debug)]
struct DurationRow {
    average_ms: f64,
    dist: WorkDist,
}

/// What the first pass keeps of one function.
#[derive(Debug)]
struct Seen {
    line: u64,
    owner: String,
    app: String,
    function: String,
    trigger: String,
    invocations: u64,
}

pub(crate) fn load(spec: TraceSpec, rng: &mut ChaCha8Rng) -> Result<Trace, TraceError> {
    let durations_path = spec.durations.clone().unwrap_or_default();
    let durations = read_durations(&durations_path)?;
    let memory = spec.memory.as_deref().map(read_memory).transpose()?;

    // Pass 1: every function's invocations in the window.
    let mut reader = CsvReader::open(&spec.invocations)?;
    let key: Vec<usize> = KEY_COLUMNS.iter().map(|c| reader.column(c)).collect::<Result<_, _>>()?;
    let minute_columns = minute_columns(&reader)?;
    let available = u32::try_from(minute_columns.len()).unwrap_or(u32::MAX);
    let (first, last) = window(&spec, available).map_err(|k| TraceError::new(reader.path(), Some(1), k))?;
    let window_columns = &minute_columns[first as usize - 1..last as usize];
    let mut seen = Vec::new();
    while let Some(row) = reader.next_row()? {
        let mut invocations = 0u64;
        for (i, &c) in window_columns.iter().enumerate() {
            invocations += u64::from(row.field((c, ""), |f, _| minute_count(f, first + i as u32))?);
        }
        seen.push(Seen {
            line: row.line,
            owner: row.text(key[0], KEY_COLUMNS[0])?.to_string(),
            app: row.text(key[1], KEY_COLUMNS[1])?.to_string(),
            function: row.text(key[2], KEY_COLUMNS[2])?.to_string(),
            trigger: row.text(key[3], KEY_COLUMNS[3])?.to_string(),
            invocations,
        });
    }

    // Selection.
    let duration_of = |s: &Seen| durations.get(&(s.app.clone(), s.function.clone()));
    let chosen: Vec<usize> = match &spec.selection {
        Selection::Hashes(hashes) => {
            let mut out = Vec::new();
            for h in hashes {
                let matches: Vec<usize> = (0..seen.len()).filter(|&i| matches_hash(&seen[i], h)).collect();
                if matches.is_empty() {
                    return Err(TraceError::new(
                        &spec.invocations,
                        None,
                        TraceErrorKind::HashNotFound(h.clone()),
                    ));
                }
                for &i in &matches {
                    if duration_of(&seen[i]).is_none() {
                        let kind =
                            TraceErrorKind::NoDuration(format!("{}/{}", seen[i].app, seen[i].function));
                        return Err(TraceError::new(&durations_path, None, kind));
                    }
                }
                out.extend(matches);
            }
            out.sort_unstable();
            out.dedup();
            out
        }
        Selection::Sample(n) => {
            let eligible: Vec<usize> = (0..seen.len())
                .filter(|&i| seen[i].invocations > 0 && duration_of(&seen[i]).is_some())
                .collect();
            if eligible.is_empty() {
                return Err(TraceError::new(&spec.invocations, None, TraceErrorKind::NothingToSelect));
            }
            let candidates: Vec<Candidate> = eligible
                .iter()
                .map(|&i| Candidate {
                    invocations: seen[i].invocations,
                    mean_duration_ms: duration_of(&seen[i]).map_or(0.0, |d| d.average_ms),
                })
                .collect();
            stratified(&candidates, *n as usize, rng).into_iter().map(|k| eligible[k]).collect()
        }
    };
    let candidates = seen.iter().filter(|s| s.invocations > 0 && duration_of(s).is_some()).count() as u64;

    // Pass 2: the chosen functions' per-minute counts.
    let mut counts: HashMap<u64, Vec<(u32, u32)>> = HashMap::with_capacity(chosen.len());
    let wanted: Vec<u64> = chosen.iter().map(|&i| seen[i].line).collect();
    let mut reader = CsvReader::open(&spec.invocations)?;
    let mut next = 0;
    while next < wanted.len() {
        let Some(row) = reader.next_row()? else { break };
        if row.line != wanted[next] {
            continue;
        }
        next += 1;
        let mut minutes = Vec::new();
        for (i, &c) in window_columns.iter().enumerate() {
            let minute = first + i as u32;
            let n = row.field((c, ""), |f, _| minute_count(f, minute))?;
            if n > 0 {
                minutes.push((minute - first, n));
            }
        }
        counts.insert(row.line, minutes);
    }

    let functions = chosen
        .into_iter()
        .map(|i| {
            let s = &seen[i];
            let duration = durations.get(&(s.app.clone(), s.function.clone())).map(|d| d.dist.clone());
            TraceFunction {
                owner: Some(s.owner.clone()),
                app: s.app.clone(),
                function: s.function.clone(),
                trigger: Some(s.trigger.clone()),
                line: s.line,
                counts: counts.remove(&s.line).unwrap_or_default(),
                duration: duration.unwrap_or(WorkDist::Samples(vec![0.0])),
                memory: memory.as_ref().and_then(|m| m.get(&s.app).cloned()),
            }
        })
        .collect();
    Ok(Trace { spec, functions, minutes: last - first + 1, functions_in_file: seen.len() as u64, candidates })
}

/// Whether `hash` names this function: its `HashFunction`, or `HashApp/HashFunction`.
fn matches_hash(s: &Seen, hash: &str) -> bool {
    match hash.split_once('/') {
        Some((app, function)) => s.app == app && s.function == function,
        None => s.function == hash,
    }
}

fn minute_count(field: &str, minute: u32) -> Result<u32, TraceErrorKind> {
    field.trim().parse::<u32>().map_err(|_| TraceErrorKind::BadCount {
        column: format!("minute {minute}"),
        value: field.trim().to_string(),
    })
}

/// The column of each minute `1..=K`, in order; any other unknown column is an error.
fn minute_columns(reader: &CsvReader) -> Result<Vec<usize>, TraceError> {
    let at_header = |k| TraceError::new(reader.path(), Some(1), k);
    let mut by_minute: Vec<Option<usize>> = Vec::new();
    for (c, name) in reader.header().iter().enumerate() {
        if KEY_COLUMNS.contains(&name.as_str()) {
            continue;
        }
        match name.parse::<u32>() {
            Ok(m) if (1..=super::MINUTES_PER_DAY).contains(&m) => {
                let m = m as usize;
                if by_minute.len() < m {
                    by_minute.resize(m, None);
                }
                by_minute[m - 1] = Some(c);
            }
            _ => return Err(at_header(TraceErrorKind::UnexpectedColumn(name.clone()))),
        }
    }
    if by_minute.is_empty() {
        return Err(at_header(TraceErrorKind::MissingColumn("1".into())));
    }
    by_minute
        .iter()
        .enumerate()
        .map(|(m, c)| c.ok_or_else(|| at_header(TraceErrorKind::MinuteGap(m as u32 + 1))))
        .collect()
}

/// Sorted `(percentile, value)` points from a row; values sorted too, so the
/// interpolated distribution is monotone.
fn points(values: Vec<f64>, percentiles: impl Iterator<Item = f64>) -> WorkDist {
    let mut values = values;
    values.sort_by(f64::total_cmp);
    WorkDist::Percentiles(percentiles.zip(values).collect())
}

fn read_durations(path: &Path) -> Result<HashMap<(String, String), DurationRow>, TraceError> {
    let mut reader = CsvReader::open(path)?;
    let app = reader.column("HashApp")?;
    let function = reader.column("HashFunction")?;
    let average = reader.column("Average")?;
    let pcts: Vec<usize> =
        DURATION_PERCENTILES.iter().map(|(c, _)| reader.column(c)).collect::<Result<_, _>>()?;
    let mut out = HashMap::new();
    while let Some(row) = reader.next_row()? {
        let key = (row.text(app, "HashApp")?.to_string(), row.text(function, "HashFunction")?.to_string());
        let average_ms = row.field((average, "Average"), number)?;
        let mut values = Vec::with_capacity(pcts.len());
        for (&c, (name, _)) in pcts.iter().zip(DURATION_PERCENTILES) {
            values.push(row.field((c, name), number)?);
        }
        let dist = points(values, DURATION_PERCENTILES.iter().map(|p| p.1));
        out.entry(key).or_insert(DurationRow { average_ms, dist });
    }
    Ok(out)
}

fn read_memory(path: &Path) -> Result<HashMap<String, WorkDist>, TraceError> {
    let mut reader = CsvReader::open(path)?;
    let app = reader.column("HashApp")?;
    let pcts: Vec<usize> =
        MEMORY_PERCENTILES.iter().map(|(c, _)| reader.column(c)).collect::<Result<_, _>>()?;
    let mut out = HashMap::new();
    while let Some(row) = reader.next_row()? {
        let key = row.text(app, "HashApp")?.to_string();
        let mut values = Vec::with_capacity(pcts.len());
        for (&c, (name, _)) in pcts.iter().zip(MEMORY_PERCENTILES) {
            values.push(row.field((c, name), number)?);
        }
        out.entry(key).or_insert_with(|| points(values, MEMORY_PERCENTILES.iter().map(|p| p.1)));
    }
    Ok(out)
}
