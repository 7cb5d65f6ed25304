//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading models or detecting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// No ONNX Runtime shared library could be found (or the one given could not be loaded).
    #[error("{0}")]
    RuntimeNotFound(String),

    /// ONNX Runtime reported an error.
    #[error("ONNX Runtime error while {context}: {message}")]
    Runtime {
        /// What Speck was doing.
        context: String,
        /// ONNX Runtime's message.
        message: String,
    },

    /// A model file could not be read or is not an ONNX model.
    #[error("cannot load model {path}: {reason}")]
    ModelLoad {
        /// The model file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// A model does not follow the Speck model contract (docs/models.md).
    #[error("model {path} breaks the Speck model contract: {reason}")]
    Contract {
        /// The model file.
        path: PathBuf,
        /// Which key or input is wrong, expected vs found.
        reason: String,
    },

    /// A model's output did not have the shape its contract promises.
    #[error("model {path} returned {found}, expected {expected}")]
    OutputShape {
        /// The model file.
        path: PathBuf,
        /// What the contract implies.
        expected: String,
        /// What the model returned.
        found: String,
    },

    /// The detector was configured in a way that cannot work.
    #[error("invalid detector configuration: {0}")]
    Config(String),

    /// The requested execution provider is not available in this build.
    #[error("{0}")]
    DeviceUnavailable(String),

    /// A model file given explicitly does not exist (from
    /// [`ModelSearch::locate`](crate::models::ModelSearch::locate)).
    #[error("model {} does not exist", path.display())]
    ModelMissing {
        /// The model file.
        path: PathBuf,
    },

    /// No searched folder holds a `coarse-*.onnx` (from
    /// [`ModelSearch::locate`](crate::models::ModelSearch::locate)).
    #[error(
        "no bundled models (coarse-*.onnx) found; searched: {}",
        paths_list(searched)
    )]
    NoModels {
        /// The folders searched, in order.
        searched: Vec<PathBuf>,
    },

    /// The input volume cannot be processed (too large for the limits, degenerate geometry...).
    #[error("cannot process volume: {0}")]
    Volume(String),
}

/// Result alias for this crate.
pub type Result<T, E = DetectError> = std::result::Result<T, E>;

/// `a, b, c`.
fn paths_list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl DetectError {
    pub(crate) fn runtime(context: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self::Runtime {
            context: context.into(),
            message: e.to_string(),
        }
    }

    pub(crate) fn contract(path: &std::path::Path, reason: impl Into<String>) -> Self {
        Self::Contract {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}
