//! Detection engine benchmark. Guards two claims (docs/benchmarks.md, "Detection engine"):
//!
//! 1. **Dense sliding windows vs MONAI.** The same ONNX model over the same volume, with the same
//!    patch, overlap, batch and threads: Speck's `Detector` (lung mask off) against MONAI's
//!    `sliding_window_inference` driving ONNX Runtime from Python
//!    (`benches/peer/monai_sliding_window.py`). Prints both times, the ratio, and both peak RSS
//!    (each side runs in its own process that reads the same raw volume). Target: Speck >= 1.2x
//!    faster, and under 1 GB for 300x512x512.
//! 2. **Coarse-to-fine vs dense.** Lung mask + 2 mm coarse model + 1 mm fine model against the
//!    1 mm model densely over the whole volume: model input voxels (compute), time, and the
//!    sensitivity on the planted blobs. Target: >= 5x less compute at the same sensitivity.
//!
//! 3. **Fitted vs patch-sized coarse tiles.** The bundled coarse model (lung mask on, no fine
//!    stage) with tiles fitted to the lungs (`DenseTiles::Fit`, the default) against tiles of its
//!    32x128x128 patch, in the same run: input voxels, coarse-stage time and their ratio, peak
//!    RSS. Guards the speed-up in models/README.md ("coarse tiles fitted to the lungs").
//!
//! Run (release; about 6 minutes on 2 cores at the default size):
//!
//! ```text
//! cargo bench -p speck-benches --bench detect
//! SPECK_BENCH_SHAPE=150,256,256 SPECK_BENCH_THREADS=2 cargo bench -p speck-benches --bench detect
//! ```
//!
//! Environment: `SPECK_BENCH_PARTS` (which of the three, default `1,2,3`),
//! `SPECK_BENCH_SHAPE` (z,y,x, default 300,512,512; 1 mm voxels),
//! `SPECK_BENCH_THREADS` (2), `SPECK_BENCH_OVERLAP` (0.25), `SPECK_BENCH_BATCH` (2),
//! `SPECK_BENCH_MODEL` (dense model, default models/test/blob_coarse_1mm.onnx),
//! `SPECK_BENCH_PEER_PYTHON` (default .venv-train/bin/python, needs monai + torch + onnxruntime;
//! the MONAI part is skipped with a note when it cannot run).
//!
//! The models are the analytic ones of `models/test/make_test_models.py`; the volume is a
//! synthetic chest (body, two lungs, vessels, noise, 3-5 mm blobs) generated here from a seed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ndarray::Array3;
use speck_detect::{DenseTiles, Detections, Detector};
use speck_volume::{Direction, Geometry, Provenance, Spacing, Volume, WorldPoint};

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Deterministic hash noise in [-1, 1).
fn noise(i: u64) -> f64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// Synthetic chest at 1 mm: returns voxels and the planted blob centres (`[z, y, x]`).
fn chest(shape: [usize; 3], seed: u64) -> (Array3<i16>, Vec<[f64; 3]>) {
    let [nz, ny, nx] = shape;
    let (cz, cy, cx) = (nz as f64 / 2.0, ny as f64 / 2.0, nx as f64 / 2.0);
    let (lz, ly, lx, loff) = (
        nz as f64 * 0.44,
        ny as f64 * 0.28,
        nx as f64 * 0.156,
        nx as f64 * 0.234,
    );
    let lung_at = |z: f64, y: f64, x: f64, shrink: f64| {
        [-1.0, 1.0].iter().any(|s| {
            ((z - cz) / (lz - shrink)).powi(2)
                + ((y - cy) / (ly - shrink)).powi(2)
                + ((x - cx - s * loff) / (lx - shrink)).powi(2)
                <= 1.0
        })
    };
    // vessels: lines along z through each lung
    let vessels: Vec<(f64, f64)> = (0..6)
        .map(|k| {
            let s = if k % 2 == 0 { -1.0 } else { 1.0 };
            (
                cy + (noise(seed + 100 + k) * 0.6) * ly,
                cx + s * loff + noise(seed + 200 + k) * 0.6 * lx,
            )
        })
        .collect();
    let mut blobs = Vec::new();
    let mut k = 0u64;
    while blobs.len() < 24 && k < 10_000 {
        k += 1;
        let p = [
            cz + noise(seed * 7 + 3 * k) * lz,
            cy + noise(seed * 7 + 3 * k + 1) * ly,
            cx + noise(seed * 7 + 3 * k + 2) * (loff + lx),
        ];
        let near_vessel = vessels
            .iter()
            .any(|(vy, vx)| (p[1] - vy).hypot(p[2] - vx) < 8.0);
        let near_blob = blobs
            .iter()
            .any(|b: &[f64; 3]| (0..3).map(|a| (b[a] - p[a]).powi(2)).sum::<f64>() < 15.0 * 15.0);
        if lung_at(p[0], p[1], p[2], 10.0) && !near_vessel && !near_blob {
            blobs.push(p.map(f64::round));
        }
    }
    let radii: Vec<f64> = (0..blobs.len()).map(|i| [1.5, 2.0, 2.5][i % 3]).collect();
    let mut v = Array3::<i16>::zeros((nz, ny, nx));
    ndarray::Zip::indexed(&mut v).par_for_each(|(z, y, x), h| {
        let (fz, fy, fx) = (z as f64, y as f64, x as f64);
        let mut hu = -1000.0;
        if ((fy - cy) / (ny as f64 * 0.40)).powi(2) + ((fx - cx) / (nx as f64 * 0.47)).powi(2)
            <= 1.0
        {
            hu = 40.0;
        }
        if lung_at(fz, fy, fx, 0.0) {
            hu = -850.0;
            if (fz - cz).abs() < lz * 0.8
                && vessels
                    .iter()
                    .any(|(vy, vx)| (fy - vy).hypot(fx - vx) <= 1.2)
            {
                hu = 40.0;
            }
            for (b, r) in blobs.iter().zip(&radii) {
                if (b[0] - fz).powi(2) + (b[1] - fy).powi(2) + (b[2] - fx).powi(2) <= r * r {
                    hu = 30.0;
                }
            }
        }
        let i = ((z * ny + y) * nx + x) as u64;
        *h = (hu + 30.0 * noise(seed ^ i)).round() as i16;
    });
    (v, blobs)
}

fn volume_from(vox: Array3<i16>) -> Volume {
    let g = Geometry::new(
        Spacing::isotropic(1.0).unwrap_or_else(|e| panic!("{e}")),
        WorldPoint::new(-256.0, -256.0, -150.0),
        Direction::IDENTITY,
    );
    Volume::new(vox, g, Provenance::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn sensitivity(found: &Detections, volume: &Volume, blobs: &[[f64; 3]]) -> (usize, usize) {
    let hits = blobs
        .iter()
        .filter(|b| {
            let w = volume
                .geometry()
                .index_to_world(speck_volume::ContinuousIndex::new(b[0], b[1], b[2]));
            found
                .candidates
                .iter()
                .any(|d| d.candidate.world.distance_mm(w) <= 2.0)
        })
        .count();
    (hits, found.candidates.len().saturating_sub(hits))
}

/// Child process: load the raw volume, run one configuration, print a JSON line.
fn child(args: &[String]) {
    let (mode, raw, shape, blobs) = (&args[0], &args[1], &args[2], &args[3]);
    let shape: Vec<usize> = shape.split(',').filter_map(|v| v.parse().ok()).collect();
    let threads: usize = env_or("SPECK_BENCH_THREADS", "2").parse().unwrap_or(2);
    let overlap: f32 = env_or("SPECK_BENCH_OVERLAP", "0.25")
        .parse()
        .unwrap_or(0.25);
    let batch: usize = env_or("SPECK_BENCH_BATCH", "2").parse().unwrap_or(2);
    let dense_model = env_or(
        "SPECK_BENCH_MODEL",
        &root()
            .join("models/test/blob_coarse_1mm.onnx")
            .display()
            .to_string(),
    );
    // read in chunks so that the peak RSS holds the volume once
    let n: usize = shape.iter().product();
    let mut data: Vec<i16> = Vec::with_capacity(n);
    {
        use std::io::Read;
        let mut f = std::fs::File::open(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        let mut buf = vec![0u8; 1 << 20];
        while data.len() < n {
            let want = ((n - data.len()) * 2).min(buf.len());
            f.read_exact(&mut buf[..want])
                .unwrap_or_else(|e| panic!("{raw}: {e}"));
            data.extend(
                buf[..want]
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]])),
            );
        }
    }
    let vox = Array3::from_shape_vec((shape[0], shape[1], shape[2]), data)
        .unwrap_or_else(|e| panic!("{e}"));
    let volume = volume_from(vox);
    let blobs: Vec<[f64; 3]> =
        serde_json::from_str(&std::fs::read_to_string(blobs).unwrap_or_default())
            .unwrap_or_default();
    let builder = Detector::builder()
        .threads(threads)
        .overlap(overlap)
        .batch_size(batch);
    let builder = match mode.as_str() {
        "dense" => builder.coarse(&dense_model).lung_mask(None),
        "c2f" => builder
            .coarse(root().join("models/test/blob_coarse_2mm.onnx"))
            .fine(root().join("models/test/blob_fine_1mm.onnx")),
        // The bundled coarse model alone (lung mask on), patch-sized or fitted tiles.
        "tiles-patch" => builder
            .coarse(root().join("models/coarse-v7.onnx"))
            .dense_tiles(DenseTiles::Patch),
        "tiles-fit" => builder
            .coarse(root().join("models/coarse-v7.onnx"))
            .dense_tiles(DenseTiles::default()),
        other => panic!("unknown mode {other}"),
    };
    let det = builder.build().unwrap_or_else(|e| panic!("{e}"));
    let before = peak_rss_mb();
    let t = Instant::now();
    let found = det.detect(&volume).unwrap_or_else(|e| panic!("{e}"));
    let seconds = t.elapsed().as_secs_f64();
    let (hits, fp) = sensitivity(&found, &volume, &blobs);
    println!(
        "{}",
        serde_json::json!({
            "seconds": seconds,
            "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": before,
            "found": hits,
            "planted": blobs.len(),
            "false_positives": fp,
            "input_voxels": found.counts.input_voxels,
            "tiles_run": found.counts.tiles_run,
            "tiles_total": found.counts.tiles_total,
            "roi_fraction": found.counts.roi_fraction,
            "accumulator_rows": found.counts.accumulator_rows,
            "timings_s": {
                "lung_mask": found.timings.lung_mask.as_secs_f64(),
                "dense": found.timings.dense.as_secs_f64(),
                "fine": found.timings.fine.as_secs_f64(),
            },
        })
    );
}

fn run_json(cmd: &mut Command) -> Option<serde_json::Value> {
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!(
            "  (failed: {})",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "detect-child") {
        child(&args[i + 1..]);
        return;
    }
    let shape_s = env_or("SPECK_BENCH_SHAPE", "300,512,512");
    let shape: Vec<usize> = shape_s.split(',').filter_map(|v| v.parse().ok()).collect();
    assert_eq!(shape.len(), 3, "SPECK_BENCH_SHAPE must be z,y,x");
    let threads = env_or("SPECK_BENCH_THREADS", "2");
    let overlap = env_or("SPECK_BENCH_OVERLAP", "0.25");
    let batch = env_or("SPECK_BENCH_BATCH", "2");
    let dense_model = env_or(
        "SPECK_BENCH_MODEL",
        &root()
            .join("models/test/blob_coarse_1mm.onnx")
            .display()
            .to_string(),
    );
    println!("detect bench: volume {shape_s} (1 mm), threads {threads}, overlap {overlap}, batch {batch}");
    println!("dense model: {dense_model}");

    let t = Instant::now();
    let (vox, blobs) = chest([shape[0], shape[1], shape[2]], 4);
    println!(
        "synthetic chest with {} blobs made in {:.1} s",
        blobs.len(),
        t.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let raw = dir.path().join("volume.raw");
    {
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(&raw).unwrap_or_else(|e| panic!("{e}")));
        for v in vox.iter() {
            f.write_all(&v.to_le_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    drop(vox);
    let blobs_path = dir.path().join("blobs.json");
    std::fs::write(
        &blobs_path,
        serde_json::to_string(&blobs).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let speck = |mode: &str| {
        run_json(
            Command::new(&exe)
                .arg("detect-child")
                .arg(mode)
                .arg(&raw)
                .arg(&shape_s)
                .arg(&blobs_path),
        )
    };

    let parts = env_or("SPECK_BENCH_PARTS", "1,2,3");
    let part = |n: &str| parts.split(',').any(|p| p.trim() == n);
    if part("1") || part("2") {
        dense_and_c2f(
            &speck,
            &dense_model,
            &shape_s,
            &threads,
            &overlap,
            &batch,
            &raw,
            &blobs_path,
        );
    }
    if part("3") {
        fitted_tiles(&speck);
    }
}

/// Parts 1 and 2 (part 2 compares with part 1's dense run).
#[allow(clippy::too_many_arguments)]
fn dense_and_c2f(
    speck: &dyn Fn(&str) -> Option<serde_json::Value>,
    dense_model: &str,
    shape_s: &str,
    threads: &str,
    overlap: &str,
    batch: &str,
    raw: &Path,
    blobs_path: &Path,
) {
    println!("\n== 1. dense: Speck vs MONAI sliding_window_inference (same model, patch, overlap, batch, threads)");
    let dense = speck("dense");
    if let Some(d) = &dense {
        println!("speck dense : {d}");
    }
    let python = env_or(
        "SPECK_BENCH_PEER_PYTHON",
        &root().join(".venv-train/bin/python").display().to_string(),
    );
    let monai = run_json(
        Command::new(&python)
            .arg(root().join("benches/peer/monai_sliding_window.py"))
            .arg(raw)
            .arg(shape_s)
            .arg(dense_model)
            .arg(threads)
            .arg(overlap)
            .arg(batch)
            .arg(blobs_path),
    );
    match (&dense, &monai) {
        (Some(s), Some(m)) => {
            println!("monai dense : {m}");
            let (ts, tm) = (
                s["seconds"].as_f64().unwrap_or(f64::NAN),
                m["seconds"].as_f64().unwrap_or(f64::NAN),
            );
            println!(
                "RESULT dense: speck {ts:.1} s, monai {tm:.1} s, speedup {:.2}x; peak RSS speck {:.0} MB, monai {:.0} MB; found speck {}/{}, monai {}/{}",
                tm / ts,
                s["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
                m["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
                s["found"], s["planted"], m["found"], m["planted"],
            );
        }
        _ => println!("(MONAI peer skipped: {python} with monai, torch and onnxruntime is needed)"),
    }

    println!("\n== 2. coarse-to-fine (lung mask + 2 mm coarse + 1 mm fine) vs dense 1 mm over the whole volume");
    let c2f = speck("c2f");
    if let (Some(d), Some(c)) = (&dense, &c2f) {
        println!("speck c2f   : {c}");
        let (vd, vc) = (
            d["input_voxels"].as_f64().unwrap_or(f64::NAN),
            c["input_voxels"].as_f64().unwrap_or(f64::NAN),
        );
        let (td, tc) = (
            d["seconds"].as_f64().unwrap_or(f64::NAN),
            c["seconds"].as_f64().unwrap_or(f64::NAN),
        );
        println!(
            "RESULT c2f: input voxels {:.2e} vs dense {:.2e} ({:.1}x less); time {tc:.1} s vs {td:.1} s ({:.1}x faster); found {}/{} (dense {}/{}), false positives {} (dense {}); peak RSS {:.0} MB",
            vc, vd, vd / vc, td / tc, c["found"], c["planted"], d["found"], d["planted"],
            c["false_positives"], d["false_positives"], c["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
        );
    }
}

/// Part 3.
fn fitted_tiles(speck: &dyn Fn(&str) -> Option<serde_json::Value>) {
    println!("\n== 3. the bundled coarse model: tiles fitted to the lungs vs patch-sized tiles");
    let patch = speck("tiles-patch");
    let fit = speck("tiles-fit");
    if let (Some(p), Some(f)) = (&patch, &fit) {
        println!("patch tiles : {p}");
        println!("fitted tiles: {f}");
        let num = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let dense = |v: &serde_json::Value| v["timings_s"]["dense"].as_f64().unwrap_or(f64::NAN);
        println!(
            "RESULT tiles: input voxels {:.2e} vs {:.2e} ({:.2}x); coarse stage {:.1} s vs {:.1} s (patch / fitted {:.2}x); tiles {} vs {}; peak RSS {:.0} MB vs {:.0} MB",
            num(f, "input_voxels"), num(p, "input_voxels"), num(p, "input_voxels") / num(f, "input_voxels"),
            dense(f), dense(p), dense(p) / dense(f), f["tiles_run"], p["tiles_run"],
            num(f, "peak_rss_mb"), num(p, "peak_rss_mb"),
        );
    }
}
