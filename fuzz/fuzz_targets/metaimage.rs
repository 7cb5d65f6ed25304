//! MetaImage header and data. The input is split at the first `\n@@DATA@@\n`: without the marker
//! it is one `.mha` (header and `LOCAL` data in one file); with it, the part before is an `.mhd`
//! header and the part after is `d.raw`, the data file its `ElementDataFile` usually names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use speck_fuzz::{check_volume, fresh_dir, options};

const MARK: &[u8] = b"\n@@DATA@@\n";

fuzz_target!(|data: &[u8]| {
    let dir = fresh_dir("mi");
    let split = data.windows(MARK.len()).position(|w| w == MARK);
    let path = match split {
        None => {
            let p = dir.join("in.mha");
            std::fs::write(&p, data).expect("write");
            p
        }
        Some(i) => {
            let p = dir.join("in.mhd");
            std::fs::write(&p, &data[..i + 1]).expect("write");
            std::fs::write(dir.join("d.raw"), &data[i + MARK.len()..]).expect("write");
            p
        }
    };
    if let Ok(v) = speck_volume::metaimage::read_metaimage(&path, &options()) {
        check_volume(&v);
    }
});
