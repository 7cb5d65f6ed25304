//! Model files that are not Speck models (the ONNX rows of `docs/reliability.md`): each must be
//! refused by `Model::load` with exactly the error below (`{path}` is the file; the error and its
//! sources, as the `speck` command prints them), through the real
//! ONNX Runtime (skipped, with a note, when the library cannot be found).
//!
//! The inputs are made at test time from `models/test/` (see `models/test/make_test_models.py`).

mod common;

use std::path::Path;

use common::{chain, model, ort_available};
use speck_detect::{DetectError, Model, SessionOptions};

#[track_caller]
fn expect(path: &Path, expected: &str) -> DetectError {
    let e = Model::load(path, &SessionOptions::default()).expect_err(expected);
    assert_eq!(
        chain(&e),
        expected.replace("{path}", &path.display().to_string()),
        "{e:?}"
    );
    e
}

const PROTOBUF: &str =
    "cannot load model {path}: not a valid ONNX model: Failed to load model because protobuf \
     parsing failed.";

#[test]
fn files_that_are_not_onnx_models_are_refused() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let good = std::fs::read(model("blob_coarse_2mm.onnx")).expect("model");
    // A NIfTI header where a model should be.
    let mut nifti = vec![0u8; 352];
    nifti[0..4].copy_from_slice(&348i32.to_le_bytes());
    nifti[344..348].copy_from_slice(b"n+1\0");
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "empty.onnx",
            Vec::new(),
            "cannot load model {path}: not a valid ONNX model: No graph was found in the protobuf.",
        ),
        ("text.onnx", b"this is not a model\n".to_vec(), PROTOBUF),
        ("truncated.onnx", good[..good.len() / 2].to_vec(), PROTOBUF),
        ("nifti.onnx", nifti, PROTOBUF),
    ];
    for (name, bytes, expected) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        let e = expect(&p, expected);
        assert!(matches!(e, DetectError::ModelLoad { .. }), "{name}: {e:?}");
    }
    let p = dir.path().join("absent.onnx");
    expect(
        &p,
        "cannot load model {path}: No such file or directory (os error 2)",
    );
}

#[test]
fn models_with_the_wrong_input_rank_or_metadata_are_refused() {
    if !ort_available() {
        return;
    }
    let c = "model {path} breaks the Speck model contract: ";
    for (name, reason) in [
        // Input [N, 1, H, W]: a 2-D model.
        (
            "invalid_rank4.onnx",
            "input `image` must have rank 5 [N, 1, D, H, W], found rank 4 [?, 1, ?, ?]",
        ),
        // blob_coarse_1mm without `speck.role`.
        (
            "invalid_no_role.onnx",
            "metadata key `speck.role` is missing",
        ),
        // `speck.spacing_mm` = "1.0,abc,1.0".
        (
            "invalid_bad_spacing.onnx",
            "`speck.spacing_mm` must be z,y,x mm, found \"1.0,abc,1.0\" (\"abc\" is not a number)",
        ),
        // Static input 32^3 although `speck.tile_multiple` promises other sizes.
        (
            "invalid_static_tile_multiple.onnx",
            "input `image` has static shape [?, 1, 32, 32, 32] but `speck.tile_multiple` promises \
             any multiple of [4, 4, 4]: make its D, H, W axes dynamic or drop the key",
        ),
        // Static input 16^3, `speck.patch_size` 32^3.
        (
            "invalid_patch_mismatch.onnx",
            "input `image` has static shape [?, 1, 16, 16, 16] but `speck.patch_size` is \
             [32, 32, 32]",
        ),
    ] {
        let p = model(name);
        let e = expect(&p, &format!("{c}{reason}"));
        assert!(matches!(e, DetectError::Contract { .. }), "{name}: {e:?}");
    }
}

/// fuzz target `model_contract`, finding 1: a `fine` model whose `speck.output_stride` (4,2,2)
/// exceeded its `speck.patch_size` (3,64,64) was accepted, and `ModelContract::output_patch`
/// returned a zero-sized tile `[0, 32, 32]` (the divisibility check only ran for dense roles).
#[test]
fn regression_model_contract_1() {
    use speck_detect::ModelContract;
    let meta = [
        ("speck.role", "fine"),
        ("speck.version", "1.0.0"),
        ("speck.spacing_mm", "1.0,0.7,0.7"),
        ("speck.patch_size", "3,64,64"),
        ("speck.output_stride", "4,2,2"),
        ("speck.hu_window", "-1000,400"),
        ("speck.normalization", "zscore:-500,250"),
        ("speck.output_channels", "prob,diameter_mm"),
    ];
    let get = |k: &str| {
        meta.iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.to_string())
    };
    let err = ModelContract::from_metadata(&get).expect_err("stride larger than the patch");
    assert_eq!(err.key(), "speck.output_stride");
    assert_eq!(
        err.to_string(),
        "`speck.output_stride` [4, 2, 2] is larger than `speck.patch_size` [3, 64, 64]"
    );
}
