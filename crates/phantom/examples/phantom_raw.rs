//! Generate one phantom and dump it as raw little-endian `i16` (`[z, y, x]`) plus a JSON sidecar
//! with geometry and nodules, and time the generation. Used by `tests/peer/calibrate_phantom.py`.
//!
//! `cargo run --release -p speck-phantom --example phantom_raw -- SEED OUT_PREFIX [NZ NY NX SZ SY SX] [--mask]`

use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: phantom_raw SEED OUT_PREFIX [NZ NY NX SZ SY SX] [--mask]".into());
    }
    let seed: u64 = args[1].parse()?;
    let prefix = &args[2];
    let mask = args.iter().any(|a| a == "--mask");
    let nums: Vec<&String> = args[3..].iter().filter(|a| !a.starts_with("--")).collect();
    let mut opts = speck_phantom::PhantomOptions::new(seed).with_lung_mask(mask);
    if nums.len() == 6 {
        opts = opts
            .shape([nums[0].parse()?, nums[1].parse()?, nums[2].parse()?])
            .spacing([nums[3].parse()?, nums[4].parse()?, nums[5].parse()?]);
    }
    let t = std::time::Instant::now();
    let p = speck_phantom::generate(&opts)?;
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "generated {:?} in {secs:.2} s on {} threads",
        p.volume.shape_zyx(),
        rayon::current_num_threads()
    );
    let mut f = std::io::BufWriter::new(std::fs::File::create(format!("{prefix}.raw"))?);
    for v in p.volume.voxels().iter() {
        f.write_all(&v.to_le_bytes())?;
    }
    if let Some(m) = &p.truth.lung_mask {
        let bytes: Vec<u8> = m.iter().copied().collect();
        std::fs::write(format!("{prefix}_mask.raw"), bytes)?;
    }
    let g = p.volume.geometry();
    let nodules: Vec<String> = p
        .truth
        .nodules
        .iter()
        .map(|n| {
            format!(
                "{{\"x\":{},\"y\":{},\"z\":{},\"d\":{},\"density\":\"{}\",\"attachment\":\"{}\"}}",
                n.centre.x_mm, n.centre.y_mm, n.centre.z_mm, n.diameter_mm, n.density, n.attachment
            )
        })
        .collect();
    std::fs::write(
        format!("{prefix}.json"),
        format!(
            "{{\"shape_zyx\":{:?},\"spacing_zyx\":{:?},\"origin_xyz\":{:?},\"seconds\":{secs},\"threads\":{},\"noise_sd\":{},\"nodules\":[{}]}}",
            p.volume.shape_zyx(),
            g.spacing.zyx(),
            g.origin.to_array(),
            rayon::current_num_threads(),
            p.truth.noise_sd_hu,
            nodules.join(",")
        ),
    )?;
    Ok(())
}
