//! Soak test of `speck scan` (ignored by default; a few minutes):
//!
//! ```sh
//! cargo test --release -p speck-cli --test scan_soak -- --ignored --nocapture
//! SPECK_SOAK_N=500 cargo test --release -p speck-cli --test scan_soak -- --ignored --nocapture
//! ```
//!
//! It writes `SPECK_SOAK_N` (default 200) studies — NIfTI, MetaImage and DICOM, one in ten broken
//! in a different way — scans them with two jobs, kills the process with SIGKILL (`kill -9`) part
//! way through, checks that no file under a final name is half-written, resumes, and checks that
//! every good study has complete outputs, every broken one is in `errors.csv`, and nothing
//! finished before the kill was redone.

mod scan_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scan_support::*;
use speck_phantom::OutputFormat;

/// Ways a study can be broken (one in ten studies, in turn).
fn break_study(kind: usize, dir: &Path, good_nii: &Path, i: usize) -> PathBuf {
    let bytes = std::fs::read(good_nii).expect("read");
    match kind % 5 {
        0 => {
            let p = dir.join(format!("broken-{i:04}.nii.gz"));
            std::fs::write(&p, &bytes[..bytes.len() / 2]).expect("write");
            p
        }
        1 => {
            let p = dir.join(format!("garbage-{i:04}.nii"));
            std::fs::write(&p, vec![0x5au8; 2048]).expect("write");
            p
        }
        2 => {
            let p = dir.join(format!("noraw-{i:04}.mhd"));
            std::fs::write(
                &p,
                "ObjectType = Image\nNDims = 3\nDimSize = 64 64 32\nElementType = MET_SHORT\n\
                 ElementSpacing = 1 1 1\nElementDataFile = missing.raw\n",
            )
            .expect("write");
            p
        }
        3 => {
            let p = dir.join(format!("liar-{i:04}.mhd"));
            std::fs::write(
                &p,
                "ObjectType = Image\nNDims = 3\nDimSize = 4096 4096 4096\nElementType = MET_SHORT\n\
                 ElementDataFile = LOCAL\n",
            )
            .expect("write");
            p
        }
        _ => {
            let d = dir.join(format!("truncated-{i:04}"));
            let p = phantom(900 + i as u64);
            let series = write(&p, &d, OutputFormat::Dicom);
            for e in std::fs::read_dir(&series).expect("ls").flatten() {
                let b = std::fs::read(e.path()).expect("read");
                std::fs::write(e.path(), &b[..b.len().min(400)]).expect("truncate");
            }
            d
        }
    }
}

fn scan_jsons(out: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(out.join("scans"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join("scan.json"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "soak test: a few minutes; run with --ignored (see the file's docs)"]
fn two_hundred_studies_with_broken_ones_survive_kill_9_and_resume() {
    if !ort_available() {
        return;
    }
    let n: usize = std::env::var("SPECK_SOAK_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("archive");
    std::fs::create_dir_all(&input).expect("mkdir");
    // A few base phantoms, copied under distinct names (every copy is its own scan).
    let bases: Vec<_> = (0..4).map(|k| phantom(500 + k)).collect();
    let base_dir = dir.path().join("bases");
    let base_nii: Vec<PathBuf> = bases
        .iter()
        .map(|p| write(p, &base_dir, OutputFormat::Nifti))
        .collect();
    let base_mhd: Vec<PathBuf> = bases
        .iter()
        .map(|p| write(p, &base_dir.join("mhd"), OutputFormat::MetaImage))
        .collect();
    let (mut good, mut broken) = (0usize, 0usize);
    for i in 0..n {
        if i % 10 == 9 {
            break_study(i / 10, &input, &base_nii[0], i);
            broken += 1;
            continue;
        }
        let k = i % bases.len();
        match i % 3 {
            0 => {
                std::fs::copy(&base_nii[k], input.join(format!("study-{i:04}.nii.gz")))
                    .expect("copy");
            }
            1 => {
                let raw = base_mhd[k].with_extension("raw");
                let stem = format!("study-{i:04}");
                let text = std::fs::read_to_string(&base_mhd[k]).expect("mhd");
                let raw_name = raw
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                std::fs::write(
                    input.join(format!("{stem}.mhd")),
                    text.replace(&raw_name, &format!("{stem}.raw")),
                )
                .expect("mhd");
                std::fs::copy(&raw, input.join(format!("{stem}.raw"))).expect("raw");
            }
            _ => {
                let o = speck_volume::dicom::DicomWriteOptions {
                    series_uid: Some(format!("2.25.{}", 1_000_000 + i)),
                    ..Default::default()
                };
                speck_volume::dicom::write_series(
                    &bases[k].volume,
                    &input.join(format!("study-{i:04}")),
                    &o,
                )
                .expect("dicom");
            }
        }
        good += 1;
    }
    eprintln!("{good} good and {broken} broken studies written");

    let out = dir.path().join("out");
    let mut args: Vec<String> = vec![
        "scan".into(),
        input.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--jobs".into(),
        "2".into(),
        "--threads".into(),
        "1".into(),
        "--thumbnails".into(),
        "--thumbnails-top".into(),
        "2".into(),
    ];
    args.extend(model_args());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_speck"))
        .args(&args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let t0 = Instant::now();
    while scan_jsons(&out).len() < good * 2 / 5 {
        assert!(t0.elapsed() < Duration::from_secs(1800), "too slow");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    let before: Vec<(PathBuf, std::time::SystemTime)> = scan_jsons(&out)
        .into_iter()
        .map(|p| {
            let t = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .expect("mtime");
            (p, t)
        })
        .collect();
    eprintln!("killed after {} finished scans", before.len());
    // Nothing half-written under a final name: every record and CSV parses.
    for (p, _) in &before {
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(p).expect("read")).expect("complete json");
        let csv = p.with_file_name("candidates.csv");
        assert_eq!(
            read_csv(&csv).len() as u64,
            rec["n_candidates"].as_u64().expect("n")
        );
    }

    let o = scan(
        &[&input],
        &out,
        &[
            "--resume",
            "--jobs",
            "2",
            "--thumbnails",
            "--thumbnails-top",
            "2",
        ],
        &[],
    );
    assert_eq!(code(&o), 1, "broken studies: exit 1");
    for (p, t) in &before {
        let now = std::fs::metadata(p)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(now, *t, "{} was redone", p.display());
    }
    let summary = read_csv(&out.join("summary.csv"));
    let errors = read_csv(&out.join("errors.csv"));
    assert_eq!(
        summary.iter().filter(|r| r["status"] == "ok").count(),
        good,
        "every good study scanned"
    );
    assert_eq!(
        errors.len(),
        broken,
        "every broken study listed: {errors:#?}"
    );
    for r in summary.iter().filter(|r| r["status"] == "ok") {
        let d = out.join("scans").join(&r["scan_id"]);
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("scan.json")).expect("record"))
                .expect("json");
        for f in rec["outputs"].as_array().expect("outputs") {
            assert!(d.join(f.as_str().expect("str")).is_file());
        }
    }
    assert!(
        temp_files(&out).is_empty(),
        "stale temporary files swept by --resume"
    );
    let combined = read_csv(&out.join("candidates.csv"));
    let per_scan: usize = summary
        .iter()
        .map(|r| r["n_candidates"].parse::<usize>().expect("n"))
        .sum();
    assert_eq!(combined.len(), per_scan);
}
