//! Model loading and contract validation against real ONNX Runtime, on the models made by
//! `models/test/make_test_models.py`.

mod common;

use common::{model, ort_available};
use speck_detect::{DetectError, Model, ModelRole, SessionOptions};

fn load(name: &str) -> Result<Model, DetectError> {
    Model::load(model(name), &SessionOptions::default())
}

#[test]
fn valid_models_load_with_their_contract() {
    if !ort_available() {
        return;
    }
    // blob_coarse_2mm: analytic blob filter at 2 mm, patch 24^3, threshold 0.3.
    let m = load("blob_coarse_2mm.onnx").expect("coarse loads");
    let c = m.contract();
    assert_eq!(c.role, ModelRole::Coarse);
    assert_eq!(c.spacing_mm, [2.0, 2.0, 2.0]);
    assert_eq!(c.patch_size, [24, 24, 24]);
    assert_eq!(c.threshold, Some(0.3));
    assert_eq!(c.hu_window, (-1000.0, 400.0));
    // blob_fine_1mm: patch 16^3, 5 channels.
    let f = load("blob_fine_1mm.onnx").expect("fine loads");
    assert_eq!(f.contract().role, ModelRole::Fine);
    assert_eq!(f.contract().channel("dx"), Some(4));
    // identity_seg_1mm_f16: float16 input.
    let h = load("identity_seg_1mm_f16.onnx").expect("f16 loads");
    assert!(h.is_f16());
    let s = load("blob_coarse_1mm_stride2.onnx").expect("stride-2 loads");
    assert_eq!(s.contract().output_patch(), [16, 16, 16]);
}

#[test]
fn f16_model_round_trips_values() {
    if !ort_available() {
        return;
    }
    // identity_seg_1mm_f16: Identity on float16; Speck converts f32 -> f16 -> f32.
    let m = load("identity_seg_1mm_f16.onnx").expect("loads");
    let x = ndarray::Array5::from_shape_fn((2, 1, 16, 16, 16), |(n, _, z, y, x)| {
        (n * 1000 + z * 100 + y * 10 + x) as f32 / 4096.0
    });
    let y = m.run(x.view()).expect("runs");
    assert_eq!(y.shape(), &[2, 1, 16, 16, 16]);
    for (a, b) in x.iter().zip(y.iter()) {
        assert!((a - b).abs() <= a.abs() * 1e-3 + 1e-6, "{a} vs {b}");
    }
}

#[test]
fn invalid_models_are_refused_with_a_precise_reason() {
    if !ort_available() {
        return;
    }
    let cases = [
        // input [N,1,H,W]
        ("invalid_rank4.onnx", "rank 5"),
        // blob_coarse_1mm without speck.role
        ("invalid_no_role.onnx", "`speck.role` is missing"),
        // speck.spacing_mm = "1.0,abc,1.0"
        ("invalid_bad_spacing.onnx", "\"abc\" is not a number"),
        // static input 16^3 vs speck.patch_size 32^3
        ("invalid_patch_mismatch.onnx", "speck.patch_size"),
    ];
    for (name, expect) in cases {
        let err = load(name).expect_err(name);
        assert!(
            matches!(err, DetectError::Contract { .. }),
            "{name}: {err:?}"
        );
        let msg = common::chain(&err);
        assert!(msg.contains(expect), "{name}: {msg}");
        assert!(msg.contains(name), "{name}: message names the file: {msg}");
    }
    // 512 random bytes
    let err = load("invalid_garbage.onnx").expect_err("garbage");
    assert!(
        matches!(err, DetectError::ModelLoad { .. }),
        "garbage: {err:?}"
    );
    assert!(
        common::chain(&err).contains("not a valid ONNX model"),
        "{err}"
    );
    let err = load("does_not_exist.onnx").expect_err("missing");
    assert!(matches!(err, DetectError::ModelLoad { .. }), "{err:?}");
}

/// One ONNX Runtime per process: an explicit path is used when it is the first, and a later,
/// different (existing) path is answered with the library already loaded (and a warning).
#[test]
fn second_runtime_path_reuses_the_loaded_library() {
    if !ort_available() {
        return;
    }
    let lib = speck_detect::find_ort_library(None).expect("found");
    let opts = SessionOptions {
        ort_library: Some(lib.clone()),
        ..SessionOptions::default()
    };
    Model::load(model("blob_coarse_2mm.onnx"), &opts).expect("explicit path loads");
    let other = SessionOptions {
        ort_library: Some(model("make_test_models.py")),
        ..SessionOptions::default()
    };
    Model::load(model("blob_coarse_2mm.onnx"), &other).expect("reuses the loaded runtime");
    assert_eq!(
        speck_detect::runtime::loaded_library().map(|p| p.canonicalize().expect("canon")),
        Some(lib.canonicalize().expect("canon"))
    );
}
