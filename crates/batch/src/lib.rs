//! # speck-batch
//!
//! Speck's batch engine: what `speck scan`, `speck merge` and `speck demo` do, as a library, so a
//! program that embeds Speck can scan an archive the way the command line does.
//!
//! One run goes through these steps, each in its own module:
//!
//! 1. [`discover`]: walk the inputs (DICOM folders, NIfTI/MetaImage files, manifests) into
//!    [`Item`]s, each planned to be scanned, failed (with the reason) or skipped (not a CT image
//!    series); ids are safe, unique folder names ([`names`]).
//! 2. [`shard`]: keep this process's part of the list (`K/N`), deterministically.
//! 3. [`run::run`]: scan the items in parallel within a memory budget ([`memory`]). Each scan is
//!    one pipeline of typed steps: resume check → memory gate → load → detect → write outputs,
//!    the outputs written atomically ([`atomic`]) with `scan.json` last, so that `--resume`
//!    ([`identity`]) trusts only complete folders.
//! 4. The run-level files ([`output`]: `candidates.csv`, `summary.csv`, `errors.csv`,
//!    `skipped.csv`, `studies.csv`) and the [`report`], rebuilt from the per-scan files; shards
//!    are combined by [`merge`].
//!
//! Detection is behind the [`Engine`] trait; [`detector::build`] makes the one backed by
//! [`speck_detect::Detector`]. A per-scan problem (unreadable file, too big for the budget,
//! failed detection) is a row of `errors.csv`, not an error; [`BatchError`] is what stops a run.
//!
//! ```no_run
//! use speck_batch::detector::{self, EngineConfig};
//! use speck_batch::discover::{discover, SeriesPolicy};
//! use speck_batch::run::{run, Options};
//! use speck_detect::models::ModelSearch;
//! use std::path::PathBuf;
//! use std::sync::atomic::AtomicBool;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // The bundled models (SPECK_MODELS_DIR, a models/ folder nearby...), on the CPU.
//!     let engine = detector::build(&EngineConfig::new(ModelSearch::new().locate()?))?;
//!     let out = PathBuf::from("results");
//!     let items = discover(&[PathBuf::from("/data/archive")], &[out.clone()], SeriesPolicy::All);
//!     let result = run(&items, engine.as_ref(), &Options::new(&out), &AtomicBool::new(false), &())?;
//!     println!("{} ok, {} failed: see results/summary.csv", result.ok, result.failed);
//!     Ok(())
//! }
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod atomic;
pub mod detector;
mod dicom;
pub mod discover;
pub mod engine;
mod error;
pub mod identity;
pub mod memory;
pub mod merge;
pub mod names;
pub mod outdir;
pub mod output;
mod process;
pub mod report;
pub mod run;
pub mod shard;
pub mod thumbs;

pub use discover::{Item, Plan, SeriesPolicy};
pub use engine::{Engine, EngineOutput, Found};
pub use error::{chain, BatchError};
pub use process::NOT_STARTED;
pub use report::ReportFormat;
pub use run::{Observer, Options, RunResult};
pub use shard::{Shard, ShardError};
