//! The evaluation CSV readers (annotations, excluded findings, candidates, series lists). The
//! first byte picks the reader; the rest is the file (invalid UTF-8 is replaced, as a file read
//! with `read_to_string` would be refused before parsing).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let p = Path::new("fuzz.csv");
    match which % 4 {
        0 => {
            if let Ok(a) = speck_eval::parse_annotations(p, &text) {
                for n in &a.nodules {
                    assert!(n.diameter_mm.is_finite());
                }
            }
        }
        1 => {
            let _ = speck_eval::parse_excluded(p, &text);
        }
        2 => {
            if let Ok(c) = speck_eval::parse_candidates(p, &text) {
                assert!(c.iter().all(|c| c.probability.is_finite()));
            }
        }
        _ => {
            let _ = speck_eval::parse_series(p, &text);
        }
    }
});
