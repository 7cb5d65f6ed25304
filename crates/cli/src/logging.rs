//! Logs on stderr: plain `warning: ...` lines for users, timestamps and module paths with `-v`,
//! colour only on a terminal (or when asked for), each warning once.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// Whether to colour stderr: `CLICOLOR_FORCE` (not `0`) forces it; otherwise only on a terminal,
/// and never with `NO_COLOR` (any non-empty value) or `CLICOLOR=0` (<https://no-color.org>,
/// <https://bixense.com/clicolors/>).
pub fn colour(stderr_is_terminal: bool, var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    if set("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
        return true;
    }
    stderr_is_terminal && set("NO_COLOR").is_none() && set("CLICOLOR").is_none_or(|v| v != "0")
}

/// Install the subscriber: `verbose` 0 gives warnings as plain `warning: message (key=value)`
/// lines; 1 and more add info/debug (trace) events with a timestamp, level and module path.
/// `RUST_LOG` overrides the levels, not the format.
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,speck=debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = colour(std::io::stderr().is_terminal(), |k| std::env::var(k).ok());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let fmt = if verbose == 0 {
        fmt.event_format(Plain { ansi }).boxed()
    } else {
        fmt.boxed()
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(Once::default())
        .with(fmt)
        .init();
}

/// Drops a warning from ONNX Runtime's set-up (`speck_detect::runtime`: library, device
/// fallback) identical (level, message and fields) to one already shown: the same fallback,
/// reported once per model loaded, is said once. Warnings about scans are all kept, since two
/// scans may have the same problem.
#[derive(Default)]
struct Once {
    seen: Mutex<HashSet<String>>,
}

impl<S: Subscriber> Layer<S> for Once {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() > Level::WARN || meta.target() != "speck_detect::runtime" {
            return true;
        }
        let mut key = Line::default();
        event.record(&mut key);
        let key = format!(
            "{} {} {}",
            event.metadata().level(),
            key.message,
            key.fields
        );
        self.seen.lock().map_or(true, |mut seen| seen.insert(key))
    }
}

/// An event's message and its other fields as ` (key=value, ...)`.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let sep = if self.fields.is_empty() { "" } else { ", " };
            let _ = write!(self.fields, "{sep}{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

/// `warning: message (key=value)`: what a user reads, no timestamp or module path.
struct Plain {
    ansi: bool,
}

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let (label, colour) = match *event.metadata().level() {
            Level::ERROR => ("error", "31"),
            Level::WARN => ("warning", "33"),
            Level::INFO => ("info", "32"),
            Level::DEBUG => ("debug", "34"),
            Level::TRACE => ("trace", "35"),
        };
        let mut line = Line::default();
        event.record(&mut line);
        if self.ansi {
            write!(w, "\x1b[1;{colour}m{label}\x1b[0m: {}", line.message)?;
        } else {
            write!(w, "{label}: {}", line.message)?;
        }
        if !line.fields.is_empty() {
            write!(w, " ({})", line.fields)?;
        }
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colour_follows_the_terminal_and_the_conventions() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_string())
            }
        };
        assert!(colour(true, env(&[])));
        assert!(!colour(false, env(&[])));
        assert!(!colour(true, env(&[("NO_COLOR", "1")])));
        assert!(colour(true, env(&[("NO_COLOR", "")])));
        assert!(!colour(true, env(&[("CLICOLOR", "0")])));
        assert!(colour(false, env(&[("CLICOLOR_FORCE", "1")])));
        assert!(!colour(false, env(&[("CLICOLOR_FORCE", "0")])));
    }
}
