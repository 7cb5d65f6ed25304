//! NIfTI-1 (`.nii` and `.nii.gz`): the input is the whole file; the reader sniffs gzip by its
//! magic bytes, so one target covers both. Both the HU reader and the f32 reader run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use speck_fuzz::{check_volume, options, write};

fuzz_target!(|data: &[u8]| {
    let gz = data.starts_with(&[0x1f, 0x8b]);
    let path = write(if gz { "in.nii.gz" } else { "in.nii" }, data);
    if let Ok(v) = speck_volume::nifti::read_nifti(&path, &options()) {
        check_volume(&v);
    }
    if let Ok((a, _g, _w)) = speck_volume::nifti::read_nifti_f32(&path, &options()) {
        assert!(a.iter().all(|v| v.is_finite()));
    }
});
