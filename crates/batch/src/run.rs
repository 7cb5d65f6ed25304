//! The batch runner: scans items in parallel within a memory budget, writes each scan's outputs
//! atomically with its `scan.json` last, records every failure, and builds
//! the run-level files from the per-scan ones (so a resumed run loses nothing that an earlier one
//! finished).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::discover::{Item, Plan};
use crate::engine::Engine;
use crate::memory::Budget;
use crate::output::{
    self, as_written, CandidateRow, ScanPaths, SkippedRow, Stage, Status, SummaryRow, Tables,
    RECORD_VERSION, SECONDS_DECIMALS,
};
use crate::process::{failed, failed_quietly, path_str, process, Outcome, NOT_STARTED};
use crate::report::{self, ReportFormat};
use crate::{atomic, names, BatchError};

/// How to run. [`Options::new`] gives the defaults (one scan at a time, no memory budget, no
/// extra outputs, an HTML report); set the fields to change them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The output folder (`--out`); per-scan outputs go to `scans/<id>/` under it.
    pub out: PathBuf,
    /// Where the run-level files go (`out`, or `out/shards/K-of-N` for a shard).
    pub run_dir: PathBuf,
    /// Scans processed at once.
    pub jobs: usize,
    /// Memory budget in bytes for all scans in flight.
    pub budget_bytes: u64,
    /// Skip scans whose outputs are complete.
    pub resume: bool,
    /// Write the heatmap as NIfTI.
    pub heatmap: bool,
    /// Write a DICOM measurement report (`sr.dcm`) for each DICOM series.
    pub dicom_sr: bool,
    /// Write a DICOM segmentation (`seg.dcm`) for each DICOM series.
    pub dicom_seg: bool,
    /// Thumbnails for this many top candidates per scan (0: none).
    pub thumbnails: usize,
    /// Report format.
    pub report: ReportFormat,
    /// Lines describing the run, for the report.
    pub facts: Vec<String>,
    /// Count skipped items as failures too (`--strict-skips`): each also gets an `errors.csv`
    /// row, stage `skipped`.
    pub strict_skips: bool,
}

impl Options {
    /// The defaults for a run into `out` (also its `run_dir`).
    pub fn new(out: impl Into<PathBuf>) -> Self {
        let out = out.into();
        Self {
            run_dir: out.clone(),
            out,
            jobs: 1,
            budget_bytes: u64::MAX,
            resume: false,
            heatmap: false,
            dicom_sr: false,
            dicom_seg: false,
            thumbnails: 0,
            report: ReportFormat::Html,
            facts: Vec::new(),
            strict_skips: false,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RunResult {
    /// Scans that succeeded in this run.
    pub ok: usize,
    /// Scans skipped because an earlier run completed them.
    pub resumed: usize,
    /// Items that failed.
    pub failed: usize,
    /// Items skipped: not CT image series (`skipped.csv`).
    pub skipped: usize,
    /// Items not started because the run was interrupted.
    pub not_started: usize,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// Complete scan folders of earlier runs (not among this run's inputs) that the run-level
    /// files list too (unsharded runs only), by scan id.
    pub earlier: Vec<String>,
}

/// Follows a run as it goes (a progress bar, say). Every method does nothing by default; `()`
/// is the observer that watches nothing. Called from the worker threads.
pub trait Observer: Sync {
    /// The run starts, with `scans` scans to do.
    fn start(&self, scans: usize) {
        let _ = scans;
    }

    /// Scan `scan_id` is `fraction` (`[0, 1]`) done; `ok` and `failed` count the scans
    /// finished so far.
    fn scan_progress(&self, scan_id: &str, fraction: f32, ok: usize, failed: usize) {
        let _ = (scan_id, fraction, ok, failed);
    }

    /// A scan finished; `ok` and `failed` count the scans finished so far.
    fn scan_done(&self, ok: usize, failed: usize) {
        let _ = (ok, failed);
    }

    /// No scan is left running (the run files are written next).
    fn finish(&self) {}
}

impl Observer for () {}

/// What every scan of a run shares.
pub(crate) struct Ctx<'a> {
    pub(crate) engine: &'a dyn Engine,
    pub(crate) models: serde_json::Value,
    pub(crate) opts: &'a Options,
    pub(crate) budget: Budget,
    pub(crate) interrupted: &'a AtomicBool,
}

/// `v` to `decimals` decimals, so JSON shows `0.7`, not `0.699999988079071` (an `f32` widened).
pub fn round_to(v: f64, decimals: i32) -> f64 {
    let k = 10f64.powi(decimals);
    let r = (v * k).round() / k;
    if r.is_finite() {
        r + 0.0
    } else {
        v
    }
}

/// Run every item: returns the counts. Run-level files are written even when interrupted (set
/// `interrupted` to stop starting scans; those in flight finish).
///
/// # Errors
/// Only when an output folder cannot be created or a run-level file cannot be written (per-scan
/// problems are recorded, not returned).
pub fn run(
    items: &[Item],
    engine: &dyn Engine,
    opts: &Options,
    interrupted: &AtomicBool,
    observer: &dyn Observer,
) -> Result<RunResult, BatchError> {
    let (skips, planned): (Vec<&Item>, Vec<&Item>) = items
        .iter()
        .partition(|i| matches!(i.plan, Plan::Skip { .. }));
    let items = planned;
    std::fs::create_dir_all(opts.out.join("scans"))
        .map_err(BatchError::io("cannot create", &opts.out))?;
    std::fs::create_dir_all(&opts.run_dir)
        .map_err(BatchError::io("cannot create", &opts.run_dir))?;
    atomic::sweep_stale_temps(&opts.run_dir);

    let ctx = Ctx {
        engine,
        models: engine.describe(),
        opts,
        budget: Budget::new(opts.budget_bytes),
        interrupted,
    };
    let outcomes = scan_all(&items, &ctx, observer);
    let mut result = RunResult {
        interrupted: interrupted.load(Ordering::SeqCst),
        ..RunResult::default()
    };
    let mut t = Tables::default();
    for (i, o) in outcomes.into_iter().enumerate() {
        match o {
            None => {
                result.not_started += 1;
                // Listed as failed (stage `interrupted`), so that the run's files, and a merge of
                // shards, show that the scan is missing.
                if let Some(Outcome::Failed { summary: s, error }) = items
                    .get(i)
                    .map(|item| failed_quietly(item, Stage::Interrupted, NOT_STARTED.into(), 0.0))
                {
                    t.summary.push(s);
                    t.errors.push(error);
                }
            }
            Some(Outcome::Done {
                summary: s,
                rows,
                resumed,
            }) => {
                if resumed {
                    result.resumed += 1;
                } else {
                    result.ok += 1;
                }
                t.summary.push(s);
                t.candidates.extend(rows);
            }
            Some(Outcome::Failed { summary: s, error }) => {
                result.failed += 1;
                t.summary.push(s);
                t.errors.push(error);
            }
        }
    }
    if opts.run_dir == opts.out {
        let ours: std::collections::BTreeSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
        // seriesuid is what `speck eval` matches on: an earlier scan whose seriesuid one of this
        // run's scans (or another earlier one) already has would merge two scans into one there,
        // so it is left out (and named by the caller).
        let mut uids: std::collections::BTreeSet<String> =
            t.summary.iter().map(|s| s.seriesuid.clone()).collect();
        for (s, rows) in earlier_scans(&opts.out, &ours) {
            if !uids.insert(s.seriesuid.clone()) {
                continue;
            }
            result.earlier.push(s.scan_id.clone());
            t.summary.push(s);
            t.candidates.extend(rows);
        }
    }
    for item in &skips {
        let Plan::Skip { reason } = &item.plan else {
            continue;
        };
        result.skipped += 1;
        t.skipped.push(skipped_row(item, reason));
        if opts.strict_skips {
            if let Outcome::Failed { error, .. } = failed(
                item,
                Stage::Skipped,
                format!("not a CT image series (--strict-skips): {reason}"),
                0.0,
            ) {
                t.errors.push(error);
            }
        } else {
            tracing::info!("{}: skipped: {reason}", item.source.display());
        }
    }
    t.sort();
    t.write(&opts.run_dir)?;
    let mut facts = opts.facts.clone();
    facts.push(format!(
        "{} scan(s) ok ({} from an earlier run), {} failed, {} skipped (not CT image series{}){}",
        result.ok + result.resumed,
        result.resumed,
        result.failed,
        result.skipped,
        if opts.strict_skips {
            "; failures under --strict-skips"
        } else {
            ""
        },
        if result.interrupted {
            format!(", interrupted with {} not started", result.not_started)
        } else {
            String::new()
        }
    ));
    write_report(
        &opts.out,
        &opts.run_dir,
        opts.report,
        opts.thumbnails.max(5),
        facts,
        &t,
    )?;
    Ok(result)
}

/// Scan `items` on `ctx.opts.jobs` threads; `None` for the items an interruption left unstarted
/// (or stopped at the memory gate).
fn scan_all(items: &[&Item], ctx: &Ctx<'_>, observer: &dyn Observer) -> Vec<Option<Outcome>> {
    observer.start(items.len());
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Option<Outcome>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    let (n_ok, n_failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let jobs = ctx.opts.jobs.clamp(1, items.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                if ctx.interrupted.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&item) = items.get(i) else { break };
                let show = |f: f32| {
                    observer.scan_progress(
                        &item.id,
                        f,
                        n_ok.load(Ordering::SeqCst),
                        n_failed.load(Ordering::SeqCst),
                    );
                };
                let outcome = process(item, ctx, &show);
                if matches!(outcome, Outcome::Failed { ref error, .. } if error.stage == Stage::Interrupted)
                {
                    break;
                }
                match &outcome {
                    Outcome::Done { .. } => n_ok.fetch_add(1, Ordering::SeqCst),
                    Outcome::Failed { .. } => n_failed.fetch_add(1, Ordering::SeqCst),
                };
                if let Ok(mut o) = outcomes.lock() {
                    o[i] = Some(outcome);
                }
                observer.scan_done(n_ok.load(Ordering::SeqCst), n_failed.load(Ordering::SeqCst));
            });
        }
    });
    observer.finish();
    outcomes
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `skipped.csv` line of a skipped item.
fn skipped_row(item: &Item, reason: &crate::discover::SkipReason) -> SkippedRow {
    SkippedRow {
        input: path_str(&item.source),
        series: item.series.clone().unwrap_or_default(),
        kind: reason.kind().into(),
        reason: reason.to_string(),
        patient_id: item.patient_id.clone().unwrap_or_default(),
        study_uid: item.study_uid.clone().unwrap_or_default(),
    }
}

/// Complete scans under `out/scans/` that are not in `ours` (folders of earlier runs into the same
/// `--out`): their summary rows and candidates, read back from their own `scan.json` and
/// `candidates.csv`, so that an unsharded run's files describe every scan folder present. A folder
/// whose record or candidates do not read back (an older record version, a half-written scan) is
/// left out; the caller names such folders.
fn earlier_scans(
    out: &Path,
    ours: &std::collections::BTreeSet<&str>,
) -> Vec<(SummaryRow, Vec<CandidateRow>)> {
    let Ok(rd) = std::fs::read_dir(out.join("scans")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in rd.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if ours.contains(id.as_str()) || !names::is_safe_component(&id) {
            continue;
        }
        let paths = ScanPaths::new(out, &id);
        let Some(rec) = output::read_record(&paths.record) else {
            continue;
        };
        if rec.version != RECORD_VERSION || rec.scan_id != id {
            continue;
        }
        let Ok(rows) = output::read_csv::<CandidateRow>(&paths.candidates) else {
            continue;
        };
        if rows.len() != rec.n_candidates || rows.iter().any(|r| r.scan_id != id) {
            continue;
        }
        let seconds = rec.timings_s.get("total").copied().unwrap_or(0.0);
        found.push((
            SummaryRow {
                scan_id: id,
                seriesuid: rec.seriesuid.clone(),
                status: Status::Ok,
                n_candidates: rows.len(),
                seconds: as_written(seconds, SECONDS_DECIMALS),
                format: rec.format.clone(),
                source: rec.source.clone(),
                patient_id: rec.patient_id.clone().unwrap_or_default(),
                study_uid: rec.study_uid.clone().unwrap_or_default(),
            },
            rows,
        ));
    }
    found.sort_by(|a, b| a.0.scan_id.cmp(&b.0.scan_id));
    found
}

/// Write `report.html`/`report.md` into `run_dir`, linking thumbnails under `out/scans/`, with
/// the `top` candidates of each scan.
///
/// # Errors
/// When the report cannot be written.
pub fn write_report(
    out: &Path,
    run_dir: &Path,
    format: ReportFormat,
    top: usize,
    facts: Vec<String>,
    tables: &Tables,
) -> Result<(), BatchError> {
    let (name, render): (&str, fn(&report::ReportData<'_>) -> String) = match format {
        ReportFormat::None => return Ok(()),
        ReportFormat::Html => ("report.html", report::html),
        ReportFormat::Md => ("report.md", report::markdown),
    };
    let mut by_scan: BTreeMap<&str, Vec<&CandidateRow>> = BTreeMap::new();
    for c in &tables.candidates {
        by_scan.entry(c.scan_id.as_str()).or_default().push(c);
    }
    let rel_prefix = relative_prefix(run_dir, out);
    let scans = tables
        .summary
        .iter()
        .map(|s| {
            let mut cands = by_scan.remove(s.scan_id.as_str()).unwrap_or_default();
            cands.sort_by_key(|c| c.rank);
            let paths = ScanPaths::new(out, &s.scan_id);
            let safe = names::is_safe_component(&s.scan_id);
            let thumbnails = cands
                .iter()
                .map(|c| {
                    (safe && paths.thumbnail(c.rank).is_file()).then(|| {
                        format!(
                            "{rel_prefix}scans/{}/thumbnails/candidate-{:03}.png",
                            s.scan_id, c.rank
                        )
                    })
                })
                .collect();
            report::ReportScan {
                summary: s,
                candidates: cands,
                thumbnails,
            }
        })
        .collect();
    let data = report::ReportData {
        title: "Speck scan report".into(),
        facts,
        scans,
        errors: &tables.errors,
        skipped: &tables.skipped,
        top,
    };
    let path = run_dir.join(name);
    atomic::write_atomic(&path, render(&data).as_bytes())
        .map_err(BatchError::io("cannot write", &path))
}

/// `../../` from `run_dir` back to `out` (run_dir is `out` or `out/shards/K-of-N`).
fn relative_prefix(run_dir: &Path, out: &Path) -> String {
    match run_dir.strip_prefix(out) {
        Ok(rel) => "../".repeat(rel.components().count()),
        Err(_) => String::new(),
    }
}
