//! `speck scan --dicom-sr --dicom-seg` end to end: the DICOM measurement report (`sr.dcm`) and
//! segmentation (`seg.dcm`) written for a phantom DICOM series (and for LIDC-IDRI-0001 in
//! `../shared/data/` when present), checked three ways:
//!
//! - dicom3tools' `dciodvfy` finds no error (skipped when not installed: `apt-get install
//!   dicom3tools`, which `.ci/run` does);
//! - `tests/peer/dicom_out_crosscheck.py` reads them with highdicom and pydicom and compares them
//!   with `candidates.csv` (measurement groups, points within 0.01 mm, source slices, evidence,
//!   diameters, volumes, probabilities, segment centroids); skipped without a Python that
//!   imports highdicom (`SPECK_PEER_PYTHON`, `<workspace>/.venv-peer`, made by
//!   `scripts/setup-peers.sh`, or `/work/main/.venv-peer`);
//! - the scan's own files: `scan.json` lists them, `--resume` keeps them, a rerun without the
//!   flags removes them and says so, NIfTI inputs get a warning instead.
//!
//! Models: the analytic blob filters of `models/test/`. Each test skips when ONNX Runtime cannot
//! be found.

mod scan_support;

#[path = "../../dicom-out/tests/support/enhanced.rs"]
mod enhanced;

use std::path::{Path, PathBuf};
use std::process::Command;

use scan_support::*;
use speck_phantom::OutputFormat;
use speck_test_support::Dciodvfy;

/// A Python with highdicom and pydicom, or `None` (the cross-check is then skipped).
fn peer_python() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("SPECK_PEER_PYTHON") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(repo().join(".venv-peer/bin/python"));
    candidates.push(PathBuf::from("/work/main/.venv-peer/bin/python"));
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import highdicom, pydicom"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// dciodvfy reports no error for `sr.dcm` and `seg.dcm` of `scan_dir` (when installed).
fn assert_dciodvfy_clean(scan_dir: &Path) {
    assert_dciodvfy_clean_of(scan_dir, &["sr.dcm", "seg.dcm"]);
}

/// dciodvfy reports no error for the files `names` of `scan_dir` (when installed).
fn assert_dciodvfy_clean_of(scan_dir: &Path, names: &[&str]) {
    for &name in names {
        let p = scan_dir.join(name);
        let Some(d) = Dciodvfy::run(&p) else {
            eprintln!("SKIPPED dciodvfy: dicom3tools not installed (apt-get install dicom3tools)");
            return;
        };
        assert!(
            d.errors().is_empty(),
            "dciodvfy {}:\n{}",
            p.display(),
            d.report
        );
        eprintln!("dciodvfy {name}: no error\n{}", d.report);
    }
}

/// The highdicom cross-check of `scan_dir` against the series in `series_dir` (when a peer
/// Python is available); returns its summary line.
fn crosscheck(scan_dir: &Path, series_dir: &Path) -> Option<String> {
    let Some(python) = peer_python() else {
        eprintln!("SKIPPED cross-check: no Python with highdicom (bash scripts/setup-peers.sh)");
        return None;
    };
    let out = Command::new(python)
        .arg(repo().join("tests/peer/dicom_out_crosscheck.py"))
        .arg(scan_dir)
        .arg(series_dir)
        .output()
        .expect("run the cross-check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "cross-check failed:\n{text}");
    eprintln!("cross-check: {text}");
    Some(text)
}

fn record(scan_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(scan_dir.join("scan.json")).expect("scan.json");
    serde_json::from_str(&text).expect("json")
}

fn warnings(rec: &serde_json::Value) -> Vec<String> {
    rec["warnings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| w.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A phantom written as a DICOM series and as NIfTI, in one archive.
fn archive() -> (tempfile::TempDir, PathBuf, PathBuf, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("archive");
    let p = phantom(21);
    let series = write(&p, &input.join("dicom"), OutputFormat::Dicom);
    write(&p, &input.join("nifti"), OutputFormat::Nifti);
    (dir, input, series, p.truth.series_uid.clone())
}

fn scan_dirs(out: &Path) -> (PathBuf, PathBuf) {
    let summary = read_csv(&out.join("summary.csv"));
    let by_format = |f: &str| {
        let row = summary
            .iter()
            .find(|r| r["format"] == f)
            .unwrap_or_else(|| panic!("no {f} scan: {summary:?}"));
        out.join("scans").join(&row["scan_id"])
    };
    (by_format("dicom"), by_format("nifti"))
}

#[test]
fn dicom_sr_and_seg_of_a_series_agree_with_its_candidates_and_pass_dciodvfy() {
    if !ort_available() {
        return;
    }
    let (dir, input, series, uid) = archive();
    let out = dir.path().join("out");
    let o = scan(&[&input], &out, &["--dicom-sr", "--dicom-seg"], &[]);
    assert_eq!(code(&o), 0);
    let (dcm, nii) = scan_dirs(&out);

    // The DICOM scan: both objects, listed as outputs.
    let rec = record(&dcm);
    assert_eq!(rec["seriesuid"], uid.as_str());
    let outputs = rec["outputs"].to_string();
    assert!(
        outputs.contains("sr.dcm") && outputs.contains("seg.dcm"),
        "{outputs}"
    );
    assert_eq!(rec["requested"]["dicom_sr"], true);
    let rows = read_csv(&dcm.join("candidates.csv"));
    assert!(
        rows.iter().any(|r| r["above_operating_point"] == "true"),
        "the phantom's nodules are found: {rows:?}"
    );
    let sr = std::fs::read(dcm.join("sr.dcm")).expect("sr.dcm");
    assert_eq!(&sr[128..132], b"DICM");

    // The NIfTI scan of the same phantom: a warning, no DICOM file, not a failure.
    assert!(!nii.join("sr.dcm").exists() && !nii.join("seg.dcm").exists());
    let w = warnings(&record(&nii));
    assert!(
        w.iter()
            .any(|w| w.starts_with("--dicom-sr/--dicom-seg: nothing written: a nifti file")),
        "{w:?}"
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("nothing written: a nifti file"), "{stderr}");

    assert_dciodvfy_clean(&dcm);
    if let Some(summary) = crosscheck(&dcm, &series) {
        assert!(summary.contains("groups agree") && summary.contains("segments"));
    }
    keep_if_asked(dir);
}

#[test]
fn resume_keeps_the_dicom_outputs_and_a_rerun_without_the_flags_removes_them() {
    if !ort_available() {
        return;
    }
    let (dir, input, _series, _) = archive();
    let dicom = input.join("dicom");
    let out = dir.path().join("out");
    assert_eq!(code(&scan(&[&dicom], &out, &["--dicom-sr"], &[])), 0);
    let id = read_csv(&out.join("summary.csv"))[0]["scan_id"].clone();
    let dcm = out.join("scans").join(id);
    let first = std::fs::read(dcm.join("sr.dcm")).expect("sr.dcm");
    assert!(!dcm.join("seg.dcm").exists());

    // --resume with the same flag: nothing redone, the report kept byte for byte.
    let o = scan(&[&dicom], &out, &["--dicom-sr", "--resume"], &[]);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 from an earlier run"));
    assert_eq!(std::fs::read(dcm.join("sr.dcm")).expect("sr.dcm"), first);

    // --resume asking for the segmentation too: the scan is redone and both are written.
    let o = scan(
        &[&dicom],
        &out,
        &["--dicom-sr", "--dicom-seg", "--resume"],
        &[],
    );
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stderr).contains("0 from an earlier run"));
    assert!(dcm.join("seg.dcm").is_file());
    let again = std::fs::read(dcm.join("sr.dcm")).expect("sr.dcm");
    assert_ne!(again, first, "a new report has new UIDs");

    // A rerun without the flags: both removed, and scan.json and stderr say so.
    let o = scan(&[&dicom], &out, &[], &[]);
    assert_eq!(code(&o), 0);
    assert!(!dcm.join("sr.dcm").exists() && !dcm.join("seg.dcm").exists());
    let w = warnings(&record(&dcm));
    assert!(
        w.iter().any(|w| w.contains("removed sr.dcm and seg.dcm")),
        "{w:?}"
    );
    assert!(temp_files(&out).is_empty());
}

#[test]
fn lidc_idri_0001_sr_and_seg_pass_dciodvfy_and_the_crosscheck() {
    let lidc = repo().join("../shared/data/lidc-idri-0001");
    if !lidc.is_dir() {
        eprintln!("SKIPPED: {} not present", lidc.display());
        return;
    }
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    assert_eq!(
        code(&scan(&[&lidc], &out, &["--dicom-sr", "--dicom-seg"], &[])),
        0
    );
    let id = read_csv(&out.join("summary.csv"))[0]["scan_id"].clone();
    let scan_dir = out.join("scans").join(id);
    assert!(scan_dir.join("sr.dcm").is_file() && scan_dir.join("seg.dcm").is_file());
    assert_dciodvfy_clean(&scan_dir);
    crosscheck(&scan_dir, &lidc);
}

#[test]
fn a_series_with_nothing_found_gets_a_report_saying_so_and_no_segmentation() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let series = dir.path().join("air");
    let geometry = speck_volume::Geometry::new(
        speck_volume::Spacing::new(1.2, 1.2, 2.0).expect("spacing"),
        speck_volume::WorldPoint::new(-70.0, -70.0, -40.0),
        speck_volume::Direction::IDENTITY,
    );
    let volume = speck_volume::Volume::new(
        ndarray::Array3::from_elem((40, 96, 96), -1000i16),
        geometry,
        speck_volume::Provenance::default(),
    )
    .expect("volume");
    speck_volume::dicom::write_series(&volume, &series, &Default::default()).expect("write");
    let out = dir.path().join("out");
    assert_eq!(
        code(&scan(&[&series], &out, &["--dicom-sr", "--dicom-seg"], &[])),
        0
    );
    let id = read_csv(&out.join("summary.csv"))[0]["scan_id"].clone();
    let scan_dir = out.join("scans").join(id);
    assert!(read_csv(&scan_dir.join("candidates.csv")).is_empty());
    // The report is written (Nodule = Absent: nothing to report), the segmentation is not (it needs a segment), and scan.json says why.
    assert!(scan_dir.join("sr.dcm").is_file());
    assert!(!scan_dir.join("seg.dcm").exists());
    let rec = record(&scan_dir);
    assert!(!rec["outputs"].to_string().contains("seg.dcm"));
    assert!(rec["outputs"].to_string().contains("sr.dcm"));
    let w = warnings(&rec);
    assert!(
        w.iter()
            .any(|w| w.starts_with("--dicom-seg: no seg.dcm: no finding to segment")),
        "{w:?}"
    );
    assert_dciodvfy_clean_of(&scan_dir, &["sr.dcm"]);
    if let Some(summary) = crosscheck(&scan_dir, &series) {
        assert!(summary.contains("sr: 0 groups agree"), "{summary}");
    }

    // A seg.dcm of an earlier run of this scan (here: a stand-in) does not outlive a rerun that
    // finds nothing: it would describe other findings.
    std::fs::write(scan_dir.join("seg.dcm"), b"stale").expect("write");
    assert_eq!(
        code(&scan(&[&series], &out, &["--dicom-sr", "--dicom-seg"], &[])),
        0
    );
    assert!(!scan_dir.join("seg.dcm").exists());
    assert!(scan_dir.join("sr.dcm").is_file());
    let w = warnings(&record(&scan_dir));
    assert!(
        w.iter()
            .any(|w| w.starts_with("removed seg.dcm of an earlier run of this scan")),
        "the removal is said: {w:?}"
    );
}

#[test]
fn an_enhanced_ct_series_gets_objects_that_cite_its_frames() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let p = phantom(21);
    let series = write(&p, &dir.path().join("slices"), OutputFormat::Dicom);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&series)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    // The whole series as one Enhanced CT image, frames stored in reverse order.
    let input = dir.path().join("enhanced");
    enhanced::enhanced_from_series(
        &files,
        &input.join("ct.dcm"),
        "1.2.826.0.1.3680043.10.1234.88",
    );
    let out = dir.path().join("out");
    assert_eq!(
        code(&scan(&[&input], &out, &["--dicom-sr", "--dicom-seg"], &[])),
        0
    );
    let id = read_csv(&out.join("summary.csv"))[0]["scan_id"].clone();
    let scan_dir = out.join("scans").join(id);
    let rows = read_csv(&scan_dir.join("candidates.csv"));
    assert!(
        rows.iter().any(|r| r["above_operating_point"] == "true"),
        "{rows:?}"
    );
    let rec = record(&scan_dir);
    assert!(
        scan_dir.join("sr.dcm").is_file() && scan_dir.join("seg.dcm").is_file(),
        "{:?}",
        warnings(&rec)
    );
    assert_dciodvfy_clean(&scan_dir);
    // The cross-check finds each measurement's source at the nearest frame's number and each
    // segmentation frame's source frame at its position.
    if let Some(summary) = crosscheck(&scan_dir, &input) {
        assert!(
            summary.contains("groups agree") && summary.contains("segments"),
            "{summary}"
        );
    }
}
