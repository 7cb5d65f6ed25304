//! DICOM series assembly: the input is split at every `@@SPECK@@` into up to 16 files of one
//! folder, then the folder is listed (`scan_series`) and read (`read_series`): grouping into
//! stacks, sorting along the normal, gaps, tilt, duplicates, inconsistent slices.
#![no_main]

use libfuzzer_sys::fuzz_target;
use speck_fuzz::{check_volume, fresh_dir, options};

const MARK: &[u8] = b"@@SPECK@@";

fuzz_target!(|data: &[u8]| {
    let dir = fresh_dir("series");
    let mut rest = data;
    for k in 0..16 {
        let (part, next) = match rest.windows(MARK.len()).position(|w| w == MARK) {
            Some(i) if k < 15 => (&rest[..i], Some(&rest[i + MARK.len()..])),
            _ => (rest, None),
        };
        std::fs::write(dir.join(format!("f{k:02}.dcm")), part).expect("write");
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    let _ = speck_volume::dicom::scan_series(&dir);
    if let Ok(v) = speck_volume::dicom::read_series(&dir, &options()) {
        check_volume(&v);
    }
});
