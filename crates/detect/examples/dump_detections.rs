//! Print what a detector finds on the demo phantoms, as JSON lines, for comparing two builds of
//! the engine (a refactoring must leave every line identical):
//!
//! `cargo run -p speck-detect --example dump_detections -- COARSE FINE|- SEEDS > out.jsonl`
//!
//! Each line holds one phantom's candidates and counts (the timings are left out); the phantoms
//! are `speck demo`'s (96 x 320 x 320 voxels at 1.0 x 0.7 x 0.7 mm, 12 nodules of mixed sizes,
//! seeds `0..SEEDS`). Uses only the builder calls every version of the API has.

use speck_detect::Detector;
use speck_phantom::{PhantomOptions, SizeMix};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 4 {
        return Err("usage: dump_detections COARSE FINE|- SEEDS".into());
    }
    let mut builder = Detector::builder().coarse(&a[1]).threads(2);
    if a[2] != "-" {
        builder = builder.fine(&a[2]);
    }
    let detector = builder.build()?;
    for seed in 0..a[3].parse::<u64>()? {
        let opts = PhantomOptions::new(seed)
            .shape([96, 320, 320])
            .spacing([1.0, 0.7, 0.7])
            .nodules(12)
            .size_mix(SizeMix::Mixed);
        let p = speck_phantom::generate(&opts)?;
        let found = detector.detect(&p.volume)?;
        let line = serde_json::json!({
            "seed": seed,
            "candidates": found.candidates,
            "counts": found.counts,
            "warnings": found.warnings,
        });
        println!("{line}");
    }
    Ok(())
}
