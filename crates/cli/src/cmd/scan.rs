//! `speck scan INPUT... --out DIR`: detect nodules in many studies.
//!
//! See docs/cli.md for the outputs and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::Context as _;

use speck_batch::report::ReportFormat;
use speck_batch::{detector, discover, memory, outdir, run, shard, BatchError};

/// Exit code when some scans failed, or items were skipped under `--strict-skips` (0: every
/// planned scan succeeded, skipped items allowed; 2: usage or fatal error).
pub const EXIT_SOME_FAILED: u8 = 1;
/// Exit code when the run was interrupted (Ctrl-C, SIGTERM); the outputs written are complete.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Which models, where they run: shared by `speck scan` and `speck demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Coarse (heatmap) model; default: the bundled one.
    #[arg(long, value_name = "ONNX")]
    pub coarse: Option<PathBuf>,
    /// Fine (patch classifier) model; default: the bundled one.
    #[arg(long, value_name = "ONNX")]
    pub fine: Option<PathBuf>,
    /// Folder holding the bundled models (coarse-*.onnx, fine-*.onnx).
    #[arg(long, value_name = "DIR", env = "SPECK_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// Where the models run: cpu, cuda, cuda:N, tensorrt or tensorrt:N (falls back to cpu with a
    /// warning, unless --strict-device).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Exit with code 2 instead of falling back to the CPU when --device cannot be used (a GPU
    /// partition that must not run on the CPU).
    #[arg(long)]
    pub strict_device: bool,
    /// ONNX Runtime threads per scan; default: the available cores (divided by the scans run at
    /// once).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Path to libonnxruntime.so (else ORT_DYLIB_PATH, else an installed Python onnxruntime).
    #[arg(long, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Keep candidates outside the lung mask (in_lung=false) instead of dropping them.
    #[arg(long)]
    pub keep_outside_lung: bool,
    /// Keep every candidate down to this final (fine model) probability instead of the model's
    /// own operating point (its speck.threshold); the column above_operating_point tells them
    /// apart. `--threshold 0.01` then `speck eval` gives the whole FROC curve.
    #[arg(long, value_name = "P")]
    pub threshold: Option<f32>,
}

impl EngineArgs {
    /// Build the engine, with ONNX Runtime threads defaulting to the cores divided by `jobs`.
    ///
    /// # Errors
    /// No models, a bad `--device` or `--threshold`, and whatever [`detector::build`] refuses,
    /// in words that name the flags.
    pub fn build(&self, jobs: usize) -> anyhow::Result<Box<dyn speck_batch::Engine>> {
        let threads = self.threads.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
            (cores / jobs.max(1)).max(1)
        });
        let models = crate::models::resolve(
            self.coarse.as_deref(),
            self.fine.as_deref(),
            self.models_dir.as_deref(),
        )
        .map_err(anyhow::Error::msg)?;
        let device: speck_detect::Device = self.device.parse().context("--device")?;
        if let Some(t) = self.threshold.filter(|t| !(0.0..=1.0).contains(t)) {
            anyhow::bail!("--threshold {t}: expected a probability in [0, 1]");
        }
        let mut cfg = detector::EngineConfig::new(models);
        cfg.device = device;
        cfg.strict_device = self.strict_device;
        cfg.threads = threads;
        cfg.ort_lib.clone_from(&self.ort_lib);
        cfg.keep_outside_lung = self.keep_outside_lung;
        cfg.threshold = self.threshold;
        detector::build(&cfg).map_err(|e| match e {
            BatchError::DeviceUnavailable { requested, actual } => anyhow::anyhow!(
                "--device {requested} is unavailable here (see the warning above) and \
                 --strict-device forbids running on {actual} instead"
            ),
            e => anyhow::Error::new(e),
        })
    }
}

/// Arguments of `speck scan`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Outcomes: every item found is scanned, failed (it should have been a CT \
    scan but could not be: errors.csv) or skipped (not a CT image series: documents such as \
    LICENSE or metadata.csv, DICOMDIR, dose reports and other non-image objects, other \
    modalities, scouts, secondary captures; skipped.csv).\n\n\
    Exit codes:\n  \
    0    every scan succeeded (items skipped as not CT image series allowed, unless --strict-skips)\n  \
    1    the run finished but some scans failed (listed in errors.csv), or items were skipped under --strict-skips\n  \
    2    usage or fatal error, nothing scanned: bad arguments, an INPUT that does not exist, \
    nothing found to scan in the inputs, no models, ONNX Runtime not found, --device unavailable with --strict-device, an unusable --out or one holding other files (see --force)\n  \
    130  interrupted (Ctrl-C, SIGTERM): rerun with --resume\n\n\
    Outputs, resume and sharding are described in docs/cli.md."
)]
pub struct Args {
    /// DICOM folders (searched recursively; one scan per series), .nii/.nii.gz/.mhd/.mha files,
    /// or manifests (.txt/.lst/.list: one path per line, # comments).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output folder (created); nothing is written outside it.
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Models and runtime.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Scans processed at the same time (within --max-memory).
    #[arg(long, short, default_value_t = 1)]
    pub jobs: usize,
    /// Memory budget in GiB for all scans in flight; a scan whose estimated peak exceeds it is
    /// refused (errors.csv). Default: 80% of the machine's (or cgroup's) memory.
    #[arg(long, value_name = "GIB")]
    pub max_memory: Option<f64>,
    /// Skip scans whose outputs are complete (their scan.json exists and matches the models).
    #[arg(long)]
    pub resume: bool,
    /// Also write each scan's coarse heatmap as NIfTI (heatmap.nii.gz).
    #[arg(long)]
    pub heatmap: bool,
    /// For each DICOM series: a DICOM measurement report (Comprehensive 3D SR, TID 1500) of
    /// the reported findings, `sr.dcm`, to send to a PACS (NIfTI/MetaImage: a warning).
    #[arg(long)]
    pub dicom_sr: bool,
    /// For each DICOM series: a DICOM Segmentation with one segment per reported finding,
    /// `seg.dcm` (NIfTI/MetaImage: a warning).
    #[arg(long)]
    pub dicom_seg: bool,
    /// Write PNG thumbnails (axial, coronal, sagittal) of the top candidates of each scan.
    #[arg(long)]
    pub thumbnails: bool,
    /// How many top candidates per scan get a thumbnail.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub thumbnails_top: usize,
    /// Run report format.
    #[arg(long, value_enum, default_value = "html")]
    pub report: ReportFormat,
    /// Scan only part K of N (0-based), e.g. 3/8; default from SLURM_ARRAY_TASK_ID/COUNT or
    /// JOB_COMPLETION_INDEX (with --shard-count or SPECK_SHARD_COUNT). SPECK_SHARD=K/N sets it
    /// from the environment (a one-task rerun of a Slurm array: `sbatch --array=7
    /// --export=ALL,SPECK_SHARD=7/32`).
    #[arg(long, value_name = "K/N", env = "SPECK_SHARD")]
    pub shard: Option<String>,
    /// Number of shards for a Kubernetes Indexed Job (its `completions`).
    #[arg(long, value_name = "N")]
    pub shard_count: Option<u32>,
    /// List the scans this shard would process, and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Which CT series to scan when one acquisition (same study and FrameOfReferenceUID) has
    /// several, e.g. a lung and a soft-tissue reconstruction: `all`, or `best` (axial, thinnest
    /// slices, then the sharpest lung kernel, then the most slices; the others are skipped). The
    /// choice and its reason are in each scan.json.
    #[arg(long, value_enum, default_value = "all", value_name = "POLICY")]
    pub series_policy: discover::SeriesPolicy,
    /// Count items skipped as not CT image series as failures: each also gets an errors.csv row
    /// and the exit code is 1.
    #[arg(long)]
    pub strict_skips: bool,
    /// Write into an existing, non-empty --out folder that holds no Speck output (without it such
    /// a folder is refused, so that a mistyped --out never mixes results into unrelated files).
    #[arg(long)]
    pub force: bool,
}

/// Set by the first Ctrl-C/SIGTERM.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// First Ctrl-C/SIGTERM: finish the scans in flight, write the run files, exit 130.
/// Second: remove temporary files and exit 130 at once (finished outputs are complete).
pub fn install_signal_handler() {
    let r = ctrlc::set_handler(|| {
        let n = SIGNALS.fetch_add(1, Ordering::SeqCst);
        INTERRUPTED.store(true, Ordering::SeqCst);
        if n == 0 {
            eprintln!(
                "\nspeck: interrupted; finishing the scans in progress (Ctrl-C again to stop now)"
            );
        } else {
            let _guard = speck_batch::atomic::remove_all_temps();
            eprintln!("\nspeck: stopped; temporary files removed");
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
    if let Err(e) = r {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
}

/// Run `speck scan`.
///
/// # Errors
/// Usage and fatal errors (no models, output folder not writable); failed scans are not errors.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (shard, source) = shard::resolve(args.shard.as_deref(), args.shard_count, |k| {
        std::env::var(k).ok()
    })?;
    if args.jobs == 0 {
        anyhow::bail!("--jobs must be at least 1");
    }
    let budget = match args.max_memory {
        Some(g) if g.is_finite() && g > 0.0 => (g * memory::GIB as f64) as u64,
        Some(g) => anyhow::bail!("--max-memory {g}: expected a positive number of GiB"),
        None => memory::default_budget().unwrap_or(u64::MAX),
    };
    if args.out.is_file() {
        anyhow::bail!("--out {} is a file, not a folder", args.out.display());
    }
    if !args.force {
        outdir::refuse_foreign_folder(&args.out).map_err(|e| {
            anyhow::anyhow!("--out {e}: choose another folder, or pass --force to write into it")
        })?;
    }
    // A mistyped input is a usage error, not a failed scan (paths inside a manifest are items of
    // the run: a missing one is listed in errors.csv).
    let missing: Vec<String> = args
        .inputs
        .iter()
        .filter(|p| std::fs::metadata(p).is_err())
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "input not found (no such file or folder): {}",
            missing.join(", ")
        );
    }

    // Models first (unless only listing): a missing model should not wait for a long discovery.
    let engine = if args.dry_run {
        None
    } else {
        Some(args.engine.build(args.jobs)?)
    };

    let all = discover::discover(
        &args.inputs,
        std::slice::from_ref(&args.out),
        args.series_policy,
    );
    if all.is_empty() {
        anyhow::bail!("no inputs to scan");
    }
    discover::check_scannable(&all)?;
    let shard::Share {
        items: mine,
        n_skipped,
        ..
    } = shard::share(&all, shard);
    tracing::info!(
        "{} item(s) found ({n_skipped} not CT image series), {} in shard {shard} ({source:?})",
        all.len(),
        mine.len()
    );
    if args.dry_run {
        for it in &mine {
            match &it.plan {
                discover::Plan::Scan { format, path, .. } => {
                    println!("{}\t{}\t{format}\t{}", it.id, it.uid, path.display());
                }
                discover::Plan::Fail { reason } => {
                    println!("{}\t{}\tfail\t{reason}", it.id, it.uid);
                }
                discover::Plan::Skip { reason } => {
                    println!(
                        "{}\t{}\tskip\t{}: {reason}: {}",
                        it.id,
                        it.uid,
                        reason.kind(),
                        it.source.display()
                    );
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(engine) = engine else {
        anyhow::bail!("no detector");
    };

    let run_dir = if shard.is_split() {
        args.out.join("shards").join(shard.dir_name())
    } else {
        args.out.clone()
    };
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create the output folder {}", run_dir.display()))?;
    let mut facts = vec![
        format!("speck {}", env!("CARGO_PKG_VERSION")),
        format!("models: {}", detector::models_text(&engine.describe())),
        if shard.is_split() {
            format!("{} scan(s) in this run (shard {shard})", mine.len())
        } else {
            format!("{} scan(s) in this run", mine.len())
        },
    ];
    if budget != u64::MAX {
        facts.push(format!("memory budget: {}", memory::gib(budget)));
    }
    let mut opts = run::Options::new(&args.out);
    opts.run_dir.clone_from(&run_dir);
    opts.jobs = args.jobs;
    opts.budget_bytes = budget;
    opts.resume = args.resume;
    opts.heatmap = args.heatmap;
    opts.dicom_sr = args.dicom_sr;
    opts.dicom_seg = args.dicom_seg;
    opts.thumbnails = if args.thumbnails {
        args.thumbnails_top
    } else {
        0
    };
    opts.report = args.report;
    opts.facts = facts;
    opts.strict_skips = args.strict_skips;
    install_signal_handler();
    let bar = ProgressBar::new(!args.no_progress);
    let result = run::run(&mine, engine.as_ref(), &opts, &INTERRUPTED, &bar)?;
    eprintln!(
        "speck scan: {} ok ({} from an earlier run), {} failed, {} skipped (not CT image \
         series){}; outputs in {}",
        result.ok + result.resumed,
        result.resumed,
        result.failed,
        result.skipped,
        if result.interrupted {
            format!(", interrupted with {} not started", result.not_started)
        } else {
            String::new()
        },
        run_dir.display()
    );
    if result.failed > 0 || (args.strict_skips && result.skipped > 0) {
        eprintln!(
            "speck scan: the failures and their reasons are in {}",
            run_dir.join("errors.csv").display()
        );
    }
    if result.skipped > 0 {
        eprintln!(
            "speck scan: what was skipped and why is in {}{}",
            run_dir.join("skipped.csv").display(),
            if args.strict_skips {
                " (failures under --strict-skips)"
            } else {
                ""
            }
        );
    }
    if result.interrupted {
        eprintln!("speck scan: rerun the same command with --resume to finish");
    }
    if !shard.is_split() && !result.earlier.is_empty() {
        let shown: Vec<&str> = result.earlier.iter().take(5).map(String::as_str).collect();
        let more = if result.earlier.len() > shown.len() {
            ", ..."
        } else {
            ""
        };
        tracing::warn!(
            "{} also holds {} complete scan folder(s) of earlier runs ({}{more}); summary.csv, \
             candidates.csv and the report list them too. Scan into a new --out for files that \
             describe one run",
            args.out.join("scans").display(),
            result.earlier.len(),
            shown.join(", ")
        );
    }
    if !shard.is_split() {
        let listed: std::collections::BTreeSet<&str> = all
            .iter()
            .filter(|i| !matches!(i.plan, discover::Plan::Skip { .. }))
            .map(|i| i.id.as_str())
            .chain(result.earlier.iter().map(String::as_str))
            .collect();
        let others = outdir::earlier_scan_folders(&args.out, &listed);
        if !others.is_empty() {
            let shown: Vec<&str> = others.iter().take(5).map(String::as_str).collect();
            let more = if others.len() > shown.len() {
                ", ..."
            } else {
                ""
            };
            tracing::warn!(
                "{} also holds {} scan folder(s) of earlier runs that this run's summary.csv and \
                 candidates.csv do not list ({}{more}): written by an older Speck, interrupted, or \
                 sharing a seriesuid with a scan listed; rescan them, or scan into a new --out",
                args.out.join("scans").display(),
                others.len(),
                shown.join(", ")
            );
        }
    }
    Ok(if result.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if result.failed > 0 || (args.strict_skips && result.skipped > 0) {
        ExitCode::from(EXIT_SOME_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// The progress bar of a run, drawn on stderr when it is a terminal (and not turned off).
pub struct ProgressBar(indicatif::ProgressBar);

impl ProgressBar {
    /// A bar, hidden unless `enabled` and stderr is a terminal.
    pub fn new(enabled: bool) -> Self {
        use std::io::IsTerminal as _;
        if !enabled || !std::io::stderr().is_terminal() {
            return Self(indicatif::ProgressBar::hidden());
        }
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} scans ({msg}) ETA {eta}",
        ) {
            bar.set_style(style);
        }
        bar.set_message("0 ok, 0 failed");
        Self(bar)
    }
}

impl run::Observer for ProgressBar {
    fn start(&self, scans: usize) {
        self.0.set_length(scans as u64);
        if !self.0.is_hidden() {
            self.0
                .enable_steady_tick(std::time::Duration::from_millis(250));
        }
    }

    fn scan_progress(&self, scan_id: &str, fraction: f32, ok: usize, failed: usize) {
        // Ids are ASCII (safe names), so any byte offset is a char boundary.
        let short = &scan_id[scan_id.len().saturating_sub(24)..];
        self.0.set_message(format!(
            "{ok} ok, {failed} failed; {short} {:.0}%",
            fraction * 100.0
        ));
    }

    fn scan_done(&self, ok: usize, failed: usize) {
        self.0.set_message(format!("{ok} ok, {failed} failed"));
        self.0.inc(1);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
