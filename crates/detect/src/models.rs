//! Finding the models of a scan: explicit model files win; otherwise the first folder that holds a
//! `coarse-*.onnx` provides both roles (the lexicographically last `coarse-*.onnx` and
//! `fine-*.onnx` in it). The folders searched, in order ([`ModelSearch::search_dirs`]):
//!
//! 1. an explicit folder ([`ModelSearch::models_dir`], the cli's `--models-dir`), alone;
//! 2. else `SPECK_MODELS_DIR` when set and not empty, alone;
//! 3. else `models/` in the current folder, then `models/` in each of the six folders above the
//!    executable (a `cargo build` puts it in `target/<profile>/`, so the workspace's `models/` is
//!    found), then the caller's own fallback ([`ModelSearch::fallback_dir`], e.g. the models of
//!    the workspace a binary was built from).
//!
//! ```no_run
//! use speck_detect::models::ModelSearch;
//! let found = ModelSearch::new().locate()?;
//! println!("coarse {:?}, fine {:?}", found.coarse, found.fine);
//! # Ok::<(), speck_detect::DetectError>(())
//! ```

use std::path::{Path, PathBuf};

use crate::error::{DetectError, Result};

/// The environment variable naming a folder of models.
pub const MODELS_DIR_ENV: &str = "SPECK_MODELS_DIR";

/// The models found by [`ModelSearch::locate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    /// The coarse (heatmap) model; `None` only when a fine model alone was given explicitly.
    pub coarse: Option<PathBuf>,
    /// The fine (patch classifier) model, if any.
    pub fine: Option<PathBuf>,
}

/// Where to look for models: explicit files, an explicit folder, and a fallback folder. Built by
/// value: `ModelSearch::new().models_dir(d).locate()?`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct ModelSearch {
    coarse: Option<PathBuf>,
    fine: Option<PathBuf>,
    models_dir: Option<PathBuf>,
    fallback_dir: Option<PathBuf>,
}

impl ModelSearch {
    /// Search the default folders only.
    pub fn new() -> Self {
        Self::default()
    }
    /// An explicit coarse model file (no folder is searched when a model file is given).
    pub fn coarse(mut self, path: impl Into<PathBuf>) -> Self {
        self.coarse = Some(path.into());
        self
    }
    /// An explicit fine model file (no folder is searched when a model file is given).
    pub fn fine(mut self, path: impl Into<PathBuf>) -> Self {
        self.fine = Some(path.into());
        self
    }
    /// The one folder to search (before `SPECK_MODELS_DIR`, which it overrides).
    pub fn models_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.models_dir = Some(dir.into());
        self
    }
    /// A folder searched last, when neither [`ModelSearch::models_dir`] nor `SPECK_MODELS_DIR`
    /// is given.
    pub fn fallback_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.fallback_dir = Some(dir.into());
        self
    }

    /// The folders searched for models, in order (see the [module docs](self)).
    pub fn search_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(d) = &self.models_dir {
            dirs.push(d.clone());
            return dirs;
        }
        if let Some(d) = std::env::var_os(MODELS_DIR_ENV).filter(|v| !v.is_empty()) {
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
        if let Some(d) = &self.fallback_dir {
            dirs.push(d.clone());
        }
        dirs.dedup();
        dirs
    }

    /// Resolve the models: explicit files win; otherwise the first searched folder holding a
    /// `coarse-*.onnx` provides both roles.
    ///
    /// # Errors
    /// [`DetectError::ModelMissing`] when an explicit model file does not exist;
    /// [`DetectError::NoModels`], listing the folders searched, when none holds a `coarse-*.onnx`.
    pub fn locate(&self) -> Result<ModelPaths> {
        for p in [&self.coarse, &self.fine].into_iter().flatten() {
            if !p.is_file() {
                return Err(DetectError::ModelMissing { path: p.clone() });
            }
        }
        if self.coarse.is_some() || self.fine.is_some() {
            return Ok(ModelPaths {
                coarse: self.coarse.clone(),
                fine: self.fine.clone(),
            });
        }
        let searched = self.search_dirs();
        for d in &searched {
            if let Some(c) = newest(d, "coarse") {
                return Ok(ModelPaths {
                    coarse: Some(c),
                    fine: newest(d, "fine"),
                });
            }
        }
        Err(DetectError::NoModels { searched })
    }
}

/// The newest (lexicographically last) `<role>-*.onnx` file in `dir`.
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
        let m = ModelSearch::new()
            .models_dir(dir.path())
            .locate()
            .expect("models");
        assert_eq!(m.coarse, Some(dir.path().join("coarse-v2.onnx")));
        assert_eq!(m.fine, Some(dir.path().join("fine-v1.onnx")));
    }

    #[test]
    fn missing_models_say_where_they_were_looked_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = ModelSearch::new()
            .models_dir(dir.path())
            .locate()
            .expect_err("no models");
        assert!(
            matches!(&err, DetectError::NoModels { searched } if searched == &[dir.path().to_path_buf()])
        );
        assert!(err.to_string().contains(&dir.path().display().to_string()));
        let err = ModelSearch::new()
            .coarse(dir.path().join("nope.onnx"))
            .locate()
            .expect_err("missing");
        assert!(err.to_string().contains("nope.onnx"));
    }

    #[test]
    fn an_explicit_folder_is_searched_alone_and_the_fallback_comes_last() {
        let s = ModelSearch::new().models_dir("/a").fallback_dir("/b");
        assert_eq!(s.search_dirs(), vec![PathBuf::from("/a")]);
        if std::env::var_os(MODELS_DIR_ENV).is_none() {
            let dirs = ModelSearch::new().fallback_dir("/b").search_dirs();
            assert_eq!(dirs.last(), Some(&PathBuf::from("/b")));
        }
    }
}
