//! `speck eval` end to end: the binary on small CSV files.

use std::path::Path;
use std::process::Command;

fn speck() -> Command {
    Command::new(env!("CARGO_BIN_EXE_speck"))
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
    let out = speck()
        .arg("eval")
        .arg("--annotations")
        .arg(d.join("annotations.csv"))
        .arg("--candidates")
        .arg(d.join("candidates.csv"))
        .arg("--excluded")
        .arg(d.join("excluded.csv"))
        .arg("--series")
        .arg(d.join("series.csv"))
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
