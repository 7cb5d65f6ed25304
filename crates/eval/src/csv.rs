//! A small RFC 4180 CSV reader: comma-separated, optional double quotes (with `""` escapes and
//! embedded newlines), `\n` or `\r\n` line ends, an optional UTF-8 BOM, blank lines skipped.
//! Fields are trimmed of surrounding spaces. Every record remembers the line it starts on.

use std::path::{Path, PathBuf};

use crate::EvalError;

/// One parsed record.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// 1-based line number where the record starts.
    pub line: usize,
    /// The fields, trimmed.
    pub fields: Vec<String>,
}

/// A parsed file: header plus records, with the path for error messages.
#[derive(Debug)]
pub(crate) struct Table {
    pub path: PathBuf,
    pub header: Vec<String>,
    pub header_line: usize,
    pub records: Vec<Record>,
}

/// Split `text` into records.
pub(crate) fn parse_records(path: &Path, text: &str) -> Result<Vec<Record>, EvalError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    loop {
        if chars.peek().is_none() {
            break;
        }
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false; // inside quotes
        let mut was_quoted = false;
        let mut end_of_record = false;
        while !end_of_record {
            match chars.next() {
                None => {
                    if quoted {
                        return Err(EvalError::Malformed {
                            path: path.to_path_buf(),
                            line: start,
                            reason: "unterminated quoted field".into(),
                        });
                    }
                    end_of_record = true;
                }
                Some('"') if quoted => {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        quoted = false;
                    }
                }
                Some('"') if field.trim().is_empty() && !was_quoted => {
                    field.clear();
                    quoted = true;
                    was_quoted = true;
                }
                Some('\n') if quoted => {
                    line += 1;
                    field.push('\n');
                }
                Some(c) if quoted => field.push(c),
                Some(',') => {
                    fields.push(finish(&field, was_quoted));
                    field.clear();
                    was_quoted = false;
                }
                Some('\r') if chars.peek() == Some(&'\n') => {}
                Some('\n') => {
                    line += 1;
                    end_of_record = true;
                }
                Some(c) => {
                    if was_quoted && !c.is_whitespace() {
                        return Err(EvalError::Malformed {
                            path: path.to_path_buf(),
                            line,
                            reason: format!("unexpected {c:?} after a closing quote"),
                        });
                    }
                    if !was_quoted {
                        field.push(c);
                    }
                }
            }
        }
        fields.push(finish(&field, was_quoted));
        let blank = fields.len() == 1 && fields[0].is_empty();
        if !blank {
            out.push(Record {
                line: start,
                fields,
            });
        }
    }
    Ok(out)
}

fn finish(field: &str, quoted: bool) -> String {
    if quoted {
        field.to_string()
    } else {
        field.trim().to_string()
    }
}

impl Table {
    /// Parse text with a header line; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str, expected: &str) -> Result<Self, EvalError> {
        let mut records = parse_records(path, text)?;
        if records.is_empty() {
            return Err(EvalError::EmptyFile {
                path: path.to_path_buf(),
                expected: expected.to_string(),
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

    /// Index of a required column.
    pub fn require(&self, name: &str) -> Result<usize, EvalError> {
        self.column(name).ok_or_else(|| EvalError::MissingColumn {
            path: self.path.clone(),
            column: name.to_string(),
            header: self.header.join(","),
        })
    }

    /// An error about one value.
    pub fn invalid(&self, rec: &Record, col: usize, reason: impl Into<String>) -> EvalError {
        EvalError::InvalidValue {
            path: self.path.clone(),
            line: rec.line,
            column: self.header.get(col).cloned().unwrap_or_default(),
            value: rec.fields.get(col).cloned().unwrap_or_default(),
            reason: reason.into(),
        }
    }

    /// A required, finite floating-point value.
    pub fn f64_at(&self, rec: &Record, col: usize) -> Result<f64, EvalError> {
        let s = &rec.fields[col];
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(self.invalid(rec, col, "not a finite number")),
            Err(_) if s.is_empty() => Err(self.invalid(rec, col, "empty")),
            Err(_) => Err(self.invalid(rec, col, "not a number")),
        }
    }

    /// An optional finite value: empty, `NA`, `nan` or `-` give `None`.
    pub fn opt_f64_at(&self, rec: &Record, col: usize) -> Result<Option<f64>, EvalError> {
        let s = rec.fields[col].as_str();
        if is_missing(s) {
            return Ok(None);
        }
        self.f64_at(rec, col).map(Some)
    }

    /// A required non-empty string.
    pub fn str_at(&self, rec: &Record, col: usize) -> Result<String, EvalError> {
        let s = &rec.fields[col];
        if s.is_empty() {
            return Err(self.invalid(rec, col, "empty"));
        }
        Ok(s.clone())
    }

    /// An optional string (empty or `NA` give `None`).
    pub fn opt_str_at(&self, rec: &Record, col: usize) -> Option<String> {
        let s = rec.fields[col].as_str();
        (!is_missing(s)).then(|| s.to_string())
    }
}

fn is_missing(s: &str) -> bool {
    s.is_empty() || s.eq_ignore_ascii_case("na") || s.eq_ignore_ascii_case("nan") || s == "-"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_crlf_bom_and_blank_lines() {
        let t = "\u{feff}a,b,c\r\n1, \"x,y\" ,3\r\n\r\n\"multi\nline\",\"q\"\"q\",\n";
        let r = parse_records(Path::new("t.csv"), t).expect("parse");
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].fields, vec!["1", "x,y", "3"]);
        assert_eq!(r[1].line, 2);
        assert_eq!(r[2].line, 4);
        assert_eq!(r[2].fields, vec!["multi\nline", "q\"q", ""]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_records(Path::new("t.csv"), "a,b\n\"open,1\n").expect_err("unterminated");
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = Table::parse(Path::new("t.csv"), "a,b\n1,2\n1,2,3\n", "a,b").expect_err("fields");
        assert!(e.to_string().contains("t.csv: line 3: 3 fields"), "{e}");
        let e = Table::parse(Path::new("t.csv"), "\n\n", "a,b").expect_err("empty");
        assert!(matches!(e, EvalError::EmptyFile { .. }));
    }
}
