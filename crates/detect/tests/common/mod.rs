//! Shared helpers for speck-detect's integration tests.
//!
//! The models come from `models/test/make_test_models.py` (analytic, untrained; see its docstring).
#![allow(dead_code)]

use std::path::PathBuf;

/// `models/test/<name>` in the repository.
pub fn model(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/test")
        .join(name)
}

/// True when ONNX Runtime can be found; otherwise prints why the test is skipped.
pub fn ort_available() -> bool {
    match speck_detect::find_ort_library(None) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: ONNX Runtime not found ({e})");
            false
        }
    }
}
