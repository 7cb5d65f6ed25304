//! The [`Engine`] backed by [`speck_detect::Detector`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use speck_detect::{Detector, Device, OutsideLung, Progress};
use speck_volume::Volume;

use super::engine::{Engine, EngineOutput, Found};
use super::models;
use super::names::fnv1a64;

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
    /// Keep candidates outside the lung mask (flagged `in_lung=false`) instead of dropping them.
    pub keep_outside_lung: bool,
    /// `--threshold`: keep candidates down to this final probability instead of the model's own
    /// operating point.
    pub threshold: Option<f32>,
}

/// A [`Detector`] plus the description written into every `scan.json`.
pub struct DetectorEngine {
    detector: Detector,
    models: serde_json::Value,
    /// The last model's own threshold (`speck.threshold`, else the detector's 0.5).
    operating_point: f32,
}

/// File name, size and FNV-1a hash of a model, so `--resume` notices a changed model.
fn model_identity(path: &Path) -> anyhow::Result<serde_json::Value> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
    Ok(serde_json::json!({
        "file": path.file_name().map(|n| n.to_string_lossy().into_owned()),
        "bytes": bytes.len(),
        "fnv1a64": format!("{:016x}", fnv1a64(&bytes)),
    }))
}

/// Build the engine.
///
/// # Errors
/// No models, a model that does not fit the contract, no ONNX Runtime library, a bad `--device`.
pub fn build(cfg: &EngineConfig) -> anyhow::Result<Box<dyn Engine>> {
    let m = models::resolve(
        cfg.coarse.as_deref(),
        cfg.fine.as_deref(),
        cfg.models_dir.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let device: Device = cfg.device.parse().context("--device")?;
    let mut b = Detector::builder().device(device).threads(cfg.threads);
    if let Some(c) = &m.coarse {
        b = b.coarse(c);
    }
    if let Some(f) = &m.fine {
        b = b.fine(f);
    }
    if let Some(l) = &cfg.ort_lib {
        b = b.ort_library(l);
    }
    if cfg.keep_outside_lung {
        b = b.outside_lung(OutsideLung::Flag);
    }
    // The threshold applies to the model that gives the final probability: the fine model, or
    // the dense model when there is no fine one.
    if let Some(t) = cfg.threshold {
        if !(0.0..=1.0).contains(&t) {
            anyhow::bail!("--threshold {t}: expected a probability in [0, 1]");
        }
        b = if m.fine.is_some() {
            b.fine_threshold(t)
        } else {
            b.dense_threshold(t)
        };
    }
    let detector = b.build().context("cannot set up the detector")?;
    let ident = |p: &Option<PathBuf>| -> anyhow::Result<serde_json::Value> {
        p.as_deref()
            .map_or(Ok(serde_json::Value::Null), model_identity)
    };
    let mut models = serde_json::json!({
        "coarse": ident(&m.coarse)?,
        "fine": ident(&m.fine)?,
        "outside_lung": if cfg.keep_outside_lung { "flag" } else { "drop" },
    });
    // Only when given, so that runs without it keep resuming runs made before the flag existed;
    // a run with another threshold redoes its scans on --resume.
    if let Some(t) = cfg.threshold {
        models["threshold"] = serde_json::json!(t);
    }
    let operating_point = detector
        .fine_model()
        .or_else(|| detector.dense_model())
        .and_then(|m| m.contract().threshold)
        .unwrap_or(0.5);
    tracing::info!(
        "models: coarse {:?}, fine {:?}; device {} (requested {device})",
        m.coarse,
        m.fine,
        detector.device()
    );
    Ok(Box::new(DetectorEngine {
        detector,
        models,
        operating_point,
    }))
}

/// The counts as a JSON map (whatever fields the detector reports).
fn to_map(v: serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m.into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

impl Engine for DetectorEngine {
    fn detect(
        &self,
        volume: &Volume,
        want_heatmap: bool,
        progress: &(dyn Fn(f32) + Sync),
    ) -> anyhow::Result<EngineOutput> {
        let report = |p: Progress| match p {
            Progress::LungMask => progress(0.05),
            Progress::Dense { done, total } if total > 0 => {
                progress(0.1 + 0.7 * done as f32 / total as f32);
            }
            Progress::Fine { done, total } if total > 0 => {
                progress(0.8 + 0.2 * done as f32 / total as f32);
            }
            Progress::Done => progress(1.0),
            _ => {}
        };
        let d = self.detector.detect_with_progress(volume, &report)?;
        let heatmap = if want_heatmap {
            self.detector
                .probability_map(volume)?
                .map(|m| (m.data, m.geometry))
        } else {
            None
        };
        let t = &d.timings;
        let timings_s = BTreeMap::from([
            ("lung_mask".to_string(), t.lung_mask.as_secs_f64()),
            ("dense".to_string(), t.dense.as_secs_f64()),
            ("fine".to_string(), t.fine.as_secs_f64()),
            ("merge".to_string(), t.merge.as_secs_f64()),
            ("total".to_string(), t.total.as_secs_f64()),
        ]);
        Ok(EngineOutput {
            candidates: d
                .candidates
                .iter()
                .map(|x| Found {
                    candidate: x.candidate,
                    in_lung: x.in_lung,
                    above_operating_point: x.candidate.probability >= self.operating_point,
                })
                .collect(),
            heatmap,
            timings_s,
            counts: to_map(serde_json::to_value(d.counts).unwrap_or_default()),
            device: d.device.to_string(),
            warnings: d.warnings,
        })
    }

    fn describe(&self) -> serde_json::Value {
        self.models.clone()
    }
}
