//! The lung mask on the real chest CT LIDC-IDRI-0001 (read from `../shared/data/lidc-idri-0001`
//! when present; skipped with a note otherwise). Its LUNA16 reference nodule (23 mm, at LPS
//! (56.2, 86.3, -115.9) mm) must lie inside the region of interest, which must be the lungs, not
//! the chest.

use std::path::PathBuf;

use speck_detect::{LungMask, LungMaskOptions};
use speck_volume::WorldPoint;

#[test]
fn lung_mask_on_lidc_0001_holds_the_reference_nodule() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/lidc-idri-0001");
    if !dir.is_dir() {
        eprintln!(
            "note: {} absent; skipping the LIDC lung-mask test",
            dir.display()
        );
        return;
    }
    let volume = speck_volume::open(&dir).expect("LIDC-IDRI-0001 loads");
    let mask = LungMask::compute(&volume, &LungMaskOptions::default());
    eprintln!(
        "LIDC-0001: components {}, roi fraction {:.3}, bbox {:?}",
        mask.components(),
        mask.fraction(),
        mask.bbox()
    );
    assert!((1..=2).contains(&mask.components()));
    assert!(
        (0.05..0.45).contains(&mask.fraction()),
        "roi fraction {}",
        mask.fraction()
    );
    let nodule = WorldPoint::new(56.20840547, 86.34341278, -115.8675792);
    assert!(mask.contains_index(volume.world_to_index(nodule)));
    // outside the body (the corner of the first slice) and the table are not lung
    assert!(!mask.contains_index(speck_volume::ContinuousIndex::new(0.0, 5.0, 5.0)));
}
