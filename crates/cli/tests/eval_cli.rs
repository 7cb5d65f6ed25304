//! `speck eval` end to end: the binary on small CSV files.

use std::path::Path;
use std::process::Command;

fn speck() -> Command {
    Command::new(env!("CARGO_BIN_EXE_speck"))
}

/// `speck eval` on the worked example's four files in `d` (see [`write_inputs`]).
fn eval_worked_example(d: &Path) -> Command {
    let mut c = speck();
    c.arg("eval")
        .arg("--annotations")
        .arg(d.join("annotations.csv"))
        .arg("--candidates")
        .arg(d.join("candidates.csv"))
        .arg("--excluded")
        .arg(d.join("excluded.csv"))
        .arg("--series")
        .arg(d.join("series.csv"));
    c
}

fn write_inputs(dir: &Path) {
    std::fs::write(
        dir.join("annotations.csv"),
        "seriesuid,coordX,coordY,coordZ,diameter_mm,diameter_vox,density,attachment\n\
         s1,0,0,0,6,8.6,solid,isolated\n\
         s1,50,0,0,6,8.6,solid,vessel\n\
         s2,0,0,0,2.8,4,ground-glass,isolated\n\
         s3,0,0,0,6,8.6,part-solid,pleura\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("excluded.csv"),
        "seriesuid,coordX,coordY,coordZ,diameter_mm\ns3,40,0,0,-1\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("candidates.csv"),
        "seriesuid,coordX,coordY,coordZ,probability,source\n\
         s1,0,0,0,0.9,a\ns1,1,1,1,0.5,a\ns1,54,0,0,0.4,a\ns1,20,0,0,0.3,a\n\
         s2,0.5,0.5,0,0.4,b\ns2,-30,0,0,0.4,b\n\
         s3,43,0,0,0.95,c\ns3,0,3,0,0.6,c\n\
         s4,0,0,0,0.2,d\ns4,10,0,0,0.1,d\n",
    )
    .expect("write");
    std::fs::write(dir.join("series.csv"), "s1\ns2\ns3\ns4\n").expect("write");
}

#[test]
fn json_output_has_the_documented_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write_inputs(d);
    let out = eval_worked_example(d)
        .args(["--json", "--bootstrap", "200", "--seed", "3"])
        .arg("--plot")
        .arg(d.join("froc.svg"))
        .arg("--csv")
        .arg(d.join("froc.csv"))
        .output()
        .expect("run speck");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    for key in [
        "cpm",
        "cpm_ci95",
        "sensitivity_at_fp",
        "by_size",
        "n_nodules",
        "n_scans",
    ] {
        assert!(v.get(key).is_some(), "missing key {key}: {v}");
    }
    // The worked example of docs/evaluation.md: CPM = 2.875 / 7.
    assert!(
        (v["cpm"].as_f64().expect("cpm") - 2.875 / 7.0).abs() < 1e-12,
        "{v}"
    );
    assert_eq!(v["n_scans"], 4);
    assert_eq!(v["n_nodules"], 4);
    let rates: Vec<f64> = v["sensitivity_at_fp"]
        .as_array()
        .expect("array")
        .iter()
        .map(|p| p["fp_per_scan"].as_f64().expect("rate"))
        .collect();
    assert_eq!(rates, [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]);
    assert!(v["by_size"]["vox"].is_array() && v["by_size"]["mm"].is_array());
    assert!(v["by_density"].is_array() && v["by_attachment"].is_array());
    let ci = v["cpm_ci95"].as_array().expect("ci");
    assert_eq!(ci.len(), 2);
    let svg = std::fs::read_to_string(d.join("froc.svg")).expect("svg");
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline") && svg.trim_end().ends_with("</svg>")
    );
    let csv = std::fs::read_to_string(d.join("froc.csv")).expect("csv");
    assert!(
        csv.starts_with("threshold,fp_per_scan,sensitivity\ninf,0,0\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + 7);
}

#[test]
fn table_output_and_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write_inputs(d);
    let out = speck()
        .arg("eval")
        .arg("--annotations")
        .arg(d.join("annotations.csv"))
        .arg("--candidates")
        .arg(d.join("candidates.csv"))
        .args(["--bootstrap", "50"])
        .output()
        .expect("run speck");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("CPM ") && table.contains("size (voxels)") && table.contains("6-8"),
        "{table}"
    );

    std::fs::write(
        d.join("bad.csv"),
        "seriesuid,coordX,coordY,coordZ,probability\ns1,0,0,0,0.5\ns1,0,zero,0,0.5\n",
    )
    .expect("write");
    let out = speck()
        .arg("eval")
        .arg("--annotations")
        .arg(d.join("annotations.csv"))
        .arg("--candidates")
        .arg(d.join("bad.csv"))
        .output()
        .expect("run speck");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3, column `coordY`") && err.contains("\"zero\""),
        "{err}"
    );

    let out = speck()
        .arg("eval")
        .arg("--annotations")
        .arg(d.join("annotations.csv"))
        .arg("--candidates")
        .arg(d.join("candidates.csv"))
        .args(["--size-bins-vox", "3,2-4"])
        .output()
        .expect("run speck");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("overlap"));
}

/// `speck phantom` then `speck eval`: the phantom's own annotation centres as candidates score
/// CPM 1.0; each one shifted by more than its radius scores 0. Small phantoms to stay fast.
#[test]
fn phantom_then_eval_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let out = speck()
        .args([
            "phantom",
            "--seed",
            "7",
            "--count",
            "2",
            "--size",
            "48,96,96",
            "--nodules",
            "5",
            "--out",
        ])
        .arg(d)
        .output()
        .expect("run speck phantom");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success()
        && (stderr.contains("not implemented") || stderr.contains("unexpected argument"))
    {
        eprintln!("note: skipping: `speck phantom` is not implemented in this build");
        return;
    }
    assert!(
        out.status.success(),
        "speck phantom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ann = std::fs::read_to_string(d.join("annotations.csv")).expect("annotations.csv");
    let mut exact = String::from("seriesuid,coordX,coordY,coordZ,probability\n");
    let mut shifted = exact.clone();
    for (i, line) in ann.lines().skip(1).enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let (x, y, z, dmm): (f64, f64, f64, f64) = (
            f[1].parse().expect("x"),
            f[2].parse().expect("y"),
            f[3].parse().expect("z"),
            f[4].parse().expect("d"),
        );
        let p = 0.5 + (i % 5) as f64 / 10.0;
        exact.push_str(&format!("{},{x},{y},{z},{p}\n", f[0]));
        shifted.push_str(&format!("{},{},{y},{z},{p}\n", f[0], x + dmm / 2.0 + 0.5));
    }
    std::fs::write(d.join("exact.csv"), &exact).expect("write");
    std::fs::write(d.join("shifted.csv"), &shifted).expect("write");
    let run = |cands: &str| -> serde_json::Value {
        let out = speck()
            .arg("eval")
            .arg("--annotations")
            .arg(d.join("annotations.csv"))
            .arg("--excluded")
            .arg(d.join("annotations_excluded.csv"))
            .arg("--candidates")
            .arg(d.join(cands))
            .args(["--json", "--bootstrap", "100"])
            .output()
            .expect("run speck eval");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let v = run("exact.csv");
    assert_eq!(v["cpm"].as_f64(), Some(1.0), "{v}");
    assert!(v["n_nodules"].as_u64().expect("n") >= 1);
    assert!(
        v["by_size"]["vox"].is_array(),
        "phantom annotations carry diameter_vox"
    );
    let v = run("shifted.csv");
    assert_eq!(v["cpm"].as_f64(), Some(0.0), "{v}");
}

/// `speck eval` with `--annotations DIR/annotations.csv` and `extra`; returns (exit code, JSON
/// on stdout or Null, stderr).
fn eval_json(d: &Path, candidates: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let out = speck()
        .arg("eval")
        .arg("--annotations")
        .arg(d.join("annotations.csv"))
        .arg("--candidates")
        .arg(d.join(candidates))
        .args(["--json", "--bootstrap", "0"])
        .args(extra)
        .output()
        .expect("run speck");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), v, err)
}

/// LUNA16 keeps `annotations_excluded.csv` beside `annotations.csv`: it is used without
/// `--excluded` (and said so), `--no-excluded` turns it off. In the worked example the
/// candidate of s3 at 0.95 hits the excluded finding: ignored with it, a false positive without.
#[test]
fn excluded_findings_beside_the_annotations_are_used_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write_inputs(d);
    let (code, explicit, _) = eval_json(
        d,
        "candidates.csv",
        &[
            "--excluded",
            d.join("excluded.csv").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 0);
    let (code, none, err) = eval_json(d, "candidates.csv", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("excluded findings"), "{err}");
    assert_ne!(
        explicit["cpm"], none["cpm"],
        "the exclusion must matter here"
    );

    std::fs::copy(d.join("excluded.csv"), d.join("annotations_excluded.csv")).expect("copy");
    let (code, default, err) = eval_json(d, "candidates.csv", &[]);
    assert_eq!(code, 0, "{err}");
    let expected = format!(
        "using excluded findings from {}",
        d.join("annotations_excluded.csv").display()
    );
    assert!(err.contains(&expected), "{err}");
    assert_eq!(default, explicit);

    let (code, off, err) = eval_json(d, "candidates.csv", &["--no-excluded"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("using excluded findings"), "{err}");
    assert_eq!(off, none);

    let (code, _, err) = eval_json(
        d,
        "candidates.csv",
        &["--no-excluded", "--excluded", "excluded.csv"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
}

/// Annotated scans missing from the candidates are listed on stderr as misses; no overlap at all
/// is called out; `--strict` turns both into exit code 2 without changing the results printed.
/// A scan that `summary.csv` beside the candidates lists as scanned (`ok`) is not missing.
#[test]
fn annotated_scans_without_candidates_are_reported_and_fail_with_strict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write_inputs(d);
    let all = std::fs::read_to_string(d.join("candidates.csv")).expect("read");
    let without_s2: String = all
        .lines()
        .filter(|l| !l.starts_with("s2,"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::create_dir(d.join("run")).expect("mkdir");
    std::fs::write(d.join("run/candidates.csv"), &without_s2).expect("write");

    let (code, full, err) = eval_json(d, "candidates.csv", &["--strict"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");

    let (code, lenient, err) = eval_json(d, "run/candidates.csv", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("1 of the 3 annotated scan(s) have no entry in")
            && err.contains("count as misses (not scanned, or the scan failed)")
            && err.contains("\n  s2\n"),
        "{err}"
    );
    assert!(!err.contains("  s1\n") && !err.contains("  s3\n"), "{err}");
    assert_ne!(lenient["cpm"], full["cpm"]);
    let (code, strict, err) = eval_json(d, "run/candidates.csv", &["--strict"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\n  s2\n"), "{err}");
    assert_eq!(strict, lenient, "--strict changes the exit code only");

    // s2 scanned by Speck and nothing found: not a failure.
    std::fs::write(
        d.join("run/summary.csv"),
        "scan_id,seriesuid,status,n_candidates,seconds,format,source\n\
         s1,s1,ok,4,1.00,nifti,s1.nii.gz\ns2,s2,ok,0,1.00,nifti,s2.nii.gz\n\
         s3,s3,ok,2,1.00,nifti,s3.nii.gz\ns4,s4,ok,2,1.00,nifti,s4.nii.gz\n",
    )
    .expect("write");
    let (code, _, err) = eval_json(d, "run/candidates.csv", &["--strict"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("warning") && err.contains("with no candidate"),
        "{err}"
    );
    // ...but a failed one is.
    let summary = std::fs::read_to_string(d.join("run/summary.csv")).expect("read");
    std::fs::write(
        d.join("run/summary.csv"),
        summary.replace("s2,s2,ok,0", "s2,s2,failed,0"),
    )
    .expect("write");
    let (code, _, err) = eval_json(d, "run/candidates.csv", &["--strict"]);
    assert_eq!(code, 2, "{err}");

    // Candidates keyed differently (file names with an extension, say): nothing overlaps.
    let renamed: String = all
        .lines()
        .map(|l| match l.split_once(',') {
            Some((s, rest)) if s.starts_with('s') && s != "seriesuid" => {
                format!("{s}.mhd,{rest}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(d.join("renamed.csv"), renamed).expect("write");
    let (code, v, err) = eval_json(d, "renamed.csv", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("none of the 3 annotated scan(s) appears in")
            && err.contains("do not overlap at all")
            && err.contains("`s1`")
            && err.contains("`s1.mhd`"),
        "{err}"
    );
    assert_eq!(v["cpm"].as_f64(), Some(0.0), "{v}");
    let (code, _, err) = eval_json(d, "renamed.csv", &["--strict"]);
    assert_eq!(code, 2, "{err}");
}

/// LUNA16's size bins (3–6, 6–10, 10–30 mm) through `--size-bins-mm 3,6,10,30`: the table and
/// the JSON give the same bins, counts, sensitivities and CPM (issue 16, item 4).
#[test]
fn luna16_mm_bins_agree_between_table_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write_inputs(d);
    let run = |json: bool| {
        let mut c = eval_worked_example(d);
        c.args(["--size-bins-mm", "3,6,10,30", "--bootstrap", "100"]);
        if json {
            c.arg("--json");
        }
        let o = c.output().expect("run speck");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).expect("utf-8")
    };
    let v: serde_json::Value = serde_json::from_str(&run(true)).expect("JSON");
    let table = run(false);
    let bins = v["by_size"]["mm"].as_array().expect("mm bins");
    let labels: Vec<&str> = bins
        .iter()
        .map(|b| b["label"].as_str().expect("label"))
        .collect();
    assert_eq!(labels, ["<3", "3-6", "6-10", "10-30", ">=30"]);
    let section = table
        .split("size (mm)")
        .nth(1)
        .expect("a size (mm) table")
        .split("\n\n")
        .next()
        .expect("its rows");
    for b in bins {
        let label = b["label"].as_str().expect("label");
        let line = section
            .lines()
            .find(|l| l.split_whitespace().next() == Some(label))
            .unwrap_or_else(|| panic!("no row {label} in\n{section}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1], b["n_nodules"].to_string(), "{line}");
        assert_eq!(cells[2], b["n_detected"].to_string(), "{line}");
        if b["n_nodules"] == 0 {
            continue;
        }
        let sens: Vec<String> = b["sensitivity_at_fp"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| format!("{:.3}", p["sensitivity"].as_f64().expect("s")))
            .collect();
        assert_eq!(cells[3..10], sens[..], "{line}");
        assert_eq!(
            cells[10],
            format!("{:.3}", b["cpm"].as_f64().expect("cpm")),
            "{line}"
        );
    }
}
