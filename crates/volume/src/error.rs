//! The loader's error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading, building or writing a [`crate::Volume`].
///
/// Every variant that concerns a file names it; none of them is ever a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// The file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is malformed: truncated, inconsistent or lying about its contents.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file involved.
        path: PathBuf,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
    /// The file is well formed but uses something Speck does not read (say which).
    #[error("{path}: unsupported: {reason}")]
    Unsupported {
        /// The file involved.
        path: PathBuf,
        /// What is not supported.
        reason: String,
    },
    /// The data would exceed the configured [`crate::Limits`]; nothing was allocated.
    #[error("{path}: {reason} (limit: {limit})")]
    TooLarge {
        /// The file involved.
        path: PathBuf,
        /// What is too large.
        reason: String,
        /// The limit that was hit, in words.
        limit: String,
    },
    /// A DICOM series could not be assembled into one regular volume.
    #[error("series {series_uid}: {reason}")]
    Series {
        /// The SeriesInstanceUID of the offending series.
        series_uid: String,
        /// What is wrong (names the file where one file is to blame).
        reason: String,
    },
    /// No series or image was found where one was expected.
    #[error("{path}: {reason}")]
    NotFound {
        /// The file or folder searched.
        path: PathBuf,
        /// What was looked for.
        reason: String,
    },
    /// Invalid spacing, direction, shape or other geometry.
    #[error("invalid geometry: {0}")]
    InvalidGeometry(String),
}

impl VolumeError {
    /// Shorthand for [`VolumeError::Malformed`].
    pub fn malformed(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Malformed {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`VolumeError::Unsupported`].
    pub fn unsupported(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Unsupported {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`VolumeError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
