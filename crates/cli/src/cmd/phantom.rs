//! `speck phantom` (not yet implemented).

use std::process::ExitCode;

/// Arguments of `speck phantom`.
#[derive(clap::Args)]
pub struct Args {}

/// Run `speck phantom`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("speck phantom is not implemented yet")
}
