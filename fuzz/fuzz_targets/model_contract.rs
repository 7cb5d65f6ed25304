//! The Speck model contract, from ONNX `metadata_props`: the input is `key=value` lines (what
//! ONNX Runtime hands back as custom metadata), validated by `ModelContract::from_metadata`; an
//! accepted contract must be usable (finite normalisation, positive output tile).
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use speck_detect::ModelContract;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let map: HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Ok(c) = ModelContract::from_metadata(&|k| map.get(k).cloned()) {
        for hu in [-5000.0f32, -1000.0, 0.0, 400.0, 5000.0] {
            assert!(c.normalize(hu).is_finite(), "{c:?} at {hu}");
        }
        assert!(c.output_patch().iter().all(|&n| n > 0), "{c:?}");
        assert!(c.spacing_mm.iter().all(|s| s.is_finite() && *s > 0.0));
    }
});
