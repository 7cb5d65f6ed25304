//! Finding the bundled models ([`speck_detect::models`]): `--coarse`/`--fine`, else
//! `--models-dir`, then `SPECK_MODELS_DIR`, then a `models/` folder in the current folder or above
//! the executable, then the workspace this binary was built from; errors name the flags.

use std::path::Path;

use speck_detect::models::{ModelPaths, ModelSearch};
use speck_detect::DetectError;

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
    let mut search =
        ModelSearch::new().fallback_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    if let Some(c) = coarse {
        search = search.coarse(c);
    }
    if let Some(f) = fine {
        search = search.fine(f);
    }
    if let Some(d) = models_dir {
        search = search.models_dir(d);
    }
    search.locate().map_err(|e| match e {
        DetectError::NoModels { .. } => format!(
            "{e}. Pass --models-dir DIR or set SPECK_MODELS_DIR to a folder holding coarse-*.onnx \
             (and fine-*.onnx), or give models with --coarse/--fine"
        ),
        e => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_models_name_the_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = resolve(None, None, Some(dir.path())).expect_err("no models");
        assert_eq!(
            err,
            format!(
                "no bundled models (coarse-*.onnx) found; searched: {}. Pass --models-dir DIR or \
                 set SPECK_MODELS_DIR to a folder holding coarse-*.onnx (and fine-*.onnx), or give \
                 models with --coarse/--fine",
                dir.path().display()
            )
        );
        let missing = dir.path().join("nope.onnx");
        let err = resolve(Some(&missing), None, None).expect_err("missing");
        assert_eq!(err, format!("model {} does not exist", missing.display()));
    }
}
