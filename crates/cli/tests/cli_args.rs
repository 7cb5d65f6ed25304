//! Command-line parsing of the `speck` binary: a long option written with one dash is an error,
//! not a short flag with a glued value.

use std::process::{Command, Output};

fn speck(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_speck"))
        .args(args)
        .current_dir(dir)
        .env_remove("SPECK_MODELS_DIR")
        .output()
        .expect("run speck")
}

/// `-out results` would be `-o ut` plus an input `results` for clap: `speck scan` would write
/// into `./ut` and `speck demo` would replace it. Exit 2, a message naming `--out`, nothing
/// created; `-o DIR` and `--out DIR` keep working.
#[test]
fn a_long_option_with_one_dash_is_an_error_not_a_glued_short_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // An empty .nii.gz is one scan to list (a dry run reads no data and loads no model).
    std::fs::write(d.join("ct.nii.gz"), b"").expect("write");
    let cases: [(&[&str], &str); 6] = [
        (
            &["scan", "ct.nii.gz", "-out", "results", "--dry-run"],
            "did you mean `--out`?",
        ),
        (
            &["scan", "ct.nii.gz", "-out=results", "--dry-run"],
            "did you mean `--out`?",
        ),
        (
            &["scan", "ct.nii.gz", "-outdir", "--dry-run"],
            "would be read as `-o utdir`",
        ),
        (
            &["scan", "ct.nii.gz", "-o", "r", "-jobs", "2"],
            "did you mean `--jobs`?",
        ),
        (
            &["-verbose", "scan", "ct.nii.gz", "-o", "r"],
            "did you mean `--verbose`?",
        ),
        (&["demo", "-out", "results"], "did you mean `--out`?"),
    ];
    for (args, expected) in cases {
        let o = speck(d, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!d.join("ut").exists() && !d.join("r").exists(), "{args:?}");
    }
    for out in [["-o", "results"], ["--out", "results"]] {
        let mut args = vec!["scan", "ct.nii.gz", "--dry-run"];
        args.extend(out);
        let o = speck(d, &args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("ct.nii.gz"));
    }
    // After `--` everything is an input, even `-out`.
    let o = speck(d, &["scan", "-o", "results", "--dry-run", "--", "-out"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("input not found") && err.contains("-out"),
        "{err}"
    );
}
