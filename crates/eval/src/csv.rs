//! Reading the evaluation CSVs with the `csv` crate, into the typed rows of
//! [`speck_volume::luna16`], with errors that name the file, the line and the column.
//!
//! The dialect: comma-separated, optional double quotes (`""` escapes, embedded newlines), `\n`
//! or `\r\n` line ends, an optional UTF-8 BOM; blank lines are skipped and values are trimmed of
//! surrounding whitespace. Every record remembers the line it starts on.
//!
//! The `csv` crate reads a stray quote leniently (`"a"x` as `ax`, a quote left open as the rest
//! of the file); [`check_quotes`] refuses both before the crate reads the text.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use csv::{ReaderBuilder, StringRecord, Trim};
use serde::de::value::MapDeserializer;
use serde::de::DeserializeOwned;

use crate::EvalError;

/// One record: its fields (trimmed) and the line it starts on.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// 1-based line number where the record starts.
    pub line: usize,
    /// The fields, trimmed.
    pub fields: StringRecord,
}

/// A parsed file: header plus records, with the path for error messages.
#[derive(Debug)]
pub(crate) struct Table {
    pub path: PathBuf,
    pub header: StringRecord,
    pub header_line: usize,
    pub records: Vec<Record>,
}

/// Split `text` into records, skipping blank lines; `path` is only used in errors.
pub(crate) fn parse_records(path: &Path, text: &str) -> Result<Vec<Record>, EvalError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    check_quotes(path, text)?;
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(Trim::All)
        .from_reader(text.as_bytes());
    let bytes = text.as_bytes();
    let (mut cursor, mut line) = (0usize, 1usize);
    let mut out = Vec::new();
    for fields in reader.records() {
        let fields = fields.map_err(|source| EvalError::Csv {
            path: path.to_path_buf(),
            source,
        })?;
        // The crate's position is where it started reading, before the line ends and blank
        // lines it skipped: count lines up to the record's first byte.
        let mut start = fields
            .position()
            .map_or(cursor, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX))
            .clamp(cursor, bytes.len());
        while matches!(bytes.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        line += bytes[cursor..start].iter().filter(|&&b| b == b'\n').count();
        cursor = start;
        if fields.len() == 1 && fields[0].is_empty() {
            continue; // a line of spaces
        }
        out.push(Record { line, fields });
    }
    Ok(out)
}

/// Refuse what the `csv` crate would read leniently: anything but spaces between a closing quote
/// and the end of its field, and a quote still open at the end of the file. As in the crate, a
/// quote opens a quoted field only as the field's first character.
fn check_quotes(path: &Path, text: &str) -> Result<(), EvalError> {
    let malformed = |line: usize, reason: String| EvalError::Malformed {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut line = 1usize;
    let mut field_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if field_start => {
                let opened = line;
                loop {
                    match chars.next() {
                        None => return Err(malformed(opened, "unterminated quoted field".into())),
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                        }
                        Some('"') => break,
                        Some('\n') => line += 1,
                        Some(_) => {}
                    }
                }
                while let Some(&c) = chars.peek() {
                    if matches!(c, ',' | '\n' | '\r') {
                        break;
                    }
                    if !c.is_whitespace() {
                        return Err(malformed(
                            line,
                            format!("unexpected {c:?} after a closing quote"),
                        ));
                    }
                    chars.next();
                }
                field_start = false;
            }
            ',' | '\r' => field_start = true,
            '\n' => {
                line += 1;
                field_start = true;
            }
            _ => field_start = false,
        }
    }
    Ok(())
}

impl Table {
    /// Parse text with a header line; `path` is only used in errors, `expected` names the
    /// columns an empty file should have had.
    pub fn parse(path: &Path, text: &str, expected: &[&str]) -> Result<Self, EvalError> {
        let mut records = parse_records(path, text)?;
        if records.is_empty() {
            return Err(EvalError::EmptyFile {
                path: path.to_path_buf(),
                expected: expected.join(","),
            });
        }
        let header = records.remove(0);
        let n = header.fields.len();
        for r in &records {
            if r.fields.len() != n {
                return Err(EvalError::Malformed {
                    path: path.to_path_buf(),
                    line: r.line,
                    reason: format!(
                        "{} fields where the header (line {}) has {n}",
                        r.fields.len(),
                        header.line
                    ),
                });
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            header: header.fields,
            header_line: header.line,
            records,
        })
    }

    /// Index of a column, if present (exact, case-sensitive name).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// Check that every column in `names` is present; the error names the first missing one.
    pub fn require(&self, names: &[&str]) -> Result<(), EvalError> {
        match names.iter().find(|n| self.column(n).is_none()) {
            Some(name) => Err(EvalError::MissingColumn {
                path: self.path.clone(),
                column: (*name).to_string(),
                header: self.header.iter().collect::<Vec<_>>().join(","),
            }),
            None => Ok(()),
        }
    }

    /// An error about the value in column `col` of `rec`.
    pub fn invalid(&self, rec: &Record, col: usize, reason: impl Into<String>) -> EvalError {
        EvalError::InvalidValue {
            path: self.path.clone(),
            line: rec.line,
            column: self.header.get(col).unwrap_or_default().to_string(),
            value: rec.fields.get(col).unwrap_or_default().to_string(),
            reason: reason.into(),
        }
    }

    /// `rec` as a typed row, its columns matched by header name (the first column of a name
    /// counts, as in [`Table::column`]); a refused value gives [`EvalError::InvalidValue`]
    /// naming the line, the column and the value.
    pub fn row<T: DeserializeOwned>(&self, rec: &Record) -> Result<T, EvalError> {
        // The deserialiser reads one column at a time and stops at the first refused value, so
        // the last column handed out is the one to blame.
        let at = Cell::new(0usize);
        let columns = self
            .header
            .iter()
            .zip(rec.fields.iter())
            .enumerate()
            .filter(|(i, (name, _))| self.column(name) == Some(*i))
            .map(|(i, pair)| {
                at.set(i);
                pair
            });
        T::deserialize(MapDeserializer::<_, serde::de::value::Error>::new(columns))
            .map_err(|e| self.invalid(rec, at.get(), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(r: &Record) -> Vec<&str> {
        r.fields.iter().collect()
    }

    #[test]
    fn quotes_crlf_bom_and_blank_lines() {
        let t = "\u{feff}a,b,c\r\n1,\"x,y\" ,3\r\n\r\n  \n\"multi\nline\",\"q\"\"q\",\n";
        let r = parse_records(Path::new("t.csv"), t).expect("parse");
        assert_eq!(r.len(), 3);
        assert_eq!(fields(&r[0]), vec!["a", "b", "c"]);
        assert_eq!(fields(&r[1]), vec!["1", "x,y", "3"]);
        assert_eq!(r[1].line, 2);
        assert_eq!(r[2].line, 5);
        assert_eq!(fields(&r[2]), vec!["multi\nline", "q\"q", ""]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_records(Path::new("t.csv"), "a,b\n\"open,1\n").expect_err("unterminated");
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = parse_records(Path::new("t.csv"), "a,b\n\"x\"\n\"y\"z,1\n").expect_err("after");
        assert_eq!(
            e.to_string(),
            "t.csv: line 3: unexpected 'z' after a closing quote"
        );
        let e = Table::parse(Path::new("t.csv"), "a,b\n1,2\n1,2,3\n", &["a", "b"]).expect_err("n");
        assert!(e.to_string().contains("t.csv: line 3: 3 fields"), "{e}");
        let e = Table::parse(Path::new("t.csv"), "\n\n", &["a", "b"]).expect_err("empty");
        assert!(matches!(e, EvalError::EmptyFile { .. }));
    }
}
