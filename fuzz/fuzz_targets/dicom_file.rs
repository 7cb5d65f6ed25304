//! One DICOM file: header parsing, pixel decoding (native and every compressed transfer syntax
//! dicom-pixeldata decodes), and `read_series` on the file alone (a single slice or an enhanced
//! multi-frame image).
#![no_main]

use libfuzzer_sys::fuzz_target;
use speck_fuzz::{check_volume, fresh_dir, options};

fuzz_target!(|data: &[u8]| {
    let dir = fresh_dir("dcm1");
    let path = dir.join("in.dcm");
    std::fs::write(&path, data).expect("write");
    let limits = options().limits;
    if let Ok(a) = speck_volume::dicom::read_pixels(&path, &limits) {
        assert!(!a.is_empty());
    }
    let _ = speck_volume::dicom::scan_series(&dir);
    if let Ok(v) = speck_volume::dicom::read_series(&path, &options()) {
        check_volume(&v);
    }
});
