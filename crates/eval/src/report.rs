//! Output: a terminal table, the FROC curve as CSV, and an SVG plot written by hand.

use std::fmt::Write as _;

use crate::evaluate::{Evaluation, GroupResult, RatePoint};

fn rate_label(r: f64) -> String {
    if r == 0.125 {
        "1/8".into()
    } else if r == 0.25 {
        "1/4".into()
    } else if r == 0.5 {
        "1/2".into()
    } else {
        format!("{r}")
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.3}"))
}

fn fmt_ci(ci: Option<[f64; 2]>) -> String {
    ci.map_or_else(String::new, |[a, b]| format!("[{a:.3}, {b:.3}]"))
}

impl Evaluation {
    /// A readable, fixed-width table of the results (ends with a newline).
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let c = &self.candidates;
        let _ = writeln!(
            s,
            "LUNA16 FROC: {} scans, {} nodules ({} detected at any threshold), {} excluded findings",
            self.n_scans, self.n_nodules, self.n_detected, self.n_excluded_findings
        );
        if self.n_below_min_readers > 0 {
            let _ = writeln!(
                s,
                "  {} nodules marked by fewer than {} readers treated as excluded findings",
                self.n_below_min_readers, self.min_readers
            );
        }
        let _ = writeln!(
            s,
            "candidates: {} read, {} evaluated, {} on nodules ({} duplicate hits ignored), {} on excluded findings (ignored), {} false positives",
            c.candidates, c.evaluated, c.on_nodules, c.duplicate_hits, c.on_excluded, c.false_positives
        );
        if c.over_cap > 0 || c.unknown_series > 0 {
            let _ = writeln!(
                s,
                "  dropped: {} over the cap of {} marks per scan, {} in scans outside the series list",
                c.over_cap,
                self.max_marks_per_scan.map_or_else(|| "no".into(), |m| m.to_string()),
                c.unknown_series
            );
        }
        let ci = if self.bootstrap.resamples > 0 {
            format!(
                "  {:.0}% CI {}  ({} bootstrap resamples of scans, seed {})",
                self.bootstrap.confidence * 100.0,
                fmt_ci(self.cpm_ci95),
                self.bootstrap.resamples,
                self.bootstrap.seed
            )
        } else {
            String::new()
        };
        let _ = writeln!(s, "\nCPM {:.4}{ci}", self.cpm);
        let _ = writeln!(
            s,
            "max sensitivity {:.3} at {:.3} FP/scan\n",
            self.max_sensitivity, self.max_fp_per_scan
        );
        let _ = write!(s, "{:<14}", "FP/scan");
        for p in &self.sensitivity_at_fp {
            let _ = write!(s, "{:>16}", rate_label(p.fp_per_scan));
        }
        let _ = writeln!(s);
        let _ = write!(s, "{:<14}", "sensitivity");
        for p in &self.sensitivity_at_fp {
            let _ = write!(s, "{:>16}", fmt_opt(p.sensitivity));
        }
        let _ = writeln!(s);
        if self.bootstrap.resamples > 0 {
            let _ = write!(s, "{:<14}", "  95% CI");
            for p in &self.sensitivity_at_fp {
                let _ = write!(s, "{:>16}", fmt_ci(p.ci95));
            }
            let _ = writeln!(s);
        }
        let sections: [(&str, Option<&Vec<GroupResult>>); 5] = [
            ("size (voxels)", self.by_size.vox.as_ref()),
            ("size (mm)", Some(&self.by_size.mm)),
            ("density", self.by_density.as_ref()),
            ("attachment", self.by_attachment.as_ref()),
            ("readers", self.by_readers.as_ref()),
        ];
        for (title, groups) in sections {
            let Some(groups) = groups else { continue };
            let _ = writeln!(s);
            let _ = write!(s, "{:<14}{:>6}{:>6}", title, "n", "hit");
            for p in &self.sensitivity_at_fp {
                let _ = write!(s, "{:>7}", rate_label(p.fp_per_scan));
            }
            let _ = writeln!(s, "{:>8}  CPM 95% CI", "CPM");
            for g in groups {
                let _ = write!(s, "  {:<12}{:>6}{:>6}", g.label, g.n_nodules, g.n_detected);
                for p in &g.sensitivity_at_fp {
                    let _ = write!(s, "{:>7}", fmt_opt(p.sensitivity));
                }
                let _ = writeln!(s, "{:>8}  {}", fmt_opt(g.cpm), fmt_ci(g.cpm_ci95));
            }
        }
        if self.by_size.vox.is_none() {
            let _ = writeln!(
                s,
                "\n(no size bins in voxels: the annotations have no diameter_vox column; pass --voxel-mm)"
            );
        }
        if self.by_size.vox_unbinned + self.by_size.mm_unbinned > 0 {
            let _ = writeln!(
                s,
                "(unbinned nodules: {} by voxels, {} by mm)",
                self.by_size.vox_unbinned, self.by_size.mm_unbinned
            );
        }
        s
    }

    /// The FROC curve as CSV: `threshold,fp_per_scan,sensitivity`, thresholds descending (the
    /// first row, threshold `inf`, is the origin).
    pub fn froc_csv(&self) -> String {
        let mut s = String::from("threshold,fp_per_scan,sensitivity\n");
        for p in &self.froc {
            let _ = writeln!(s, "{},{},{}", p.threshold, p.fp_per_scan, p.sensitivity);
        }
        s
    }

    /// An SVG plot of the FROC curve on a log₂ FP/scan axis from 1/8 to 8, with the bootstrap
    /// band when computed and the seven CPM operating points marked.
    pub fn froc_svg(&self) -> String {
        let (w, h) = (640.0_f64, 440.0_f64);
        let (left, right, top, bottom) = (70.0, 20.0, 40.0, 60.0);
        let pw = w - left - right;
        let ph = h - top - bottom;
        let x_of = |fp: f64| left + (fp.log2() + 3.0) / 6.0 * pw;
        let y_of = |s: f64| top + (1.0 - s.clamp(0.0, 1.0)) * ph;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        // Grid and axes.
        for k in 0..=10 {
            let y = y_of(f64::from(k) / 10.0);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{:.1}</text>"##,
                left + pw,
                left - 6.0,
                y + 4.0,
                f64::from(k) / 10.0
            );
        }
        for p in &self.sensitivity_at_fp {
            let x = x_of(p.fp_per_scan);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                top + ph,
                top + ph + 18.0,
                rate_label(p.fp_per_scan)
            );
        }
        let _ = writeln!(
            s,
            r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">Average number of false positives per scan</text>"#,
            left + pw / 2.0,
            h - 15.0
        );
        let _ = writeln!(
            s,
            r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">Sensitivity</text>"#,
            top + ph / 2.0,
            top + ph / 2.0
        );
        let title = match self.cpm_ci95 {
            Some([a, b]) => format!(
                "FROC: CPM {:.3} (95% CI {a:.3}-{b:.3}), {} nodules, {} scans",
                self.cpm, self.n_nodules, self.n_scans
            ),
            None => format!(
                "FROC: CPM {:.3}, {} nodules, {} scans",
                self.cpm, self.n_nodules, self.n_scans
            ),
        };
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="24" text-anchor="middle" font-size="14">{}</text>"#,
            left + pw / 2.0,
            xml_escape(&title)
        );
        let b = &self.band;
        if let (Some(lo), Some(hi)) = (&b.lower, &b.upper) {
            let mut pts = String::new();
            for (x, y) in b.fp_per_scan.iter().zip(hi) {
                let _ = write!(pts, "{:.1},{:.1} ", x_of(*x), y_of(*y));
            }
            for (x, y) in b.fp_per_scan.iter().zip(lo).rev() {
                let _ = write!(pts, "{:.1},{:.1} ", x_of(*x), y_of(*y));
            }
            let _ = writeln!(
                s,
                r##"<polygon points="{}" fill="#1f5fbf" fill-opacity="0.15" stroke="none"/>"##,
                pts.trim_end()
            );
        }
        let mut line = String::new();
        for (x, y) in b.fp_per_scan.iter().zip(&b.sensitivity) {
            let _ = write!(line, "{:.1},{:.1} ", x_of(*x), y_of(*y));
        }
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="#1f5fbf" stroke-width="2"/>"##,
            line.trim_end()
        );
        for RatePoint {
            fp_per_scan,
            sensitivity,
            ..
        } in &self.sensitivity_at_fp
        {
            if let Some(v) = sensitivity {
                let _ = writeln!(
                    s,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="#1f5fbf"><title>{} FP/scan: {v:.3}</title></circle>"##,
                    x_of(*fp_per_scan),
                    y_of(*v),
                    rate_label(*fp_per_scan)
                );
            }
        }
        s.push_str("</svg>\n");
        s
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
