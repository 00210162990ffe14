//! A streaming reader for the trace files: one line at a time, fields split
//! on commas, every error naming the file and line.
//!
//! The Azure files are plain comma-separated values: hex hashes, trigger
//! names and numbers, never quoted, so no CSV crate is needed. A quoted
//! field is refused with a clear error rather than split wrongly.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::error::{TraceError, TraceErrorKind};

/// Bytes read at once; the files are read sequentially.
const BUFFER_BYTES: usize = 1 << 20;
/// Longest line accepted: a 2019 row (1444 fields) is about 10 KB; a file
/// without line breaks (or `/dev/zero`) must not be read into memory whole.
pub(crate) const MAX_LINE_BYTES: u64 = 1 << 20;

/// Reads a CSV file row by row, after its header.
#[derive(Debug)]
pub(crate) struct CsvReader {
    path: PathBuf,
    reader: BufReader<File>,
    /// 1-based number of the line last read.
    line: u64,
    text: String,
    header: Vec<String>,
}

impl CsvReader {
    /// Opens `path` and reads its header line.
    pub(crate) fn open(path: &Path) -> Result<CsvReader, TraceError> {
        let file =
            File::open(path).map_err(|e| TraceError::new(path, None, TraceErrorKind::Open(e.to_string())))?;
        let mut reader = CsvReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(BUFFER_BYTES, file),
            line: 0,
            text: String::new(),
            header: Vec::new(),
        };
        if !reader.next_line()? {
            return Err(TraceError::new(path, None, TraceErrorKind::Empty));
        }
        let header = split(&reader.text).map_err(|k| reader.error(k))?;
        reader.header = header.into_iter().map(|h| h.trim().to_string()).collect();
        Ok(reader)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn header(&self) -> &[String] {
        &self.header
    }

    /// The column called `name`, or an error naming the file and header line.
    pub(crate) fn column(&self, name: &str) -> Result<usize, TraceError> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            TraceError::new(&self.path, Some(1), TraceErrorKind::MissingColumn(name.to_string()))
        })
    }

    /// The next data row (blank lines are skipped), or `None` at the end. A
    /// row must have as many fields as the header.
    pub(crate) fn next_row(&mut self) -> Result<Option<Row<'_>>, TraceError> {
        loop {
            if !self.next_line()? {
                return Ok(None);
            }
            if !self.text.trim().is_empty() {
                break;
            }
        }
        let expected = self.header.len();
        let fields = split(&self.text).map_err(|k| TraceError::new(&self.path, Some(self.line), k))?;
        if fields.len() != expected {
            return Err(TraceError::new(
                &self.path,
                Some(self.line),
                TraceErrorKind::FieldCount { expected, found: fields.len() },
            ));
        }
        Ok(Some(Row { fields, line: self.line, path: &self.path }))
    }

    /// An error at the line last read.
    pub(crate) fn error(&self, kind: TraceErrorKind) -> TraceError {
        TraceError::new(&self.path, Some(self.line), kind)
    }

    fn next_line(&mut self) -> Result<bool, TraceError> {
        self.text.clear();
        let n = (&mut self.reader).take(MAX_LINE_BYTES + 1).read_line(&mut self.text).map_err(|e| {
            TraceError::new(&self.path, Some(self.line + 1), TraceErrorKind::Read(e.to_string()))
        })?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        if n as u64 > MAX_LINE_BYTES {
            return Err(TraceError::new(
                &self.path,
                Some(self.line),
                TraceErrorKind::LineTooLong(MAX_LINE_BYTES),
            ));
        }
        let trimmed = self.text.trim_end_matches(['\n', '\r']).len();
        self.text.truncate(trimmed);
        Ok(true)
    }
}

/// One data row: its fields and where it is.
#[derive(Debug)]
pub(crate) struct Row<'a> {
    pub(crate) fields: Vec<&'a str>,
    /// 1-based line in the file.
    pub(crate) line: u64,
    path: &'a Path,
}

impl<'a> Row<'a> {
    /// The non-empty text in `column` (named `name` in errors).
    pub(crate) fn text(&self, column: usize, name: &str) -> Result<&'a str, TraceError> {
        text(self.fields[column], name).map_err(|k| self.error(k))
    }

    /// An error at this row.
    pub(crate) fn error(&self, kind: TraceErrorKind) -> TraceError {
        TraceError::new(self.path, Some(self.line), kind)
    }

    /// `check(field)`'s value, or its error at this row.
    pub(crate) fn field<T>(
        &self,
        column: (usize, &str),
        check: impl Fn(&str, &str) -> Result<T, TraceErrorKind>,
    ) -> Result<T, TraceError> {
        check(self.fields[column.0], column.1).map_err(|k| self.error(k))
    }
}

/// Splits one line on commas; quotes are not part of the Azure formats.
fn split(line: &str) -> Result<Vec<&str>, TraceErrorKind> {
    if line.contains('"') {
        return Err(TraceErrorKind::Quoted);
    }
    Ok(line.split(',').collect())
}

/// A field that must not be empty (a hash, a trigger).
pub(crate) fn text<'a>(field: &'a str, column: &str) -> Result<&'a str, TraceErrorKind> {
    let t = field.trim();
    if t.is_empty() { Err(TraceErrorKind::EmptyField(column.to_string())) } else { Ok(t) }
}

/// A finite, non-negative number.
pub(crate) fn number(field: &str, column: &str) -> Result<f64, TraceErrorKind> {
    let t = field.trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(TraceErrorKind::BadNumber { column: column.to_string(), value: t.to_string() }),
    }
}
