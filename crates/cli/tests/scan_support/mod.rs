//! Shared fixtures of the `speck scan` end-to-end tests: phantoms written as DICOM, NIfTI and
//! MetaImage, broken inputs, and a runner for the `speck` binary.
//!
//! The models are the analytic test models of `models/test/` (see `make_test_models.py`), so the
//! tests do not depend on the trained bundled models.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use speck_phantom::{generate, OutputFormat, Phantom, PhantomOptions, SizeMix};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `models/test/<name>`.
pub fn test_model(name: &str) -> PathBuf {
    repo().join("models/test").join(name)
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

/// A small phantom (48 x 128 x 128 at 2.0 x 1.2 x 1.2 mm) with a few nodules.
pub fn phantom(seed: u64) -> Phantom {
    let opts = PhantomOptions::new(seed)
        .shape([48, 128, 128])
        .spacing([2.0, 1.2, 1.2])
        .nodules(3)
        .size_mix(SizeMix::Small);
    generate(&opts).expect("phantom")
}

/// Write `p` in `format` into `dir`; returns the path written.
pub fn write(p: &Phantom, dir: &Path, format: OutputFormat) -> PathBuf {
    speck_phantom::write_scan(p, dir, format).expect("write phantom")
}

/// Replace the Modality "CT" of every DICOM file under `dir` by "MR" (explicit VR little endian:
/// tag (0008,0060), VR CS, length 2).
pub fn make_mr(dir: &Path) {
    let pat = [0x08u8, 0x00, 0x60, 0x00, b'C', b'S', 0x02, 0x00, b'C', b'T'];
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("ls").flatten() {
        let mut bytes = std::fs::read(e.path()).expect("read");
        if let Some(i) = bytes.windows(pat.len()).position(|w| w == pat) {
            bytes[i + 8] = b'M';
            bytes[i + 9] = b'R';
            std::fs::write(e.path(), bytes).expect("write");
            n += 1;
        }
    }
    assert!(n > 0, "no Modality element found under {}", dir.display());
}

/// Run `speck` with `args`; `env` adds variables.
pub fn speck(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_speck"));
    c.args(args)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT");
    c.env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SPECK_MODELS_DIR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run speck")
}

/// The model flags for the analytic test models (the 2 mm coarse filter: fast, high recall).
pub fn model_args() -> Vec<String> {
    vec![
        "--coarse".into(),
        test_model("blob_coarse_2mm.onnx").display().to_string(),
        "--fine".into(),
        test_model("blob_fine_1mm.onnx").display().to_string(),
    ]
}

/// `speck scan INPUTS --out OUT <model args> EXTRA`.
pub fn scan(inputs: &[&Path], out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args: Vec<String> = vec!["scan".into()];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args.push("--out".into());
    args.push(out.display().to_string());
    args.extend(model_args());
    args.extend(extra.iter().map(|s| (*s).to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    speck(&refs, env)
}

/// Print a command's output (for failing tests) and return its exit code.
pub fn code(o: &Output) -> i32 {
    eprintln!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o.status.code().unwrap_or(-1)
}

/// A CSV file as a header map per row.
pub fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers: Vec<String> = r
        .headers()
        .expect("headers")
        .iter()
        .map(String::from)
        .collect();
    r.records()
        .map(|rec| {
            let rec = rec.expect("record");
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(String::from))
                .collect()
        })
        .collect()
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).expect("ls").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).expect("prefix").to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Every temporary file (`.speck-tmp-*`) under `dir`.
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".speck-tmp-"))
        })
        .collect()
}

/// Keep a test's folder for inspection when `SPECK_TEST_KEEP` is set (prints where).
pub fn keep_if_asked(dir: tempfile::TempDir) {
    if std::env::var_os("SPECK_TEST_KEEP").is_some() {
        eprintln!("kept {}", dir.keep().display());
    }
}
