//! Cross-check against the official script's arithmetic (sklearn `roc_curve` + `numpy.interp`),
//! on random data sets with ties, duplicates, excluded findings, empty scans and the 100-mark
//! cap. Needs a Python with numpy and scikit-learn: `$SPECK_PEER_PYTHON`, or the workspace's
//! `.venv-peer/bin/python` (`python3 -m venv .venv-peer && .venv-peer/bin/pip install
//! scikit-learn`). Skips with a note when neither is there.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use speck_eval::{
    evaluate, read_annotations, read_candidates, read_excluded, read_series, EvalOptions,
};

fn python() -> Option<PathBuf> {
    let cands = [
        std::env::var_os("SPECK_PEER_PYTHON").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-peer/bin/python")),
    ];
    cands.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import sklearn, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 1_000_000) as f64 / 1_000_000.0
    }
}

/// Write one random case; returns the file paths.
fn write_case(dir: &Path, seed: u64) -> [PathBuf; 4] {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let n_scans = 3 + (r.next() * 10.0) as usize;
    let (mut ann, mut exc, mut cand, mut ser) = (
        String::from("seriesuid,coordX,coordY,coordZ,diameter_mm\n"),
        String::from("seriesuid,coordX,coordY,coordZ,diameter_mm\n"),
        String::from("seriesuid,coordX,coordY,coordZ,probability\n"),
        String::new(),
    );
    // Scores on a coarse grid so that ties between hits and false positives happen.
    let score = |r: &mut Rng| (r.next() * 20.0).floor() / 20.0;
    for s in 0..n_scans {
        let id = format!("1.2.840.{seed}.{s}");
        let _ = writeln!(ser, "{id}");
        let heavy = s == 0 && seed.is_multiple_of(3); // > 100 marks: the cap applies
        for k in 0..(r.next() * 4.0) as usize {
            let (x, d) = (f64::from(k as u32) * 60.0, 3.0 + r.next() * 12.0);
            let _ = writeln!(
                ann,
                "{id},{x},{:.3},{:.3},{d:.3}",
                r.next() * 5.0,
                -r.next() * 5.0
            );
            // 0-3 marks near the nodule: some inside the radius, some just outside.
            for _ in 0..(r.next() * 4.0) as usize {
                let off = d / 2.0 * (0.2 + r.next());
                let p = score(&mut r);
                let _ = writeln!(
                    cand,
                    "{id},{:.4},{:.4},{:.4},{p}",
                    x + off,
                    r.next() * 5.0,
                    -r.next() * 5.0
                );
            }
        }
        if r.next() < 0.5 {
            let d = if r.next() < 0.5 { -1.0 } else { 4.0 };
            let _ = writeln!(exc, "{id},500,0,0,{d}");
            let _ = writeln!(
                cand,
                "{id},{:.3},0,0,{}",
                500.0 + r.next() * 3.0,
                score(&mut r)
            );
        }
        let n_fp = if heavy {
            130
        } else {
            (r.next() * 12.0) as usize
        };
        for k in 0..n_fp {
            let p = if heavy {
                score(&mut r) * 0.5 + 0.25
            } else {
                score(&mut r)
            };
            let _ = writeln!(
                cand,
                "{id},{},-200,{:.2},{p}",
                1000.0 + f64::from(k as u32) * 15.0,
                r.next()
            );
        }
    }
    // One scan in the list with nothing at all.
    let _ = writeln!(ser, "1.2.840.{seed}.empty");
    let paths = [
        "annotations.csv",
        "excluded.csv",
        "seriesuids.csv",
        "candidates.csv",
    ]
    .map(|f| dir.join(f));
    for (p, t) in paths.iter().zip([ann, exc, ser, cand]) {
        std::fs::write(p, t).expect("write");
    }
    paths
}

#[test]
fn matches_the_official_script_arithmetic() {
    let Some(py) = python() else {
        eprintln!("note: skipping: no Python with numpy + scikit-learn (set SPECK_PEER_PYTHON)");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/luna16_reference.py");
    let dir = tempfile::tempdir().expect("tempdir");
    // Evaluate every case with Speck, then run the script once over all of them.
    let mut ours = Vec::new();
    for seed in 1..=40u64 {
        let case = dir.path().join(format!("case{seed}"));
        std::fs::create_dir(&case).expect("mkdir");
        let [a, e, s, c] = write_case(&case, seed);
        let ann = read_annotations(&a).expect("ann");
        let ex = read_excluded(&e).expect("excluded");
        let series = read_series(&s).expect("series");
        let cands = read_candidates(&c).expect("cands");
        let opts = EvalOptions::default().with_bootstrap(0);
        // Skip draws without nodules or without any detection: the script yields NaN there
        // (documented deviation: Speck reports 0).
        if let Ok(r) = evaluate(&ann.nodules, &ex, &cands, Some(&series), &opts) {
            if r.n_detected > 0 {
                ours.push((seed, case, r));
            }
        }
    }
    assert!(ours.len() >= 20, "only {} usable cases", ours.len());
    let out = Command::new(&py)
        .arg(&script)
        .args(ours.iter().map(|(_, case, _)| case))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("utf8")
        .lines()
        .collect();
    assert_eq!(lines.len(), ours.len());
    let mut capped = 0;
    for ((seed, _, ours), line) in ours.iter().zip(lines) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let theirs: Vec<f64> = v["sensitivity"]
            .as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("f64"))
            .collect();
        for (k, (o, t)) in ours.sensitivity_at_fp.iter().zip(&theirs).enumerate() {
            let o = o.sensitivity.expect("s");
            assert!(
                (o - t).abs() < 1e-9,
                "seed {seed}, rate #{k}: speck {o} vs script {t}"
            );
        }
        let cpm = v["cpm"].as_f64().expect("cpm");
        assert!(
            (ours.cpm - cpm).abs() < 1e-9,
            "seed {seed}: {} vs {cpm}",
            ours.cpm
        );
        capped += usize::from(ours.candidates.over_cap > 0);
    }
    assert!(capped > 0, "no case exercised the 100-mark cap");
}
