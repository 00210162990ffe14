//! YAML paths (`workload.phases[1].duration`) and where they are written.
//!
//! serde_yaml_ng reports path and line for errors it finds while parsing. Errors
//! found afterwards, during validation, only know the path; [`YamlPath::line_in`]
//! finds the line by reading the text again. It understands block style and
//! one-line flow collections (`- {name: warmup, duration: 30s}`), which covers
//! how workload files are written; when it cannot follow a path to the end it
//! returns the line of the deepest part it found.

use std::fmt;

/// One step of a path: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path from the document root, displayed as `a.b[2].c`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct YamlPath(pub Vec<Segment>);

impl YamlPath {
    pub fn root() -> Self {
        YamlPath(Vec::new())
    }

    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.into()));
        next
    }

    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    /// The 1-based line where this path (or its deepest findable prefix) is written.
    pub fn line_in(&self, text: &str) -> Option<usize> {
        let lines: Vec<Line<'_>> = text.lines().map(Line::new).collect();
        let mut found = None;
        let mut scope = Scope::Block { lo: 0, hi: lines.len() };
        for segment in &self.0 {
            let next = match (&scope, segment) {
                (Scope::Block { lo, hi }, Segment::Key(key)) => find_key(&lines, *lo, *hi, key),
                (Scope::Block { lo, hi }, Segment::Index(i)) => find_item(&lines, *lo, *hi, *i),
                (Scope::Inline { line, rest }, Segment::Key(key)) => {
                    find_inline_key(rest, key).map(|rest| (*line, Scope::Inline { line: *line, rest }))
                }
                // Items of a flow sequence are on the same line as the sequence.
                (Scope::Inline { line, rest }, Segment::Index(_)) => {
                    Some((*line, Scope::Inline { line: *line, rest: rest.clone() }))
                }
            };
            match next {
                Some((line, inner)) => {
                    found = Some(line + 1);
                    scope = inner;
                }
                None => break,
            }
        }
        found
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(root)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

// === locating ===

enum Scope {
    /// Lines `lo..hi` hold the value in block style.
    Block { lo: usize, hi: usize },
    /// The value is written inline on `line`, in `rest`.
    Inline { line: usize, rest: String },
}

struct Line<'a> {
    /// Column of the first non-blank character; `None` for blank and comment lines.
    indent: Option<usize>,
    text: &'a str,
}

impl<'a> Line<'a> {
    fn new(raw: &'a str) -> Self {
        let trimmed = raw.trim_start();
        let indent = (!trimmed.is_empty() && !trimmed.starts_with('#')).then(|| raw.len() - trimmed.len());
        Line { indent, text: raw }
    }

    /// The column of the first key on this line and the text from there, after
    /// any `- ` sequence markers.
    fn key_start(&self) -> Option<(usize, &'a str)> {
        let mut col = self.indent?;
        let mut rest = &self.text[col..];
        while let Some(after) = rest.strip_prefix("- ").or_else(|| (rest == "-").then_some("")) {
            let skipped = after.len() - after.trim_start().len();
            col += rest.len() - after.len() + skipped;
            rest = after.trim_start();
        }
        Some((col, rest))
    }
}

/// Splits `key: value` into the key (unquoted) and the text after the colon.
fn split_key(text: &str) -> Option<(String, &str)> {
    if let Some(quote) = text.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = text[1..].find(quote)? + 1;
        let after = text[end + 1..].trim_start();
        let value = after.strip_prefix(':')?;
        return Some((text[1..end].to_string(), value));
    }
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b':' && bytes.get(i + 1).is_none_or(|next| *next == b' ' || *next == b'\t') {
            return Some((text[..i].trim_end().to_string(), &text[i + 1..]));
        }
        if matches!(*b, b'{' | b'[' | b'#') && i == 0 {
            return None;
        }
    }
    None
}

fn find_key(lines: &[Line<'_>], lo: usize, hi: usize, key: &str) -> Option<(usize, Scope)> {
    let first = (lo..hi).find(|i| lines[*i].indent.is_some())?;
    let (child_col, first_text) = lines[first].key_start()?;
    // A flow mapping written on its own line: `{a: 1, b: 2}`.
    if first_text.starts_with('{') {
        return find_inline_key(first_text, key).map(|rest| (first, Scope::Inline { line: first, rest }));
    }
    for i in first..hi {
        let Some((col, text)) = lines[i].key_start() else { continue };
        if col != child_col {
            continue;
        }
        let Some((found, value)) = split_key(text) else { continue };
        if found != key {
            continue;
        }
        let value = value.trim();
        if !value.is_empty() && !value.starts_with('#') {
            return Some((i, Scope::Inline { line: i, rest: value.to_string() }));
        }
        // The value ends at the next line left of the key, or at the key's own
        // column unless it is a sequence item (`key:\n- a` is valid YAML).
        let end = (i + 1..hi)
            .find(|j| {
                let line = &lines[*j];
                line.indent.is_some_and(|c| {
                    c < child_col || (c == child_col && !line.text.trim_start().starts_with('-'))
                })
            })
            .unwrap_or(hi);
        return Some((i, Scope::Block { lo: i + 1, hi: end }));
    }
    None
}

fn find_item(lines: &[Line<'_>], lo: usize, hi: usize, index: usize) -> Option<(usize, Scope)> {
    let first = (lo..hi).find(|i| lines[*i].indent.is_some())?;
    let seq_col = lines[first].indent?;
    let trimmed = lines[first].text.trim_start();
    if trimmed.starts_with('[') {
        return Some((first, Scope::Inline { line: first, rest: trimmed.to_string() }));
    }
    let dashes: Vec<usize> = (first..hi)
        .filter(|i| lines[*i].indent == Some(seq_col) && lines[*i].text.trim_start().starts_with('-'))
        .collect();
    let start = *dashes.get(index)?;
    let end = dashes.get(index + 1).copied().unwrap_or(hi);
    let (_, text) = lines[start].key_start()?;
    if text.starts_with('{') || text.starts_with('[') {
        return Some((start, Scope::Inline { line: start, rest: text.to_string() }));
    }
    Some((start, Scope::Block { lo: start, hi: end }))
}

/// Finds `key:` inside a one-line flow collection and returns the text after it.
fn find_inline_key(text: &str, key: &str) -> Option<String> {
    let mut search = 0;
    while let Some(pos) = text[search..].find(key) {
        let at = search + pos;
        let before = text[..at].trim_end_matches([' ', '"', '\'']).chars().last();
        let after = text[at + key.len()..].trim_start_matches(['"', '\'']);
        if matches!(before, Some('{') | Some(',') | None) && after.starts_with(':') {
            return Some(after[1..].to_string());
        }
        search = at + key.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
leaf_address: x
max_duration: 5m
workload:
  phases:
    - name: a
      duration: 10s
    - name: b   # second
      type: variable

      duration: 10x
    - {name: c, duration: 5s, start_rps: -1}
function_config:
  hyperfaas-echo:latest:
    memory: 256MB
    cpu: {period: 100000, quota: 50000}
  \"quoted:tag\": {memory: 1GB}
list:
- a: 1
- a: 2
";

    fn line(path: &YamlPath) -> Option<usize> {
        path.line_in(DOC)
    }

    #[test]
    fn finds_block_and_flow_paths() {
        let phases = YamlPath::root().key("workload").key("phases");
        assert_eq!(line(&YamlPath::root().key("max_duration")), Some(2));
        assert_eq!(line(&phases), Some(4));
        assert_eq!(line(&phases.index(0).key("duration")), Some(6));
        assert_eq!(line(&phases.index(1)), Some(7));
        assert_eq!(line(&phases.index(1).key("duration")), Some(10));
        assert_eq!(line(&phases.index(2).key("start_rps")), Some(11));
        let echo = YamlPath::root().key("function_config").key("hyperfaas-echo:latest");
        assert_eq!(line(&echo.key("memory")), Some(14));
        assert_eq!(line(&echo.key("cpu").key("quota")), Some(15));
        assert_eq!(line(&YamlPath::root().key("function_config").key("quoted:tag").key("memory")), Some(16));
        assert_eq!(line(&YamlPath::root().key("list").index(1).key("a")), Some(19));
    }

    #[test]
    fn falls_back_to_the_deepest_prefix() {
        let phases = YamlPath::root().key("workload").key("phases");
        assert_eq!(line(&phases.index(0).key("start_rps")), Some(5));
        assert_eq!(line(&phases.index(7)), Some(4));
        assert_eq!(line(&YamlPath::root().key("nope")), None);
    }

    #[test]
    fn displays_dotted() {
        let p = YamlPath::root().key("workload").key("phases").index(3).key("step");
        assert_eq!(p.to_string(), "workload.phases[3].step");
    }
}
