//! `speck eval`: score candidates against annotations with the LUNA16 protocol (FROC/CPM with
//! bootstrap intervals), per nodule size, density, attachment and reader consensus.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use speck_eval::{
    evaluate, read_annotations, read_candidates, read_excluded, read_series, EvalOptions, MmBins,
    VoxBins,
};

/// Arguments of `speck eval`.
#[derive(clap::Args, Debug)]
#[command(after_help = "The protocol, size bins and outputs are described in docs/evaluation.md.")]
pub struct Args {
    /// Reference nodules: `seriesuid,coordX,coordY,coordZ,diameter_mm` (LPS world mm), optional
    /// `diameter_vox,density,attachment` and `reader` (one row per reader mark) or `n_readers`.
    #[arg(long, value_name = "CSV")]
    pub annotations: PathBuf,
    /// Candidates: `seriesuid,coordX,coordY,coordZ,probability` (other columns ignored).
    #[arg(long, value_name = "CSV")]
    pub candidates: PathBuf,
    /// Excluded findings (hits on them are ignored); `diameter_mm` -1 means 10 mm.
    #[arg(long, value_name = "CSV")]
    pub excluded: Option<PathBuf>,
    /// The evaluated scans, one seriesuid per line. Without it the scans are the union of the
    /// seriesuids in the annotations, excluded findings and candidates, so a scan with none of
    /// them would be missing from FP/scan.
    #[arg(long, value_name = "CSV")]
    pub series: Option<PathBuf>,
    /// Print the results as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write the FROC curve plot (SVG) here.
    #[arg(long, value_name = "PATH.svg")]
    pub plot: Option<PathBuf>,
    /// Write the FROC curve points (`threshold,fp_per_scan,sensitivity`) here.
    #[arg(long, value_name = "PATH")]
    pub csv: Option<PathBuf>,
    /// Bootstrap resamples of the scans for the 95% intervals (0: none).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// Size bins over the diameter in voxels, rounded half away from zero: `N`, `A-B`, `N+`, `<N`.
    #[arg(long, default_value = "3,4,5,6-8,9+", value_name = "SPEC")]
    pub size_bins_vox: String,
    /// Size bin edges in mm: `4,6,10` gives <4, 4-6, 6-10, >=10.
    #[arg(long, default_value = "4,6,10", value_name = "EDGES")]
    pub size_bins_mm: String,
    /// Voxel size (mm) to derive diameters in voxels when the annotations have no `diameter_vox`.
    #[arg(long, value_name = "MM")]
    pub voxel_mm: Option<f64>,
    /// Nodules marked by fewer readers are treated as excluded findings (3 reproduces the
    /// LUNA16 reference from LIDC marks).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub min_readers: u32,
    /// Keep at most this many marks per scan, as the official script does (0: no cap).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_marks_per_scan: usize,
}

fn write(path: &Path, text: &str, what: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing the {what} to {}", path.display()))
}

/// Write to stdout; a closed pipe (`speck eval | head`) is not an error.
fn stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}

/// Run `speck eval`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = EvalOptions {
        bootstrap: args.bootstrap,
        seed: args.seed,
        max_marks_per_scan: (args.max_marks_per_scan > 0).then_some(args.max_marks_per_scan),
        min_readers: args.min_readers,
        size_bins_vox: VoxBins::parse(&args.size_bins_vox)?,
        size_bins_mm: MmBins::parse(&args.size_bins_mm)?,
        voxel_mm: args.voxel_mm,
        ..EvalOptions::default()
    };
    let annotations = read_annotations(&args.annotations).context("reading the annotations")?;
    let candidates = read_candidates(&args.candidates).context("reading the candidates")?;
    let excluded = match &args.excluded {
        Some(p) => read_excluded(p).context("reading the excluded findings")?,
        None => Vec::new(),
    };
    let series = match &args.series {
        Some(p) => Some(read_series(p).context("reading the series list")?),
        None => None,
    };
    tracing::info!(
        nodules = annotations.nodules.len(),
        marks = annotations.n_marks,
        candidates = candidates.len(),
        excluded = excluded.len(),
        "evaluating"
    );
    let result = evaluate(
        &annotations.nodules,
        &excluded,
        &candidates,
        series.as_deref(),
        &options,
    )?;
    if let Some(p) = &args.csv {
        write(p, &result.froc_csv(), "FROC curve")?;
    }
    if let Some(p) = &args.plot {
        write(p, &result.froc_svg(), "FROC plot")?;
    }
    if args.json {
        let text = serde_json::to_string_pretty(&result).context("serialising the results")?;
        stdout(&format!("{text}\n"))?;
    } else {
        let mut text = result.to_table();
        if series.is_none() {
            text.push_str(&format!(
                "\nnote: scans inferred from the input files ({}); pass --series to count scans without nodules or candidates\n",
                result.n_scans
            ));
        }
        stdout(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}
