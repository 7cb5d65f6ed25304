//! `speck demo`: generate phantoms with nodules of known size, scan them with the bundled models,
//! evaluate the candidates against the truth (LUNA16 FROC/CPM), and print the per-size table.
//!
//! Everything it writes (phantoms, annotations, per-scan outputs, thumbnails, report) stays in
//! `--out`, so the demo doubles as a tour of what `speck phantom`, `speck scan` and `speck eval`
//! produce.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use speck_phantom::{OutputFormat, PhantomOptions, SizeMix};

use super::scan::EngineArgs;
use speck_batch::{detector, discover, memory, run};

/// Arguments of `speck demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Seed of the first phantom (phantom i uses seed + i).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Number of phantoms.
    #[arg(long, default_value_t = 2)]
    pub scans: u64,
    /// Nodules per phantom.
    #[arg(long, default_value_t = 12)]
    pub nodules: usize,
    /// Phantom size in voxels, Z,Y,X (small, so the demo runs in well under a minute).
    #[arg(long, default_value = "96,320,320")]
    pub size: String,
    /// Phantom spacing in mm, Z,Y,X (the bundled models' own spacing).
    #[arg(long, default_value = "1.0,0.7,0.7")]
    pub spacing: String,
    /// Output folder; default: `speck-demo` in the system's temporary folder (replaced).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Bootstrap resamples for the confidence intervals.
    #[arg(long, default_value_t = 500)]
    pub bootstrap: usize,
    /// Models and runtime.
    #[command(flatten)]
    pub engine: EngineArgs,
}

fn triplet<T: std::str::FromStr>(flag: &str, s: &str) -> anyhow::Result<[T; 3]> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let parse = |p: &str| {
        p.parse::<T>()
            .map_err(|_| anyhow::anyhow!("--{flag}: {p:?} is not a valid number"))
    };
    match parts.as_slice() {
        [a, b, c] => Ok([parse(a)?, parse(b)?, parse(c)?]),
        _ => anyhow::bail!("--{flag} wants Z,Y,X (three comma-separated numbers), got {s:?}"),
    }
}

/// Run `speck demo`.
///
/// # Errors
/// Missing models or ONNX Runtime, phantom options out of range, unwritable output folder.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    let shape: [usize; 3] = triplet("size", &args.size)?;
    let spacing: [f64; 3] = triplet("spacing", &args.spacing)?;
    if args.scans == 0 {
        anyhow::bail!("--scans must be at least 1");
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("speck-demo"));
    let phantoms_dir = out.join("phantoms");
    let scan_dir = out.join("scan");
    if args.out.is_none() && out.exists() {
        std::fs::remove_dir_all(&out)
            .with_context(|| format!("cannot clear the demo folder {}", out.display()))?;
    }
    // Models first: a missing model is reported before minutes of work.
    let engine = args.engine.build(1)?;

    eprintln!(
        "speck demo: 1/3 generating {} phantom(s) of {}x{}x{} voxels with {} nodules each",
        args.scans, shape[0], shape[1], shape[2], args.nodules
    );
    let mut truths = Vec::new();
    let mut series = Vec::new();
    for i in 0..args.scans {
        let opts = PhantomOptions::new(args.seed + i)
            .shape(shape)
            .spacing(spacing)
            .nodules(args.nodules)
            .size_mix(SizeMix::Mixed);
        let p = speck_phantom::generate(&opts).context("generating the phantom")?;
        speck_phantom::write_scan(&p, &phantoms_dir, OutputFormat::Nifti)
            .context("writing the phantom")?;
        series.push(p.truth.series_uid.clone());
        truths.push(p.truth);
    }
    speck_phantom::write_annotations(&phantoms_dir, &truths).context("writing annotations")?;
    let t_gen = t0.elapsed().as_secs_f64();

    eprintln!(
        "speck demo: 2/3 scanning with {}",
        detector::models_text(&engine.describe())
    );
    let t1 = Instant::now();
    let items = discover::discover(
        std::slice::from_ref(&phantoms_dir),
        &[],
        discover::SeriesPolicy::All,
    );
    let mut opts = run::Options::new(&scan_dir);
    opts.budget_bytes = memory::default_budget().unwrap_or(u64::MAX);
    opts.thumbnails = 3;
    opts.facts = vec![format!("speck demo, seed {}", args.seed)];
    super::scan::install_signal_handler();
    let bar = super::scan::ProgressBar::new(true);
    let result = run::run(
        &items,
        engine.as_ref(),
        &opts,
        &super::scan::INTERRUPTED,
        &bar,
    )?;
    if result.interrupted {
        return Ok(ExitCode::from(super::scan::EXIT_INTERRUPTED));
    }
    let t_scan = t1.elapsed().as_secs_f64();

    eprintln!("speck demo: 3/3 evaluating against the phantoms' truth (LUNA16 protocol)");
    let ann = speck_eval::read_annotations(&phantoms_dir.join("annotations.csv"))?;
    let excluded = speck_eval::read_excluded(&phantoms_dir.join("annotations_excluded.csv"))?;
    let cands = speck_eval::read_candidates(&scan_dir.join("candidates.csv"))?;
    let eval_opts = speck_eval::EvalOptions::default()
        .with_bootstrap(args.bootstrap)
        .with_seed(args.seed);
    let e = speck_eval::evaluate(&ann.nodules, &excluded, &cands, Some(&series), &eval_opts)
        .context("evaluating")?;
    println!("{}", e.to_table());
    println!(
        "{} scan(s): generated in {t_gen:.1} s, scanned in {t_scan:.1} s ({} failed); outputs in {}",
        items.len(),
        result.failed,
        out.display()
    );
    println!(
        "report with thumbnails: {}",
        scan_dir.join("report.html").display()
    );
    Ok(if result.failed > 0 {
        ExitCode::from(super::scan::EXIT_SOME_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
