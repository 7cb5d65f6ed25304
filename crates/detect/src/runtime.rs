//! Finding and loading the ONNX Runtime shared library, the process-wide environment, and the
//! execution providers ([`Device`]).
//!
//! Speck links nothing at build time (`ort`'s `load-dynamic`): it looks for `libonnxruntime.so`
//! when the first model is loaded, in this order:
//! 1. an explicit path ([`crate::DetectorBuilder::ort_library`], the CLI's `--ort-lib`);
//! 2. the `ORT_DYLIB_PATH` environment variable;
//! 3. an installed Python `onnxruntime` / `onnxruntime-gpu` wheel: in `./.venv` (and the `.venv`
//!    of every parent folder), in `$VIRTUAL_ENV`, then wherever `.venv/bin/python` or `python3`
//!    imports `onnxruntime` from, taking `capi/libonnxruntime.so*`.
//!
//! The library is loaded once per process (ONNX Runtime allows one environment per process); a
//! later request for a different path is answered with the library already loaded, and a warning.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{DetectError, Result};

/// The ONNX Runtime version Speck is built and tested against (the `api-31` feature of `ort` makes
/// 1.31 the minimum).
pub const ORT_VERSION: &str = "1.31.1";

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Device {
    /// ONNX Runtime's CPU provider (always available).
    #[default]
    Cpu,
    /// NVIDIA CUDA on the given device id. Needs the `cuda` cargo feature and the
    /// `onnxruntime-gpu` library; otherwise Speck warns and runs on the CPU.
    Cuda(u32),
    /// NVIDIA TensorRT on the given device id. Needs the `tensorrt` cargo feature and an
    /// `onnxruntime-gpu` library with TensorRT; otherwise Speck warns and runs on the CPU.
    TensorRt(u32),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(id) => write!(f, "cuda:{id}"),
            Device::TensorRt(id) => write!(f, "tensorrt:{id}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = DetectError;

    /// Parses `cpu`, `cuda`, `cuda:N`, `tensorrt`, `tensorrt:N` (also `trt`).
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let (name, id) = match lower.split_once(':') {
            Some((n, i)) => {
                let id = i.parse::<u32>().map_err(|_| {
                    DetectError::Config(format!("device id in {s:?} is not a number"))
                })?;
                (n.to_string(), id)
            }
            None => (lower.clone(), 0),
        };
        match name.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(id)),
            "tensorrt" | "trt" => Ok(Device::TensorRt(id)),
            _ => Err(DetectError::Config(format!(
                "unknown device {s:?}: expected cpu, cuda[:N] or tensorrt[:N]"
            ))),
        }
    }
}

/// The text every "library not found" error ends with: the commands that fix it.
pub fn install_hint() -> String {
    format!(
        "install it with:\n    python3 -m venv .venv && .venv/bin/pip install onnxruntime=={ORT_VERSION}\n\
         (for CUDA/TensorRT: .venv/bin/pip install onnxruntime-gpu=={ORT_VERSION})\n\
         or point Speck at an existing library:\n    export ORT_DYLIB_PATH=/path/to/libonnxruntime.so.{ORT_VERSION}"
    )
}

/// Locate `libonnxruntime.so` (see the module docs for the search order).
///
/// # Errors
/// [`DetectError::RuntimeNotFound`] when `explicit` or `ORT_DYLIB_PATH` names a file that does not
/// exist, or when nothing is found; the message says what was tried and how to install it.
pub fn find_ort_library(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        return Err(DetectError::RuntimeNotFound(format!(
            "the ONNX Runtime library given explicitly ({}) does not exist; {}",
            p.display(),
            install_hint()
        )));
    }
    if let Some(v) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(v);
        if p.is_file() {
            return Ok(p);
        }
        return Err(DetectError::RuntimeNotFound(format!(
            "ORT_DYLIB_PATH={} does not exist; {}",
            p.display(),
            install_hint()
        )));
    }
    let mut tried = Vec::new();
    let mut venvs = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        venvs.extend(cwd.ancestors().map(|a| a.join(".venv")));
    }
    if let Some(v) = std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        venvs.push(PathBuf::from(v));
    }
    for venv in &venvs {
        if !venv.is_dir() {
            continue;
        }
        tried.push(venv.display().to_string());
        if let Some(lib) = library_in_venv(venv) {
            return Ok(lib);
        }
    }
    let mut pythons: Vec<PathBuf> = venvs
        .iter()
        .map(|v| v.join("bin/python"))
        .filter(|p| p.is_file())
        .collect();
    pythons.push(PathBuf::from("python3"));
    for py in pythons {
        tried.push(format!("{} -c 'import onnxruntime'", py.display()));
        if let Some(dir) = python_onnxruntime_dir(&py) {
            if let Some(lib) = library_in_capi(&dir.join("capi")) {
                return Ok(lib);
            }
        }
    }
    Err(DetectError::RuntimeNotFound(format!(
        "ONNX Runtime library (libonnxruntime.so) not found (tried --ort-lib, ORT_DYLIB_PATH, {}); {}",
        tried.join(", "),
        install_hint()
    )))
}

fn library_in_venv(venv: &Path) -> Option<PathBuf> {
    for lib in ["lib", "lib64"] {
        let Ok(entries) = std::fs::read_dir(venv.join(lib)) else {
            continue;
        };
        let mut pys: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("python"))
            })
            .collect();
        pys.sort();
        for py in pys {
            if let Some(found) = library_in_capi(&py.join("site-packages/onnxruntime/capi")) {
                return Some(found);
            }
        }
    }
    None
}

/// `capi/libonnxruntime.so*`, preferring the longest (versioned) name.
fn library_in_capi(capi: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(capi).ok()?;
    let mut libs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so") || n == "libonnxruntime.dylib")
        })
        .collect();
    libs.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    libs.into_iter().next()
}

fn python_onnxruntime_dir(python: &Path) -> Option<PathBuf> {
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let dir = PathBuf::from(s.trim());
    dir.is_dir().then_some(dir)
}

/// The loaded ONNX Runtime: the library path and the process-wide environment.
pub(crate) struct Runtime {
    pub(crate) library: PathBuf,
    pub(crate) env: ort::environment::Environment,
}

static RUNTIME: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

/// The process-wide runtime, loading the library on first use.
pub(crate) fn runtime(explicit: Option<&Path>) -> Result<Arc<Runtime>> {
    let mut guard = RUNTIME
        .lock()
        .map_err(|_| DetectError::Config("the ONNX Runtime lock was poisoned".into()))?;
    if let Some(p) = explicit {
        if !p.is_file() {
            return Err(find_ort_library(Some(p)).err().unwrap_or_else(|| {
                DetectError::RuntimeNotFound(format!("{} is not a file", p.display()))
            }));
        }
    }
    if let Some(rt) = guard.as_ref() {
        if let Some(p) = explicit {
            if !same_file(p, &rt.library) {
                tracing::warn!(
                    requested = %p.display(),
                    loaded = %rt.library.display(),
                    "ONNX Runtime is already loaded in this process from another path; using it"
                );
            }
        }
        return Ok(Arc::clone(rt));
    }
    let library = find_ort_library(explicit)?;
    let builder = ort::init_from(&library).map_err(|e| {
        DetectError::RuntimeNotFound(format!(
            "cannot load ONNX Runtime from {}: {e}; {}",
            library.display(),
            install_hint()
        ))
    })?;
    let env = builder
        .with_name("speck")
        .with_telemetry(false)
        .build()
        .map_err(|e| DetectError::runtime("creating the ONNX Runtime environment", e))?;
    tracing::debug!(library = %library.display(), "ONNX Runtime loaded");
    let rt = Arc::new(Runtime { library, env });
    *guard = Some(Arc::clone(&rt));
    Ok(rt)
}

/// The path of the ONNX Runtime library loaded in this process, if any.
pub fn loaded_library() -> Option<PathBuf> {
    RUNTIME
        .lock()
        .ok()
        .and_then(|g| g.as_ref().map(|rt| rt.library.clone()))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Register the execution provider for `device` on a session builder; returns the builder and the
/// device that will actually run (CPU when the provider is unavailable).
pub(crate) fn register_device(
    builder: ort::session::builder::SessionBuilder,
    device: Device,
) -> (ort::session::builder::SessionBuilder, Device) {
    match device {
        Device::Cpu => (builder, Device::Cpu),
        Device::Cuda(id) => register_cuda(builder, id),
        Device::TensorRt(id) => register_tensorrt(builder, id),
    }
}

#[cfg(feature = "cuda")]
fn register_cuda(
    builder: ort::session::builder::SessionBuilder,
    id: u32,
) -> (ort::session::builder::SessionBuilder, Device) {
    let ep = ort::ep::CUDA::default()
        .with_device_id(i32::try_from(id).unwrap_or(0))
        .build()
        .error_on_failure();
    match builder.with_execution_providers([ep]) {
        Ok(b) => (b, Device::Cuda(id)),
        Err(e) => {
            tracing::warn!(error = %e, "CUDA execution provider unavailable; running on the CPU");
            (e.recover(), Device::Cpu)
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn register_cuda(
    builder: ort::session::builder::SessionBuilder,
    id: u32,
) -> (ort::session::builder::SessionBuilder, Device) {
    tracing::warn!(
        device = id,
        "CUDA requested but this Speck was built without the `cuda` feature; running on the CPU"
    );
    (builder, Device::Cpu)
}

#[cfg(feature = "tensorrt")]
fn register_tensorrt(
    builder: ort::session::builder::SessionBuilder,
    id: u32,
) -> (ort::session::builder::SessionBuilder, Device) {
    let ep = ort::ep::TensorRT::default()
        .with_device_id(i32::try_from(id).unwrap_or(0))
        .build()
        .error_on_failure();
    match builder.with_execution_providers([ep]) {
        Ok(b) => (b, Device::TensorRt(id)),
        Err(e) => {
            tracing::warn!(error = %e, "TensorRT execution provider unavailable; running on the CPU");
            (e.recover(), Device::Cpu)
        }
    }
}

#[cfg(not(feature = "tensorrt"))]
fn register_tensorrt(
    builder: ort::session::builder::SessionBuilder,
    id: u32,
) -> (ort::session::builder::SessionBuilder, Device) {
    tracing::warn!(
        device = id,
        "TensorRT requested but this Speck was built without the `tensorrt` feature; running on the CPU"
    );
    (builder, Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_parses_and_prints() {
        assert_eq!("cpu".parse::<Device>().ok(), Some(Device::Cpu));
        assert_eq!("cuda:1".parse::<Device>().ok(), Some(Device::Cuda(1)));
        assert_eq!("TensorRT".parse::<Device>().ok(), Some(Device::TensorRt(0)));
        assert!("tpu".parse::<Device>().is_err());
        assert!("cuda:x".parse::<Device>().is_err());
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn explicit_missing_library_says_how_to_install() {
        let err = find_ort_library(Some(Path::new("/nonexistent/libonnxruntime.so")))
            .expect_err("a missing explicit path must fail");
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/libonnxruntime.so"), "{msg}");
        assert!(
            msg.contains("python3 -m venv .venv && .venv/bin/pip install onnxruntime==1.31.1"),
            "{msg}"
        );
        assert!(msg.contains("export ORT_DYLIB_PATH="), "{msg}");
        assert!(msg.contains("onnxruntime-gpu"), "{msg}");
    }

    #[test]
    fn capi_prefers_versioned_library() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("libonnxruntime.so"), b"").expect("write");
        std::fs::write(dir.path().join("libonnxruntime.so.1.31.1"), b"").expect("write");
        std::fs::write(dir.path().join("libonnxruntime_providers_shared.so"), b"").expect("write");
        let found = library_in_capi(dir.path()).expect("found");
        assert_eq!(
            found.file_name().and_then(|n| n.to_str()),
            Some("libonnxruntime.so.1.31.1")
        );
    }
}
