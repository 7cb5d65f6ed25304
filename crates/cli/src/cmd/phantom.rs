//! `speck phantom`: write synthetic chest CTs with nodules of known size, plus LUNA16-style
//! `annotations.csv` / `annotations_excluded.csv` for all of them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use speck_phantom::{
    annotations_csv, excluded_csv, write_lung_mask, write_scan, AttachmentMix, DensityMix,
    OutputFormat, PhantomOptions, SizeMix, ANNOTATIONS_HEADER, EXCLUDED_HEADER,
};

/// Arguments of `speck phantom`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seed of the first scan; scan i uses seed + i. Same seed, same scan, bit for bit.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (created): one scan per seed named by its SeriesInstanceUID, and the
    /// annotation files.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of scans (seeds seed..seed+count-1), with one combined annotations.csv.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Scan format: nifti (UID.nii.gz), mhd (UID.mhd + .raw) or dicom (UID/ folder).
    #[arg(long, default_value = "nifti")]
    pub format: String,
    /// Nodules per scan (reference and excluded together).
    #[arg(long, default_value_t = 8)]
    pub nodules: usize,
    /// Size distribution: small (mostly 3-5 voxels), luna16 (the real LUNA16 sizes),
    /// uniform (2-30 mm) or mixed (half small, half luna16).
    #[arg(long, default_value = "mixed")]
    pub size_mix: String,
    /// Density weights, e.g. solid=0.65,part-solid=0.15,ground-glass=0.2 (or one class name).
    #[arg(long)]
    pub density_mix: Option<String>,
    /// Attachment weights, e.g. isolated=0.5,vessel=0.3,pleura=0.2 (or one class name).
    #[arg(long)]
    pub attachment_mix: Option<String>,
    /// Volume size in voxels as Z,Y,X (default 300,512,512).
    #[arg(long)]
    pub size: Option<String>,
    /// Voxel spacing in mm as Z,Y,X (default 1.0,0.7,0.7).
    #[arg(long)]
    pub spacing: Option<String>,
    /// Noise standard deviation in HU (default: drawn per seed around the calibrated level).
    #[arg(long)]
    pub noise_sd: Option<f64>,
    /// Nodules smaller than this many in-plane voxels (equivalent diameter) go to
    /// annotations_excluded.csv.
    #[arg(long, default_value_t = 3.0)]
    pub min_reference_vox: f64,
    /// Also write the true lung mask as UID_lungmask.nii.gz (0 outside, 1 right, 2 left).
    #[arg(long)]
    pub lung_mask: bool,
    /// Also write UID_truth.json with every nodule's shape, class and peak HU.
    #[arg(long)]
    pub truth_json: bool,
    /// Replace an annotations.csv / annotations_excluded.csv in --out that is not a phantom's
    /// (other columns) instead of refusing. A phantom's own annotation files are always merged:
    /// the rows of scans generated again are replaced, the others kept.
    #[arg(long)]
    pub force: bool,
}

/// The annotation files of `speck phantom`, with the header each must have to be merged.
const ANNOTATION_FILES: [(&str, &str); 2] = [
    ("annotations.csv", ANNOTATIONS_HEADER),
    ("annotations_excluded.csv", EXCLUDED_HEADER),
];

/// The earlier annotation files in `dir`, by name: `None` when absent. A file whose header is not
/// the phantom's is an error unless `force` (then it is treated as absent, and replaced).
fn earlier_annotations(dir: &std::path::Path, force: bool) -> anyhow::Result<[Option<String>; 2]> {
    let mut out = [None, None];
    for (slot, (name, header)) in out.iter_mut().zip(ANNOTATION_FILES) {
        let path = dir.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if text.lines().next().map(str::trim_end) == Some(header) {
            *slot = Some(text);
        } else if force {
            eprintln!(
                "warning: {} is not a phantom's annotation file: replaced (--force)",
                path.display()
            );
        } else {
            anyhow::bail!(
                "{} exists and is not a phantom's annotation file (its first line is not \
                 `{header}`): choose another --out, or add --force to replace it",
                path.display()
            );
        }
    }
    Ok(out)
}

/// `new` (a whole file, header first) plus the rows of `old` whose seriesuid is not in `uids`;
/// returns the text and the seriesuids of the rows kept.
fn merged(
    old: Option<&str>,
    new: &str,
    uids: &[&str],
) -> (String, std::collections::BTreeSet<String>) {
    let mut lines = new.lines();
    let mut text = String::new();
    for l in lines.by_ref().take(1) {
        text.push_str(l);
        text.push('\n');
    }
    let mut scans = std::collections::BTreeSet::new();
    for row in old.into_iter().flat_map(|o| o.lines().skip(1)) {
        let uid = row.split(',').next().unwrap_or_default();
        if row.trim().is_empty() || uids.contains(&uid) {
            continue;
        }
        text.push_str(row);
        text.push('\n');
        scans.insert(uid.to_owned());
    }
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    (text, scans)
}

fn triplet<T: std::str::FromStr>(flag: &str, s: &str) -> anyhow::Result<[T; 3]> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.len() != 3 {
        anyhow::bail!("--{flag} wants Z,Y,X (three comma-separated numbers), got {s:?}");
    }
    let parse = |p: &str| {
        p.parse::<T>()
            .map_err(|_| anyhow::anyhow!("--{flag}: {p:?} is not a valid number"))
    };
    Ok([parse(parts[0])?, parse(parts[1])?, parse(parts[2])?])
}

/// The phantom options these arguments ask for (with `--seed` as the seed).
pub fn options(args: &Args) -> anyhow::Result<PhantomOptions> {
    let mut o = PhantomOptions::new(args.seed)
        .nodules(args.nodules)
        .size_mix(args.size_mix.parse::<SizeMix>()?)
        .noise_sd_hu(args.noise_sd)
        .with_lung_mask(args.lung_mask);
    if let Some(s) = &args.density_mix {
        o = o.density_mix(s.parse::<DensityMix>()?);
    }
    if let Some(s) = &args.attachment_mix {
        o = o.attachment_mix(s.parse::<AttachmentMix>()?);
    }
    if let Some(s) = &args.size {
        o = o.shape(triplet("size", s)?);
    }
    if let Some(s) = &args.spacing {
        o = o.spacing(triplet("spacing", s)?);
    }
    o.reference_min_vox = args.min_reference_vox;
    o.validate()?;
    Ok(o)
}

/// Run `speck phantom`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let format: OutputFormat = args.format.parse()?;
    let base = options(&args)?;
    if args.count == 0 {
        anyhow::bail!("--count must be at least 1");
    }
    let last = args
        .seed
        .checked_add(args.count - 1)
        .context("--seed + --count overflows u64")?;
    let earlier = earlier_annotations(&args.out, args.force)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut truths = Vec::with_capacity(args.count as usize);
    for seed in args.seed..=last {
        let opts = PhantomOptions {
            seed,
            ..base.clone()
        };
        let t = std::time::Instant::now();
        let mut phantom = speck_phantom::generate(&opts)?;
        let path = write_scan(&phantom, &args.out, format)?;
        if args.lung_mask {
            write_lung_mask(&phantom, &args.out)?;
            phantom.truth.lung_mask = None;
        }
        if args.truth_json {
            let json = serde_json::json!({
                "seed": seed,
                "seriesuid": phantom.truth.series_uid,
                "noise_sd_hu": phantom.truth.noise_sd_hu,
                "reference_min_vox": phantom.truth.reference_min_vox,
                "in_plane_spacing_mm": phantom.truth.in_plane_spacing_mm,
                "nodules": phantom.truth.nodules,
            });
            let p = args
                .out
                .join(format!("{}_truth.json", phantom.truth.series_uid));
            std::fs::write(&p, serde_json::to_string_pretty(&json)?)
                .with_context(|| format!("writing {}", p.display()))?;
        }
        let n_ref = phantom.truth.reference_nodules().count();
        eprintln!(
            "seed {seed}: {} ({} nodules, {n_ref} reference) in {:.1} s",
            path.display(),
            phantom.truth.nodules.len(),
            t.elapsed().as_secs_f64()
        );
        truths.push(phantom.truth);
    }
    let uids: Vec<&str> = truths.iter().map(|t| t.series_uid.as_str()).collect();
    let new = [
        annotations_csv(truths.iter())?,
        excluded_csv(truths.iter())?,
    ];
    let mut kept_scans = std::collections::BTreeSet::new();
    for (((name, _), old), new) in ANNOTATION_FILES.iter().zip(&earlier).zip(&new) {
        let (text, scans) = merged(old.as_deref(), new, &uids);
        kept_scans.extend(scans);
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let kept = if kept_scans.is_empty() {
        String::new()
    } else {
        format!(
            ", keeping the rows of {} earlier scan(s) already there",
            kept_scans.len()
        )
    };
    eprintln!(
        "wrote {} scan(s) and {}{kept}",
        truths.len(),
        args.out.join("annotations.csv").display()
    );
    Ok(ExitCode::SUCCESS)
}
