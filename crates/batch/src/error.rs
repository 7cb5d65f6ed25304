//! The batch engine's error: what stops a run before or after its scans (a per-scan problem is
//! not an error but a row of `errors.csv`, see [`crate::output::ErrorRow`]).

use std::path::PathBuf;

/// Why a run, a merge or setting up the engine failed. Each variant names the file or value at
/// fault; the underlying error, when there is one, is the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// A file or folder could not be created, read or written.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done, e.g. `cannot create`, `cannot write`, `reading`.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A model file could not be read (to identify it in `scan.json`).
    #[error("cannot read model {}", path.display())]
    Model {
        /// The model file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The detector could not be set up (models, ONNX Runtime, device).
    #[error("cannot set up the detector")]
    Setup(#[source] speck_detect::DetectError),
    /// Detection failed for a scan.
    #[error(transparent)]
    Detect(#[from] speck_detect::DetectError),
    /// A threshold that is not a probability in `[0, 1]`.
    #[error("threshold {0}: expected a probability in [0, 1]")]
    Threshold(f32),
    /// The device asked for cannot be used and falling back to another one is forbidden
    /// ([`crate::detector::EngineConfig::strict_device`]).
    #[error("device {requested} is unavailable here and a strict device forbids running on {actual} instead")]
    DeviceUnavailable {
        /// The device asked for.
        requested: speck_detect::Device,
        /// The device the detector would have used.
        actual: speck_detect::Device,
    },
    /// A shard that does not parse or is out of range (the message says which value and what
    /// is accepted).
    #[error(transparent)]
    Shard(#[from] crate::shard::ShardError),
    /// An output folder that is not empty and holds no Speck output
    /// ([`crate::outdir::refuse_foreign_folder`]).
    #[error("{} is not empty and holds no Speck output (no summary.csv, scans/ or shards/; it holds {listed})", path.display())]
    ForeignFolder {
        /// The folder.
        path: PathBuf,
        /// Some of what it holds, in words (`a, b, c and 4 more`).
        listed: String,
    },
    /// The inputs hold nothing that can be scanned.
    #[error("nothing to scan: no input holds a scan Speck can read{reasons}")]
    NothingToScan {
        /// One line per item (failures first, then skipped items), each starting with a newline.
        reasons: String,
    },
    /// A folder given to [`crate::merge::merge`] holds no run outputs.
    #[error("{}: no speck scan outputs (summary.csv, or shards/*/summary.csv) found", path.display())]
    NoRunOutputs {
        /// The folder.
        path: PathBuf,
    },
}

impl BatchError {
    /// An [`BatchError::Io`] for `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

/// An error and its sources on one line, `outer: inner: innermost` (as `anyhow` prints `{:#}`),
/// for the `reason` column of `errors.csv`.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let causes: Vec<String> = std::iter::successors(Some(e), |e| e.source())
        .map(ToString::to_string)
        .collect();
    causes.join(": ")
}
