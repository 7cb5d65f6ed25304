//! The lung mask and the detector on speck-phantom's seeded synthetic chest (real anatomy: body,
//! heart, great vessels, airways, vessel trees, ribs, noise), against its ground truth.

mod common;

use common::{model, ort_available};
use speck_detect::{Detector, LungMask, LungMaskOptions};
use speck_phantom::{generate, Attachment, Density, PhantomOptions, SizeMix};
use speck_volume::ContinuousIndex;

fn phantom() -> speck_phantom::Phantom {
    let opts = PhantomOptions::new(11)
        .shape([64, 160, 160])
        .spacing([1.5, 1.2, 1.2])
        .nodules(4)
        .size_mix(SizeMix::Small)
        .with_lung_mask(true);
    generate(&opts).expect("phantom")
}

#[test]
fn lung_mask_covers_the_true_lungs_and_not_the_mediastinum() {
    let p = phantom();
    let truth = p.truth.lung_mask.as_ref().expect("truth mask");
    let mask = LungMask::compute(&p.volume, &LungMaskOptions::default());
    assert!(mask.components() >= 1);
    let mut lung = 0usize;
    let mut covered = 0usize;
    for ((z, y, x), v) in truth.indexed_iter() {
        if *v != 0 {
            lung += 1;
            if mask.contains_index(ContinuousIndex::new(z as f64, y as f64, x as f64)) {
                covered += 1;
            }
        }
    }
    let lung_fraction = lung as f64 / truth.len() as f64;
    assert!(
        covered as f64 >= 0.98 * lung as f64,
        "{covered} of {lung} lung voxels in the mask"
    );
    // the region of interest is the lungs plus a margin, not the chest (these phantom lungs are
    // small, 230 ml, so the 5 mm shell is large relative to them)
    assert!(
        mask.fraction() < 3.0 * lung_fraction,
        "roi {} vs lungs {}",
        mask.fraction(),
        lung_fraction
    );
    // every nodule centre is inside
    for n in &p.truth.nodules {
        assert!(
            mask.contains_index(p.volume.world_to_index(n.centre)),
            "{n:?}"
        );
    }
    // the middle of the chest (mediastinum/heart) is outside
    let [nz, ny, nx] = p.volume.shape_zyx();
    let centre = ContinuousIndex::new(nz as f64 / 2.0, ny as f64 * 0.45, nx as f64 / 2.0);
    assert!(!mask.contains_index(centre));
}

/// Lung voxels of `truth` in slices `z < z_end` that `mask` covers, and all of them.
fn lung_coverage(truth: &ndarray::Array3<u8>, mask: &LungMask, z_end: usize) -> (usize, usize) {
    let (mut lung, mut covered) = (0, 0);
    for ((z, y, x), v) in truth.indexed_iter() {
        if *v != 0 && z < z_end {
            lung += 1;
            if mask.contains_index(ContinuousIndex::new(z as f64, y as f64, x as f64)) {
                covered += 1;
            }
        }
    }
    (covered, lung)
}

#[test]
fn an_all_air_end_slab_does_not_join_the_lungs_to_the_outside_air() {
    // Resampling tools fill what lies past the last slice with air (-1024): such a slab touches
    // the lungs and the air around the body at once. It must not make the lungs "outside air"
    // (that left nothing to search).
    let p = phantom();
    let truth = p.truth.lung_mask.as_ref().expect("truth mask");
    let mut voxels = p.volume.voxels().to_owned();
    let nz = voxels.dim().0;
    voxels.slice_mut(ndarray::s![nz - 3.., .., ..]).fill(-1024);
    let volume =
        speck_volume::Volume::new(voxels, *p.volume.geometry(), p.volume.provenance().clone())
            .expect("volume");
    let mask = LungMask::compute(&volume, &LungMaskOptions::default());
    // The slab is left out and said so; the phantom as generated has no such slice.
    assert_eq!(mask.slices_without_body(), 3);
    let plain = LungMask::compute(&p.volume, &LungMaskOptions::default());
    assert_eq!(plain.slices_without_body(), 0);
    let (covered, lung) = lung_coverage(truth, &mask, nz - 3);
    assert!(lung > 0);
    assert!(
        covered as f64 >= 0.98 * lung as f64,
        "{covered} of {lung} lung voxels in the mask with an air slab at the end"
    );
}

#[test]
fn detector_runs_on_a_phantom_and_keeps_findings_in_the_lungs() {
    if !ort_available() {
        return;
    }
    let p = phantom();
    let det = Detector::builder()
        .coarse(model("blob_coarse_2mm.onnx"))
        .fine(model("blob_fine_1mm.onnx"))
        .build()
        .expect("build");
    let found = det.detect(&p.volume).expect("detect");
    // Nothing outside the lungs survives (the analytic models are not trained detectors: they also
    // fire on vessel crossings inside the lungs, so only the lung guard is asserted here).
    for d in &found.candidates {
        assert_eq!(d.in_lung, Some(true));
        let dist = p.truth.lung_signed_distance_mm(d.candidate.world);
        assert!(
            dist < 6.0,
            "{:?} is {dist:.1} mm outside the true lungs",
            d.candidate.world
        );
    }
    assert!(found.counts.roi_fraction < 0.3, "{:?}", found.counts);
    // At least one isolated solid nodule is found within 2 mm.
    let hit = p
        .truth
        .nodules
        .iter()
        .filter(|n| n.density == Density::Solid && n.attachment == Attachment::Isolated)
        .any(|n| {
            found
                .candidates
                .iter()
                .any(|d| d.candidate.world.distance_mm(n.centre) < 2.0)
        });
    assert!(hit, "{:?}", found.candidates);
}
