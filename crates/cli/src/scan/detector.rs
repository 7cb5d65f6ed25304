//! The [`Engine`] backed by `speck_detect::Detector`.

use std::path::PathBuf;

use super::engine::Engine;
use super::models;

/// How to build the detector.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `--coarse`.
    pub coarse: Option<PathBuf>,
    /// `--fine`.
    pub fine: Option<PathBuf>,
    /// `--models-dir` / `SPECK_MODELS_DIR`.
    pub models_dir: Option<PathBuf>,
    /// `--device`.
    pub device: String,
    /// ONNX Runtime threads.
    pub threads: usize,
    /// `--ort-lib`.
    pub ort_lib: Option<PathBuf>,
}

/// Build the engine.
///
/// # Errors
/// No models, a model that does not fit the contract, no ONNX Runtime library.
pub fn build(cfg: &EngineConfig) -> anyhow::Result<Box<dyn Engine>> {
    let m = models::resolve(
        cfg.coarse.as_deref(),
        cfg.fine.as_deref(),
        cfg.models_dir.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    anyhow::bail!(
        "the detection engine is not available yet (models: {m:?}, device {}, {} threads, ort {:?})",
        cfg.device,
        cfg.threads,
        cfg.ort_lib
    )
}
