//! Reading training rows from the processing step's SQLite databases (schema in
//! `docs/units.md`, "Training database schema").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hyperfake_core::ImageTag;
use hyperfake_model::{FEATURES, TARGETS};
use indicatif::ProgressBar;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

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

/// One complete training row.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Identifies the row across runs of the trainer: `<db file>/<request_id>`
    /// (or `<db file>#<rowid>` when there is no request id).
    pub key: String,
    /// `call_started_ns` on the worker's clock, for the by-time split.
    pub started_ns: Option<i64>,
    pub x: [f64; 5],
    pub y: [f64; 3],
}

/// Rows of one image, with the count of rows dropped for a NULL.
#[derive(Clone, Debug, Default)]
pub struct ImageRows {
    pub rows: Vec<Sample>,
    pub dropped_null: u64,
}

/// Everything read from the databases.
#[derive(Debug)]
pub struct Dataset {
    pub sources: Vec<PathBuf>,
    pub table: Table,
    pub images: BTreeMap<ImageTag, ImageRows>,
    /// Rows without an image tag (cannot be attributed; dropped).
    pub dropped_no_image: u64,
}

impl Dataset {
    /// Reads `table` from every database, dropping (and counting) rows with a
    /// NULL in any used column.
    pub fn load(dbs: &[PathBuf], table: Table, progress: &ProgressBar) -> Result<Dataset> {
        if dbs.is_empty() {
            bail!("no database given (--db)");
        }
        let mut ds = Dataset { sources: dbs.to_vec(), table, images: BTreeMap::new(), dropped_no_image: 0 };
        for db in dbs {
            ds.load_one(db, progress)
                .with_context(|| format!("reading {} from {}", table.name(), db.display()))?;
        }
        Ok(ds)
    }

    fn load_one(&mut self, db: &Path, progress: &ProgressBar) -> Result<()> {
        let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("cannot open {}", db.display()))?;
        let source = db.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let total: i64 =
            conn.query_row(&format!("SELECT COUNT(*) FROM {}", self.table.name()), [], |r| r.get(0))?;
        progress.set_length(progress.length().unwrap_or(0) + total.unsigned_abs());
        let cols = FEATURES.iter().chain(TARGETS.iter()).copied().collect::<Vec<_>>().join(", ");
        let sql = match self.table {
            Table::TrainingData => {
                format!("SELECT rowid, image_tag, request_id, call_started_ns, {cols} FROM training_data")
            }
            Table::TrainingDataAvg => {
                format!("SELECT rowid, image_tag, NULL, NULL, {cols} FROM training_data_avg")
            }
        };
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut n = 0u64;
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
            let entry = self.images.entry(ImageTag::from(image).normalized()).or_default();
            let mut vals = [0f64; 8];
            let mut complete = true;
            for (i, v) in vals.iter_mut().enumerate() {
                match row.get::<_, Option<f64>>(4 + i)? {
                    Some(x) if x.is_finite() => *v = x,
                    _ => complete = false,
                }
            }
            if !complete {
                entry.dropped_null += 1;
                continue;
            }
            let key = match row.get::<_, Option<String>>(2)? {
                Some(id) => format!("{source}/{id}"),
                None => format!("{source}#{rowid}"),
            };
            entry.rows.push(Sample {
                key,
                started_ns: row.get(3)?,
                x: [vals[0], vals[1], vals[2], vals[3], vals[4]],
                y: [vals[5], vals[6], vals[7]],
            });
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
