//! How the `speck` binary talks to its user and finds its runtime: plain, uncoloured logs when
//! stderr is not a terminal, each warning once, `--strict-device`, and the repository's `.venv`
//! ONNX Runtime found from any working directory (issue 21, items 7 and 9).

mod scan_support;

use std::path::Path;
use std::process::{Command, Output};

use scan_support::*;
use speck_phantom::OutputFormat;

/// One small NIfTI phantom in `dir/in`.
fn one_scan(dir: &Path) -> std::path::PathBuf {
    let input = dir.join("in");
    write(&phantom(31), &input, OutputFormat::Nifti);
    input
}

/// `speck scan` with the test models, run from `cwd` with a clean environment for logs and ONNX
/// Runtime: no `ORT_DYLIB_PATH`, `VIRTUAL_ENV`, `RUST_LOG` or colour variables, and a `PATH`
/// without `python3` (so only what the binary finds by itself counts).
fn scan_from(cwd: &Path, exe: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let empty_path = cwd.join("no-bin");
    std::fs::create_dir_all(&empty_path).expect("mkdir");
    let mut c = Command::new(exe);
    c.arg("scan")
        .args(args)
        .args(model_args())
        .current_dir(cwd)
        .env("PATH", &empty_path);
    for k in [
        "ORT_DYLIB_PATH",
        "VIRTUAL_ENV",
        "RUST_LOG",
        "NO_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "SPECK_MODELS_DIR",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run speck")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Item 7: stderr captured into a file gets no ANSI codes, no timestamps and no module paths,
/// only `warning: ...` lines; the CPU fallback of `--device cuda` is said once (not once per
/// model); `-v` adds timestamps and module paths; `CLICOLOR_FORCE=1` colours; `--strict-device`
/// exits 2 instead of falling back, writing no scan.
#[test]
fn logs_are_plain_when_not_on_a_terminal_and_the_device_fallback_is_said_once_or_refused() {
    if !ort_available() || cfg!(feature = "cuda") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let input = one_scan(d);
    let exe = Path::new(env!("CARGO_BIN_EXE_speck"));
    let inp = input.display().to_string();

    let o = scan_from(d, exe, &[&inp, "--out", "plain", "--device", "cuda"], &[]);
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(
        !err.contains('\x1b'),
        "ANSI codes in a captured log: {err:?}"
    );
    assert!(!err.contains("speck_detect::"), "module path: {err}");
    assert!(!err.contains(" WARN "), "tracing's own format: {err}");
    let cuda: Vec<&str> = err.lines().filter(|l| l.contains("CUDA")).collect();
    assert_eq!(cuda.len(), 1, "the fallback warning once: {err}");
    assert!(cuda[0].starts_with("warning: "), "{err}");
    assert!(cuda[0].contains("running on the CPU"), "{err}");
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            d.join("plain/scans")
                .read_dir()
                .expect("scans")
                .next()
                .expect("one scan")
                .expect("entry")
                .path()
                .join("scan.json"),
        )
        .expect("scan.json"),
    )
    .expect("json");
    assert_eq!(json["device"], "cpu", "scan.json says what really ran");

    let o = scan_from(
        d,
        exe,
        &[&inp, "--out", "verbose", "--device", "cuda", "-v"],
        &[],
    );
    let err = stderr(&o);
    assert_eq!(code(&o), 0);
    assert!(!err.contains('\x1b'), "{err:?}");
    let warn = err
        .lines()
        .find(|l| l.contains("CUDA"))
        .expect("the warning with -v");
    assert!(
        warn.contains("speck_detect::runtime") && warn.contains("WARN"),
        "{warn}"
    );
    assert!(warn.starts_with("20"), "a timestamp with -v: {warn}");

    let o = scan_from(
        d,
        exe,
        &[&inp, "--out", "coloured", "--device", "cuda"],
        &[("CLICOLOR_FORCE", "1")],
    );
    assert_eq!(code(&o), 0);
    assert!(stderr(&o).contains("\x1b["), "CLICOLOR_FORCE=1 colours");

    let o = scan_from(
        d,
        exe,
        &[
            &inp,
            "--out",
            "strict",
            "--device",
            "cuda",
            "--strict-device",
        ],
        &[],
    );
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("error: --device cuda:0 is unavailable") && err.contains("--strict-device"),
        "{err}"
    );
    assert!(!d.join("strict/scans").exists(), "nothing scanned");
    // CPU is always available: strict or not.
    let o = scan_from(d, exe, &[&inp, "--out", "cpu", "--strict-device"], &[]);
    assert_eq!(code(&o), 0);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

/// Item 9: after `make demo` (which creates the repository's `.venv`), the binary finds that
/// ONNX Runtime from any working directory, with no environment variable and no `python3` on
/// `PATH`; a copy of the binary outside any repository still gets the exact fix-it message.
#[test]
fn the_repository_venv_onnx_runtime_is_found_from_any_working_directory() {
    let exe = Path::new(env!("CARGO_BIN_EXE_speck"));
    let has_venv = exe
        .ancestors()
        .any(|a| a.join(".venv/lib").is_dir() || a.join(".venv/lib64").is_dir());
    if !ort_available() || !has_venv {
        eprintln!("SKIPPED: no .venv above {}", exe.display());
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let input = one_scan(d);
    let inp = input.display().to_string();
    let o = scan_from(d, exe, &[&inp, "--out", "out"], &[]);
    assert_eq!(code(&o), 0, "found from {}", d.display());
    assert_eq!(read_csv(&d.join("out/summary.csv"))[0]["status"], "ok");

    // A copy of the binary with no .venv above it: the detector's own search and its message.
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let copy = bin.join("speck");
    std::fs::copy(exe, &copy).expect("copy the binary");
    let o = scan_from(d, &copy, &[&inp, "--out", "out2"], &[]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("ONNX Runtime library (libonnxruntime.so) not found")
            && err.contains(".venv/bin/pip install onnxruntime==")
            && err.contains("export ORT_DYLIB_PATH="),
        "{err}"
    );
}

/// Item 10: one naming scheme and rounded numbers. `scan.json` and `speck info --json` share
/// `shape_zyx`, `spacing_zyx_mm` and `seriesuid` (z,y,x like `--size`/`--spacing`), spacing and
/// the threshold without `f32` noise, timings to 4 decimals; the report shows the models as text
/// and no shard on an unsharded run; `--dry-run` names readers as `summary.csv` does; the help
/// lists `merge`, and `demo --help` mentions no `--jobs`.
#[test]
fn outputs_share_one_naming_scheme_and_rounded_numbers() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let input = one_scan(d);
    let exe = Path::new(env!("CARGO_BIN_EXE_speck"));
    let inp = input.display().to_string();
    let o = scan_from(d, exe, &[&inp, "--out", "out", "--threshold", "0.01"], &[]);
    assert_eq!(code(&o), 0);
    let scan_dir = std::fs::read_dir(d.join("out/scans"))
        .expect("scans")
        .flatten()
        .next()
        .expect("one scan")
        .path();
    let text = std::fs::read_to_string(scan_dir.join("scan.json")).expect("scan.json");
    let rec: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(rec["shape_zyx"], serde_json::json!([48, 128, 128]));
    assert_eq!(rec["spacing_zyx_mm"], serde_json::json!([2.0, 1.2, 1.2]));
    assert!(rec.get("spacing_xyz_mm").is_none(), "{text}");
    assert_eq!(rec["models"]["threshold"], serde_json::json!(0.01));
    for (k, v) in rec["timings_s"].as_object().expect("timings") {
        let decimals = v.to_string().split('.').nth(1).map_or(0, str::len);
        assert!(decimals <= 4, "{k}: {v}");
    }
    for (k, v) in rec["counts"].as_object().expect("counts") {
        let decimals = v.to_string().split('.').nth(1).map_or(0, str::len);
        assert!(decimals <= 6, "{k}: {v}");
    }

    let info = Command::new(exe)
        .args(["info", "--json", &inp])
        .output()
        .expect("info");
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("info json");
    for key in ["shape_zyx", "spacing_zyx_mm", "seriesuid", "format"] {
        assert_eq!(info[key], rec[key], "{key}");
    }

    let report = std::fs::read_to_string(d.join("out/report.html")).expect("report");
    assert!(
        report.contains("models: coarse blob_coarse_2mm.onnx (")
            && report.contains("fine blob_fine_1mm.onnx (")
            && report.contains("threshold 0.01"),
        "models as text"
    );
    assert!(
        !report.contains("&quot;coarse&quot;"),
        "raw JSON in the report"
    );
    assert!(!report.contains("shard 0/1"), "a shard on an unsharded run");

    let o = scan_from(d, exe, &[&inp, "--out", "dry", "--dry-run"], &[]);
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(listed.contains("\tnifti\t"), "{listed}");
    let summary = read_csv(&d.join("out/summary.csv"));
    assert_eq!(summary[0]["format"], "nifti");

    let help = |args: &[&str]| {
        let o = Command::new(exe).args(args).output().expect("help");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let top = help(&["--help"]);
    assert!(
        top.lines().next().is_some_and(|l| l.contains("merge")) && top.contains("  merge "),
        "{top}"
    );
    assert!(!help(&["demo", "--help"]).contains("--jobs"));
}
