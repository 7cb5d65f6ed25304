//! The phantom crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while generating or writing a phantom.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PhantomError {
    /// An option is out of range or inconsistent (the message names it and the allowed range).
    #[error("invalid phantom option: {0}")]
    InvalidOptions(String),
    /// A flag value could not be parsed.
    #[error("cannot parse {what} from {input:?}: {reason}")]
    Parse {
        /// What was being parsed (e.g. "density mix").
        what: &'static str,
        /// The text given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// The requested nodules could not all be placed (lungs too small for their number/size).
    #[error("seed {seed}: placed {placed} of {requested} nodules: {reason}")]
    Placement {
        /// The phantom's seed.
        seed: u64,
        /// How many were placed before giving up.
        placed: usize,
        /// How many were requested.
        requested: usize,
        /// Why placement failed.
        reason: String,
    },
    /// Building or writing the volume failed in the volume crate.
    #[error("{context}")]
    Volume {
        /// What was being done (names the file when writing).
        context: String,
        /// The underlying error.
        #[source]
        source: speck_volume::VolumeError,
    },
    /// An annotation row could not be written as CSV.
    #[error("writing annotation rows as CSV")]
    Csv {
        /// The CSV error.
        #[source]
        source: csv::Error,
    },
    /// An annotation file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}
