//! The bundled models (`models/coarse-v7.onnx`, `models/fine-v7.onnx`) through the real engine on
//! a freshly generated phantom, at the model card's operating point (the fine model's own
//! `speck.threshold` with the flip TTA its `speck.flip_tta` asks for, as the engine's cascade,
//! and the engine's cap of 150 fine-stage candidates: 1 FP/scan on the validation phantoms of
//! `models/README.md`).
//!
//! Nodules of 4 voxels and more (diameter in voxels rounding to 4 or more): of the isolated solid
//! ones at least 80 % must be found (6 of 6 when written); of every density and attachment, at
//! least two thirds (the card's 4-voxel sensitivity at 1 FP/scan is 0.80; 11 of 15 when
//! written, with v7 as with v6, both on the generator with its airway fix).
//! Skips (prints a note) when ONNX Runtime cannot be found.

use std::path::PathBuf;

use speck::detect::{ModelRole, SessionOptions};
use speck::phantom::{AttachmentMix, DensityMix, PhantomOptions, SizeMix};
use speck::{Detector, Device};

fn bundled(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(name)
}

#[test]
fn bundled_models_load_and_honour_the_contract() -> Result<(), speck::Error> {
    if let Err(e) = speck::detect::find_ort_library(None) {
        eprintln!("SKIPPED: ONNX Runtime not found ({e})");
        return Ok(());
    }
    let opts = SessionOptions::default();
    let coarse = speck::detect::Model::load(bundled("coarse-v7.onnx"), &opts)?;
    let fine = speck::detect::Model::load(bundled("fine-v7.onnx"), &opts)?;
    assert_eq!(coarse.contract().role, ModelRole::Coarse);
    assert_eq!(fine.contract().role, ModelRole::Fine);
    assert!(fine.contract().channel("diameter_mm").is_some());
    // The card's operating point is measured with flip TTA, and the fine model says so.
    assert_eq!(fine.contract().flip_tta, Some(true));
    assert_eq!(coarse.contract().flip_tta, None);
    // The coarse net is fully convolutional, so the engine may fit its tiles to the lungs.
    assert_eq!(coarse.contract().tile_multiple, Some([4, 8, 8]));
    for m in [&coarse, &fine] {
        let len =
            std::fs::metadata(m.path()).map_err(|e| speck::volume::VolumeError::io(m.path(), e))?;
        assert!(len.len() < 10 << 20, "{} is over 10 MB", m.path().display());
    }
    Ok(())
}

/// Runs the bundled pair on a fresh phantom (96 x 320 x 320 at the models' spacing, small nodules)
/// at the card's operating point; returns (nodules of 4+ voxels found, nodules of 4+ voxels).
fn four_voxel_nodules_found(
    seed: u64,
    density: DensityMix,
    attachment: AttachmentMix,
) -> Result<(usize, usize), speck::Error> {
    // The models' own spacing; a chest smaller than a real scan so the test stays quick.
    let phantom = speck::phantom::generate(
        &PhantomOptions::new(seed)
            .shape([96, 320, 320])
            .spacing([1.0, 0.7, 0.7])
            .nodules(10)
            .size_mix(SizeMix::Small)
            .density_mix(density)
            .attachment_mix(attachment),
    )?;
    let detector = Detector::builder()
        .coarse(bundled("coarse-v7.onnx"))
        .fine(bundled("fine-v7.onnx"))
        .device(Device::Cpu)
        .threads(2)
        .build()?;
    let found = detector.detect(&phantom.volume)?;
    // The engine follows the fine model's `speck.flip_tta` as a cascade: every candidate once,
    // the three flips for those whose first probability reaches the floor; at most 150
    // candidates reach the fine stage.
    let c = found.counts;
    assert!(c.fine_evaluated > 0 && c.fine_evaluated <= 150, "{c:?}");
    assert!(
        c.fine_runs > c.fine_evaluated && c.fine_runs <= 4 * c.fine_evaluated,
        "{c:?}"
    );
    assert_eq!((c.fine_runs - c.fine_evaluated) % 3, 0, "{c:?}");
    for d in &found.candidates {
        assert_eq!(
            d.in_lung,
            Some(true),
            "outside-lung candidates are dropped by default"
        );
    }
    let targets: Vec<_> = phantom
        .truth
        .reference_nodules()
        .filter(|n| n.diameter_vox >= 3.5)
        .collect();
    assert!(
        targets.len() >= 3,
        "the phantom holds {} nodules of 4+ voxels",
        targets.len()
    );
    let hit = targets
        .iter()
        .filter(|n| {
            found
                .candidates
                .iter()
                .any(|d| d.candidate.world.distance_mm(n.centre) < n.diameter_mm / 2.0)
        })
        .count();
    eprintln!(
        "bundled models, seed {seed}: {hit}/{} nodules of 4+ voxels found, {} candidates",
        targets.len(),
        found.candidates.len()
    );
    Ok((hit, targets.len()))
}

#[test]
fn bundled_models_find_solid_nodules_of_four_voxels_and_more() -> Result<(), speck::Error> {
    if let Err(e) = speck::detect::find_ort_library(None) {
        eprintln!("SKIPPED: ONNX Runtime not found ({e})");
        return Ok(());
    }
    let (hit, n) = four_voxel_nodules_found(
        4242,
        DensityMix {
            solid: 1.0,
            part_solid: 0.0,
            ground_glass: 0.0,
        },
        AttachmentMix {
            isolated: 1.0,
            vessel: 0.0,
            pleura: 0.0,
        },
    )?;
    assert!(
        10 * hit >= 8 * n,
        "found {hit} of {n} isolated solid nodules of 4+ voxels at the card's operating point"
    );
    Ok(())
}

#[test]
fn bundled_models_find_nodules_of_four_voxels_and_more_of_every_kind() -> Result<(), speck::Error> {
    if let Err(e) = speck::detect::find_ort_library(None) {
        eprintln!("SKIPPED: ONNX Runtime not found ({e})");
        return Ok(());
    }
    // The generator's default mix: solid, part-solid and ground-glass; isolated, vessel- and
    // pleura-attached. Two phantoms, so that one unlucky nodule does not decide. The card's
    // sensitivity at 1 FP/scan is 0.80 for 4-voxel nodules, 0.97 for 5, 0.87 for pleura- and
    // 0.90 for vessel-attached ones: at least two thirds must be found (11 of 15 when written).
    let (mut hit, mut n) = (0, 0);
    for seed in [4243, 4244] {
        let (h, t) =
            four_voxel_nodules_found(seed, DensityMix::default(), AttachmentMix::default())?;
        hit += h;
        n += t;
    }
    assert!(
        3 * hit >= 2 * n,
        "found {hit} of {n} nodules of 4+ voxels (all densities and attachments) at the card's \
         operating point"
    );
    Ok(())
}

#[test]
fn an_explicit_flip_tta_setting_overrides_the_bundled_models_own() -> Result<(), speck::Error> {
    if let Err(e) = speck::detect::find_ort_library(None) {
        eprintln!("SKIPPED: ONNX Runtime not found ({e})");
        return Ok(());
    }
    let phantom = speck::phantom::generate(
        &PhantomOptions::new(4245)
            .shape([96, 320, 320])
            .spacing([1.0, 0.7, 0.7])
            .nodules(6)
            .size_mix(SizeMix::Small),
    )?;
    let detector = Detector::builder()
        .coarse(bundled("coarse-v7.onnx"))
        .fine(bundled("fine-v7.onnx"))
        .flip_tta(false)
        .device(Device::Cpu)
        .threads(2)
        .build()?;
    let found = detector.detect(&phantom.volume)?;
    // The fine model asks for TTA (four runs per candidate); the builder said no: one run each.
    assert!(found.counts.fine_evaluated > 0);
    assert_eq!(found.counts.fine_runs, found.counts.fine_evaluated);
    Ok(())
}
