//! One module per subcommand; each has an `Args` (clap) and a `run` returning an exit code.

pub mod demo;
pub mod eval;
pub mod info;
pub mod merge;
pub mod phantom;
pub mod scan;
