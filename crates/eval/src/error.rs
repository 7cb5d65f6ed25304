//! The error type of `speck-eval`.

use std::path::PathBuf;

/// Everything that can go wrong while reading evaluation inputs or evaluating.
///
/// CSV errors name the file, the 1-based line, the column and the offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The `csv` crate could not read a file.
    #[error("{path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The CSV error (it names the line).
        #[source]
        source: csv::Error,
    },
    /// A file has no header line (it is empty or only blank lines).
    #[error("{path}: empty file (expected a header line with {expected})")]
    EmptyFile {
        /// The file.
        path: PathBuf,
        /// The columns expected in the header.
        expected: String,
    },
    /// A required column is missing from the header.
    #[error("{path}: line 1: missing column `{column}` (header has: {header})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The header as read.
        header: String,
    },
    /// A CSV line is malformed (unterminated quote, wrong number of fields).
    #[error("{path}: line {line}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A value could not be used.
    #[error("{path}: line {line}, column `{column}`: invalid value {value:?}: {reason}")]
    InvalidValue {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Column name.
        column: String,
        /// The value as written.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// An option is invalid (bad size-bin specification, FP rate, ...).
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option: the name of its [`crate::EvalOptions`] field (`bootstrap`,
        /// `size_bins_mm`, ...), which a front end maps to its own flag.
        option: String,
        /// Why it is invalid.
        reason: String,
    },
    /// There is nothing to evaluate against.
    #[error(
        "no included nodules in the {n_scans} evaluated scans: sensitivity is undefined ({hint})"
    )]
    NoNodules {
        /// Number of scans evaluated.
        n_scans: usize,
        /// A hint at the likely cause.
        hint: String,
    },
    /// No scans to evaluate.
    #[error("no scans to evaluate: {0}")]
    NoScans(String),
}

impl EvalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
