//! The detector end to end on small hand-built chests, with real ONNX Runtime and the analytic
//! models of `models/test/make_test_models.py`:
//! - `blob_coarse_1mm`: "bright blob surrounded by dark" filter at 1 mm, patch 32^3;
//! - `blob_coarse_2mm`: the same idea at 2 mm (cheap first pass), patch 24^3;
//! - `blob_fine_1mm`: 16^3 patch classifier giving prob, diameter (equivalent sphere of the bright
//!   voxels near the centre) and centre offset (their centroid);
//! - `identity_seg_1mm(_f16)`: output = input, to check tiling and blending exactly.

mod common;

use common::{chest, model, ort_available, world, Blob};
use speck_candidates::Stage;
use speck_detect::{
    DenseTiles, DetectError, Detections, Detector, Device, LungMaskOptions, ModelSlot, OutsideLung,
    Progress, PAD_HU,
};
use speck_volume::{Direction, Geometry, Provenance, Spacing, Volume, WorldPoint};

const SHAPE: [usize; 3] = [64, 128, 128];

/// Lung blobs (A: left lung r=2; B: right lung r=1.5 on a slab border; C: right lung r=2 on the
/// z = 31|32 tile border and a slab border) and a mediastinal blob M (400 HU in 40 HU tissue,
/// 10 mm from both lungs).
fn blobs() -> (Vec<Blob>, Blob) {
    let lung = vec![
        Blob {
            centre: [30.0, 60.0, 30.0],
            radius: 2.0,
            hu: 30,
        },
        Blob {
            centre: [40.0, 75.0, 98.0],
            radius: 1.5,
            hu: 30,
        },
        Blob {
            centre: [32.0, 64.0, 88.0],
            radius: 2.0,
            hu: 30,
        },
    ];
    let mediastinal = Blob {
        centre: [32.0, 64.0, 64.0],
        radius: 2.0,
        hu: 400,
    };
    (lung, mediastinal)
}

fn scan() -> (Volume, Vec<Blob>, Blob) {
    let (lung, m) = blobs();
    let mut all = lung.clone();
    all.push(m);
    (chest(SHAPE, &all), lung, m)
}

/// Each blob has exactly one final candidate within `tol_mm`, and nothing else is in the list.
fn assert_found_once(found: &Detections, volume: &Volume, blobs: &[Blob], tol_mm: f64) {
    for b in blobs {
        let w = world(volume, b.centre);
        let near: Vec<_> = found
            .candidates
            .iter()
            .filter(|d| d.candidate.world.distance_mm(w) < 5.0)
            .collect();
        assert_eq!(near.len(), 1, "blob at {:?}: {near:?}", b.centre);
        let d = near[0].candidate.world.distance_mm(w);
        assert!(d <= tol_mm, "blob at {:?} found {d:.2} mm away", b.centre);
    }
    assert_eq!(
        found.candidates.len(),
        blobs.len(),
        "unexpected candidates: {:?}",
        found.candidates
    );
}

/// `err` is the builder's refusal for want of the model in `slot`.
fn assert_missing(err: &DetectError, slot: ModelSlot) {
    assert!(
        matches!(err, DetectError::MissingModel { slot: s } if *s == slot),
        "{err:?}"
    );
}

#[test]
fn detector_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Detector>();
}

#[test]
fn blobs_found_once_at_their_world_position_and_mediastinum_dropped() {
    if !ort_available() {
        return;
    }
    let (volume, lung, m) = scan();
    let det = Detector::builder()
        .coarse(model("blob_coarse_1mm.onnx"))
        .threads(2)
        .slab_rows(8)
        .build()
        .expect("build");
    let found = det.detect(&volume).expect("detect");
    assert_found_once(&found, &volume, &lung, 0.75);
    // the raw peaks before merging: one per blob (slab and tile borders do not duplicate), plus
    // the mediastinal blob, which the lung mask then removes
    assert_eq!(
        found.counts.dense_candidates,
        lung.len() + 1,
        "{:?}",
        found.counts
    );
    assert_eq!(found.counts.outside_lung, 1);
    assert!(found.candidates.iter().all(|d| d.in_lung == Some(true)));
    assert!(found
        .candidates
        .iter()
        .all(|d| d.candidate.source.stage == Stage::Coarse));
    assert!(found.counts.tiles_run > 0 && found.counts.tiles_run <= found.counts.tiles_total);
    // memory bound: the blending accumulator never held more than one tile depth (32 of the 64
    // output rows)
    assert!(found.counts.accumulator_rows <= 32, "{:?}", found.counts);
    assert_eq!(found.device, Device::Cpu);

    // Flag instead of drop: the mediastinal blob is reported, outside the lungs.
    let flag = Detector::builder()
        .coarse(model("blob_coarse_1mm.onnx"))
        .threads(2)
        .slab_rows(8)
        .outside_lung(OutsideLung::Flag)
        .build()
        .expect("build");
    let found = flag.detect(&volume).expect("detect");
    let wm = world(&volume, m.centre);
    let med: Vec<_> = found
        .candidates
        .iter()
        .filter(|d| d.candidate.world.distance_mm(wm) < 2.0)
        .collect();
    assert_eq!(med.len(), 1, "{:?}", found.candidates);
    assert_eq!(med[0].in_lung, Some(false));
    assert_eq!(found.candidates.len(), lung.len() + 1);
}

#[test]
fn slab_size_does_not_change_the_result() {
    if !ort_available() {
        return;
    }
    let (volume, _, _) = scan();
    let run = |slab| {
        Detector::builder()
            .coarse(model("blob_coarse_1mm.onnx"))
            .threads(2)
            .slab_rows(slab)
            .build()
            .expect("build")
            .detect(&volume)
            .expect("detect")
    };
    let a = run(3);
    let b = run(1000);
    assert_eq!(a.counts.dense_candidates, b.counts.dense_candidates);
    assert_eq!(a.candidates, b.candidates);
}

#[test]
fn one_and_two_threads_give_identical_results() {
    if !ort_available() {
        return;
    }
    let (volume, lung, _) = scan();
    let run = |threads| {
        Detector::builder()
            .coarse(model("blob_coarse_2mm.onnx"))
            .fine(model("blob_fine_1mm.onnx"))
            .threads(threads)
            .build()
            .expect("build")
            .detect(&volume)
            .expect("detect")
    };
    let one = run(1);
    let two = run(2);
    assert_eq!(one.candidates, two.candidates);
    assert_eq!(one.counts, two.counts);
    assert_eq!(one.candidates.len(), lung.len());
}

#[test]
fn coarse_to_fine_refines_centre_and_diameter() {
    if !ort_available() {
        return;
    }
    let (volume, lung, _) = scan();
    for tta in [false, true] {
        let det = Detector::builder()
            .coarse(model("blob_coarse_2mm.onnx"))
            .fine(model("blob_fine_1mm.onnx"))
            .flip_tta(tta)
            .tta_floor(0.0)
            .threads(2)
            .build()
            .expect("build");
        let found = det.detect(&volume).expect("detect");
        // The 2 mm heatmap places blobs only to ~1 mm; the fine centroid brings them back.
        assert_found_once(&found, &volume, &lung, 0.6);
        for d in &found.candidates {
            assert_eq!(d.candidate.source.stage, Stage::Fine);
            let b = lung
                .iter()
                .min_by(|a, b| {
                    let da = d.candidate.world.distance_mm(world(&volume, a.centre));
                    let db = d.candidate.world.distance_mm(world(&volume, b.centre));
                    da.total_cmp(&db)
                })
                .expect("a blob");
            // equivalent-sphere diameter of the planted voxel ball
            let dia = d.candidate.diameter_mm.expect("diameter");
            assert!(
                (dia - 2.0 * b.radius).abs() < 1.2,
                "diameter {dia} for radius {}",
                b.radius
            );
        }
        assert!(found.counts.fine_evaluated >= lung.len());
        assert_eq!(
            found.counts.fine_runs,
            found.counts.fine_evaluated * if tta { 4 } else { 1 }
        );
    }
}

#[test]
fn the_tta_cascade_keeps_every_finding_at_the_threshold_with_fewer_runs() {
    if !ort_available() {
        return;
    }
    let (volume, _, _) = scan();
    // A 4-run mean reaches t only if the first run reaches 4t - 3: with the floor there, the
    // cascade must report exactly what full TTA reports.
    let t = 0.9f32;
    let run = |floor: f32| {
        Detector::builder()
            .coarse(model("blob_coarse_2mm.onnx"))
            .fine(model("blob_fine_1mm.onnx"))
            .flip_tta(true)
            .fine_threshold(t)
            .tta_floor(floor)
            .threads(2)
            .build()
            .expect("build")
            .detect(&volume)
            .expect("detect")
    };
    let full = run(0.0);
    let cascade = run(4.0 * t - 3.0);
    assert!(!full.candidates.is_empty());
    assert_eq!(cascade.candidates, full.candidates);
    assert_eq!(full.counts.fine_runs, 4 * full.counts.fine_evaluated);
    assert!(cascade.counts.fine_runs >= cascade.counts.fine_evaluated);
    assert!(cascade.counts.fine_runs <= full.counts.fine_runs);
    // A floor above every probability runs each candidate once.
    let once = run(1.0);
    assert_eq!(once.counts.fine_runs, once.counts.fine_evaluated);
}

#[test]
fn the_fine_stage_sees_at_most_max_fine_candidates_the_most_probable_first() {
    if !ort_available() {
        return;
    }
    let (volume, _, _) = scan();
    let run = |cap: usize| {
        Detector::builder()
            .coarse(model("blob_coarse_2mm.onnx"))
            .fine(model("blob_fine_1mm.onnx"))
            .fine_threshold(0.0)
            .max_fine_candidates(cap)
            .threads(2)
            .build()
            .expect("build")
            .detect(&volume)
            .expect("detect")
    };
    let all = run(10_000);
    assert!(all.counts.fine_evaluated > 2, "{:?}", all.counts);
    let two = run(2);
    assert_eq!(two.counts.fine_evaluated, 2);
    assert!(two.candidates.len() <= 2);
    // The two kept are refined from the two best coarse candidates, which the uncapped run
    // refines the same way.
    for d in &two.candidates {
        assert!(
            all.candidates.iter().any(|a| a.candidate == d.candidate),
            "{d:?} not in the uncapped run"
        );
    }
    let err = Detector::builder()
        .coarse(model("blob_coarse_2mm.onnx"))
        .max_fine_candidates(0)
        .build()
        .expect_err("a cap of 0 is refused");
    assert!(err.to_string().contains("max_fine_candidates"), "{err}");
}

#[test]
fn coarse_to_fine_needs_less_compute_than_dense() {
    if !ort_available() {
        return;
    }
    let (volume, _, _) = scan();
    let dense = Detector::builder()
        .coarse(model("blob_coarse_1mm.onnx"))
        .lung_mask(None)
        .build()
        .expect("build")
        .detect(&volume)
        .expect("detect");
    let c2f = Detector::builder()
        .coarse(model("blob_coarse_2mm.onnx"))
        .fine(model("blob_fine_1mm.onnx"))
        .build()
        .expect("build")
        .detect(&volume)
        .expect("detect");
    assert!(
        c2f.counts.input_voxels * 5 < dense.counts.input_voxels,
        "{} vs {}",
        c2f.counts.input_voxels,
        dense.counts.input_voxels
    );
}

#[test]
fn segmentation_and_strided_models_work_alone() {
    if !ort_available() {
        return;
    }
    let (volume, lung, _) = scan();
    // blob_seg_1mm: the blob filter declared as a segmentation model
    let seg = Detector::builder()
        .segmentation(model("blob_seg_1mm.onnx"))
        .build()
        .expect("build")
        .detect(&volume)
        .expect("detect");
    assert_found_once(&seg, &volume, &lung, 0.75);
    assert!(seg
        .candidates
        .iter()
        .all(|d| d.candidate.source.stage == Stage::Segmentation));
    // blob_coarse_1mm_stride2: blob filter then MaxPool(2): a 2 mm heatmap of 1 mm input
    let strided = Detector::builder()
        .coarse(model("blob_coarse_1mm_stride2.onnx"))
        .build()
        .expect("build")
        .detect(&volume)
        .expect("detect");
    assert_found_once(&strided, &volume, &lung, 1.5);
}

/// Tiling covers every voxel and the Gaussian weights normalise to 1: an identity model through
/// the sliding window gives back the normalised input at every voxel, on a grid that is not a
/// multiple of the tile, with overlap, at any batch size; the float16 model agrees to f16
/// precision.
#[test]
fn identity_model_reproduces_the_input_everywhere() {
    if !ort_available() {
        return;
    }
    let shape = (37, 45, 29);
    let vox = ndarray::Array3::from_shape_fn(shape, |(z, y, x)| {
        ((z * 131 + y * 17 + x * 7) % 1400) as i16 - 1000
    });
    let g = Geometry::new(
        Spacing::isotropic(1.0).expect("spacing"),
        WorldPoint::new(10.0, 20.0, 30.0),
        Direction::IDENTITY,
    );
    let volume = Volume::new(vox.clone(), g, Provenance::default()).expect("volume");
    // The `_fcn` model accepts tiles larger than its 16^3 patch: one tile in-plane (the default
    // limit), or several when the limit is small (split y and x, sharing a quarter patch).
    let fit = |max_voxels| DenseTiles::Fit { max_voxels };
    for (name, tol, batch, overlap, tiles) in [
        (
            "identity_seg_1mm.onnx",
            1e-6f32,
            3,
            0.25f32,
            DenseTiles::default(),
        ),
        ("identity_seg_1mm.onnx", 1e-6, 1, 0.5, DenseTiles::Patch),
        (
            "identity_seg_1mm_f16.onnx",
            1e-3,
            4,
            0.25,
            DenseTiles::default(),
        ),
        (
            "identity_seg_1mm_fcn.onnx",
            1e-6,
            2,
            0.25,
            DenseTiles::default(),
        ),
        (
            "identity_seg_1mm_fcn.onnx",
            1e-6,
            2,
            0.25,
            fit(16 * 24 * 20),
        ),
        ("identity_seg_1mm_fcn.onnx", 1e-6, 1, 0.5, fit(16 * 16 * 16)),
    ] {
        let det = Detector::builder()
            .segmentation(model(name))
            .lung_mask(None)
            .batch_size(batch)
            .overlap(overlap)
            .dense_tiles(tiles)
            .build()
            .expect("build");
        let map = det
            .probability_map(&volume)
            .expect("map")
            .expect("non-empty");
        assert_eq!(map.data.dim(), shape, "{name}");
        assert_eq!(map.geometry.origin, g.origin);
        for ((idx, v), hu) in map.data.indexed_iter().zip(vox.iter()) {
            let expect = (f32::from(*hu) + 1000.0) / 1400.0;
            assert!(
                (v - expect).abs() <= tol,
                "{name} at {idx:?}: {v} vs {expect}"
            );
        }
    }
    assert_eq!(PAD_HU, -1000);

    // Fitted tiles run fewer, larger tiles over fewer voxels; a model without the key ignores them.
    let counts = |name: &str, tiles| {
        Detector::builder()
            .segmentation(model(name))
            .lung_mask(None)
            .dense_tiles(tiles)
            .build()
            .expect("build")
            .detect(&volume)
            .expect("detect")
            .counts
    };
    let fitted = counts("identity_seg_1mm_fcn.onnx", DenseTiles::default());
    let patch = counts("identity_seg_1mm_fcn.onnx", DenseTiles::Patch);
    assert!(fitted.tiles_run < patch.tiles_run, "{fitted:?} {patch:?}");
    assert!(
        fitted.input_voxels < patch.input_voxels,
        "{fitted:?} {patch:?}"
    );
    let fixed = counts("identity_seg_1mm.onnx", DenseTiles::default());
    assert_eq!(fixed.tiles_run, patch.tiles_run);
    assert_eq!(fixed.input_voxels, patch.input_voxels);
}

#[test]
fn no_lungs_means_nothing_searched_with_a_warning() {
    if !ort_available() {
        return;
    }
    let vox = ndarray::Array3::<i16>::from_elem((24, 48, 48), 40);
    let g = Geometry::new(
        Spacing::isotropic(1.0).expect("spacing"),
        WorldPoint::default(),
        Direction::IDENTITY,
    );
    let volume = Volume::new(vox, g, Provenance::default()).expect("volume");
    let found = Detector::builder()
        .coarse(model("blob_coarse_1mm.onnx"))
        .build()
        .expect("build")
        .detect(&volume)
        .expect("detect");
    assert!(found.candidates.is_empty());
    assert_eq!(found.counts.tiles_run, 0);
    assert!(found.warnings.iter().any(|w| w.contains("no lungs")));
}

#[test]
fn progress_is_reported_in_order() {
    if !ort_available() {
        return;
    }
    let (volume, _, _) = scan();
    let seen = std::sync::Mutex::new(Vec::new());
    let det = Detector::builder()
        .coarse(model("blob_coarse_2mm.onnx"))
        .fine(model("blob_fine_1mm.onnx"))
        .build()
        .expect("build");
    det.detect_with_progress(&volume, &|p| seen.lock().expect("lock").push(p))
        .expect("detect");
    let seen = seen.into_inner().expect("lock");
    assert_eq!(seen.first(), Some(&Progress::LungMask));
    assert_eq!(seen.last(), Some(&Progress::Done));
    let dense: Vec<_> = seen
        .iter()
        .filter_map(|p| match p {
            Progress::Dense { done, total } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    assert!(!dense.is_empty());
    assert!(dense.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(dense.last().map(|d| d.0), dense.last().map(|d| d.1));
    assert!(seen.iter().any(|p| matches!(p, Progress::Fine { .. })));
}

#[test]
fn gpu_request_runs_somewhere_and_says_where() {
    if !ort_available() {
        return;
    }
    // Without the `cuda`/`tensorrt` feature, or with the CPU-only onnxruntime wheel, the request
    // falls back to the CPU with a warning; with both, it runs on the GPU. Either way it says so.
    let (volume, lung, _) = scan();
    for device in [Device::Cuda(0), Device::TensorRt(0)] {
        let det = Detector::builder()
            .coarse(model("blob_coarse_2mm.onnx"))
            .fine(model("blob_fine_1mm.onnx"))
            .device(device)
            .build()
            .expect("a GPU request never fails the build");
        let found = det.detect(&volume).expect("detect");
        assert_eq!(found.requested_device, device);
        assert!(found.device == device || found.device == Device::Cpu);
        if found.device == Device::Cpu {
            assert!(found.warnings.iter().any(|w| w.contains("unavailable")));
        }
        assert_eq!(found.candidates.len(), lung.len());
    }
}

#[test]
fn configuration_and_library_errors_are_explained() {
    let err = Detector::builder()
        .coarse(model("blob_coarse_1mm.onnx"))
        .ort_library("/nonexistent/libonnxruntime.so.1.31.1")
        .build()
        .expect_err("missing library");
    assert!(matches!(err, DetectError::RuntimeNotFound(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("python3 -m venv .venv && .venv/bin/pip install onnxruntime==1.31.1"),
        "{msg}"
    );
    assert!(msg.contains("export ORT_DYLIB_PATH="), "{msg}");

    let err = Detector::builder().build().expect_err("no model");
    assert_missing(&err, ModelSlot::Coarse);
    assert!(
        err.to_string()
            .contains("no coarse (or segmentation) model given"),
        "{err}"
    );
    // A fine model alone is not a detector: the missing coarse stage is refused at build time,
    // before any model is loaded, so `detect()` can never meet it.
    let err = Detector::builder()
        .fine(model("blob_fine_1mm.onnx"))
        .build()
        .expect_err("fine alone is not a detector");
    assert_missing(&err, ModelSlot::Coarse);
    assert!(err.to_string().contains("build_refiner"), "{err}");
    let err = Detector::builder()
        .build_refiner()
        .expect_err("no fine model");
    assert_missing(&err, ModelSlot::Fine);
    assert!(err.to_string().contains("no fine model given"), "{err}");
    let err = Detector::builder()
        .coarse(model("blob_coarse_2mm.onnx"))
        .fine(model("blob_fine_1mm.onnx"))
        .build_refiner()
        .expect_err("a refiner runs the fine model alone");
    assert!(matches!(err, DetectError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("build()"), "{err}");
    let err = Detector::builder()
        .coarse(model("blob_coarse_1mm.onnx"))
        .overlap(1.5)
        .build()
        .expect_err("overlap");
    assert!(err.to_string().contains("overlap"));
    if !ort_available() {
        return;
    }
    let err = Detector::builder()
        .coarse(model("blob_fine_1mm.onnx"))
        .build()
        .expect_err("fine in the coarse slot");
    assert!(err.to_string().contains("coarse slot"), "{err}");
    let err = Detector::builder()
        .fine(model("blob_coarse_1mm.onnx"))
        .build_refiner()
        .expect_err("coarse in the fine slot");
    assert!(err.to_string().contains("fine slot"), "{err}");
    let only_fine = Detector::builder()
        .fine(model("blob_fine_1mm.onnx"))
        .lung_mask(Some(LungMaskOptions::default()))
        .build_refiner()
        .expect("fine alone builds a refiner");
    assert_eq!(
        only_fine.model().contract().role,
        speck_detect::ModelRole::Fine
    );
    assert_eq!(only_fine.device(), Device::Cpu);
    let (volume, lung, _) = scan();
    // The refiner refines given candidates: start 1.5 mm off, end within 0.6 mm.
    let start: Vec<_> = lung
        .iter()
        .map(|b| {
            let c = [b.centre[0] + 1.0, b.centre[1] - 1.0, b.centre[2] + 0.5];
            speck_candidates::Candidate::new(
                world(&volume, c),
                speck_volume::ContinuousIndex::new(c[0], c[1], c[2]),
                0.5,
                Stage::External,
            )
        })
        .collect();
    let refined = only_fine.refine(&volume, &start).expect("refine");
    assert_eq!(refined.len(), lung.len());
    for b in &lung {
        let w = world(&volume, b.centre);
        assert!(
            refined.iter().any(|c| c.world.distance_mm(w) < 0.6),
            "{refined:?}"
        );
    }
}

#[test]
fn every_tunable_has_a_builder_method() {
    if !ort_available() {
        return;
    }
    let merge = speck_candidates::MergeOptions::default().with_min_distance_mm(4.5);
    let det = Detector::builder()
        .coarse(model("blob_coarse_2mm.onnx"))
        .fine(model("blob_fine_1mm.onnx"))
        .overlap(0.5)
        .dense_tiles(DenseTiles::Patch)
        .batch_size(3)
        .dense_threshold(0.4)
        .fine_threshold(0.6)
        .peak_radius_vox(2)
        .flip_tta(true)
        .tta_floor(0.7)
        .lung_mask(None)
        .outside_lung(OutsideLung::Flag)
        .max_fine_candidates(7)
        .max_candidates(9)
        .merge(merge)
        .slab_rows(5)
        .build()
        .expect("build");
    let c = det.config();
    assert_eq!(c.overlap, 0.5);
    assert_eq!(c.dense_tiles, DenseTiles::Patch);
    assert_eq!(c.batch_size, 3);
    assert_eq!(c.dense_threshold, Some(0.4));
    assert_eq!(c.fine_threshold, Some(0.6));
    assert_eq!(c.peak_radius_vox, 2);
    assert_eq!(c.flip_tta, Some(true));
    assert_eq!(c.tta_floor, 0.7);
    assert_eq!(c.lung_mask, None);
    assert_eq!(c.outside_lung, OutsideLung::Flag);
    assert_eq!(c.max_fine_candidates, 7);
    assert_eq!(c.max_candidates, 9);
    assert_eq!(c.merge, merge);
    assert_eq!(c.slab_rows, 5);
    assert_eq!(
        det.dense_model().contract().role,
        speck_detect::ModelRole::Coarse
    );
    assert!(det.fine_model().is_some());
    let err = Detector::builder()
        .coarse(model("blob_coarse_2mm.onnx"))
        .slab_rows(0)
        .build()
        .expect_err("0 slab rows");
    assert!(err.to_string().contains("slab_rows"), "{err}");
}
