//! The one error type of this crate.
//!
//! Errors of ONNX Runtime, the file system, the model contract and the volume library are kept as
//! [`source`](std::error::Error::source)s, not flattened into strings: print the whole chain
//! (`{:#}` of `anyhow`, or walk `source()`) to see why, e.g. `cannot load model m.onnx: not a valid
//! ONNX model: Failed to load model because protobuf parsing failed.`

use std::path::PathBuf;

use crate::contract::ContractError;

/// Everything that can go wrong while loading models or detecting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// No ONNX Runtime shared library could be found (or the one given could not be loaded).
    #[error("{0}")]
    RuntimeNotFound(String),

    /// ONNX Runtime reported an error.
    #[error("ONNX Runtime error while {context}")]
    Runtime {
        /// What Speck was doing, naming the model file.
        context: String,
        /// ONNX Runtime's error.
        #[source]
        source: ort::Error,
    },

    /// A model ran but did not return the output its contract names.
    #[error("ONNX Runtime error while running {}: the output is missing", path.display())]
    OutputMissing {
        /// The model file.
        path: PathBuf,
    },

    /// A model file could not be read or is not an ONNX model.
    #[error("cannot load model {}", path.display())]
    ModelLoad {
        /// The model file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ModelLoadError,
    },

    /// A model does not follow the Speck model contract (docs/models.md).
    #[error("model {} breaks the Speck model contract", path.display())]
    Contract {
        /// The model file.
        path: PathBuf,
        /// Which key, input or output is wrong, expected vs found.
        #[source]
        source: ContractError,
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

    /// A model the pipeline needs was not given to the builder:
    /// [`DetectorBuilder::build`](crate::DetectorBuilder::build) needs a coarse (or segmentation)
    /// model, [`DetectorBuilder::build_refiner`](crate::DetectorBuilder::build_refiner) a fine one.
    #[error("no {slot} model given: {}", .slot.needed_by())]
    MissingModel {
        /// The slot left empty.
        slot: ModelSlot,
    },

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
    #[error("cannot process volume: {what}")]
    Volume {
        /// What Speck was computing.
        what: &'static str,
        /// Why the volume library refused it.
        #[source]
        source: speck_volume::VolumeError,
    },
}

/// Why a model file could not be loaded (the source of [`DetectError::ModelLoad`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelLoadError {
    /// The file could not be read.
    #[error(transparent)]
    Read(std::io::Error),
    /// ONNX Runtime refused its bytes.
    #[error("not a valid ONNX model")]
    NotOnnx(#[source] ort::Error),
}

/// A model slot of [`DetectorBuilder`](crate::DetectorBuilder) (in [`DetectError::MissingModel`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ModelSlot {
    /// The dense model: `coarse` or `segmentation`
    /// ([`DetectorBuilder::coarse`](crate::DetectorBuilder::coarse)).
    Coarse,
    /// The fine patch classifier ([`DetectorBuilder::fine`](crate::DetectorBuilder::fine)).
    Fine,
}

impl ModelSlot {
    /// What needs the slot filled, and what to do instead.
    fn needed_by(self) -> &'static str {
        match self {
            ModelSlot::Coarse => {
                "a Detector needs one (a fine model alone refines given candidates: build_refiner())"
            }
            ModelSlot::Fine => "a Refiner needs one",
        }
    }
}

impl std::fmt::Display for ModelSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelSlot::Coarse => "coarse (or segmentation)",
            ModelSlot::Fine => "fine",
        })
    }
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
    pub(crate) fn runtime(context: impl Into<String>, source: impl Into<ort::Error>) -> Self {
        Self::Runtime {
            context: context.into(),
            source: source.into(),
        }
    }

    pub(crate) fn contract(path: &std::path::Path, source: ContractError) -> Self {
        Self::Contract {
            path: path.to_path_buf(),
            source,
        }
    }
}
