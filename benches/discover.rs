//! Guards archive-sized discovery: the series of a flat hospital export (every file of every
//! series in one folder) are found by reading each file's header once and grouping the files in
//! one pass, so discovery grows linearly with the files (issue 19; issue 6 noted the quadratic
//! re-reads). Peer: pydicom reading only headers (`stop_before_pixels`) and grouping by
//! SeriesInstanceUID in a dict, over the same files in the same run.
//!
//! Run: `cargo bench -p speck-benches --bench discover` (release). Needs `.venv-peer` with pydicom
//! for the ratio (see benches/peer/); without it only Speck's times are printed.
//! `SPECK_BENCH_SERIES` x `SPECK_BENCH_FILES` (default 200 x 50) tiny 16 x 16 CT slices are
//! written once into one folder; each figure is the best of `SPECK_BENCH_REPEATS` (default 3)
//! after a warm-up, files in the page cache. Measured:
//! - `survey_files`, Speck's discovery of DICOM files (on all cores, and on one thread);
//! - `speck scan FOLDER --dry-run` end to end (process start, folder walk, discovery, series
//!   policy, scan ids), when the release binary `target/release/speck` exists;
//! - loading one series of the export as a scan does: from the files discovery found, against
//!   the folder with a SeriesInstanceUID (which reads every header in the folder again).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ndarray::Array3;
use speck::volume::dicom::{read_series_files, survey_files, write_series, DicomWriteOptions};
use speck::volume::{open_with, Direction, Geometry, LoadOptions, Provenance, Spacing, Volume};
use speck::volume::{VolumeError, WorldPoint};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `n_series` series of `n_files` 16 x 16 slices, written into `flat` as `S0000_I000.dcm`, ...
fn write_export(flat: &Path, n_series: usize, n_files: usize) -> Result<(), VolumeError> {
    std::fs::create_dir_all(flat).map_err(|e| VolumeError::io(flat, e))?;
    let staging = flat.with_extension("staging");
    for s in 0..n_series {
        let data = Array3::from_shape_fn((n_files, 16, 16), |(z, y, x)| {
            ((s * 7 + z * 3 + y + x) % 200) as i16 - 100
        });
        let g = Geometry::new(
            Spacing::new(0.7, 0.7, 1.0)?,
            WorldPoint::new(-5.6, -5.6, -(n_files as f64) / 2.0),
            Direction::IDENTITY,
        );
        let v = Volume::new(data, g, Provenance::default())?;
        let _ = std::fs::remove_dir_all(&staging);
        write_series(&v, &staging, &DicomWriteOptions::default())?;
        for z in 0..n_files {
            let from = staging.join(format!("IM{:06}.dcm", z + 1));
            let to = flat.join(format!("S{s:04}_I{z:03}.dcm"));
            std::fs::rename(&from, &to).map_err(|e| VolumeError::io(&from, e))?;
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(())
}

fn list(flat: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(flat)
        .unwrap_or_else(|e| panic!("list {}: {e}", flat.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

fn main() {
    let n_series = env_usize("SPECK_BENCH_SERIES", 200);
    let n_files = env_usize("SPECK_BENCH_FILES", 50);
    let repeats = env_usize("SPECK_BENCH_REPEATS", 3);
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let flat = tmp.path().join("export");
    let t = Instant::now();
    write_export(&flat, n_series, n_files).unwrap_or_else(|e| panic!("write export: {e}"));
    // Flush the new files to disk first, so that their writeback does not run during the timings.
    let _ = Command::new("sync").status();
    let n = n_series * n_files;
    eprintln!(
        "wrote {n_series} series x {n_files} files = {n} files into one folder in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    println!("discovery benchmark: {n_series} series x {n_files} files (16 x 16) in one folder, best of {repeats}");
    let (speck_s, survey) = speck_benches::best_of(repeats, || survey_files(&list(&flat)));
    assert_eq!(survey.series.len(), n_series, "Speck found every series");
    assert!(
        survey.series.iter().all(|s| s.files.len() == n_files),
        "every series has all its files"
    );
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap_or_else(|e| panic!("thread pool: {e}"));
    let (speck_1t, survey_1t) =
        speck_benches::best_of(repeats, || one.install(|| survey_files(&list(&flat))));
    assert_eq!(survey_1t.series.len(), n_series);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "  speck     survey_files       {speck_s:7.3} s  ({cores} threads; {:.0} files/s)",
        n as f64 / speck_s
    );
    println!(
        "  speck     survey_files       {speck_1t:7.3} s  (1 thread; {:.0} files/s)",
        n as f64 / speck_1t
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = root.join("target/release/speck");
    if bin.exists() {
        let plan = tmp.path().join("plan");
        let (cli_s, out) = speck_benches::best_of(repeats, || {
            Command::new(&bin)
                .args(["scan", "--dry-run", "--out"])
                .arg(&plan)
                .arg(&flat)
                .output()
                .unwrap_or_else(|e| panic!("run speck: {e}"))
        });
        let lines = String::from_utf8_lossy(&out.stdout).lines().count();
        assert_eq!(lines, n_series, "the dry run lists every series");
        println!(
            "  speck     scan --dry-run     {cli_s:7.3} s  (whole command, {lines} scans listed)"
        );
    } else {
        println!("  (no target/release/speck: the end-to-end dry run is skipped)");
    }

    // Loading one series as a scan does: from its files, or from the folder by SeriesInstanceUID.
    let s0 = &survey.series[0];
    let opts = LoadOptions::new().series_uid(s0.series_uid.clone());
    let (by_files, v1) = speck_benches::best_of(repeats, || {
        read_series_files(&flat, &s0.files, &opts).unwrap_or_else(|e| panic!("{e}"))
    });
    let (by_folder, v2) = speck_benches::best_of(repeats.min(2), || {
        open_with(&flat, &opts).unwrap_or_else(|e| panic!("{e}"))
    });
    assert_eq!(v1.voxels(), v2.voxels(), "both loads read the same series");
    println!(
        "  speck     load one series    {by_files:7.3} s from its files, {by_folder:.3} s from \
         the folder by SeriesInstanceUID ({:.0}x; x {n_series} series in a scan)",
        by_folder / by_files
    );

    let python = root.join(".venv-peer/bin/python");
    if !python.exists() {
        println!("  (no .venv-peer: pydicom comparison skipped)");
        return;
    }
    let out = Command::new(&python)
        .arg(root.join("benches/peer/discover_pydicom.py"))
        .arg(&flat)
        .arg(repeats.to_string())
        .output()
        .unwrap_or_else(|e| panic!("run python: {e}"));
    if !out.status.success() {
        println!("  pydicom failed: {}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let peer_s = speck_benches::peer_number(&text, "seconds");
    assert_eq!(
        speck_benches::peer_number(&text, "files") as usize,
        n,
        "pydicom read every file"
    );
    assert_eq!(
        speck_benches::peer_number(&text, "series") as usize,
        n_series,
        "pydicom found the same series"
    );
    println!(
        "  pydicom   dcmread headers    {peer_s:7.3} s  (1 thread; {:.0} files/s)  ({})",
        n as f64 / peer_s,
        text.trim()
    );
    println!(
        "  ratio (pydicom time / Speck time): {:.2}x on {cores} threads, {:.2}x on 1 thread",
        peer_s / speck_s,
        peer_s / speck_1t
    );
}
