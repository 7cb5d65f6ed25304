//! End-to-end tests of `speck scan` and `speck merge`: the binary is run on folders of phantoms
//! written as DICOM, NIfTI and MetaImage, with broken inputs mixed in, and its files are checked.
//!
//! Models: the analytic blob filters of `models/test/` (real ONNX Runtime, no training needed).
//! Each test skips (prints a note) when ONNX Runtime cannot be found.

mod scan_support;

use std::collections::BTreeMap;
use std::path::Path;

use scan_support::*;
use speck_phantom::OutputFormat;

/// One phantom written in all three formats, plus a corrupt NIfTI and an MR (unsupported) series.
struct Mixed {
    _dir: tempfile::TempDir,
    input: std::path::PathBuf,
    uid: String,
}

fn mixed_folder() -> Mixed {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("archive");
    let p = phantom(11);
    write(&p, &input.join("nifti"), OutputFormat::Nifti);
    write(&p, &input.join("mhd"), OutputFormat::MetaImage);
    write(&p, &input.join("dicom"), OutputFormat::Dicom);
    // A second, different phantom as DICOM, then turned into an MR series.
    let mr = phantom(12);
    let mr_dir = write(&mr, &input.join("mr"), OutputFormat::Dicom);
    make_mr(&mr_dir);
    // A corrupt NIfTI: a gzip stream cut short.
    let good = std::fs::read(
        input
            .join("nifti")
            .join(format!("{}.nii.gz", p.truth.series_uid)),
    )
    .expect("read");
    std::fs::write(input.join("broken.nii.gz"), &good[..good.len() / 3]).expect("write");
    // A study whose every DICOM file is truncated after its header preamble.
    let cut = write(&phantom(13), &input.join("truncated"), OutputFormat::Dicom);
    for e in std::fs::read_dir(&cut).expect("ls").flatten() {
        let b = std::fs::read(e.path()).expect("read");
        std::fs::write(e.path(), &b[..300]).expect("truncate");
    }
    // A folder of junk that is not DICOM at all.
    std::fs::create_dir_all(input.join("junk")).expect("mkdir");
    std::fs::write(input.join("junk").join("scan.bin"), [7u8; 4096]).expect("junk");
    Mixed {
        uid: p.truth.series_uid.clone(),
        input,
        _dir: dir,
    }
}

#[test]
fn mixed_archive_good_scans_are_found_and_bad_ones_listed() {
    if !ort_available() {
        return;
    }
    let m = mixed_folder();
    let out = m.input.parent().expect("parent").join("out");
    let o = scan(
        &[&m.input],
        &out,
        &["--thumbnails", "--thumbnails-top", "2", "--heatmap"],
        &[],
    );
    assert_eq!(code(&o), 1, "some scans failed: exit code 1");

    let summary = read_csv(&out.join("summary.csv"));
    let errors = read_csv(&out.join("errors.csv"));
    let skipped = read_csv(&out.join("skipped.csv"));
    let ok: Vec<_> = summary.iter().filter(|r| r["status"] == "ok").collect();
    assert_eq!(ok.len(), 3, "{summary:?}");
    assert_eq!(summary.len(), 5, "{summary:?}");
    assert_eq!(errors.len(), 2, "{errors:?}");
    let truncated = errors
        .iter()
        .find(|e| e["input"].contains("truncated"))
        .unwrap_or_else(|| panic!("truncated listed: {errors:?}"));
    assert_eq!(truncated["stage"], "discover");
    assert!(
        truncated["reason"].contains("not a readable image series"),
        "{truncated:?}"
    );
    let broken = errors
        .iter()
        .find(|e| e["input"].ends_with("broken.nii.gz"))
        .expect("broken.nii.gz listed");
    assert_eq!(broken["stage"], "load");
    // Not CT image series: skipped, not failed (issue 20).
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    let mr = skipped
        .iter()
        .find(|e| e["kind"] == "modality")
        .expect("MR series skipped");
    assert!(mr["reason"].contains("\"MR\""), "{mr:?}");
    assert!(!mr["series"].is_empty());
    let junk = skipped
        .iter()
        .find(|e| e["input"].ends_with("scan.bin"))
        .expect("junk skipped");
    assert_eq!(junk["kind"], "not-dicom");

    // The same phantom in three formats: the same candidates (world mm, probability).
    let all = read_csv(&out.join("candidates.csv"));
    let mut by_scan: BTreeMap<String, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for r in &all {
        assert_eq!(r["seriesuid"], m.uid);
        by_scan.entry(r["scan_id"].clone()).or_default().push(r);
    }
    assert_eq!(by_scan.len(), 3, "three scans with candidates");
    let lists: Vec<_> = by_scan.values().collect();
    let n = lists[0].len();
    assert!(n > 0, "the phantom's nodules give candidates");
    for l in &lists {
        assert_eq!(l.len(), n);
        for (a, b) in l.iter().zip(lists[0].iter()) {
            for k in ["coordX", "coordY", "coordZ", "probability"] {
                let (x, y): (f64, f64) = (a[k].parse().expect("num"), b[k].parse().expect("num"));
                assert!((x - y).abs() < 0.05, "{k}: {x} vs {y}");
            }
        }
    }

    // Per-scan outputs: CSV equal to the combined rows, a complete record, thumbnails, heatmap.
    for (id, rows) in &by_scan {
        let sd = out.join("scans").join(id);
        let own = read_csv(&sd.join("candidates.csv"));
        assert_eq!(own.len(), rows.len());
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(sd.join("scan.json")).expect("scan.json"))
                .expect("json");
        assert_eq!(rec["n_candidates"].as_u64(), Some(rows.len() as u64));
        assert_eq!(rec["device"], "cpu");
        assert!(rec["timings_s"]["total"].as_f64().expect("total") > 0.0);
        assert!(sd.join("heatmap.nii.gz").is_file());
        let heat = speck_volume::open(sd.join("heatmap.nii.gz")).expect("heatmap readable");
        assert!(heat.shape_zyx().iter().all(|&d| d > 0));
        for rank in 1..=rows.len().min(2) {
            let t = sd
                .join("thumbnails")
                .join(format!("candidate-{rank:03}.png"));
            let bytes = std::fs::read(&t).expect("thumbnail");
            assert_eq!(&bytes[1..4], b"PNG");
        }
        let format = rec["format"].as_str().expect("format");
        for r in rows {
            assert!(!r["index_z"].is_empty() && !r["side"].is_empty());
            assert!(r["side"] == "left" || r["side"] == "right");
            // DICOM knows each slice's InstanceNumber; the other formats do not.
            assert_eq!(format == "dicom", !r["instance_number"].is_empty(), "{r:?}");
        }
    }
    let report = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert!(report.contains("thumbnails/candidate-001.png"));
    assert!(temp_files(&out).is_empty());
    keep_if_asked(m._dir);
}

#[test]
fn missing_models_are_a_fatal_error_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = speck(
        &[
            "scan",
            dir.path().to_str().expect("utf8"),
            "--out",
            dir.path().join("out").to_str().expect("utf8"),
            "--models-dir",
            dir.path().to_str().expect("utf8"),
        ],
        &[],
    );
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("coarse-*.onnx"));
}

/// Two or three phantoms (NIfTI, MetaImage, DICOM) with distinct series.
fn good_folder(n: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in");
    let formats = [
        OutputFormat::Nifti,
        OutputFormat::Dicom,
        OutputFormat::MetaImage,
    ];
    for (i, f) in formats.iter().take(n).enumerate() {
        write(&phantom(21 + i as u64), &input, *f);
    }
    (dir, input)
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .expect("mtime")
}

#[test]
fn resume_after_an_interruption_redoes_nothing_finished_and_loses_nothing() {
    if !ort_available() {
        return;
    }
    let (dir, input) = good_folder(3);
    let out = dir.path().join("out");
    assert_eq!(code(&scan(&[&input], &out, &[], &[])), 0);
    let first = bytes(&out.join("candidates.csv"));
    let summary = read_csv(&out.join("summary.csv"));
    let ids: Vec<String> = summary.iter().map(|r| r["scan_id"].clone()).collect();
    assert_eq!(ids.len(), 3);

    // Simulate a kill in the middle of scan 1 (its marker not yet written, a temp file left) and
    // in the middle of writing the run files (combined CSV gone).
    let s1 = out.join("scans").join(&ids[1]);
    std::fs::remove_file(s1.join("scan.json")).expect("rm marker");
    std::fs::write(s1.join(".speck-tmp-999-0-candidates.csv"), b"half a line").expect("tmp");
    std::fs::remove_file(out.join("candidates.csv")).expect("rm combined");
    let kept: Vec<_> = [0, 2]
        .iter()
        .map(|&i| {
            let p = out.join("scans").join(&ids[i]).join("scan.json");
            (p.clone(), mtime(&p), bytes(&p))
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));

    let o = scan(&[&input], &out, &["--resume", "-v"], &[]);
    assert_eq!(code(&o), 0);
    for (p, t, b) in &kept {
        assert_eq!(mtime(p), *t, "{} was rewritten", p.display());
        assert_eq!(&bytes(p), b);
    }
    assert!(
        s1.join("scan.json").is_file(),
        "the interrupted scan was redone"
    );
    assert_eq!(
        bytes(&out.join("candidates.csv")),
        first,
        "nothing lost, nothing changed"
    );
    assert!(temp_files(&out).is_empty(), "stale temp file swept");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("3 ok (2 from an earlier run)"), "{stderr}");
}

/// Two folders each holding a different `ct.nii.gz` (a common archive layout).
fn two_cts() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, z) = (dir.path().join("arch/A"), dir.path().join("arch/Z"));
    for (seed, folder) in [(21, &a), (22, &z)] {
        let written = write(&phantom(seed), folder, OutputFormat::Nifti);
        std::fs::rename(&written, folder.join("ct.nii.gz")).expect("rename");
    }
    (dir, a, z)
}

/// Candidates of one scan id in a combined file, without the id columns.
fn rows_of(rows: &[BTreeMap<String, String>], id: &str) -> Vec<Vec<String>> {
    rows.iter()
        .filter(|r| r["scan_id"] == id)
        .map(|r| {
            ["coordX", "coordY", "coordZ", "probability"]
                .iter()
                .map(|k| r[*k].clone())
                .collect()
        })
        .collect()
}

#[test]
fn resume_never_hands_one_scan_another_scans_results() {
    if !ort_available() {
        return;
    }
    let (dir, a, z) = two_cts();
    let out = dir.path().join("rr");
    assert_eq!(code(&scan(&[&z], &out, &[], &[])), 0);
    // An input with another name leaves Z's id and seriesuid alone: Z is resumed.
    let b = dir.path().join("arch/B");
    let written = write(&phantom(23), &b, OutputFormat::Nifti);
    std::fs::rename(&written, b.join("other.nii.gz")).expect("rename");
    let o = scan(&[&b, &z], &out, &["--resume"], &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("2 ok (1 from an earlier run)"), "{stderr}");
    // B goes again, its scan folder too (a run lists every complete scan folder of its --out).
    let b_id = read_csv(&out.join("summary.csv"))
        .into_iter()
        .find(|r| r["source"].contains("/B/"))
        .map(|r| r["scan_id"].clone())
        .expect("B's row");
    std::fs::remove_dir_all(out.join("scans").join(b_id)).expect("rm B's scan");
    std::fs::remove_dir_all(&b).expect("rm B");
    assert_eq!(code(&scan(&[&z], &out, &[], &[])), 0);
    let z_alone = read_csv(&out.join("summary.csv"));
    assert_eq!(z_alone.len(), 1);
    let z_id = z_alone[0]["scan_id"].clone();
    let z_rows = rows_of(&read_csv(&out.join("candidates.csv")), &z_id);
    assert!(
        !z_rows.is_empty(),
        "the test needs candidates to tell scans apart"
    );

    let o = scan(&[&a, &z], &out, &["--resume"], &[]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let summary = read_csv(&out.join("summary.csv"));
    assert_eq!(summary.len(), 2, "{summary:?}");
    let cands = read_csv(&out.join("candidates.csv"));
    for row in &summary {
        // Every scan's record names the file its summary row names.
        let rec: serde_json::Value = serde_json::from_slice(&bytes(
            &out.join("scans").join(&row["scan_id"]).join("scan.json"),
        ))
        .expect("scan.json");
        assert_eq!(
            rec["source"].as_str(),
            Some(row["source"].as_str()),
            "{rec}"
        );
        let from_z = row["source"].contains("/Z/");
        if from_z {
            assert_eq!(row["scan_id"], z_id, "adding an input renamed Z's scan");
            assert_eq!(rows_of(&cands, &z_id), z_rows);
        } else {
            assert_ne!(
                rows_of(&cands, &row["scan_id"]),
                z_rows,
                "A carries Z's candidates"
            );
        }
    }
    // Z keeps its id, but its seriesuid gains a path hash now that two inputs are named `ct`, so
    // its earlier result (written under `ct`) is redone rather than relabelled.
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("(0 from an earlier run)"), "{stderr}");
    // Same-named inputs get distinct seriesuid values, so eval never merges them.
    let uids: std::collections::BTreeSet<_> = summary.iter().map(|r| &r["seriesuid"]).collect();
    assert_eq!(uids.len(), 2, "{summary:?}");
}

/// Z's `ct.nii.gz` scanned into `rr`, then another patient's `ct.nii.gz` (A) alone into the same
/// `rr`: both keep the seriesuid `ct`, so the run-level files list A only and name Z's folder,
/// rather than hand `speck eval` two patients under one seriesuid.
#[test]
fn an_earlier_scan_with_the_same_seriesuid_is_not_merged_into_the_run_files() {
    if !ort_available() {
        return;
    }
    let (dir, a, z) = two_cts();
    let out = dir.path().join("rr");
    assert_eq!(code(&scan(&[&z], &out, &[], &[])), 0);
    let o = scan(&[&a], &out, &[], &[]);
    assert_eq!(code(&o), 0);
    let summary = read_csv(&out.join("summary.csv"));
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert!(summary[0]["source"].contains("/A/"), "{summary:?}");
    let cands = read_csv(&out.join("candidates.csv"));
    assert!(cands.iter().all(|r| r["scan_id"] == summary[0]["scan_id"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("sharing a seriesuid with a scan listed"),
        "Z's folder is named: {err}"
    );
}

#[test]
fn resume_redoes_a_scan_whose_file_was_replaced() {
    if !ort_available() {
        return;
    }
    let (dir, a, z) = two_cts();
    let out = dir.path().join("rr");
    assert_eq!(code(&scan(&[&z], &out, &[], &[])), 0);
    let before = read_csv(&out.join("candidates.csv"));
    // Z's file replaced by A's (same name, same place, other patient).
    std::fs::copy(a.join("ct.nii.gz"), z.join("ct.nii.gz")).expect("copy");
    let o = scan(&[&z], &out, &["--resume"], &[]);
    assert_eq!(code(&o), 0);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("(0 from an earlier run)"), "{stderr}");
    assert_ne!(read_csv(&out.join("candidates.csv")), before);
}

#[test]
fn two_shards_merged_equal_one_unsharded_run() {
    if !ort_available() {
        return;
    }
    let (dir, input) = good_folder(3);
    // A broken input too, so errors are sharded and merged as well.
    std::fs::write(
        input.join("junk.mha"),
        b"ObjectType = Image\nDimSize = 4 4\n",
    )
    .expect("junk");
    let whole = dir.path().join("whole");
    assert_eq!(code(&scan(&[&input], &whole, &[], &[])), 1);

    let sharded = dir.path().join("sharded");
    assert!(code(&scan(&[&input], &sharded, &["--shard", "0/2"], &[])) <= 1);
    // The second shard from Slurm's variables (1-based array indices).
    let o = scan(
        &[&input],
        &sharded,
        &[],
        &[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
        ],
    );
    assert!(code(&o) <= 1);
    let s0 = read_csv(&sharded.join("shards/0-of-2/summary.csv"));
    let s1 = read_csv(&sharded.join("shards/1-of-2/summary.csv"));
    assert_eq!(s0.len() + s1.len(), 4);
    assert!(s0.len().abs_diff(s1.len()) <= 1, "balanced");

    let o = speck(&["merge", sharded.to_str().expect("utf8")], &[]);
    assert_eq!(code(&o), 1, "a failed scan: exit 1");
    for f in ["candidates.csv", "summary.csv", "errors.csv"] {
        let (a, b) = (bytes(&whole.join(f)), bytes(&sharded.join(f)));
        if f == "summary.csv" {
            // Seconds differ between runs; everything else is equal.
            let strip = |rows: Vec<std::collections::BTreeMap<String, String>>| {
                rows.into_iter()
                    .map(|mut r| {
                        r.remove("seconds");
                        r
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                strip(read_csv(&whole.join(f))),
                strip(read_csv(&sharded.join(f)))
            );
        } else {
            assert_eq!(a, b, "{f} differs");
        }
    }
    // A missing shard is reported by merge.
    std::fs::remove_dir_all(sharded.join("shards/1-of-2")).expect("rm");
    std::fs::remove_file(sharded.join("summary.csv")).expect("rm");
    let o = speck(
        &[
            "merge",
            sharded.to_str().expect("utf8"),
            "--out",
            dir.path().join("m").to_str().expect("utf8"),
        ],
        &[],
    );
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing shards: 1-of-2"));
}

#[test]
fn candidate_files_are_byte_identical_across_thread_and_job_counts() {
    if !ort_available() {
        return;
    }
    let (dir, input) = good_folder(2);
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    assert_eq!(
        code(&scan(
            &[&input],
            &a,
            &["--threads", "1", "--jobs", "1"],
            &[]
        )),
        0
    );
    assert_eq!(
        code(&scan(
            &[&input],
            &b,
            &["--threads", "2", "--jobs", "2"],
            &[]
        )),
        0
    );
    let ca = bytes(&a.join("candidates.csv"));
    assert!(ca.split(|&c| c == b'\n').count() > 2, "some candidates");
    assert_eq!(ca, bytes(&b.join("candidates.csv")));
    for r in read_csv(&a.join("summary.csv")) {
        let f = Path::new("scans")
            .join(&r["scan_id"])
            .join("candidates.csv");
        assert_eq!(bytes(&a.join(&f)), bytes(&b.join(&f)), "{}", f.display());
    }
}

#[test]
fn hostile_series_uid_stays_inside_out_and_is_escaped_in_the_report() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("a").join("b").join("in");
    let p = phantom(31);
    let evil = "../../evil<script>";
    let o = speck_volume::dicom::DicomWriteOptions {
        series_uid: Some(evil.to_string()),
        ..Default::default()
    };
    speck_volume::dicom::write_series(&p.volume, &input.join("series"), &o).expect("write");
    let out = dir.path().join("a").join("b").join("out");
    let before = files_under(dir.path());
    assert_eq!(code(&scan(&[&input], &out, &["--thumbnails"], &[])), 0);
    let after = files_under(dir.path());
    for f in after.iter().filter(|f| !before.contains(f)) {
        assert!(
            dir.path().join(f).starts_with(&out),
            "{} written outside --out",
            f.display()
        );
    }
    let summary = read_csv(&out.join("summary.csv"));
    assert_eq!(
        summary[0]["seriesuid"], evil,
        "the identifier is kept as data"
    );
    let id = &summary[0]["scan_id"];
    assert!(
        !id.starts_with('.') && !id.contains('/') && !id.contains('<'),
        "{id}"
    );
    assert_eq!(Path::new(id).components().count(), 1);
    assert!(out.join("scans").join(id).join("scan.json").is_file());
    let report = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert!(!report.contains("<script>"));
}

#[test]
fn a_scan_over_the_memory_budget_is_refused_and_the_others_run() {
    if !ort_available() {
        return;
    }
    let (dir, input) = good_folder(1);
    // A NIfTI header claiming 512 x 512 x 2000 int16 voxels (the data is absent: never read).
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    for (i, d) in [3i16, 512, 512, 2000, 1, 1, 1, 1].iter().enumerate() {
        h[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    h[70..72].copy_from_slice(&4i16.to_le_bytes());
    h[72..74].copy_from_slice(&16i16.to_le_bytes());
    h[344..348].copy_from_slice(b"n+1\0");
    std::fs::write(input.join("huge.nii"), &h).expect("write");
    let out = dir.path().join("out");
    let o = scan(&[&input], &out, &["--max-memory", "2"], &[]);
    assert_eq!(code(&o), 1);
    let errors = read_csv(&out.join("errors.csv"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["stage"], "memory");
    assert!(errors[0]["reason"].contains("--max-memory"), "{errors:?}");
    let summary = read_csv(&out.join("summary.csv"));
    assert_eq!(summary.iter().filter(|r| r["status"] == "ok").count(), 1);
}

#[test]
fn manifest_and_dry_run_list_the_same_scans_per_shard() {
    let (dir, input) = good_folder(3);
    let files: Vec<_> = std::fs::read_dir(&input)
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_none_or(|e| e != "raw"))
        .collect();
    let manifest = dir.path().join("scans.txt");
    let mut text = String::from("# three scans\n");
    for f in &files {
        text.push_str(&format!("{}\n", f.display()));
    }
    text.push_str("missing.nii.gz  # listed but absent\n");
    std::fs::write(&manifest, text).expect("manifest");
    let out = dir.path().join("out");
    let list = |shard: &str| {
        let o = speck(
            &[
                "scan",
                manifest.to_str().expect("utf8"),
                "--out",
                out.to_str().expect("utf8"),
                "--dry-run",
                "--shard",
                shard,
            ],
            &[],
        );
        assert_eq!(code(&o), 0);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let whole = list("0/1");
    assert_eq!(whole.len(), 4, "{whole:?}");
    assert!(whole
        .iter()
        .any(|l| l.contains("fail") && l.contains("missing")));
    let mut parts = list("0/3");
    parts.extend(list("1/3"));
    parts.extend(list("2/3"));
    parts.sort();
    let mut sorted = whole.clone();
    sorted.sort();
    assert_eq!(parts, sorted);
    assert!(!out.exists(), "a dry run writes nothing");
}

#[test]
fn ctrl_c_stops_cleanly_and_resume_finishes_the_rest() {
    if !ort_available() {
        return;
    }
    let (dir, input) = good_folder(3);
    let out = dir.path().join("out");
    let mut args: Vec<String> = vec![
        "scan".into(),
        input.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--jobs".into(),
        "1".into(),
    ];
    args.extend(model_args());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_speck"))
        .args(&args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait for the first finished scan, then interrupt.
    let t0 = std::time::Instant::now();
    let first_done = loop {
        let done: Vec<_> = std::fs::read_dir(out.join("scans"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path().join("scan.json"))
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(p) = done.into_iter().next() {
            break p;
        }
        assert!(t0.elapsed().as_secs() < 120, "no scan finished");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let o = child.wait_with_output().expect("wait");
    assert_eq!(code(&o), 130, "interrupted");
    assert!(temp_files(&out).is_empty(), "no temporary file left");
    // Every scan folder is either complete or has no marker; the run files exist and list the
    // scans not started as failed at stage `interrupted`, so that nothing goes missing unnoticed.
    let summary = read_csv(&out.join("summary.csv"));
    assert_eq!(summary.len(), 3, "{summary:?}");
    let n_ok = summary.iter().filter(|r| r["status"] == "ok").count();
    assert!((1..3).contains(&n_ok), "{summary:?}");
    let errors = read_csv(&out.join("errors.csv"));
    assert_eq!(errors.len(), 3 - n_ok, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| e["stage"] == "interrupted" && e["reason"].starts_with("not started")),
        "{errors:?}"
    );
    let t_first = mtime(&first_done);

    let o = scan(&[&input], &out, &["--resume"], &[]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        mtime(&first_done),
        t_first,
        "the finished scan was not redone"
    );
    assert_eq!(read_csv(&out.join("summary.csv")).len(), 3);
}

#[test]
fn an_output_folder_inside_the_input_is_never_scanned() {
    if !ort_available() {
        return;
    }
    let (_dir, input) = good_folder(1);
    let out = input.join("results");
    for _ in 0..2 {
        assert_eq!(code(&scan(&[&input], &out, &["--heatmap"], &[])), 0);
        let summary = read_csv(&out.join("summary.csv"));
        assert_eq!(summary.len(), 1, "its own heatmap was scanned: {summary:?}");
    }
}

#[test]
fn demo_generates_scans_evaluates_and_prints_the_size_table() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("demo");
    let mut args: Vec<String> = [
        "demo",
        "--scans",
        "1",
        "--size",
        "48,128,128",
        "--spacing",
        "2.0,1.2,1.2",
        "--nodules",
        "3",
        "--bootstrap",
        "0",
        "--out",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    args.push(out.display().to_string());
    args.extend(model_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = speck(&refs, &[]);
    assert_eq!(code(&o), 0);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("CPM"), "{table}");
    assert!(
        table.contains("size (voxels)") && table.contains("size (mm)"),
        "{table}"
    );
    assert!(out.join("phantoms/annotations.csv").is_file());
    assert!(out.join("scan/candidates.csv").is_file());
    assert!(out.join("scan/report.html").is_file());
}

#[test]
fn an_output_that_cannot_be_a_folder_is_a_fatal_error_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("out.txt");
    std::fs::write(&file, b"x").expect("write");
    let o = scan(&[dir.path()], &file, &[], &[]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("is a file, not a folder"));
    // A real input (an empty .nii.gz is still one scan to try), so that the run gets as far as
    // creating the output folder.
    let input = dir.path().join("ct.nii.gz");
    std::fs::write(&input, b"").expect("write");
    let o = scan(&[&input], &file.join("sub"), &[], &[]);
    assert_eq!(code(&o), 2, "a folder under a file cannot be created");
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot create the output folder"));
}

/// Exit 2, not 1, when the command line names a path that does not exist, or when the inputs
/// hold nothing to scan at all (only missing manifest entries, an empty folder, junk): nothing is
/// written. A missing entry beside real scans stays a failed item (errors.csv, exit 1).
#[test]
fn a_missing_input_or_nothing_to_scan_is_exit_code_2() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (_good_dir, good) = good_folder(1);
    let out = d.join("out");
    let absent = d.join("no-such-study");
    let o = scan(&[&good, &absent], &out, &[], &[]);
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("input not found") && err.contains(&absent.display().to_string()),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written");

    let empty = d.join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let junk = d.join("junk");
    std::fs::create_dir(&junk).expect("mkdir");
    std::fs::write(junk.join("scan.bin"), [7u8; 4096]).expect("write");
    let manifest = d.join("scans.txt");
    std::fs::write(&manifest, "gone.nii.gz\n").expect("write");
    let (e, j, m) = (empty.as_path(), junk.as_path(), manifest.as_path());
    for inputs in [vec![e], vec![j], vec![m], vec![e, j, m]] {
        let o = scan(&inputs, &out, &[], &[]);
        assert_eq!(code(&o), 2, "{inputs:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("nothing to scan"), "{err}");
        for i in &inputs {
            let named = if *i == m {
                d.join("gone.nii.gz")
            } else {
                i.to_path_buf()
            };
            assert!(err.contains(&named.display().to_string()), "{err}");
        }
        assert!(!out.exists(), "nothing is written");
    }
    let o = scan(&[&empty], &out, &["--dry-run"], &[]);
    assert_eq!(code(&o), 2);

    // Beside a real scan, a missing manifest entry is one failed item of the run.
    std::fs::write(&manifest, format!("gone.nii.gz\n{}\n", good.display())).expect("write");
    assert_eq!(code(&scan(&[&manifest], &out, &[], &[])), 1);
    let errors = read_csv(&out.join("errors.csv"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["stage"], "discover");
    assert_eq!(read_csv(&out.join("summary.csv")).len(), 2);
}

/// An existing, non-empty `--out` that holds no Speck output (a mistyped path, a data folder) is
/// refused with exit 2 and nothing written, unless `--force`; a Speck output folder (rerun,
/// `--resume`) is accepted, and so is a user's `scans/` folder only when it holds Speck scans.
#[test]
fn a_foreign_non_empty_output_folder_is_refused_without_force() {
    if !ort_available() {
        return;
    }
    let (dir, input) = good_folder(1);
    let out = dir.path().join("project");
    std::fs::create_dir_all(out.join("patients")).expect("mkdir");
    std::fs::write(out.join("notes.txt"), b"keep me").expect("write");
    let before = files_under(&out);
    let o = scan(&[&input], &out, &[], &[]);
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("--out {} is not empty", out.display()))
            && err.contains("notes.txt, patients")
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(files_under(&out), before, "nothing written");
    assert!(!out.join("scans").exists());

    // A `scans/` of the user's own (no scan folder of Speck's) does not make it a Speck output.
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("scans/raw")).expect("mkdir");
    std::fs::write(data.join("scans/raw/img.dcm"), b"x").expect("write");
    assert_eq!(code(&scan(&[&input], &data, &[], &[])), 2);

    assert_eq!(code(&scan(&[&input], &out, &["--force"], &[])), 0);
    assert_eq!(read_csv(&out.join("summary.csv")).len(), 1);
    assert_eq!(
        std::fs::read(out.join("notes.txt")).expect("read"),
        b"keep me"
    );
    // Now it is a Speck output folder: a rerun and a resume need no --force.
    assert_eq!(code(&scan(&[&input], &out, &[], &[])), 0);
    assert_eq!(code(&scan(&[&input], &out, &["--resume"], &[])), 0);
    // So is a folder holding only scans/ of a run killed before its run files.
    std::fs::remove_file(out.join("summary.csv")).expect("rm");
    std::fs::remove_file(out.join("notes.txt")).expect("rm");
    assert_eq!(code(&scan(&[&input], &out, &["--resume"], &[])), 0);
}

/// `--threshold P` keeps candidates below the fine model's operating point, down to P, flagged
/// `above_operating_point=false`; the rows at or above it are those of a run without the flag
/// (all `true`; same probabilities, centres within 2 mm), so `speck eval` on the low-threshold file gives the whole FROC curve.
#[test]
fn a_lower_threshold_keeps_more_candidates_flagged_against_the_operating_point() {
    if !ort_available() {
        return;
    }
    let (dir, input) = good_folder(2);
    let default = dir.path().join("default");
    let low = dir.path().join("low");
    assert_eq!(code(&scan(&[&input], &default, &[], &[])), 0);
    assert_eq!(
        code(&scan(&[&input], &low, &["--threshold", "0.01"], &[])),
        0
    );
    let key = |r: &BTreeMap<String, String>| {
        ["seriesuid", "coordX", "coordY", "coordZ", "probability"].map(|k| r[k].clone())
    };
    let prob = |r: &BTreeMap<String, String>| r["probability"].parse::<f64>().expect("p");
    let d = read_csv(&default.join("candidates.csv"));
    let l = read_csv(&low.join("candidates.csv"));
    assert!(!d.is_empty());
    assert!(
        d.iter().all(|r| r["above_operating_point"] == "true"),
        "{d:?}"
    );
    assert!(
        l.len() > d.len(),
        "{} rows at 0.01, {} by default",
        l.len(),
        d.len()
    );
    let (above, below): (Vec<_>, Vec<_>) =
        l.iter().partition(|r| r["above_operating_point"] == "true");
    assert!(below.iter().all(|r| r["above_operating_point"] == "false"));
    assert!(below.iter().all(|r| prob(r) >= 0.01 - 5e-7), "{below:?}");
    let lowest_above = above.iter().map(|r| prob(r)).fold(f64::INFINITY, f64::min);
    let highest_below = below.iter().map(|r| prob(r)).fold(0.0, f64::max);
    assert!(
        highest_below <= lowest_above,
        "{highest_below} > {lowest_above}"
    );
    // The rows at or above the operating point are the default run's, exactly: findings at the
    // operating point are merged among themselves, so the extra rows never move them.
    let mut want: Vec<_> = d.iter().map(key).collect();
    let mut got: Vec<_> = above.iter().map(|r| key(r)).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(got.len(), want.len());

    // Per-scan files carry the column too; a bad threshold is a usage error.
    let per_scan = read_csv(
        &low.join("scans")
            .join(&l[0]["scan_id"])
            .join("candidates.csv"),
    );
    assert!(per_scan
        .iter()
        .all(|r| !r["above_operating_point"].is_empty()));
    let o = scan(
        &[&input],
        &dir.path().join("bad"),
        &["--threshold", "1.5"],
        &[],
    );
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--threshold 1.5"));
}

/// The LUNA16 workflow in two commands (docs/evaluation.md): subset folders of
/// `<seriesuid>.mhd`/`.raw`, `annotations.csv` and `annotations_excluded.csv` at the top; `speck
/// scan --threshold 0.01` over the folder, then `speck eval` picks up the excluded findings and
/// draws the whole FROC curve with the per-size tables.
#[test]
fn luna16_layout_scan_then_eval_gives_the_whole_froc_and_size_tables() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let luna = dir.path().join("luna16");
    let mut truths = Vec::new();
    for (subset, seed) in [("subset0", 41), ("subset0", 42), ("subset1", 43)] {
        let p = phantom(seed);
        let written = write(&p, &luna.join(subset), OutputFormat::MetaImage);
        assert_eq!(
            written
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            Some(format!("{}.mhd", p.truth.series_uid))
        );
        truths.push(p.truth);
    }
    std::fs::write(
        luna.join("annotations.csv"),
        speck_phantom::annotations_csv(&truths).expect("rows"),
    )
    .expect("annotations");
    std::fs::write(
        luna.join("annotations_excluded.csv"),
        speck_phantom::excluded_csv(&truths).expect("rows"),
    )
    .expect("excluded");
    let uids: Vec<String> = truths.iter().map(|t| t.series_uid.clone()).collect();
    std::fs::write(
        luna.join("seriesuids.csv"),
        format!("seriesuid\n{}\n", uids.join("\n")),
    )
    .expect("series");

    // 1. scan every subset, keeping candidates down to 0.01
    let out = dir.path().join("out");
    let o = scan(&[&luna], &out, &["--threshold", "0.01"], &[]);
    assert_eq!(code(&o), 0);
    let cands = read_csv(&out.join("candidates.csv"));
    let scanned: std::collections::BTreeSet<&str> =
        cands.iter().map(|r| r["seriesuid"].as_str()).collect();
    for u in &uids {
        assert!(scanned.contains(u.as_str()), "{u} has no candidate row");
    }
    assert!(
        cands.iter().any(|r| r["above_operating_point"] == "false"),
        "candidates below the operating point are kept"
    );

    // 2. eval: the excluded findings beside annotations.csv are used, and the curve is whole
    let plot = dir.path().join("froc.svg");
    let points = dir.path().join("froc.csv");
    let e = speck(
        &[
            "eval",
            "--annotations",
            &luna.join("annotations.csv").display().to_string(),
            "--candidates",
            &out.join("candidates.csv").display().to_string(),
            "--series",
            &luna.join("seriesuids.csv").display().to_string(),
            "--json",
            "--bootstrap",
            "100",
            "--plot",
            &plot.display().to_string(),
            "--csv",
            &points.display().to_string(),
        ],
        &[],
    );
    assert_eq!(code(&e), 0);
    let stderr = String::from_utf8_lossy(&e.stderr);
    assert!(
        stderr.contains("annotations_excluded.csv"),
        "the excluded findings are named: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&e.stdout).expect("JSON");
    assert_eq!(v["n_scans"], 3);
    let sens: Vec<f64> = v["sensitivity_at_fp"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["sensitivity"].as_f64().expect("sensitivity"))
        .collect();
    let thresholds = std::fs::read_to_string(&points)
        .expect("froc.csv")
        .lines()
        .count();
    assert!(
        thresholds > 10,
        "the curve has many operating points, not one ({thresholds} lines)"
    );
    assert!(sens.windows(2).all(|w| w[0] <= w[1]), "{sens:?}");
    assert!(v["by_size"]["vox"].is_array() && v["by_size"]["mm"].is_array());
    assert!(std::fs::read_to_string(&plot)
        .expect("svg")
        .contains("<polyline"));
}

/// Issue 21, item 4: a rerun into the same `--out` without `--thumbnails` deleted the earlier
/// thumbnails without a word. Files of an earlier run that a rerun does not write again (the
/// heatmap, thumbnails, thumbnails beyond a smaller `--thumbnails-top`) are removed, since they
/// would describe other results, and stderr and `scan.json` say which.
#[test]
fn a_rerun_that_drops_earlier_outputs_says_so() {
    if !ort_available() {
        return;
    }
    let (dir, input) = good_folder(1);
    let out = dir.path().join("out");
    let args = ["--thumbnails", "--thumbnails-top", "3", "--heatmap"];
    assert_eq!(code(&scan(&[&input], &out, &args, &[])), 0);
    let scan_dir = std::fs::read_dir(out.join("scans"))
        .expect("scans")
        .flatten()
        .next()
        .expect("one scan")
        .path();
    let thumbs = |d: &Path| std::fs::read_dir(d.join("thumbnails")).map_or(0, |r| r.count());
    let n = thumbs(&scan_dir);
    assert!(n >= 2, "the test needs at least two thumbnails ({n})");
    assert!(scan_dir.join("heatmap.nii.gz").is_file());
    let warnings = |d: &Path| -> Vec<String> {
        let j: serde_json::Value =
            serde_json::from_slice(&bytes(&d.join("scan.json"))).expect("scan.json");
        j["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .map(|w| w.as_str().unwrap_or_default().to_owned())
            .collect()
    };

    // The same request again: everything rewritten, nothing to say.
    let o = scan(&[&input], &out, &args, &[]);
    assert_eq!(code(&o), 0);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("removed"));

    // Fewer thumbnails: the extra ones go, named.
    let o = scan(
        &[&input],
        &out,
        &["--thumbnails", "--thumbnails-top", "1", "--heatmap"],
        &[],
    );
    assert_eq!(code(&o), 0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: scans/")
            && err.contains("removed")
            && err.contains("candidate-002.png"),
        "{err}"
    );
    assert_eq!(thumbs(&scan_dir), 1);

    // Nothing extra requested: thumbnail and heatmap removed, said on stderr and in scan.json.
    let o = scan(&[&input], &out, &[], &[]);
    assert_eq!(code(&o), 0);
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("removed"))
        .unwrap_or_else(|| panic!("no word about the removed files: {err}"));
    assert!(
        line.starts_with("warning: scans/")
            && line.contains("heatmap.nii.gz")
            && line.contains("thumbnails/candidate-001.png"),
        "{line}"
    );
    assert!(!scan_dir.join("heatmap.nii.gz").exists());
    assert_eq!(thumbs(&scan_dir), 0);
    assert!(
        warnings(&scan_dir)
            .iter()
            .any(|w| w.contains("removed") && w.contains("heatmap.nii.gz")),
        "{:?}",
        warnings(&scan_dir)
    );
}

/// Issue 21, item 4: scan folders of earlier runs stayed in `scans/` while the run-level CSVs
/// listed only the latest run, without a word. A run into a folder holding such scan folders
/// names them on stderr (and deletes nothing).
#[test]
fn a_run_lists_and_names_the_earlier_scan_folders_of_its_output() {
    if !ort_available() {
        return;
    }
    let (dir, first) = good_folder(1);
    let second = dir.path().join("second");
    write(&phantom(29), &second, OutputFormat::Nifti);
    let out = dir.path().join("out");
    assert_eq!(code(&scan(&[&first], &out, &[], &[])), 0);
    let old = read_csv(&out.join("summary.csv"));
    let old_id = old[0]["scan_id"].clone();
    let old_cands = read_csv(&out.join("candidates.csv"));
    let o = scan(&[&second], &out, &[], &[]);
    assert_eq!(code(&o), 0);
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("scan folder(s) of earlier runs"))
        .unwrap_or_else(|| panic!("no word about the earlier scan folder: {err}"));
    assert!(
        line.starts_with("warning: ")
            && line.contains("holds 1 complete scan folder(s)")
            && line.contains(&old_id),
        "{line}"
    );
    assert!(
        out.join("scans").join(&old_id).join("scan.json").is_file(),
        "nothing deleted"
    );
    // The run-level files describe every scan folder present: the earlier scan with its own
    // candidates, and the new one.
    let summary = read_csv(&out.join("summary.csv"));
    assert_eq!(summary.len(), 2, "{summary:?}");
    assert!(summary
        .iter()
        .any(|r| r["scan_id"] == old_id && r["status"] == "ok"));
    let cands = read_csv(&out.join("candidates.csv"));
    let earlier: Vec<_> = cands.iter().filter(|r| r["scan_id"] == old_id).collect();
    assert_eq!(earlier.len(), old_cands.len());
    assert!(cands.iter().any(|r| r["scan_id"] != old_id));
    // Both inputs again: every folder is one of the run's own, nothing to say.
    let o = scan(&[&first, &second], &out, &[], &[]);
    assert_eq!(code(&o), 0);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("earlier runs"));
    assert_eq!(read_csv(&out.join("summary.csv")).len(), 2);
}

/// Every candidate row carries the size measured from the image (speck_candidates::measure,
/// checked against phantom truth in crates/candidates/tests/measured_size.rs): volume, equivalent
/// and longest axial diameters, the Lung-RADS size class and how far to trust them.
#[test]
fn candidate_rows_carry_the_measured_size_and_lung_rads_class() {
    if !ort_available() {
        return;
    }
    let (dir, input) = good_folder(1);
    let out = dir.path().join("out");
    assert_eq!(code(&scan(&[&input], &out, &[], &[])), 0);
    let rows = read_csv(&out.join("candidates.csv"));
    assert!(!rows.is_empty());
    let mut measured = 0;
    for r in &rows {
        let rel = r["measure_reliability"].as_str();
        assert!(
            ["reliable", "roi-border", "leaked", "empty"].contains(&rel),
            "{r:?}"
        );
        assert!(["", "<6", "6-8", "8-15", ">=15"].contains(&r["lung_rads_size"].as_str()));
        if rel == "empty" {
            assert_eq!(r["lung_rads_size"], "", "{r:?}");
            continue;
        }
        let v: f64 = r["measured_volume_mm3"].parse().expect("volume");
        let d: f64 = r["measured_diameter_mm"].parse().expect("diameter");
        let ax: f64 = r["longest_axial_mm"].parse().expect("axial");
        assert!(v > 0.0 && d > 0.0 && ax > 0.0, "{r:?}");
        // the equivalent diameter is that of the sphere of the volume
        let sphere = std::f64::consts::PI / 6.0 * d.powi(3);
        assert!((sphere - v).abs() <= 0.02 * v + 0.5, "{r:?}");
        measured += 1;
    }
    assert!(measured > 0, "no candidate was measured: {rows:?}");
}
