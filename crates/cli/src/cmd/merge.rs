//! `speck merge DIR... [--out DIR]`: combine the outputs of `speck scan` shards (or of several
//! runs) into one `candidates.csv`, `summary.csv`, `errors.csv`, `skipped.csv`, `studies.csv`
//! and report.
//!
//! Each `DIR` may be a run folder (holding `summary.csv`) or the `--out` of sharded runs (holding
//! `shards/K-of-N/summary.csv`); both are searched. Missing shards (a `K-of-N` set with a gap) are
//! reported and make the exit code 1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::scan::output::{
    self, CandidateRow, ErrorRow, SkippedRow, SummaryRow, CANDIDATE_COLUMNS, ERROR_COLUMNS,
    SKIPPED_COLUMNS, STUDY_COLUMNS, SUMMARY_COLUMNS,
};
use crate::scan::report::ReportFormat;
use crate::scan::run;

/// Arguments of `speck merge`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Output folders of `speck scan` (run folders, or folders holding `shards/`).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Where to write the merged files; default: the first DIR.
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value = "html")]
    pub report: ReportFormat,
}

/// The run folders under `dir`: `dir` itself and `dir/shards/*`, each when it has `summary.csv`.
fn run_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if dir.join("summary.csv").is_file() {
        out.push(dir.to_path_buf());
    }
    if let Ok(rd) = std::fs::read_dir(dir.join("shards")) {
        let mut shards: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("summary.csv").is_file())
            .collect();
        shards.sort();
        out.extend(shards);
    }
    out
}

/// Parse `K-of-N`.
fn shard_of(dir: &Path) -> Option<(u32, u32)> {
    let name = dir.file_name()?.to_str()?;
    let (k, n) = name.split_once("-of-")?;
    Some((k.parse().ok()?, n.parse().ok()?))
}

/// Shards missing from the `K-of-N` sets found.
fn missing_shards(dirs: &[PathBuf]) -> Vec<String> {
    let mut sets: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for d in dirs {
        if let Some((k, n)) = shard_of(d) {
            sets.entry(n).or_default().insert(k);
        }
    }
    let mut missing = Vec::new();
    for (n, have) in sets {
        for k in 0..n {
            if !have.contains(&k) {
                missing.push(format!("{k}-of-{n}"));
            }
        }
    }
    missing
}

/// Run `speck merge`.
///
/// # Errors
/// When a folder holds no `speck scan` outputs, or a file cannot be read or written.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut dirs = Vec::new();
    for d in &args.dirs {
        let found = run_dirs(d);
        if found.is_empty() {
            anyhow::bail!(
                "{}: no speck scan outputs (summary.csv, or shards/*/summary.csv) found",
                d.display()
            );
        }
        dirs.extend(found);
    }
    let missing = missing_shards(&dirs);
    let mut candidates: Vec<CandidateRow> = Vec::new();
    let mut summary: BTreeMap<String, SummaryRow> = BTreeMap::new();
    let mut errors: Vec<ErrorRow> = Vec::new();
    let mut skipped: Vec<SkippedRow> = Vec::new();
    for d in &dirs {
        // Run folders of a Speck from before skipped.csv have none.
        let k = d.join("skipped.csv");
        if k.is_file() {
            let rows: Vec<SkippedRow> =
                output::read_csv(&k).with_context(|| format!("reading {}", k.display()))?;
            skipped.extend(rows);
        }
        let c: Vec<CandidateRow> = output::read_csv(&d.join("candidates.csv"))
            .with_context(|| format!("reading {}", d.join("candidates.csv").display()))?;
        let s: Vec<SummaryRow> = output::read_csv(&d.join("summary.csv"))
            .with_context(|| format!("reading {}", d.join("summary.csv").display()))?;
        let e: Vec<ErrorRow> = output::read_csv(&d.join("errors.csv"))
            .with_context(|| format!("reading {}", d.join("errors.csv").display()))?;
        candidates.extend(c);
        errors.extend(e);
        for row in s {
            // The same scan in two runs: a success wins over a failure, a later run over an
            // earlier one.
            let keep_old = summary
                .get(&row.scan_id)
                .is_some_and(|old| old.status == "ok" && row.status != "ok");
            if !keep_old {
                summary.insert(row.scan_id.clone(), row);
            }
        }
    }
    // Keep only the candidates and errors of the rows kept, without duplicates.
    let ok: BTreeSet<&str> = summary
        .values()
        .filter(|s| s.status == "ok")
        .map(|s| s.scan_id.as_str())
        .collect();
    let mut seen = BTreeSet::new();
    candidates
        .retain(|c| ok.contains(c.scan_id.as_str()) && seen.insert((c.scan_id.clone(), c.rank)));
    let mut seen = BTreeSet::new();
    errors.retain(|e| {
        !ok.contains(e.scan_id.as_str())
            && seen.insert((e.scan_id.clone(), e.input.clone(), e.series.clone()))
    });
    let mut seen = BTreeSet::new();
    skipped.retain(|k| seen.insert((k.input.clone(), k.series.clone(), k.kind.clone())));
    output::sort_skipped(&mut skipped);
    let mut summary: Vec<SummaryRow> = summary.into_values().collect();
    output::sort_candidates(&mut candidates);
    output::sort_summary(&mut summary);
    output::sort_errors(&mut errors);

    let out = args.out.clone().unwrap_or_else(|| args.dirs[0].clone());
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    output::write_csv(&out.join("candidates.csv"), &CANDIDATE_COLUMNS, &candidates)?;
    output::write_csv(&out.join("summary.csv"), &SUMMARY_COLUMNS, &summary)?;
    output::write_csv(&out.join("errors.csv"), &ERROR_COLUMNS, &errors)?;
    output::write_csv(&out.join("skipped.csv"), &SKIPPED_COLUMNS, &skipped)?;
    output::write_csv(
        &out.join("studies.csv"),
        &STUDY_COLUMNS,
        &output::studies(&summary, &skipped),
    )?;
    let n_failed = summary.iter().filter(|s| s.status != "ok").count();
    let mut facts = vec![
        format!("merged from {} run folder(s)", dirs.len()),
        format!(
            "{} scan(s) ok, {} failed, {} skipped (not CT image series), {} candidate(s)",
            summary.len() - n_failed,
            n_failed,
            skipped.len(),
            candidates.len()
        ),
    ];
    if !missing.is_empty() {
        facts.push(format!("missing shards: {}", missing.join(", ")));
    }
    // Thumbnails are linked when the merged folder is the one holding `scans/`.
    run::write_report(
        &out,
        &out,
        args.report,
        10,
        facts,
        &summary,
        &candidates,
        &errors,
        &skipped,
    )?;
    eprintln!(
        "speck merge: {} run folder(s), {} scan(s) ok, {} failed, {} skipped, {} candidate(s) \
         -> {}",
        dirs.len(),
        summary.len() - n_failed,
        n_failed,
        skipped.len(),
        candidates.len(),
        out.display()
    );
    if !missing.is_empty() {
        eprintln!("speck merge: missing shards: {}", missing.join(", "));
    }
    Ok(if n_failed > 0 || !missing.is_empty() {
        ExitCode::from(super::scan::EXIT_SOME_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_shards_are_named() {
        let dirs = vec![
            PathBuf::from("/o/shards/0-of-3"),
            PathBuf::from("/o/shards/2-of-3"),
            PathBuf::from("/o"),
        ];
        assert_eq!(missing_shards(&dirs), vec!["1-of-3".to_string()]);
        assert!(missing_shards(&[PathBuf::from("/o/shards/0-of-1")]).is_empty());
    }
}
