//! Finding the bundled models: `--models-dir`, then `SPECK_MODELS_DIR`, then a `models/` folder in
//! the current folder or above the executable (a `cargo build` puts it in `target/<profile>/`, so
//! the workspace's `models/` is found), then the workspace this binary was built from.

use std::path::{Path, PathBuf};

/// The models a scan uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    /// The coarse (heatmap) model.
    pub coarse: Option<PathBuf>,
    /// The fine (patch classifier) model.
    pub fine: Option<PathBuf>,
}

/// The newest (lexicographically last) `<role>-*.onnx` in `dir`.
fn newest(dir: &Path, role: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{role}-")) && n.ends_with(".onnx"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Folders searched for bundled models, in order.
pub fn search_dirs(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = explicit {
        dirs.push(d.to_path_buf());
        return dirs;
    }
    if let Some(d) = std::env::var_os("SPECK_MODELS_DIR").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(d));
        return dirs;
    }
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd.join("models"));
    }
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1).take(6) {
            dirs.push(anc.join("models"));
        }
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    dirs.dedup();
    dirs
}

/// Resolve the models: explicit paths win; otherwise the first searched folder holding a
/// `coarse-*.onnx` provides both roles.
///
/// # Errors
/// A message listing the folders searched and how to point Speck at models.
pub fn resolve(
    coarse: Option<&Path>,
    fine: Option<&Path>,
    models_dir: Option<&Path>,
) -> Result<ModelPaths, String> {
    for p in [coarse, fine].into_iter().flatten() {
        if !p.is_file() {
            return Err(format!("model {} does not exist", p.display()));
        }
    }
    if coarse.is_some() || fine.is_some() {
        return Ok(ModelPaths {
            coarse: coarse.map(Path::to_path_buf),
            fine: fine.map(Path::to_path_buf),
        });
    }
    let dirs = search_dirs(models_dir);
    for d in &dirs {
        if let Some(c) = newest(d, "coarse") {
            return Ok(ModelPaths {
                coarse: Some(c),
                fine: newest(d, "fine"),
            });
        }
    }
    Err(format!(
        "no bundled models (coarse-*.onnx) found; searched: {}. Pass --models-dir DIR or set \
         SPECK_MODELS_DIR to a folder holding coarse-*.onnx (and fine-*.onnx), or give models \
         with --coarse/--fine",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_of_each_role_in_an_explicit_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        for n in [
            "coarse-v1.onnx",
            "coarse-v2.onnx",
            "fine-v1.onnx",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(n), b"x").expect("write");
        }
        let m = resolve(None, None, Some(dir.path())).expect("models");
        assert_eq!(m.coarse, Some(dir.path().join("coarse-v2.onnx")));
        assert_eq!(m.fine, Some(dir.path().join("fine-v1.onnx")));
    }

    #[test]
    fn missing_models_say_where_they_were_looked_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = resolve(None, None, Some(dir.path())).expect_err("no models");
        assert!(err.contains(&dir.path().display().to_string()));
        assert!(err.contains("--models-dir"));
        let err = resolve(Some(&dir.path().join("nope.onnx")), None, None).expect_err("missing");
        assert!(err.contains("nope.onnx"));
    }
}
