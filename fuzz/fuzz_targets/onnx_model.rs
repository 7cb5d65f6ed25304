//! A model file through ONNX Runtime: protobuf parsing, graph checks, then Speck's contract and
//! input/output checks (`Model::load`). Needs libonnxruntime (`ORT_DYLIB_PATH` or the search of
//! `speck_detect::find_ort_library`); slow per input (a session per file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use speck_detect::{Model, SessionOptions};
use speck_fuzz::write;

fuzz_target!(|data: &[u8]| {
    let path = write("model.onnx", data);
    let options = SessionOptions {
        threads: 1,
        ..SessionOptions::default()
    };
    if let Ok(m) = Model::load(&path, &options) {
        assert!(m.contract().output_patch().iter().all(|&n| n > 0));
    }
});
