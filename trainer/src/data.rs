//! Reading training rows from the processing step's SQLite databases (schema in
//! `docs/units.md`, "Training database schema").
//!
//! Each image gets its own [`Schema`]: the five fixed inputs, then the payload
//! features its function declared (table `payload_features`, in `position`
//! order, read from the columns `feature_<name>`), and the three fixed targets,
//! plus `response_size_bytes` and `worker_overhead_ns` when the table has both
//! columns. Databases without these (HyperFake's, older hyperfake runs) give
//! exactly the old 5 inputs and 3 targets.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hyperfake_core::ImageTag;
use hyperfake_core::payload::{PayloadFeature, PayloadFeatures};
use hyperfake_model::{FEATURES, HostBaseline, TARGETS};
use indicatif::ProgressBar;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::baseline::{self, CallLoad};

/// Which table to train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// One row per call.
    #[value(name = "training_data")]
    TrainingData,
    /// One row per group of calls (means), as HyperFake's trainers used.
    #[value(name = "training_data_avg")]
    TrainingDataAvg,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::TrainingData => "training_data",
            Table::TrainingDataAvg => "training_data_avg",
        }
    }
}

pub use rundb::training::{
    COLD_STARTS_TABLE, EXTRA_TARGETS, PAYLOAD_FEATURES_TABLE, RESPONSE_SIZE, WORKER_OVERHEAD, unit_of,
};

/// The columns one image's models read and predict, in model order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// The payload features (model inputs 5, 6, …), in declaration order.
    pub payload_features: PayloadFeatures,
    /// Input column names: the five of [`FEATURES`], then `feature_<name>` per payload feature.
    pub inputs: Vec<String>,
    /// Target column names: the three of [`TARGETS`], then [`EXTRA_TARGETS`] when present.
    pub targets: Vec<String>,
}

impl Schema {
    /// HyperFake's: 5 inputs, 3 targets.
    pub fn base() -> Schema {
        Schema::new(PayloadFeatures::default(), false)
    }

    pub fn new(payload_features: PayloadFeatures, extra_targets: bool) -> Schema {
        let inputs = FEATURES
            .iter()
            .map(|s| s.to_string())
            .chain(payload_features.iter().map(PayloadFeature::column))
            .collect();
        let mut targets: Vec<String> = TARGETS.iter().map(|s| s.to_string()).collect();
        if extra_targets {
            targets.extend(EXTRA_TARGETS.iter().map(|s| s.to_string()));
        }
        Schema { payload_features, inputs, targets }
    }

    /// The model's input names as recorded in model files: the five fixed
    /// inputs, then the payload feature names (without the column prefix).
    pub fn input_names(&self) -> Vec<String> {
        FEATURES
            .iter()
            .map(|s| s.to_string())
            .chain(self.payload_features.iter().map(|f| f.name().to_string()))
            .collect()
    }

    /// Index of a target, if the schema has it.
    pub fn target(&self, name: &str) -> Option<usize> {
        self.targets.iter().position(|t| t == name)
    }

    pub fn n_inputs(&self) -> usize {
        self.inputs.len()
    }

    pub fn n_targets(&self) -> usize {
        self.targets.len()
    }
}

/// One complete training row, in the columns of its image's [`Schema`].
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Identifies the row across runs of the trainer: `<db file>/<request_id>`
    /// (or `<db file>#<rowid>` when there is no request id).
    pub key: String,
    /// `call_started_ns` on the worker's clock, for the by-time split.
    pub started_ns: Option<i64>,
    /// Inputs, [`Schema::inputs`] order.
    pub x: Vec<f64>,
    /// Targets, [`Schema::targets`] order.
    pub y: Vec<f64>,
}

/// Rows of one image, with the count of rows dropped for a NULL.
#[derive(Clone, Debug)]
pub struct ImageRows {
    pub schema: Schema,
    pub rows: Vec<Sample>,
    /// Rows dropped for a NULL (or non-finite value) in a used column.
    pub dropped_null: u64,
    /// NULLs per used column among the dropped rows (a row with two NULLs
    /// counts in both columns).
    pub nulls_by_column: BTreeMap<String, u64>,
    /// Measured instance start durations (ns) from `cold_starts`.
    pub cold_start_ns: Vec<f64>,
}

impl ImageRows {
    pub fn new(schema: Schema) -> ImageRows {
        ImageRows {
            schema,
            rows: vec![],
            dropped_null: 0,
            nulls_by_column: BTreeMap::new(),
            cold_start_ns: vec![],
        }
    }
}

impl Default for ImageRows {
    fn default() -> Self {
        ImageRows::new(Schema::base())
    }
}

/// Reading options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Use the declared payload features as inputs (off: the five fixed inputs only).
    pub payload_features: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { payload_features: true }
    }
}

/// Everything read from the databases.
#[derive(Debug)]
pub struct Dataset {
    pub sources: Vec<PathBuf>,
    pub table: Table,
    pub images: BTreeMap<ImageTag, ImageRows>,
    /// Rows without an image tag (cannot be attributed; dropped).
    pub dropped_no_image: u64,
    /// Things worth telling the reader (declared features without a column, …).
    pub notes: Vec<String>,
    /// The worker host's load besides the calls, over every database whose
    /// rows have start times ([`crate::baseline`]). Each database is taken
    /// as one host's run.
    pub host_baseline: Option<HostBaseline>,
}

/// What one database declares and has, before rows are read.
struct DbLayout {
    /// Columns of the training table.
    columns: BTreeSet<String>,
    /// Declared payload features per image (normalised tag).
    features: BTreeMap<ImageTag, PayloadFeatures>,
    /// Start durations per image.
    cold_starts: BTreeMap<ImageTag, Vec<f64>>,
    /// Images with rows in the training table.
    images: BTreeSet<ImageTag>,
}

impl Dataset {
    /// Reads `table` from every database, dropping (and counting) rows with a
    /// NULL in any used column.
    pub fn load(dbs: &[PathBuf], table: Table, progress: &ProgressBar) -> Result<Dataset> {
        Dataset::load_with(dbs, table, LoadOptions::default(), progress)
    }

    pub fn load_with(
        dbs: &[PathBuf],
        table: Table,
        opts: LoadOptions,
        progress: &ProgressBar,
    ) -> Result<Dataset> {
        if dbs.is_empty() {
            bail!("no database given (--db)");
        }
        let mut conns = Vec::with_capacity(dbs.len());
        let mut layouts = Vec::with_capacity(dbs.len());
        for db in dbs {
            let conn = rundb::open_untrusted(db).with_context(|| format!("cannot open {}", db.display()))?;
            layouts.push(
                layout(&conn, table).with_context(|| format!("reading the layout of {}", db.display()))?,
            );
            conns.push(conn);
        }
        let mut notes = vec![];
        let schemas = schemas(dbs, &layouts, opts, &mut notes)?;
        let mut ds = Dataset {
            sources: dbs.to_vec(),
            table,
            images: BTreeMap::new(),
            dropped_no_image: 0,
            notes,
            host_baseline: None,
        };
        let mut bases = vec![];
        for ((db, conn), layout) in dbs.iter().zip(&conns).zip(&layouts) {
            let before: BTreeMap<ImageTag, usize> =
                ds.images.iter().map(|(tag, img)| (tag.clone(), img.rows.len())).collect();
            ds.load_one(db, conn, layout, &schemas, progress)
                .with_context(|| format!("reading {} from {}", table.name(), db.display()))?;
            let mut calls: Vec<CallLoad> = ds
                .images
                .iter()
                .flat_map(|(tag, img)| &img.rows[before.get(tag).copied().unwrap_or(0)..])
                .filter_map(CallLoad::of)
                .collect();
            bases.extend(baseline::base_loads(&mut calls));
            for (tag, durations) in &layout.cold_starts {
                if let Some(img) = ds.images.get_mut(tag) {
                    img.cold_start_ns.extend(durations);
                }
            }
        }
        ds.host_baseline = baseline::host_baseline(&bases);
        if let Some(b) = &ds.host_baseline {
            let median = b.median();
            ds.notes.push(format!(
                "host load besides the calls (from {} calls; the fake worker adds it to its simulated load): median {:.3} cores, {:.0} MiB",
                bases.len(),
                median.cpu_cores,
                median.ram_bytes / (1024.0 * 1024.0)
            ));
        }
        Ok(ds)
    }

    fn load_one(
        &mut self,
        db: &Path,
        conn: &Connection,
        layout: &DbLayout,
        schemas: &BTreeMap<ImageTag, Schema>,
        progress: &ProgressBar,
    ) -> Result<()> {
        let source = db.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let total: i64 =
            conn.query_row(&format!("SELECT COUNT(*) FROM {}", self.table.name()), [], |r| r.get(0))?;
        progress.set_length(progress.length().unwrap_or(0) + total.unsigned_abs());
        // Every column any image uses; each row reads its own image's subset.
        let mut all_cols: Vec<String> = vec![];
        for s in schemas.values() {
            for c in s.inputs.iter().chain(&s.targets) {
                if !all_cols.contains(c) {
                    all_cols.push(c.clone());
                }
            }
        }
        if all_cols.is_empty() {
            // No image has rows to read (e.g. a run whose calls were all dropped).
            return Ok(());
        }
        let index: BTreeMap<&str, usize> =
            all_cols.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
        let cols = all_cols.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        // The row key and the time of a call, from whichever columns the
        // table has: hyperfake's `request_id` and `call_started_ns`, or
        // HyperFake's `request_id` and `timestamp`.
        let has = |c: &str| layout.columns.contains(c);
        let id = if has("request_id") { "request_id" } else { "NULL" };
        let time = TIME_COLUMNS.into_iter().find(|c| has(c)).unwrap_or("NULL");
        let sql = format!("SELECT rowid, image_tag, {id}, {time}, {cols} FROM {}", self.table.name());
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut n = 0u64;
        // Positions (in the SELECT) of each image's inputs and targets.
        let positions: BTreeMap<&ImageTag, (Vec<usize>, Vec<usize>)> = schemas
            .iter()
            .map(|(tag, s)| {
                let pos = |c: &Vec<String>| c.iter().map(|c| 4 + index[c.as_str()]).collect::<Vec<_>>();
                (tag, (pos(&s.inputs), pos(&s.targets)))
            })
            .collect();
        while let Some(row) = rows.next()? {
            n += 1;
            if n.is_multiple_of(4096) {
                progress.inc(4096);
            }
            let rowid: i64 = row.get(0)?;
            let Some(image) = row.get::<_, Option<String>>(1)? else {
                self.dropped_no_image += 1;
                continue;
            };
            let tag = ImageTag::from(image).normalized();
            let (Some(schema), Some((xpos, ypos))) = (schemas.get(&tag), positions.get(&tag)) else {
                continue;
            };
            let entry = self.images.entry(tag).or_insert_with(|| ImageRows::new(schema.clone()));
            let mut missing: Vec<usize> = vec![];
            let mut read = |positions: &[usize]| -> rusqlite::Result<Vec<f64>> {
                let mut out = Vec::with_capacity(positions.len());
                for &p in positions {
                    match row.get::<_, Option<f64>>(p)? {
                        Some(v) if v.is_finite() => out.push(v),
                        _ => {
                            out.push(f64::NAN);
                            missing.push(p - 4);
                        }
                    }
                }
                Ok(out)
            };
            let x = read(xpos)?;
            let y = read(ypos)?;
            if !missing.is_empty() {
                entry.dropped_null += 1;
                for i in missing {
                    *entry.nulls_by_column.entry(all_cols[i].clone()).or_default() += 1;
                }
                continue;
            }
            let key = match row.get::<_, Option<String>>(2)? {
                Some(id) => format!("{source}/{id}"),
                None => format!("{source}#{rowid}"),
            };
            let started_ns = time_ns(row.get_ref(3)?)
                .with_context(|| format!("row {rowid}: column {time} is not a time"))?;
            entry.rows.push(Sample { key, started_ns, x, y });
        }
        progress.inc(n % 4096);
        Ok(())
    }

    /// The run name: the first database's file stem (`training_data/<run>.db`).
    pub fn run_name(&self) -> String {
        self.sources
            .first()
            .and_then(|p| p.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into())
    }
}

/// The columns a call's time is read from, in order of preference:
/// hyperfake's worker-clock start, HyperFake's `timestamp`.
pub const TIME_COLUMNS: [&str; 2] = ["call_started_ns", "timestamp"];

/// A time column's value as ns since the epoch: an integer is taken as ns, a
/// real is rounded, a text is an integer or an RFC 3339 time
/// (`2025-06-06T12:00:00.123Z`, also with a space for the `T`), as HyperFake
/// writes it. NULL is `None`; anything else is an error.
fn time_ns(value: rusqlite::types::ValueRef<'_>) -> Result<Option<i64>> {
    use rusqlite::types::ValueRef;
    Ok(match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i),
        #[allow(clippy::cast_possible_truncation)]
        ValueRef::Real(r) if r.is_finite() => Some(r.round() as i64),
        ValueRef::Text(t) => {
            let text = std::str::from_utf8(t).context("not UTF-8")?.trim();
            match text.parse::<i64>() {
                Ok(i) => Some(i),
                Err(_) => {
                    let at = humantime::parse_rfc3339_weak(text)
                        .with_context(|| format!("{text:?} is neither ns nor an RFC 3339 time"))?;
                    let since = at.duration_since(std::time::UNIX_EPOCH).context("before 1970")?;
                    Some(i64::try_from(since.as_nanos()).context("too far in the future")?)
                }
            }
        }
        other => bail!("a {:?} value", other.data_type()),
    })
}

fn layout(conn: &Connection, table: Table) -> Result<DbLayout> {
    if !rundb::has_table(conn, table.name())? {
        bail!("no table {}", table.name());
    }
    let columns: BTreeSet<String> = rundb::columns(conn, table.name())?.into_iter().collect();
    for c in FEATURES.iter().chain(TARGETS.iter()).chain(["image_tag"].iter()) {
        if !columns.contains(*c) {
            bail!("table {} has no column {c}", table.name());
        }
    }
    let mut features: BTreeMap<ImageTag, Vec<(i64, String, String)>> = BTreeMap::new();
    if rundb::has_table(conn, PAYLOAD_FEATURES_TABLE)? {
        let mut stmt = conn.prepare(&format!(
            "SELECT DISTINCT image_tag, position, name, declaration FROM {PAYLOAD_FEATURES_TABLE} \
             ORDER BY image_tag, position"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (Some(tag), Some(pos), Some(name), Some(decl)) = (
                r.get::<_, Option<String>>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
            ) else {
                bail!(
                    "{PAYLOAD_FEATURES_TABLE} has a row with a NULL image_tag, position, name or declaration"
                );
            };
            features.entry(ImageTag::from(tag).normalized()).or_default().push((pos, name, decl));
        }
    }
    let mut parsed = BTreeMap::new();
    for (tag, list) in features {
        // Runs of one database may repeat the same declarations; a position
        // declared twice differently is a conflict.
        let mut by_pos: BTreeMap<i64, (String, String)> = BTreeMap::new();
        for (pos, name, decl) in list {
            if let Some((n0, d0)) = by_pos.get(&pos)
                && (n0 != &name || d0 != &decl)
            {
                bail!(
                    "{PAYLOAD_FEATURES_TABLE}: image {tag} declares position {pos} twice differently \
                     ({n0}: {d0} and {name}: {decl})"
                );
            }
            by_pos.insert(pos, (name, decl));
        }
        let mut list = vec![];
        for (pos, (name, decl)) in by_pos {
            let f: PayloadFeature = serde_json::from_str(&decl).with_context(|| {
                format!("{PAYLOAD_FEATURES_TABLE}: image {tag} position {pos}: bad declaration {decl}")
            })?;
            if f.name() != name {
                bail!(
                    "{PAYLOAD_FEATURES_TABLE}: image {tag} position {pos}: name {name:?} but the declaration \
                     names {:?}",
                    f.name()
                );
            }
            list.push(f);
        }
        let pf = PayloadFeatures::try_from(list)
            .with_context(|| format!("{PAYLOAD_FEATURES_TABLE}: image {tag}"))?;
        parsed.insert(tag, pf);
    }
    let mut cold_starts: BTreeMap<ImageTag, Vec<f64>> = BTreeMap::new();
    if rundb::has_table(conn, COLD_STARTS_TABLE)? {
        let mut stmt = conn.prepare(&format!(
            "SELECT image_tag, duration_ns FROM {COLD_STARTS_TABLE} \
             WHERE image_tag IS NOT NULL AND duration_ns IS NOT NULL"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let d: f64 = r.get(1)?;
            if d.is_finite() && d >= 0.0 {
                cold_starts.entry(ImageTag::from(r.get::<_, String>(0)?).normalized()).or_default().push(d);
            }
        }
    }
    let mut images = BTreeSet::new();
    let mut stmt = conn
        .prepare(&format!("SELECT DISTINCT image_tag FROM {} WHERE image_tag IS NOT NULL", table.name()))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        images.insert(ImageTag::from(r.get::<_, String>(0)?).normalized());
    }
    Ok(DbLayout { columns, features: parsed, cold_starts, images })
}

/// The schema of every image found in any database. Declarations must agree
/// across databases; extra targets are used when every database has them;
/// a declared feature whose column is missing is left out (with a note).
fn schemas(
    dbs: &[PathBuf],
    layouts: &[DbLayout],
    opts: LoadOptions,
    notes: &mut Vec<String>,
) -> Result<BTreeMap<ImageTag, Schema>> {
    let extra = layouts.iter().all(|l| EXTRA_TARGETS.iter().all(|c| l.columns.contains(*c)));
    let mut declared: BTreeMap<ImageTag, (PayloadFeatures, &Path)> = BTreeMap::new();
    for (db, l) in dbs.iter().zip(layouts) {
        for (tag, pf) in &l.features {
            match declared.get(tag) {
                Some((prev, prev_db)) if prev != pf => bail!(
                    "image {tag} declares different payload features in {} ({}) and {} ({})",
                    prev_db.display(),
                    prev.to_json(),
                    db.display(),
                    pf.to_json()
                ),
                Some(_) => {}
                None => {
                    declared.insert(tag.clone(), (pf.clone(), db.as_path()));
                }
            }
        }
    }
    // Every image with rows gets a schema.
    let mut out = BTreeMap::new();
    let tags: BTreeSet<&ImageTag> = layouts.iter().flat_map(|l| &l.images).collect();
    for tag in tags {
        let mut kept = vec![];
        if opts.payload_features
            && let Some((pf, _)) = declared.get(tag)
        {
            for f in pf.iter() {
                let col = f.column();
                let missing: Vec<String> = dbs
                    .iter()
                    .zip(layouts)
                    .filter(|(_, l)| !l.columns.contains(&col))
                    .map(|(db, _)| db.display().to_string())
                    .collect();
                if missing.is_empty() {
                    kept.push(f.clone());
                } else {
                    notes.push(format!(
                        "{tag}: payload feature {} is declared but column {col} is missing in {}; not used",
                        f.name(),
                        missing.join(", ")
                    ));
                }
            }
        }
        let pf = PayloadFeatures::try_from(kept).with_context(|| format!("payload features of {tag}"))?;
        out.insert(tag.clone(), Schema::new(pf, extra));
    }
    Ok(out)
}
