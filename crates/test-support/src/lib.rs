//! Helpers shared by Speck's test suites. Only `[dev-dependencies]` name this crate.

use std::path::Path;
use std::process::Command;

/// What dicom3tools' `dciodvfy` says of one DICOM file.
#[derive(Debug, Clone)]
pub struct Dciodvfy {
    /// Its whole output (stdout, then stderr).
    pub report: String,
}

impl Dciodvfy {
    /// Run `dciodvfy FILE`; `None` when dicom3tools is not installed (the caller skips).
    pub fn run(path: &Path) -> Option<Self> {
        let out = Command::new("dciodvfy").arg(path).output().ok()?;
        Some(Self {
            report: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }

    /// The report's `Error` lines (warnings are not errors).
    pub fn errors(&self) -> Vec<&str> {
        self.report
            .lines()
            .filter(|l| l.starts_with("Error"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_error_lines_count() {
        let d = Dciodvfy {
            report: "Warning - something optional\nError - Missing attribute Type 1\nSR\n".into(),
        };
        assert_eq!(d.errors(), vec!["Error - Missing attribute Type 1"]);
    }
}
