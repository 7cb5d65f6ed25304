//! `speck eval`: score candidates against annotations with the LUNA16 protocol (FROC/CPM with
//! bootstrap intervals), per nodule size, density, attachment and reader consensus.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::collections::BTreeSet;

use anyhow::Context as _;
use speck_eval::{
    evaluate, read_annotations, read_candidates, read_excluded, read_series, Coverage, EvalError,
    EvalOptions, MmBins, VoxBins,
};

use speck_batch::output::{Status, SummaryRow};

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
    /// Excluded findings (hits on them are ignored); `diameter_mm` -1 means 10 mm. Default:
    /// `<annotations stem>_excluded.csv` beside the annotations when it exists (LUNA16's
    /// `annotations_excluded.csv` beside `annotations.csv`).
    #[arg(long, value_name = "CSV")]
    pub excluded: Option<PathBuf>,
    /// Do not pick up `<annotations stem>_excluded.csv` by default: no excluded findings.
    #[arg(long, conflicts_with = "excluded")]
    pub no_excluded: bool,
    /// Exit with code 2 (after printing the results) when an annotated scan has no candidate
    /// because it was not scanned or failed, or when no annotated seriesuid appears among the
    /// candidates at all.
    #[arg(long)]
    pub strict: bool,
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
    let options = EvalOptions::default()
        .with_bootstrap(args.bootstrap)
        .with_seed(args.seed)
        .with_max_marks_per_scan((args.max_marks_per_scan > 0).then_some(args.max_marks_per_scan))
        .with_min_readers(args.min_readers)
        .with_size_bins_vox(VoxBins::parse(&args.size_bins_vox).map_err(with_flag)?)
        .with_size_bins_mm(MmBins::parse(&args.size_bins_mm).map_err(with_flag)?)
        .with_voxel_mm(args.voxel_mm);
    let annotations = read_annotations(&args.annotations).context("reading the annotations")?;
    let candidates = read_candidates(&args.candidates).context("reading the candidates")?;
    let excluded_path = match (&args.excluded, args.no_excluded) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => None,
        (None, false) => default_excluded(&args.annotations).inspect(|p| {
            eprintln!(
                "speck eval: using excluded findings from {} (--no-excluded to ignore them)",
                p.display()
            );
        }),
    };
    let excluded = match &excluded_path {
        Some(p) => read_excluded(p).context("reading the excluded findings")?,
        None => Vec::new(),
    };
    let series = match &args.series {
        Some(p) => Some(read_series(p).context("reading the series list")?),
        None => None,
    };
    let coverage_ok = check_coverage(
        &Coverage::of(&annotations.nodules, &candidates, series.as_deref()),
        &args.candidates,
    );
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
    )
    .map_err(with_flag)?;
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
    if args.strict && !coverage_ok {
        eprintln!("speck eval: --strict: exit code 2 because annotated scans have no candidates");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// Name the flag behind an invalid option: the library names the [`EvalOptions`] field
/// (`size_bins_vox`), which is the flag's name with `_` for `-`.
fn with_flag(e: EvalError) -> anyhow::Error {
    let flag = match &e {
        EvalError::InvalidOption { option, .. } => Some(format!("--{}", option.replace('_', "-"))),
        _ => None,
    };
    match flag {
        Some(flag) => anyhow::Error::new(e).context(flag),
        None => e.into(),
    }
}

/// `<stem>_excluded.csv` beside the annotations file, when it exists and is another file.
fn default_excluded(annotations: &Path) -> Option<PathBuf> {
    let stem = annotations.file_stem()?.to_str()?;
    let path = annotations.with_file_name(format!("{stem}_excluded.csv"));
    (path.is_file() && path != annotations).then_some(path)
}

/// How many scans a warning lists before it summarises the rest.
const MAX_LISTED: usize = 50;

/// Warn on stderr when the candidates miss annotated scans. Scans that a `summary.csv` beside
/// the candidates file lists as scanned (`ok`) with no candidate are legitimate and only
/// counted. Returns false when an annotated scan has no candidate for another reason (not
/// scanned, failed, or unknown) or when no annotated seriesuid appears among the candidates.
fn check_coverage(coverage: &Coverage, candidates: &Path) -> bool {
    let summary_path = candidates.with_file_name("summary.csv");
    let scanned_ok: BTreeSet<String> = if summary_path.is_file() {
        match speck_batch::output::read_csv::<SummaryRow>(&summary_path) {
            Ok(rows) => rows
                .into_iter()
                .filter(|r| r.status == Status::Ok)
                .map(|r| r.seriesuid)
                .collect(),
            Err(e) => {
                tracing::warn!("ignoring {}: {e}", summary_path.display());
                BTreeSet::new()
            }
        }
    } else {
        BTreeSet::new()
    };
    let n = coverage.annotated.len();
    if coverage.disjoint() {
        eprintln!(
            "warning: none of the {n} annotated scan(s) appears in {}: the seriesuids of \
             annotations and candidates do not overlap at all (annotations e.g. `{}`, candidates \
             e.g. `{}`); every nodule counts as a miss",
            candidates.display(),
            coverage.annotated[0],
            coverage.with_candidates[0],
        );
        return false;
    }
    let (empty, missing): (Vec<&String>, Vec<&String>) = coverage
        .annotated_without_candidates
        .iter()
        .partition(|s| scanned_ok.contains(*s));
    if !empty.is_empty() {
        eprintln!(
            "speck eval: {} annotated scan(s) were scanned (per {}) with no candidate",
            empty.len(),
            summary_path.display()
        );
    }
    if missing.is_empty() {
        return true;
    }
    eprintln!(
        "warning: {} of the {n} annotated scan(s) have no entry in {}; their nodules count as \
         misses (not scanned, or the scan failed):",
        missing.len(),
        candidates.display()
    );
    for s in missing.iter().take(MAX_LISTED) {
        eprintln!("  {s}");
    }
    if missing.len() > MAX_LISTED {
        eprintln!("  ... and {} more", missing.len() - MAX_LISTED);
    }
    false
}
