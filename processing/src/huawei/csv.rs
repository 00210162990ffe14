//! A streaming reader of the trace's CSV files: one line at a time (the
//! real tables are gigabytes), fields split on commas, RFC 4180 quoting
//! (`"a,b"`, `""` for a quote) within a line. The trace's fields are numbers,
//! hashes and pod ids, so no field spans lines.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

use super::error::{ImportError, RowError, SkipReason};

/// Bytes read between two progress updates.
const PROGRESS_STEP: u64 = 1 << 16;

/// An open CSV file, positioned after its header.
#[derive(Debug)]
pub(crate) struct CsvFile {
    path: PathBuf,
    reader: BufReader<File>,
    buf: Vec<u8>,
    /// 1-based number of the line in `buf`.
    line: u64,
    header: Vec<String>,
    progress: ProgressBar,
    unreported: u64,
}

/// One data line: its number and fields (borrowed unless unquoted).
#[derive(Debug)]
pub(crate) struct Record<'a> {
    pub(crate) line: u64,
    pub(crate) fields: Vec<Cow<'a, str>>,
}

impl CsvFile {
    /// Opens `path` and reads its header line.
    pub(crate) fn open(path: &Path, progress: &ProgressBar) -> Result<CsvFile, ImportError> {
        let read = |source| ImportError::Read { path: path.to_owned(), source };
        let file = File::open(path).map_err(read)?;
        let mut csv = CsvFile {
            path: path.to_owned(),
            reader: BufReader::with_capacity(1 << 20, file),
            buf: Vec::new(),
            line: 0,
            header: Vec::new(),
            progress: progress.clone(),
            unreported: 0,
        };
        if !csv.next_line()? {
            return Err(ImportError::Empty { path: path.to_owned() });
        }
        let text = std::str::from_utf8(&csv.buf).map_err(|_| csv.header_error("the header is not UTF-8"))?;
        let fields = split(text.trim_start_matches('\u{feff}'))
            .map_err(|why| csv.header_error(&format!("the header has {why}")))?;
        csv.header = fields.into_iter().map(|f| f.trim().to_owned()).collect();
        Ok(csv)
    }

    fn header_error(&self, message: &str) -> ImportError {
        ImportError::BadRow(RowError {
            path: self.path.clone(),
            line: 1,
            column: None,
            reason: SkipReason::Malformed,
            message: message.to_owned(),
        })
    }

    /// The position of each of `wanted` in the header, or an error naming
    /// every missing column.
    pub(crate) fn columns<const N: usize>(
        &self,
        table: &'static str,
        wanted: [&str; N],
    ) -> Result<[usize; N], ImportError> {
        let index: HashMap<&str, usize> =
            self.header.iter().enumerate().map(|(i, h)| (h.as_str(), i)).rev().collect();
        let missing: Vec<String> =
            wanted.iter().filter(|w| !index.contains_key(*w)).map(|w| (*w).to_owned()).collect();
        if !missing.is_empty() {
            return Err(ImportError::MissingColumns {
                path: self.path.clone(),
                table,
                missing,
                found: self.header.join(", "),
            });
        }
        Ok(wanted.map(|w| index[w]))
    }

    /// Reads the next non-empty line into `buf`; false at the end.
    fn next_line(&mut self) -> Result<bool, ImportError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| ImportError::Read { path: self.path.clone(), source })?;
            self.unreported += n as u64;
            if self.unreported >= PROGRESS_STEP {
                self.progress.inc(self.unreported);
                self.unreported = 0;
            }
            if n == 0 {
                self.progress.inc(self.unreported);
                self.unreported = 0;
                return Ok(false);
            }
            self.line += 1;
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            if !self.buf.is_empty() {
                return Ok(true);
            }
        }
    }

    /// The next data line, `None` at the end of the file; a line that is not
    /// UTF-8, has an unclosed quote or another number of fields than the
    /// header is a [`RowError`].
    pub(crate) fn next_record(&mut self) -> Result<Option<Result<Record<'_>, RowError>>, ImportError> {
        if !self.next_line()? {
            return Ok(None);
        }
        let line = self.line;
        let malformed = |message: String| RowError {
            path: self.path.clone(),
            line,
            column: None,
            reason: SkipReason::Malformed,
            message,
        };
        let Ok(text) = std::str::from_utf8(&self.buf) else {
            return Ok(Some(Err(malformed("not UTF-8".into()))));
        };
        let fields = match split(text) {
            Ok(fields) => fields,
            Err(why) => return Ok(Some(Err(malformed(format!("the line has {why}"))))),
        };
        if fields.len() != self.header.len() {
            let message = format!("{} fields where the header has {}", fields.len(), self.header.len());
            return Ok(Some(Err(malformed(message))));
        }
        Ok(Some(Ok(Record { line, fields })))
    }
}

/// Splits one line into fields.
fn split(line: &str) -> Result<Vec<Cow<'_, str>>, &'static str> {
    if !line.contains('"') {
        return Ok(line.split(',').map(Cow::Borrowed).collect());
    }
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("an unclosed quote"),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(Cow::Owned(field));
                    return Ok(fields);
                }
                Some(',') => fields.push(Cow::Owned(field)),
                Some(_) => return Err("text after a closing quote"),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(Cow::Owned(field));
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("a quote inside an unquoted field"),
                    Some(c) => field.push(c),
                }
            }
            fields.push(Cow::Owned(field));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_plain_and_quoted_fields() {
        assert_eq!(split("a,,1.5").unwrap(), ["a", "", "1.5"]);
        assert_eq!(split(r#""a,b",c,"say ""hi""""#).unwrap(), ["a,b", "c", r#"say "hi""#]);
        assert_eq!(split(r#"x,"""#).unwrap(), ["x", ""]);
        assert_eq!(split(r#"x,"open"#), Err("an unclosed quote"));
        assert_eq!(split(r#""a"b,c"#), Err("text after a closing quote"));
        assert_eq!(split(r#"a"b,c"#), Err("a quote inside an unquoted field"));
    }
}
