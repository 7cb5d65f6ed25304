//! The [`Engine`] backed by [`speck_detect::Detector`], and the description of its models that
//! every `scan.json` carries (so that `--resume` redoes scans made with other models).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use speck_detect::models::ModelPaths;
use speck_detect::{Detector, Device, OutsideLung, Progress};
use speck_volume::Volume;

use crate::engine::{Engine, EngineOutput, Found};
use crate::names::fnv1a64;
use crate::BatchError;

/// How to build the detector. [`EngineConfig::new`] gives the defaults (CPU, one thread,
/// candidates outside the lung dropped, the models' own operating points); set the fields to
/// change them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// The model files (see [`speck_detect::models::ModelSearch`]).
    pub models: ModelPaths,
    /// Where the models run.
    pub device: Device,
    /// An error ([`BatchError::DeviceUnavailable`]) instead of the detector's CPU fallback when
    /// `device` cannot be used.
    pub strict_device: bool,
    /// ONNX Runtime threads.
    pub threads: usize,
    /// The ONNX Runtime library; `None`: the detector's own search, after a `.venv` beside the
    /// executable.
    pub ort_lib: Option<PathBuf>,
    /// Keep candidates outside the lung mask (flagged `in_lung=false`) instead of dropping them.
    pub keep_outside_lung: bool,
    /// Keep candidates down to this final probability instead of the model's own operating
    /// point.
    pub threshold: Option<f32>,
}

impl EngineConfig {
    /// The defaults for `models`: CPU, one thread, candidates outside the lung dropped, no
    /// threshold of its own.
    pub fn new(models: ModelPaths) -> Self {
        Self {
            models,
            device: Device::Cpu,
            strict_device: false,
            threads: 1,
            ort_lib: None,
            keep_outside_lung: false,
            threshold: None,
        }
    }
}

/// A [`Detector`] plus the description written into every `scan.json`.
pub struct DetectorEngine {
    detector: Detector,
    models: serde_json::Value,
    /// The last model's own threshold (`speck.threshold`, else the detector's 0.5).
    operating_point: f32,
}

/// File name, size and FNV-1a hash of a model, so `--resume` notices a changed model.
fn model_identity(path: &Path) -> Result<serde_json::Value, BatchError> {
    let bytes = std::fs::read(path).map_err(|source| BatchError::Model {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(serde_json::json!({
        "file": path.file_name().map(|n| n.to_string_lossy().into_owned()),
        "bytes": bytes.len(),
        "fnv1a64": format!("{:016x}", fnv1a64(&bytes)),
    }))
}

/// The ONNX Runtime of the repository this binary lives in: `libonnxruntime.so*` of the
/// `onnxruntime` wheel in a `.venv` folder beside the executable or above it (so
/// `target/release/speck`, after `make demo` created `.venv/`, finds it from any working
/// directory).
///
/// Used only when nothing that `speck_detect::find_ort_library` looks at first applies: no
/// `--ort-lib`, no `ORT_DYLIB_PATH`, no `$VIRTUAL_ENV` and no `.venv` in the working directory or
/// above it. When it finds nothing, the detector's own search runs and its error keeps the
/// fix-it commands.
fn ort_library_beside_executable() -> Option<PathBuf> {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if set("ORT_DYLIB_PATH") || set("VIRTUAL_ENV") {
        return None;
    }
    let cwd = std::env::current_dir().ok()?;
    if cwd.ancestors().any(|a| a.join(".venv").is_dir()) {
        return None;
    }
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    let found = exe
        .ancestors()
        .skip(1)
        .find_map(|dir| venv_library(&dir.join(".venv")));
    if let Some(lib) = &found {
        tracing::debug!(library = %lib.display(), "ONNX Runtime of the .venv beside the executable");
    }
    found
}

/// `.venv/lib*/python*/site-packages/onnxruntime/capi/libonnxruntime.so*` (the longest,
/// versioned name).
fn venv_library(venv: &Path) -> Option<PathBuf> {
    let mut libs = Vec::new();
    for lib in ["lib", "lib64"] {
        let Ok(pys) = std::fs::read_dir(venv.join(lib)) else {
            continue;
        };
        for py in pys.flatten() {
            let capi = py.path().join("site-packages/onnxruntime/capi");
            let Ok(entries) = std::fs::read_dir(capi) else {
                continue;
            };
            libs.extend(entries.flatten().map(|e| e.path()).filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so"))
                    && p.is_file()
            }));
        }
    }
    libs.sort_by_key(|p| (p.as_os_str().len(), p.clone()));
    libs.pop()
}

/// The models of [`Engine::describe`] as one line a person reads: `coarse coarse-v7.onnx
/// (412 KiB, fnv1a64 0123abcd…), fine fine-v7.onnx (…); outside the lung: drop; threshold 0.01`.
pub fn models_text(models: &serde_json::Value) -> String {
    let model = |role: &str| -> Option<String> {
        let m = models.get(role)?.as_object()?;
        let file = m.get("file")?.as_str()?;
        let kib = m
            .get("bytes")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
            / 1024;
        let hash = m
            .get("fnv1a64")
            .and_then(serde_json::Value::as_str)
            .map(|h| format!(", fnv1a64 {}", &h[..h.len().min(8)]))
            .unwrap_or_default();
        Some(format!("{role} {file} ({kib} KiB{hash})"))
    };
    let mut parts: Vec<String> = ["coarse", "fine"].into_iter().filter_map(model).collect();
    if parts.is_empty() {
        parts.push("none".into());
    }
    let mut s = parts.join(", ");
    if let Some(o) = models
        .get("outside_lung")
        .and_then(serde_json::Value::as_str)
    {
        s.push_str(&format!("; outside the lung: {o}"));
    }
    if let Some(t) = models.get("threshold").and_then(serde_json::Value::as_f64) {
        s.push_str(&format!("; threshold {}", crate::run::round_to(t, 6)));
    }
    s
}

/// Build the engine.
///
/// # Errors
/// [`BatchError::Threshold`] for a threshold outside `[0, 1]`; [`BatchError::Setup`] when the
/// detector cannot be set up (a model that does not fit the contract, no ONNX Runtime library);
/// [`BatchError::DeviceUnavailable`] under [`EngineConfig::strict_device`];
/// [`BatchError::Model`] for a model file that cannot be read.
pub fn build(cfg: &EngineConfig) -> Result<Box<dyn Engine>, BatchError> {
    let m = &cfg.models;
    let device = cfg.device;
    let mut b = Detector::builder().device(device).threads(cfg.threads);
    if let Some(c) = &m.coarse {
        b = b.coarse(c);
    }
    if let Some(f) = &m.fine {
        b = b.fine(f);
    }
    if let Some(l) = cfg.ort_lib.clone().or_else(ort_library_beside_executable) {
        b = b.ort_library(l);
    }
    if cfg.keep_outside_lung {
        b = b.outside_lung(OutsideLung::Flag);
    }
    // The threshold applies to the model that gives the final probability: the fine model, or
    // the dense model when there is no fine one.
    if let Some(t) = cfg.threshold {
        if !(0.0..=1.0).contains(&t) {
            return Err(BatchError::Threshold(t));
        }
        b = if m.fine.is_some() {
            b.fine_threshold(t)
        } else {
            b.dense_threshold(t)
        };
    }
    let detector = b.build().map_err(BatchError::Setup)?;
    if cfg.strict_device && detector.device() != device {
        return Err(BatchError::DeviceUnavailable {
            requested: device,
            actual: detector.device(),
        });
    }
    let ident = |p: &Option<PathBuf>| -> Result<serde_json::Value, BatchError> {
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
        models["threshold"] = serde_json::json!(crate::run::round_to(f64::from(t), 6));
    }
    let operating_point = detector
        .fine_model()
        .unwrap_or_else(|| detector.dense_model())
        .contract()
        .threshold
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
    ) -> Result<EngineOutput, BatchError> {
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
