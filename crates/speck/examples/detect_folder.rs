//! Load a DICOM folder (or a NIfTI/MetaImage file), detect nodules, print the candidates as
//! LUNA16 CSV on stdout.
//!
//! ```sh
//! cargo run --release -p speck --example detect_folder -- /data/study-0001 \
//!     [--coarse models/coarse-v7.onnx --fine models/fine-v7.onnx] [--series UID]
//! ```
//!
//! Without `--coarse` and `--fine`, the bundled models are found as the `speck` command finds them
//! ([`speck::detect::models`]: `SPECK_MODELS_DIR`, else the newest `coarse-*.onnx` and
//! `fine-*.onnx` of `models/` in the current folder or above the executable). ONNX Runtime is found as the `speck` command finds it (`ORT_DYLIB_PATH`, then a
//! Python `onnxruntime` in `./.venv`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use speck::detect::models::ModelSearch;
use speck::{Detector, Device, LoadOptions};

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut input, mut coarse, mut fine, mut series) = (None, None, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--coarse" => coarse = args.next().map(PathBuf::from),
            "--fine" => fine = args.next().map(PathBuf::from),
            "--series" => series = args.next(),
            _ => input = Some(PathBuf::from(a)),
        }
    }
    let input = input.ok_or("usage: detect_folder PATH [--coarse M] [--fine M] [--series UID]")?;
    // 1. Models, once: the ones given, else the bundled ones, found as the `speck` command finds
    //    them.
    let mut search = ModelSearch::new();
    if let Some(c) = coarse {
        search = search.coarse(c);
    }
    if let Some(f) = fine {
        search = search.fine(f);
    }
    let models = search.locate()?;
    let coarse = models
        .coarse
        .ok_or("--fine without --coarse: a coarse model is needed")?;
    let mut builder = Detector::builder().coarse(&coarse).device(Device::Cpu);
    if let Some(f) = &models.fine {
        builder = builder.fine(f);
    }
    let detector = builder.build()?;

    // 2. The scan: a DICOM folder is searched recursively; one series is loaded.
    let options = LoadOptions::new().series_uid(series);
    let volume = speck::open_with(Path::new(&input), &options)?;
    let p = volume.provenance();
    eprintln!(
        "{}: {:?} voxels [z, y, x], spacing {:?} mm [x, y, z], series {}",
        input.display(),
        volume.shape_zyx(),
        volume.geometry().spacing.xyz(),
        p.series_uid.as_deref().unwrap_or("?")
    );
    for w in &p.warnings {
        eprintln!("warning: {w}");
    }

    // 3. Detect, and print LUNA16 columns plus the slice a radiologist would open.
    let found = detector.detect(&volume)?;
    let uid = p.series_uid.clone().unwrap_or_else(|| "scan".into());
    println!("seriesuid,coordX,coordY,coordZ,probability,diameter_mm,slice,instance_number");
    for d in &found.candidates {
        let c = &d.candidate;
        let voxel = volume.world_to_voxel(c.world);
        let instance = voxel
            .and_then(|v| p.slices.get(v.z))
            .and_then(|s| s.instance_number);
        println!(
            "{uid},{:.3},{:.3},{:.3},{:.6},{},{},{}",
            c.world.x_mm,
            c.world.y_mm,
            c.world.z_mm,
            c.probability,
            c.diameter_mm.map(|d| format!("{d:.2}")).unwrap_or_default(),
            voxel.map(|v| v.z.to_string()).unwrap_or_default(),
            instance.map(|n| n.to_string()).unwrap_or_default(),
        );
    }
    eprintln!(
        "{} candidate(s) in {:.2} s on {} ({} of {} tiles run)",
        found.candidates.len(),
        found.timings.total.as_secs_f64(),
        found.device,
        found.counts.tiles_run,
        found.counts.tiles_total
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
