//! The `speck` command line.

use std::ffi::OsString;

use clap::{CommandFactory as _, Parser, Subcommand};

mod cmd;
mod logging;
mod models;

/// Speck: find tiny lung nodules in CT scans.
#[derive(Parser)]
#[command(name = "speck", version, about, long_about = None)]
struct Cli {
    /// More log output: -v adds progress details (info, and debug for Speck) with timestamps and
    /// module paths, -vv everything. RUST_LOG overrides the levels. Colour only on a terminal
    /// (NO_COLOR, CLICOLOR=0 and CLICOLOR_FORCE=1 are honoured).
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
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(message) = glued_long_option(&Cli::command(), &args) {
        eprintln!("error: {message}");
        return std::process::ExitCode::from(2);
    }
    let cli = Cli::parse_from(args);
    logging::init(cli.verbose);
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

/// A long option written with one dash: clap reads `-out DIR` as `-o` with the value `ut` (and
/// then `DIR` as an input), so `speck scan in -out results` would write into `./ut`. Returns the
/// error to print for the first argument (before `--`) that is a long option of the subcommand
/// after a single dash (`-out`, `-resume`), or that starts with the long name of an option whose
/// short flag would swallow the rest as its value (`-outdir`).
fn glued_long_option(root: &clap::Command, args: &[OsString]) -> Option<String> {
    let mut options: Vec<&clap::Arg> = root.get_arguments().collect();
    let mut in_subcommand = false;
    for a in args.iter().skip(1).filter_map(|a| a.to_str()) {
        if a == "--" {
            break;
        }
        let Some(body) = a.strip_prefix('-') else {
            if !in_subcommand {
                options.extend(root.find_subcommand(a)?.get_arguments());
                in_subcommand = true;
            }
            continue;
        };
        if body.len() < 2 || body.starts_with('-') {
            continue;
        }
        let name = body.split_once('=').map_or(body, |(n, _)| n);
        for o in &options {
            let Some(long) = o.get_long() else {
                continue;
            };
            if name == long {
                let short = o
                    .get_short()
                    .map(|c| format!(" (a single dash takes one letter: `-{c}`)"))
                    .unwrap_or_default();
                return Some(format!(
                    "`{a}` is not an option: did you mean `--{long}`?{short}"
                ));
            }
            if let Some(c) = o.get_short() {
                if o.get_action().takes_values() && long.len() >= 2 && body.starts_with(long) {
                    return Some(format!(
                        "`{a}` would be read as `-{c} {}`: write `--{long} VALUE`, or `-{c} VALUE` \
                         with a space",
                        &body[c.len_utf8()..]
                    ));
                }
            }
        }
    }
    None
}
