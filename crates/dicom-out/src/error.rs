//! The error of every operation of this crate.

use std::path::PathBuf;

/// Why a DICOM object could not be read from the source series, built, or encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DicomOutError {
    /// A source file could not be opened or parsed as DICOM.
    #[error("{path}: cannot read the DICOM header: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A source file lacks an attribute the objects need, or holds one that cannot be used.
    #[error("{path}: {reason}")]
    Source {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong, naming the attribute.
        reason: String,
    },
    /// The series as a whole cannot be referenced the way the object needs (no instance of the
    /// series among the files, slices of different orientation or size for a segmentation, a
    /// multi-frame source).
    #[error("series {series_uid}: {reason}")]
    Series {
        /// SeriesInstanceUID of the source series.
        series_uid: String,
        /// Why.
        reason: String,
    },
    /// The inputs describe something the object cannot hold (a finding outside the series, a
    /// non-finite number, more than 65535 segments).
    #[error("{what}: {reason}")]
    Invalid {
        /// The object or finding concerned.
        what: String,
        /// Why.
        reason: String,
    },
    /// dicom-rs could not encode the object.
    #[error("{what}: cannot encode the DICOM object: {reason}")]
    Encode {
        /// The object concerned.
        what: String,
        /// What the encoder said.
        reason: String,
    },
}
