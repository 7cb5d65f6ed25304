//! `speck-train-detect COARSE FINE OUT_PREFIX DENSE_T FINE_T TTA THREADS SCAN...`
//! (FINE `-`: the coarse stage alone; TTA: `1` flip TTA on, `0` off, `model` as the fine model's `speck.flip_tta` says)
//!
//! Runs Speck's engine (speck-detect, both models) on each scan and writes
//! `OUT_PREFIX.candidates.csv` (`seriesuid,coordX,coordY,coordZ,probability,diameter_mm,in_lung`,
//! outside-lung candidates kept and flagged) and `OUT_PREFIX.timings.csv` (seconds per stage).
//! The seriesuid is the file name without its extension (what `speck phantom` writes).
//! Env: `SPECK_TRAIN_OVERLAP` (coarse tile overlap), `SPECK_TRAIN_TILES` (`patch`: coarse tiles of
//! the patch size; a number: fitted tiles of at most that many voxels), `SPECK_TRAIN_TTA_FLOOR` (the flip-TTA cascade's floor), `SPECK_TRAIN_MAX_FINE` (cap on the
//! candidates sent to the fine model), both defaulting to the engine's.

use std::io::Write;

use speck_detect::{Detector, OutsideLung};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 9 {
        return Err(
            "usage: speck-train-detect COARSE FINE OUT_PREFIX DENSE_T FINE_T TTA THREADS SCAN..."
                .into(),
        );
    }
    let mut builder = Detector::builder().coarse(&a[1]);
    // FINE `-`: the coarse stage alone (its peaks and probabilities), for diagnosing misses.
    if a[2] != "-" {
        builder = builder.fine(&a[2]);
    }
    builder = builder
        .dense_threshold(a[4].parse()?)
        .fine_threshold(a[5].parse()?)
        .threads(a[7].parse()?)
        .outside_lung(OutsideLung::Flag);
    // TTA: 1 on, 0 off, anything else (e.g. `model`) what the fine model's speck.flip_tta says
    match a[6].as_str() {
        "1" => builder = builder.flip_tta(true),
        "0" => builder = builder.flip_tta(false),
        _ => {}
    }
    // Optional engine knobs for the model card's measurements (defaults: the engine's).
    if let Ok(v) = std::env::var("SPECK_TRAIN_OVERLAP") {
        builder = builder.overlap(v.parse()?);
    }
    // `patch`: coarse tiles of the model's patch size (the engine before fitted tiles).
    // A number: fitted tiles of at most that many voxels.
    match std::env::var("SPECK_TRAIN_TILES").as_deref() {
        Ok("patch") => builder = builder.dense_tiles(speck_detect::DenseTiles::Patch),
        Ok(n) => {
            builder = builder.dense_tiles(speck_detect::DenseTiles::Fit {
                max_voxels: n.parse()?,
            })
        }
        Err(_) => {}
    }
    if let Ok(v) = std::env::var("SPECK_TRAIN_TTA_FLOOR") {
        builder = builder.tta_floor(v.parse()?);
    }
    if let Ok(v) = std::env::var("SPECK_TRAIN_MAX_FINE") {
        builder = builder.max_fine_candidates(v.parse()?);
    }
    let detector = builder.build()?;
    let mut cands = std::fs::File::create(format!("{}.candidates.csv", a[3]))?;
    let mut times = std::fs::File::create(format!("{}.timings.csv", a[3]))?;
    writeln!(
        cands,
        "seriesuid,coordX,coordY,coordZ,probability,diameter_mm,in_lung"
    )?;
    writeln!(
        times,
        "seriesuid,load_s,lung_mask_s,dense_s,fine_s,merge_s,detect_s,n_candidates,n_fine_evaluated,n_fine_runs"
    )?;
    for path in &a[8..] {
        let t0 = std::time::Instant::now();
        let vol = speck_volume::open(path)?;
        let load = t0.elapsed().as_secs_f64();
        let name = std::path::Path::new(path)
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default();
        let uid = name
            .trim_end_matches(".gz")
            .trim_end_matches(".nii")
            .trim_end_matches(".mhd")
            .to_string();
        let d = detector.detect(&vol)?;
        for c in &d.candidates {
            let w = c.candidate.world;
            writeln!(
                cands,
                "{uid},{:.3},{:.3},{:.3},{:.5},{:.2},{}",
                w.x_mm,
                w.y_mm,
                w.z_mm,
                c.candidate.probability,
                c.candidate.diameter_mm.unwrap_or(-1.0),
                match c.in_lung {
                    Some(false) => 0,
                    _ => 1,
                }
            )?;
        }
        let t = d.timings;
        writeln!(
            times,
            "{uid},{load:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{},{},{}",
            t.lung_mask.as_secs_f64(),
            t.dense.as_secs_f64(),
            t.fine.as_secs_f64(),
            t.merge.as_secs_f64(),
            t.total.as_secs_f64(),
            d.candidates.len(),
            d.counts.fine_evaluated,
            d.counts.fine_runs
        )?;
        eprintln!(
            "{uid}: {} candidates, {:.2}s (+{load:.2}s load) {:?}",
            d.candidates.len(),
            t.total.as_secs_f64(),
            d.warnings
        );
    }
    Ok(())
}
