//! `speck info PATH [--json] [--series UID]`: what a DICOM folder, NIfTI or MetaImage file holds
//! once loaded — size, spacing, origin, direction (LPS), HU range, series found and warnings.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value};
use speck_volume::{detect_format, open_with, Format, LoadOptions, Volume};

use speck_batch::discover::{discover, Plan, SeriesPolicy};
use speck_batch::run::round_to;

/// Arguments of `speck info`.
#[derive(clap::Args)]
pub struct Args {
    /// A DICOM folder (searched recursively) or file, `.nii`/`.nii.gz`, or `.mhd`/`.mha`.
    pub path: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// DICOM only: load this SeriesInstanceUID instead of the largest axial CT stack.
    #[arg(long, value_name = "UID")]
    pub series: Option<String>,
}

/// Run `speck info`: exit 0 after printing; a load error is returned (non-zero exit, message).
///
/// A folder (or a manifest) is searched as `speck scan` searches it. When it holds one scan (a single NIfTI or
/// MetaImage file, or DICOM series only), that scan is loaded and shown; when it holds several
/// NIfTI/MetaImage files (or those and DICOM series), they are listed; when it holds nothing
/// readable, the error names each file's problem.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut path = args.path.clone();
    let mut series = args.series.clone();
    let mut not_read: Vec<(String, String)> = Vec::new();
    let mut note = None;
    let manifest = args.path.is_file() && speck_batch::discover::is_manifest(&args.path);
    if (args.path.is_dir() || manifest) && args.series.is_none() {
        let items = discover(std::slice::from_ref(&args.path), &[], SeriesPolicy::All);
        let mut scans = Vec::new();
        for item in &items {
            match &item.plan {
                Plan::Scan {
                    format,
                    path,
                    series_uid,
                    ..
                } => scans.push((*format, path.clone(), series_uid.clone())),
                Plan::Fail { reason } => {
                    not_read.push((item.source.display().to_string(), reason.clone()));
                }
                Plan::Skip { reason } => {
                    not_read.push((
                        item.source.display().to_string(),
                        format!("not a CT image series: {reason}"),
                    ));
                }
            }
        }
        let files = scans.iter().filter(|s| s.0 != Format::Dicom).count();
        if scans.is_empty() && manifest {
            let reasons: Vec<String> = not_read
                .iter()
                .map(|(p, r)| format!("\n  {p}: {r}"))
                .collect();
            anyhow::bail!(
                "the manifest {} lists nothing Speck can read:{}",
                args.path.display(),
                reasons.concat()
            );
        } else if scans.is_empty() {
            anyhow::bail!("{}", speck_batch::discover::nothing_readable(&args.path));
        } else if (files > 0 || manifest) && scans.len() == 1 {
            path = scans[0].1.clone();
            series = scans[0].2.clone();
            note = Some(format!(
                "the only scan in {} ({})",
                args.path.display(),
                scans[0].0
            ));
        } else if files > 0 || manifest {
            return list(&args, &scans, &not_read);
        }
        // DICOM series only: the folder as before (the largest axial CT stack, the others listed).
    }
    let options = LoadOptions::new().series_uid(series);
    // VolumeError already names the file and the reason (its Display includes its source).
    let volume = open_with(&path, &options).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut report = report(&volume);
    if let Ok(format) = detect_format(&path) {
        report["format"] = json!(format);
    }
    if let Some(n) = &note {
        report["note"] = json!(n);
    }
    report["not_read"] = not_read
        .iter()
        .map(|(p, r)| json!({"path": p, "reason": r}))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&volume, &report));
    }
    Ok(ExitCode::SUCCESS)
}

/// A folder holding several scans: list them, and how to look at one.
fn list(
    args: &Args,
    scans: &[(Format, PathBuf, Option<String>)],
    not_read: &[(String, String)],
) -> anyhow::Result<ExitCode> {
    if args.json {
        let v = json!({
            "path": args.path.display().to_string(),
            "scans": scans.iter().map(|(f, p, s)| json!({
                "format": f,
                "path": p.display().to_string(),
                "seriesuid": s,
            })).collect::<Vec<_>>(),
            "not_read": not_read.iter().map(|(p, r)| json!({"path": p, "reason": r})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut s = format!(
        "{} holds {} scans (`speck info` one of them):\n",
        args.path.display(),
        scans.len()
    );
    for (f, p, series) in scans {
        match series {
            Some(uid) => s.push_str(&format!(
                "  {:<10} {}  (speck info {} --series {uid})\n",
                f.name(),
                p.display(),
                p.display()
            )),
            None => s.push_str(&format!("  {:<10} {}\n", f.name(), p.display())),
        }
    }
    for (p, r) in not_read {
        s.push_str(&format!("  not read   {p}: {r}\n"));
    }
    print!("{s}");
    Ok(ExitCode::SUCCESS)
}

/// The JSON report, named as `scan.json` and the CSVs are (docs/cli.md, "Names and axis order").
/// Keys: `shape_zyx` (voxels), `spacing_zyx_mm`, `origin_lps_mm` (a world point: x, y, z),
/// `direction` (row-major 3x3, columns are the x, y, z axis directions in LPS), `hu_min`,
/// `hu_max`, `hu_mean`, `seriesuid`, `warnings`, plus `source`, `patient_id`, `study_uid`, `other_series`, and
/// `instance_numbers` (first and last InstanceNumber along z, DICOM only). `run` adds `format`
/// (`dicom`, `nifti` or `metaimage`).
pub fn report(volume: &Volume) -> Value {
    let g = volume.geometry();
    let p = volume.provenance();
    let (hu_min, hu_max, hu_mean) = volume.hu_stats();
    let instances: Vec<i32> = p.slices.iter().filter_map(|s| s.instance_number).collect();
    json!({
        "shape_zyx": volume.shape_zyx(),
        "spacing_zyx_mm": g.spacing.zyx().map(|v| round_to(v, 6)),
        "origin_lps_mm": g.origin.to_array().map(|v| round_to(v, 6)),
        // `+ 0.0` turns -0.0 into 0.0 so that the JSON reads cleanly.
        "direction": g.direction.rows().map(|r| r.map(|v| round_to(v, 9))),
        "hu_min": hu_min,
        "hu_max": hu_max,
        "hu_mean": round_to(hu_mean, 3),
        "seriesuid": p.series_uid,
        "warnings": p.warnings,
        "source": p.source,
        "patient_id": p.patient_id,
        "study_uid": p.study_uid,
        "other_series": p.other_series,
        "instance_numbers": match (instances.first(), instances.last()) {
            (Some(a), Some(b)) => json!([a, b]),
            _ => Value::Null,
        },
    })
}

fn fmt3(v: [f64; 3], prec: usize) -> String {
    format!("{:.prec$}, {:.prec$}, {:.prec$}", v[0], v[1], v[2])
}

fn text(volume: &Volume, r: &Value) -> String {
    let g = volume.geometry();
    let p = volume.provenance();
    let [nz, ny, nx] = volume.shape_zyx();
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<19}{v}\n"));
    if let Some(src) = &p.source {
        let format = r["format"]
            .as_str()
            .map(|f| format!(" ({f})"))
            .unwrap_or_default();
        line("source", format!("{}{format}", src.display()));
    }
    line("series", p.series_uid.clone().unwrap_or_else(|| "-".into()));
    if let Some(id) = &p.patient_id {
        line("patient", id.clone());
    }
    line("shape (z,y,x)", format!("{nz} x {ny} x {nx} voxels"));
    line(
        "spacing (z,y,x)",
        format!("{} mm", fmt3(g.spacing.zyx(), 4)),
    );
    line(
        "origin (LPS x,y,z)",
        format!("{} mm", fmt3(g.origin.to_array(), 3)),
    );
    let rows = g.direction.rows().map(|r| r.map(|v| v + 0.0));
    line("direction", format!("[{}]", fmt3(rows[0], 4)));
    line(
        "",
        format!("[{}]  (columns: x, y, z axes)", fmt3(rows[1], 4)),
    );
    line("", format!("[{}]", fmt3(rows[2], 4)));
    line(
        "HU",
        format!(
            "min {}  max {}  mean {:.1}",
            r["hu_min"],
            r["hu_max"],
            r["hu_mean"].as_f64().unwrap_or(f64::NAN)
        ),
    );
    if let Some([a, b]) = r["instance_numbers"].as_array().map(|v| [&v[0], &v[1]]) {
        line("instances", format!("Img {a} .. Img {b} along z"));
    }
    if p.other_series.is_empty() {
        line("other series", "none".into());
    } else {
        for (i, o) in p.other_series.iter().enumerate() {
            line(if i == 0 { "other series" } else { "" }, o.clone());
        }
    }
    if let Some(n) = r["note"].as_str() {
        line("note", n.to_owned());
    }
    for (i, nr) in r["not_read"].as_array().into_iter().flatten().enumerate() {
        line(
            if i == 0 { "not read" } else { "" },
            format!(
                "{}: {}",
                nr["path"].as_str().unwrap_or_default(),
                nr["reason"].as_str().unwrap_or_default()
            ),
        );
    }
    if p.warnings.is_empty() {
        line("warnings", "none".into());
    } else {
        for (i, w) in p.warnings.iter().enumerate() {
            line(if i == 0 { "warnings" } else { "" }, w.clone());
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use speck_volume::{Direction, Geometry, Provenance, Spacing, WorldPoint};

    #[test]
    fn report_has_the_documented_keys_and_values() {
        let d = Direction::from_rows([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
            .expect("direction");
        let g = Geometry::new(
            Spacing::new(0.7, 0.8, 2.5).expect("spacing"),
            WorldPoint::new(1.0, 2.0, 3.0),
            d,
        );
        let mut vox = ndarray::Array3::from_elem((2, 3, 4), -1000i16);
        vox[[1, 2, 3]] = 400;
        let prov = Provenance {
            series_uid: Some("1.2.3".into()),
            warnings: vec!["w1".into()],
            ..Provenance::default()
        };
        let v = Volume::new(vox, g, prov).expect("volume");
        let r = report(&v);
        assert_eq!(r["shape_zyx"], json!([2, 3, 4]));
        assert_eq!(r["spacing_zyx_mm"], json!([2.5, 0.8, 0.7]));
        assert_eq!(r["origin_lps_mm"], json!([1.0, 2.0, 3.0]));
        // Row-major; column 1 (the y axis) points to +S.
        assert_eq!(r["direction"][2][1], json!(-1.0));
        assert_eq!(r["direction"][1][2], json!(1.0));
        assert_eq!(r["direction"][0][1].to_string(), "0.0", "no negative zeros");
        assert_eq!(r["hu_min"], json!(-1000));
        assert_eq!(r["hu_max"], json!(400));
        let mean = r["hu_mean"].as_f64().expect("mean");
        // Rounded to 3 decimals.
        assert!((mean - (-1000.0 * 23.0 + 400.0) / 24.0).abs() < 1e-3);
        assert_eq!(r["seriesuid"], json!("1.2.3"));
        assert_eq!(r["warnings"], json!(["w1"]));
        let t = text(&v, &r);
        assert!(t.contains("2 x 3 x 4 voxels") && t.contains("w1"), "{t}");
    }

    #[test]
    fn run_loads_files_and_reports_errors_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = Volume::new(
            ndarray::Array3::from_elem((2, 3, 4), 40i16),
            Geometry::new(
                Spacing::isotropic(1.0).expect("spacing"),
                WorldPoint::default(),
                Direction::IDENTITY,
            ),
            Provenance::default(),
        )
        .expect("volume");
        let path = dir.path().join("scan.nii.gz");
        speck_volume::nifti::write_nifti(&v, &path).expect("write");
        for json in [false, true] {
            let args = Args {
                path: path.clone(),
                json,
                series: None,
            };
            assert_eq!(run(args).expect("info"), ExitCode::SUCCESS);
        }
        let missing = dir.path().join("missing.mha");
        let err = run(Args {
            path: missing,
            json: true,
            series: None,
        })
        .expect_err("missing file");
        assert!(err.to_string().contains("missing.mha"), "{err}");
    }
}
