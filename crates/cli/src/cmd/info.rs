//! `speck info` (not yet implemented).

use std::process::ExitCode;

/// Arguments of `speck info`.
#[derive(clap::Args)]
pub struct Args {}

/// Run `speck info`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("speck info is not implemented yet")
}
