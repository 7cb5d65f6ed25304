//! The `speck` command line.

use clap::{Parser, Subcommand};

mod cmd;
mod scan;

/// Speck: find tiny lung nodules in CT scans.
#[derive(Parser)]
#[command(name = "speck", version, about, long_about = None)]
struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print what a DICOM folder, NIfTI or MetaImage file holds.
    Info(cmd::info::Args),
    /// Generate a synthetic chest CT with nodules of known size.
    Phantom(cmd::phantom::Args),
    /// Score candidates against annotations: FROC/CPM, per nodule size.
    Eval(Box<cmd::eval::Args>),
    /// Detect nodules in DICOM/NIfTI/MetaImage scans: per-scan and combined outputs.
    Scan(Box<cmd::scan::Args>),
    /// Combine the outputs of `speck scan` shards into one set of files.
    Merge(cmd::merge::Args),
    /// Phantom -> scan -> evaluation with the bundled models: the per-size table in one command.
    Demo(Box<cmd::demo::Args>),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let result = match cli.command {
        Command::Info(a) => cmd::info::run(a),
        Command::Phantom(a) => cmd::phantom::run(a),
        Command::Eval(a) => cmd::eval::run(*a),
        Command::Scan(a) => cmd::scan::run(*a),
        Command::Merge(a) => cmd::merge::run(a),
        Command::Demo(a) => cmd::demo::run(*a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info,speck=debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
