//! `speck merge DIR... [--out DIR]`: combine the outputs of `speck scan` shards (or of several
//! runs) into one `candidates.csv`, `summary.csv`, `errors.csv`, `skipped.csv`, `studies.csv`
//! and report.
//!
//! Each `DIR` may be a run folder (holding `summary.csv`) or the `--out` of sharded runs (holding
//! `shards/K-of-N/summary.csv`); both are searched. Missing shards (a `K-of-N` set with a gap) are
//! reported and make the exit code 1.

use std::path::PathBuf;
use std::process::ExitCode;

use speck_batch::report::ReportFormat;

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

/// Run `speck merge`.
///
/// # Errors
/// When a folder holds no `speck scan` outputs, or a file cannot be read or written.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let out = args.out.clone().unwrap_or_else(|| args.dirs[0].clone());
    let m = speck_batch::merge::merge(&args.dirs, &out, args.report)?;
    let n_failed = m.n_failed();
    let t = &m.tables;
    eprintln!(
        "speck merge: {} run folder(s), {} scan(s) ok, {} failed, {} skipped, {} candidate(s) \
         -> {}",
        m.run_dirs.len(),
        t.summary.len() - n_failed,
        n_failed,
        t.skipped.len(),
        t.candidates.len(),
        out.display()
    );
    if !m.missing.is_empty() {
        eprintln!("speck merge: missing shards: {}", m.missing.join(", "));
    }
    Ok(if n_failed > 0 || !m.missing.is_empty() {
        ExitCode::from(super::scan::EXIT_SOME_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
