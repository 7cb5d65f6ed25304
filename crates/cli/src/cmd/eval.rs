//! `speck eval` (not yet implemented).

use std::process::ExitCode;

/// Arguments of `speck eval`.
#[derive(clap::Args)]
pub struct Args {}

/// Run `speck eval`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("speck eval is not implemented yet")
}
