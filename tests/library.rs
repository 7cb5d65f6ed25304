//! End-to-end test of the `speck` library as an embedding program uses it: a phantom written as a
//! DICOM series, read back with `speck::open`, searched with a `Detector` (the analytic test
//! models of `models/test/`, real ONNX Runtime), and scored with `speck::evaluate`.
//! Skips (prints a note) when ONNX Runtime cannot be found.

use std::path::PathBuf;

use speck::eval::{EvalOptions, Nodule, ScoredCandidate};
use speck::phantom::{AttachmentMix, DensityMix, PhantomOptions, SizeMix};
use speck::{Detector, Device};

fn model(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/test")
        .join(name)
}

#[test]
fn dicom_folder_to_candidates_to_froc_through_the_facade() -> Result<(), speck::Error> {
    if let Err(e) = speck::detect::find_ort_library(None) {
        eprintln!("SKIPPED: ONNX Runtime not found ({e})");
        return Ok(());
    }
    // Solid, isolated nodules: what an analytic blob filter can see.
    let opts = PhantomOptions::new(5)
        .shape([48, 128, 128])
        .spacing([2.0, 1.2, 1.2])
        .nodules(4)
        .size_mix(SizeMix::Small)
        .density_mix(DensityMix {
            solid: 1.0,
            part_solid: 0.0,
            ground_glass: 0.0,
        })
        .attachment_mix(AttachmentMix {
            isolated: 1.0,
            vessel: 0.0,
            pleura: 0.0,
        });
    let phantom = speck::phantom::generate(&opts)?;
    let dir = tempfile::tempdir().expect("tempdir");
    speck::phantom::write_scan(
        &phantom,
        &dir.path().join("study"),
        speck::phantom::OutputFormat::Dicom,
    )?;

    // The facade's reader: a DICOM folder, searched recursively.
    let volume = speck::open(dir.path().join("study"))?;
    assert_eq!(volume.shape_zyx(), [48, 128, 128]);
    assert_eq!(
        volume.provenance().series_uid.as_deref(),
        Some(phantom.truth.series_uid.as_str())
    );
    assert_eq!(
        volume.voxels(),
        phantom.volume.voxels(),
        "DICOM round trip is exact"
    );

    let detector = Detector::builder()
        .coarse(model("blob_coarse_1mm.onnx"))
        .fine(model("blob_fine_1mm.onnx"))
        .device(Device::Cpu)
        .threads(1)
        .build()?;
    let found = detector.detect(&volume)?;
    assert_eq!(found.device, Device::Cpu);
    assert!(!found.candidates.is_empty());
    for d in &found.candidates {
        assert_eq!(d.in_lung, Some(true), "outside-lung candidates are dropped");
        assert!((0.0..=1.0).contains(&d.candidate.probability));
    }

    let truth = &phantom.truth;
    let nodules: Vec<Nodule> = truth
        .reference_nodules()
        .map(|n| Nodule {
            seriesuid: truth.series_uid.clone(),
            center: n.centre,
            diameter_mm: n.diameter_mm,
            diameter_vox: Some(n.diameter_vox),
            density: None,
            attachment: None,
            n_readers: None,
        })
        .collect();
    assert!(!nodules.is_empty(), "the phantom has reference nodules");
    let marks: Vec<ScoredCandidate> = found
        .candidates
        .iter()
        .map(|d| ScoredCandidate {
            seriesuid: truth.series_uid.clone(),
            center: d.candidate.world,
            probability: f64::from(d.candidate.probability),
        })
        .collect();
    let e = speck::evaluate(
        &nodules,
        &[],
        &marks,
        None,
        &EvalOptions::default().with_bootstrap(0),
    )?;
    eprintln!("{}", e.to_table());
    assert!(
        2 * e.n_detected >= nodules.len(),
        "the blob filter finds at least half of {} solid isolated nodules, found {}",
        nodules.len(),
        e.n_detected
    );
    Ok(())
}
