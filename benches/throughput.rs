//! Guards throughput per node: how many scans an hour one machine gets through with `speck scan`,
//! and at what peak memory, running one scan at a time (`--jobs 1`, all cores to ONNX Runtime)
//! against two at a time (`--jobs 2`, the cores shared), both under the same `--max-memory`
//! (issue 19). Both runs scan the same phantoms in the same process tree one after the other, so
//! the ratio between them holds on a shared machine better than either figure.
//!
//! Run: `cargo build --release -p speck-cli && cargo bench -p speck-benches --bench throughput`.
//! It drives the release binary `target/release/speck` (skipped with a note when absent), with
//! the bundled models. `SPECK_BENCH_SCANS` phantoms (default 4) of `SPECK_BENCH_SHAPE` voxels
//! (default 300,512,512 at 1.0 x 0.7 x 0.7 mm, full size) are generated once;
//! `SPECK_BENCH_MAX_MEMORY` is the budget in GiB (default 4); `SPECK_BENCH_ROUNDS` (default 2)
//! rounds run both settings, in alternating order. Peak RSS is the largest `VmHWM` of the
//! `speck scan` process polled from /proc every 20 ms, checked against the largest
//! `process_peak_rss_bytes` its `scan.json` files record.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// `VmHWM` (peak resident set) of process `pid`, bytes.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The largest `process_peak_rss_bytes` among the `scan.json` files under `out/scans`.
fn recorded_peak(out: &Path) -> u64 {
    let mut peak = 0;
    for e in std::fs::read_dir(out.join("scans"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(e.path().join("scan.json")) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        peak = peak.max(v["process_peak_rss_bytes"].as_u64().unwrap_or(0));
    }
    peak
}

struct Run {
    seconds: f64,
    peak_rss: u64,
    ok: usize,
}

fn scan(bin: &Path, input: &Path, out: &Path, jobs: usize, max_memory: &str) -> Run {
    let t = Instant::now();
    let mut child = Command::new(bin)
        .args(["scan", "--no-progress", "--jobs", &jobs.to_string()])
        .args(["--max-memory", max_memory, "--out"])
        .arg(out)
        .arg(input)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run speck: {e}"));
    let mut hwm = 0;
    let status = loop {
        if let Some(h) = vm_hwm(child.id()) {
            hwm = hwm.max(h);
        }
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("wait: {e}"),
        }
    };
    let seconds = t.elapsed().as_secs_f64();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut s) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut s, &mut err);
        }
        panic!("speck scan --jobs {jobs} failed ({status}): {err}");
    }
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap_or_default();
    let ok = summary.lines().filter(|l| l.contains(",ok,")).count();
    Run {
        seconds,
        peak_rss: hwm.max(recorded_peak(out)),
        ok,
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = root.join("target/release/speck");
    if !bin.exists() {
        println!("throughput benchmark: no target/release/speck (cargo build --release -p speck-cli); skipped");
        return;
    }
    let n: usize = env_or("SPECK_BENCH_SCANS", "4").parse().unwrap_or(4);
    let shape = env_or("SPECK_BENCH_SHAPE", "300,512,512");
    let max_memory = env_or("SPECK_BENCH_MAX_MEMORY", "4");
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let input: PathBuf = tmp.path().join("phantoms");
    let t = Instant::now();
    let o = Command::new(&bin)
        .args([
            "phantom",
            "--seed",
            "500",
            "--count",
            &n.to_string(),
            "--size",
            &shape,
        ])
        .arg("--out")
        .arg(&input)
        .output()
        .unwrap_or_else(|e| panic!("speck phantom: {e}"));
    assert!(o.status.success(), "speck phantom failed: {o:?}");
    eprintln!(
        "generated {n} phantoms of {shape} voxels in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!(
        "throughput benchmark: {n} phantoms of {shape} voxels, bundled models, --max-memory {max_memory} GiB, {cores} cores"
    );
    // Rounds alternate the order (1 2, 2 1, ...) so that a machine getting busier or quieter
    // during the bench does not favour one setting.
    let rounds: usize = env_or("SPECK_BENCH_ROUNDS", "2")
        .parse()
        .unwrap_or(2)
        .max(1);
    let mut seconds = [0.0f64; 2];
    let mut peak = [0u64; 2];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [1, 2] } else { [2, 1] };
        for jobs in order {
            let out = tmp.path().join(format!("r{round}-jobs{jobs}"));
            let r = scan(&bin, &input, &out, jobs, &max_memory);
            assert_eq!(r.ok, n, "--jobs {jobs}: every scan succeeded");
            println!(
                "  round {round} --jobs {jobs}: {:7.1} s for {n} scans = {:6.0} scans/hour, peak RSS {:5.0} MB",
                r.seconds,
                n as f64 * 3600.0 / r.seconds,
                r.peak_rss as f64 / 1e6
            );
            seconds[jobs - 1] += r.seconds;
            peak[jobs - 1] = peak[jobs - 1].max(r.peak_rss);
        }
    }
    for jobs in [1, 2] {
        println!(
            "  --jobs {jobs}: {:6.0} scans/hour over {rounds} round(s), peak RSS {:5.0} MB",
            (n * rounds) as f64 * 3600.0 / seconds[jobs - 1],
            peak[jobs - 1] as f64 / 1e6
        );
    }
    println!(
        "  ratio (--jobs 2 / --jobs 1): throughput {:.2}x, peak RSS {:.2}x",
        seconds[0] / seconds[1],
        peak[1] as f64 / peak[0] as f64
    );
}
