//! `speck info` on what `speck scan` reads (issue 21, item 8): a folder holding one NIfTI file
//! shows it, a folder of several scans lists them, a folder of broken files names each file's
//! problem (as the hint in `errors.csv` promises), and DICOM without the preamble is read.

mod scan_support;

use std::path::Path;
use std::process::Output;

use scan_support::*;
use speck_phantom::OutputFormat;

fn info(args: &[&str]) -> Output {
    let mut a = vec!["info"];
    a.extend_from_slice(args);
    speck(&a, &[("NO_COLOR", "1")])
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Cut every file under `dir` to its first 300 bytes (inside the file meta group).
fn truncate_all(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("ls").flatten() {
        let b = std::fs::read(e.path()).expect("read");
        std::fs::write(e.path(), &b[..300]).expect("truncate");
    }
}

#[test]
fn info_reads_every_format_scan_reads_and_names_each_files_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let p = phantom(41);
    let uid = p.truth.series_uid.clone();

    // A folder holding one .nii.gz (and a note): that scan, said to be the only one.
    let one = d.join("one");
    write(&p, &one, OutputFormat::Nifti);
    std::fs::write(one.join("readme.txt"), b"notes").expect("write");
    let o = info(&[one.to_str().expect("utf-8")]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let text = out(&o);
    assert!(
        text.contains("(nifti)") && text.contains(&uid) && text.contains("the only scan in"),
        "{text}"
    );
    let o = info(&[one.to_str().expect("utf-8"), "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(j["format"], "nifti");
    assert_eq!(j["shape_zyx"], serde_json::json!([48, 128, 128]));
    // One naming scheme (issue 21, item 10): the keys of scan.json, in z,y,x order, no f32 noise.
    assert_eq!(j["spacing_zyx_mm"], serde_json::json!([2.0, 1.2, 1.2]));
    assert_eq!(j["seriesuid"], serde_json::json!(uid));

    // A manifest, as `speck scan` reads it: its one readable scan, and what it could not read.
    let manifest = d.join("scans.txt");
    let nii = std::fs::read_dir(&one)
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".nii.gz"))
        .expect("the .nii.gz");
    std::fs::write(&manifest, format!("{}\ngone.nii.gz\n", nii.display())).expect("write");
    let o = info(&[manifest.to_str().expect("utf-8")]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let text = out(&o);
    assert!(
        text.contains("(nifti)") && text.contains("not read") && text.contains("gone.nii.gz"),
        "{text}"
    );

    // Several scans: listed, with how to look at each.
    let many = d.join("many");
    write(&p, &many.join("a"), OutputFormat::Nifti);
    write(&phantom(42), &many.join("b"), OutputFormat::MetaImage);
    write(&phantom(43), &many.join("c"), OutputFormat::Dicom);
    let o = info(&[many.to_str().expect("utf-8")]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let text = out(&o);
    assert!(text.contains("holds 3 scans"), "{text}");
    for f in ["nifti", "metaimage", "dicom", "--series"] {
        assert!(text.contains(f), "{f}: {text}");
    }

    // Nothing readable: exit 2, every file named with its own problem.
    let broken = d.join("broken");
    std::fs::create_dir_all(broken.join("junk")).expect("mkdir");
    std::fs::write(broken.join("junk/scan.bin"), [7u8; 4096]).expect("write");
    let cut = write(&phantom(44), &broken.join("cut"), OutputFormat::Dicom);
    truncate_all(&cut);
    let o = info(&[broken.to_str().expect("utf-8")]);
    assert_eq!(code(&o), 2);
    let e = err(&o);
    assert!(e.contains("junk/scan.bin: not a DICOM file"), "{e}");
    // The truncated series: its first files with their error, the rest counted.
    let cut_rel = cut
        .strip_prefix(&broken)
        .expect("inside")
        .display()
        .to_string();
    assert!(
        e.lines()
            .any(|l| l.contains(&format!("{cut_rel}/IM000001.dcm: corrupt DICOM"))),
        "{e}"
    );
    assert!(e.contains(&format!("more file(s) in {cut_rel}/")), "{e}");

    // The hint `speck scan` writes for such a folder is a command that works. (The junk file is
    // not a failure there but a skipped item: it is not DICOM, nor named like an image.)
    if ort_available() {
        let scan_out = d.join("scan-out");
        let o = scan(&[&broken, &one], &scan_out, &[], &[]);
        assert_eq!(code(&o), 1);
        let errors = read_csv(&scan_out.join("errors.csv"));
        let row = errors
            .iter()
            .find(|r| r["input"] == cut.display().to_string())
            .expect("the truncated series' folder in errors.csv");
        let hint = row["reason"]
            .split('`')
            .nth(1)
            .expect("a command in backquotes")
            .to_owned();
        let args: Vec<&str> = hint.split(' ').collect();
        assert_eq!(args[..2], ["speck", "info"], "{hint}");
        let o = info(&args[2..]);
        assert_eq!(code(&o), 2);
        assert!(
            err(&o).contains("IM000001.dcm: corrupt DICOM"),
            "{}",
            err(&o)
        );
        let skipped = read_csv(&scan_out.join("skipped.csv"));
        assert!(
            skipped
                .iter()
                .any(|r| r["input"].ends_with("junk/scan.bin") && r["kind"] == "not-dicom"),
            "{skipped:?}"
        );
    }

    // DICOM without the 128-byte preamble.
    let series = write(&phantom(45), &d.join("nopre"), OutputFormat::Dicom);
    for e in std::fs::read_dir(&series).expect("ls").flatten() {
        let b = std::fs::read(e.path()).expect("read");
        std::fs::write(e.path(), &b[128..]).expect("strip");
    }
    let o = info(&[series.to_str().expect("utf-8")]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).contains("(dicom)"), "{}", out(&o));
}
