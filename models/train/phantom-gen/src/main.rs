//! `speck-train-phantom-gen SEED COUNT Z,Y,X OUTDIR [SIZE_MIX ATTACHMENT_MIX]`: one phantom
//! (MetaImage) + annotations; the optional mixes are `speck phantom`'s `--size-mix` and
//! `--attachment-mix` (defaults: the generator's own).

use std::path::PathBuf;

use speck_phantom::{
    generate, write_annotations, write_scan, AttachmentMix, OutputFormat, PhantomOptions, SizeMix,
};

const USAGE: &str =
    "usage: speck-train-phantom-gen SEED COUNT Z,Y,X OUTDIR [SIZE_MIX ATTACHMENT_MIX]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 && a.len() != 7 {
        return Err(USAGE.into());
    }
    let seed: u64 = a[1].parse()?;
    let count: usize = a[2].parse()?;
    let s: Vec<usize> = a[3].split(',').map(str::parse).collect::<Result<_, _>>()?;
    if s.len() != 3 {
        return Err("size must be Z,Y,X".into());
    }
    let out = PathBuf::from(&a[4]);
    let mut opts = PhantomOptions::new(seed)
        .shape([s[0], s[1], s[2]])
        .spacing([1.0, 0.7, 0.7])
        .nodules(count);
    if a.len() == 7 {
        opts = opts
            .size_mix(a[5].parse::<SizeMix>()?)
            .attachment_mix(a[6].parse::<AttachmentMix>()?);
    }
    let p = generate(&opts)?;
    std::fs::create_dir_all(&out)?;
    write_scan(&p, &out, OutputFormat::MetaImage)?;
    write_annotations(&out, [&p.truth])?;
    Ok(())
}
