//! Combine the outputs of `speck scan` shards (or of several runs) into one `candidates.csv`,
//! `summary.csv`, `errors.csv`, `skipped.csv`, `studies.csv` and report.
//!
//! Each folder may be a run folder (holding `summary.csv`) or the `--out` of sharded runs
//! (holding `shards/K-of-N/summary.csv`); both are searched. Missing shards (a `K-of-N` set with
//! a gap) are named in the result.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::output::{read_csv, Status, SummaryRow, Tables};
use crate::report::ReportFormat;
use crate::run::write_report;
use crate::BatchError;

/// What a merge found and wrote.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Merged {
    /// The run folders read.
    pub run_dirs: Vec<PathBuf>,
    /// Shards missing from the `K-of-N` sets found, as `K-of-N`.
    pub missing: Vec<String>,
    /// The merged tables, as written.
    pub tables: Tables,
}

impl Merged {
    /// Scans that failed.
    pub fn n_failed(&self) -> usize {
        self.tables
            .summary
            .iter()
            .filter(|s| s.status != Status::Ok)
            .count()
    }
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

/// Read the rows of `name` in `dir`.
fn read<T: for<'de> serde::Deserialize<'de>>(dir: &Path, name: &str) -> Result<Vec<T>, BatchError> {
    let path = dir.join(name);
    read_csv(&path).map_err(BatchError::io("reading", path))
}

/// The tables of every run folder in `dirs`, merged: the same scan in two runs keeps a success
/// over a failure, a later run over an earlier one; the candidates and errors of the rows kept,
/// without duplicates.
fn merge_tables(dirs: &[PathBuf]) -> Result<Tables, BatchError> {
    let mut t = Tables::default();
    let mut summary: BTreeMap<String, SummaryRow> = BTreeMap::new();
    for d in dirs {
        // Run folders of a Speck from before skipped.csv have none.
        if d.join("skipped.csv").is_file() {
            t.skipped.extend(read(d, "skipped.csv")?);
        }
        let c = read(d, "candidates.csv")?;
        let s: Vec<SummaryRow> = read(d, "summary.csv")?;
        let e = read(d, "errors.csv")?;
        t.candidates.extend(c);
        t.errors.extend(e);
        for row in s {
            // The same scan in two runs: a success wins over a failure, a later run over an
            // earlier one.
            let keep_old = summary
                .get(&row.scan_id)
                .is_some_and(|old| old.status == Status::Ok && row.status != Status::Ok);
            if !keep_old {
                summary.insert(row.scan_id.clone(), row);
            }
        }
    }
    // Keep only the candidates and errors of the rows kept, without duplicates.
    let ok: BTreeSet<&str> = summary
        .values()
        .filter(|s| s.status == Status::Ok)
        .map(|s| s.scan_id.as_str())
        .collect();
    let mut seen = BTreeSet::new();
    t.candidates
        .retain(|c| ok.contains(c.scan_id.as_str()) && seen.insert((c.scan_id.clone(), c.rank)));
    let mut seen = BTreeSet::new();
    t.errors.retain(|e| {
        !ok.contains(e.scan_id.as_str())
            && seen.insert((e.scan_id.clone(), e.input.clone(), e.series.clone()))
    });
    let mut seen = BTreeSet::new();
    t.skipped
        .retain(|k| seen.insert((k.input.clone(), k.series.clone(), k.kind.clone())));
    t.summary = summary.into_values().collect();
    t.sort();
    Ok(t)
}

/// Merge the run folders found under `dirs` into `out` (created): the run-level CSV files and a
/// report in `report` format.
///
/// # Errors
/// [`BatchError::NoRunOutputs`] for a folder holding no `speck scan` outputs;
/// [`BatchError::Io`] for a file that cannot be read or written.
pub fn merge(dirs: &[PathBuf], out: &Path, report: ReportFormat) -> Result<Merged, BatchError> {
    let mut found = Vec::new();
    for d in dirs {
        let here = run_dirs(d);
        if here.is_empty() {
            return Err(BatchError::NoRunOutputs { path: d.clone() });
        }
        found.extend(here);
    }
    let missing = missing_shards(&found);
    let tables = merge_tables(&found)?;
    std::fs::create_dir_all(out).map_err(BatchError::io("cannot create", out))?;
    tables.write(out)?;
    let merged = Merged {
        run_dirs: found,
        missing,
        tables,
    };
    let n_failed = merged.n_failed();
    let t = &merged.tables;
    let mut facts = vec![
        format!("merged from {} run folder(s)", merged.run_dirs.len()),
        format!(
            "{} scan(s) ok, {} failed, {} skipped (not CT image series), {} candidate(s)",
            t.summary.len() - n_failed,
            n_failed,
            t.skipped.len(),
            t.candidates.len()
        ),
    ];
    if !merged.missing.is_empty() {
        facts.push(format!("missing shards: {}", merged.missing.join(", ")));
    }
    // Thumbnails are linked when the merged folder is the one holding `scans/`.
    write_report(out, out, report, 10, facts, t)?;
    Ok(merged)
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
