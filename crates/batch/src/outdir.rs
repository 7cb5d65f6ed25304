//! The output folder of a run: whether a folder holds Speck output, so that a mistyped `--out`
//! never mixes results into unrelated files, and which scan folders earlier runs left there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::atomic::TEMP_PREFIX;
use crate::output::SUMMARY_COLUMNS;
use crate::BatchError;

/// True for what a run leaves in its `--out` folder: `summary.csv` with Speck's header, `scans/`
/// (empty, or with a scan folder holding `scan.json`, `candidates.csv` or a temporary file), or
/// `shards/K-of-N/`.
pub fn is_speck_output(dir: &Path) -> bool {
    // Files written before the study columns existed have the first seven.
    let summary_header = SUMMARY_COLUMNS[..7].join(",");
    let summary_ok = std::fs::read_to_string(dir.join("summary.csv")).is_ok_and(|t| {
        t.lines()
            .next()
            .is_some_and(|l| l.starts_with(&summary_header))
    });
    let scan_dir_ok = |d: &Path| {
        d.join("scan.json").is_file()
            || d.join("candidates.csv").is_file()
            || std::fs::read_dir(d).is_ok_and(|mut rd| {
                rd.any(|e| {
                    e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
                })
            })
    };
    let scans_ok = std::fs::read_dir(dir.join("scans")).is_ok_and(|rd| {
        let entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.is_empty() || entries.iter().any(|p| p.is_dir() && scan_dir_ok(p))
    });
    let shards_ok = std::fs::read_dir(dir.join("shards")).is_ok_and(|mut rd| {
        rd.any(|e| {
            e.is_ok_and(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.split_once("-of-").is_some_and(|(k, n)| {
                    !k.is_empty()
                        && !n.is_empty()
                        && k.bytes().chain(n.bytes()).all(|b| b.is_ascii_digit())
                })
            })
        })
    });
    summary_ok || scans_ok || shards_ok
}

/// Refuse an existing output folder that holds anything (temporary files of a killed run aside)
/// but no Speck output.
///
/// # Errors
/// [`BatchError::ForeignFolder`], naming up to three of the entries it holds.
pub fn refuse_foreign_folder(out: &Path) -> Result<(), BatchError> {
    let Ok(rd) = std::fs::read_dir(out) else {
        return Ok(()); // absent (created later), or unreadable (reported when created)
    };
    let foreign: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(TEMP_PREFIX))
        .collect();
    if foreign.is_empty() || is_speck_output(out) {
        return Ok(());
    }
    let mut shown: Vec<&str> = foreign.iter().map(String::as_str).collect();
    shown.sort_unstable();
    let more = shown.len().saturating_sub(3);
    shown.truncate(3);
    Err(BatchError::ForeignFolder {
        path: out.to_path_buf(),
        listed: format!(
            "{}{}",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ),
    })
}

/// The scan folders under `out/scans/` (those holding a `scan.json`) whose id is not `listed`,
/// sorted.
pub fn earlier_scan_folders(out: &Path, listed: &BTreeSet<&str>) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(out.join("scans")) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .filter(|e| e.path().join("scan.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !listed.contains(n.as_str()))
        .collect();
    v.sort();
    v
}
