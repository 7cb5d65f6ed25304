//! The size measurement on a real nodule: LIDC-IDRI-0001's one LUNA16 reference nodule (GE, 2.5 mm
//! slices), measured at its LUNA16 centre, against its LUNA16 diameter (the mean of the readers'
//! outlines' diameters). Skips (prints a note) when `../shared/data` is absent, as in a user's clone.

use std::path::PathBuf;

use speck_candidates::{measure, Reliability};
use speck_volume::WorldPoint;

#[test]
fn lidc_0001_nodule_measures_within_10_percent_of_its_luna16_diameter() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/lidc-idri-0001");
    if !dir.is_dir() {
        eprintln!("SKIPPED: no {}", dir.display());
        return;
    }
    let volume = speck_volume::open(&dir).expect("LIDC-IDRI-0001 reads");
    // annotations.csv of the case (LUNA16): x, y, z (LPS mm), diameter (mm)
    let text = std::fs::read_to_string(dir.join("annotations.csv")).expect("annotations.csv");
    let row: Vec<f64> = text
        .lines()
        .nth(1)
        .expect("one nodule")
        .split(',')
        .skip(1)
        .map(|v| v.trim().parse().expect("number"))
        .collect();
    let (centre, luna_d) = (WorldPoint::new(row[0], row[1], row[2]), row[3]);
    let m = measure(&volume, centre, None).expect("measured");
    let rel = (m.equivalent_diameter_mm - luna_d) / luna_d;
    eprintln!(
        "LIDC-IDRI-0001: LUNA16 {luna_d:.1} mm; measured equivalent {:.1} mm ({:+.1} %), longest \
         axial {:.1} mm, volume {:.0} mm3, threshold {:.0} HU, {}",
        m.equivalent_diameter_mm,
        100.0 * rel,
        m.longest_axial_mm,
        m.volume_mm3,
        m.threshold_hu,
        m.reliability
    );
    assert_ne!(m.reliability, Reliability::Empty);
    assert!(rel.abs() <= 0.10, "{:+.1} %", 100.0 * rel);
}
