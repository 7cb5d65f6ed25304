//! `speck-train-phantom-gen SEED COUNT Z,Y,X OUTDIR`: one phantom (MetaImage) + annotations.

use std::path::PathBuf;

use speck_phantom::{generate, write_annotations, write_scan, OutputFormat, PhantomOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 {
        return Err("usage: speck-train-phantom-gen SEED COUNT Z,Y,X OUTDIR".into());
    }
    let seed: u64 = a[1].parse()?;
    let count: usize = a[2].parse()?;
    let s: Vec<usize> = a[3].split(',').map(str::parse).collect::<Result<_, _>>()?;
    if s.len() != 3 {
        return Err("size must be Z,Y,X".into());
    }
    let out = PathBuf::from(&a[4]);
    let opts = PhantomOptions::new(seed)
        .shape([s[0], s[1], s[2]])
        .spacing([1.0, 0.7, 0.7])
        .nodules(count);
    let p = generate(&opts)?;
    std::fs::create_dir_all(&out)?;
    write_scan(&p, &out, OutputFormat::MetaImage)?;
    write_annotations(&out, [&p.truth])?;
    Ok(())
}
