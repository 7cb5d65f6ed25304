//! The run report: one page listing every scan, grouped by patient and study, with its top
//! candidates and their thumbnails, then every error and every item skipped. Identifiers come from files, so everything is escaped (HTML) or sanitised
//! (Markdown) before it is written.

use std::fmt::Write as _;

use crate::output::{
    cell, fixed, CandidateRow, ErrorRow, SkippedRow, Status, SummaryRow, COORD_DECIMALS,
    DIAMETER_DECIMALS, PROBABILITY_DECIMALS, SECONDS_DECIMALS, VOLUME_DECIMALS,
};

/// Report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ReportFormat {
    /// `report.html`, a self-contained page (thumbnails linked relatively).
    Html,
    /// `report.md`.
    Md,
    /// No report.
    None,
}

/// One scan in the report.
pub struct ReportScan<'a> {
    /// Summary line.
    pub summary: &'a SummaryRow,
    /// Candidates, by rank.
    pub candidates: Vec<&'a CandidateRow>,
    /// Relative path (from the report) of each shown candidate's thumbnail, by rank.
    pub thumbnails: Vec<Option<String>>,
}

/// Everything a report shows.
pub struct ReportData<'a> {
    /// Title line (what was scanned, with which models).
    pub title: String,
    /// Lines of facts (models, device, shard, counts).
    pub facts: Vec<String>,
    /// Scans, sorted by id.
    pub scans: Vec<ReportScan<'a>>,
    /// Errors.
    pub errors: &'a [ErrorRow],
    /// Items found that are not CT image series.
    pub skipped: &'a [SkippedRow],
    /// How many candidates per scan to list.
    pub top: usize,
}

/// The size of a candidate as a reader wants it: measured from the image (with its Lung-RADS
/// size class, and a flag when the measurement is not reliable), else the model's estimate.
fn size_text(c: &CandidateRow) -> String {
    let model = match c.diameter_mm {
        Some(d) => format!("model {} mm", fixed(d, DIAMETER_DECIMALS)),
        None => String::new(),
    };
    let reliability = c.measure_reliability.map_or("", |r| r.as_str());
    let Some(measured) = c.measured_diameter_mm.filter(|_| reliability != "empty") else {
        return if model.is_empty() {
            model
        } else {
            format!("{model},")
        };
    };
    // In words: Markdown cells cannot carry `<` or `>`.
    let class = match c.lung_rads_size.map_or("", |l| l.as_str()) {
        "" => String::new(),
        "<6" => ", Lung-RADS size under 6 mm".into(),
        ">=15" => ", Lung-RADS size 15 mm or more".into(),
        other => format!(", Lung-RADS size {other} mm"),
    };
    let flag = if reliability == "reliable" {
        String::new()
    } else {
        format!(" ({reliability})")
    };
    let opt = |v: Option<f64>, d: usize| v.map(|v| fixed(v, d)).unwrap_or_default();
    format!(
        "measured {} mm ({} mm axial, {} mm3){flag}{class}{},",
        fixed(measured, DIAMETER_DECIMALS),
        opt(c.longest_axial_mm, DIAMETER_DECIMALS),
        opt(c.measured_volume_mm3, VOLUME_DECIMALS),
        if model.is_empty() {
            model
        } else {
            format!("; {model}")
        }
    )
}

/// The scans in study order (patient, study, then scan id), each with the heading of its study
/// when it opens one.
fn by_study<'a>(scans: &'a [ReportScan<'a>]) -> Vec<(Option<String>, &'a ReportScan<'a>)> {
    let mut sorted: Vec<&ReportScan<'_>> = scans.iter().collect();
    sorted.sort_by(|a, b| {
        let key = |s: &ReportScan<'_>| {
            (
                s.summary.study_uid.is_empty(),
                s.summary.patient_id.clone(),
                s.summary.study_uid.clone(),
                s.summary.scan_id.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut out = Vec::with_capacity(sorted.len());
    let mut last: Option<(&str, &str)> = None;
    for sc in sorted {
        let key = (
            sc.summary.patient_id.as_str(),
            sc.summary.study_uid.as_str(),
        );
        let heading = (last != Some(key)).then(|| {
            let n = scans
                .iter()
                .filter(|o| (o.summary.patient_id.as_str(), o.summary.study_uid.as_str()) == key)
                .count();
            if key.1.is_empty() {
                format!("files without a study (NIfTI, MetaImage, unknown): {n} scan(s)")
            } else {
                format!(
                    "patient {}, study {}: {n} series",
                    if key.0.is_empty() { "unknown" } else { key.0 },
                    key.1
                )
            }
        });
        last = Some(key);
        out.push((heading, sc));
    }
    out
}

/// Escape text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// Make text safe inside a Markdown table cell (no pipes, no newlines, no HTML, no links).
pub fn md_cell(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '|' | '<' | '>' | '[' | ']' | '`' | '*' | '_' | '\\' => ' ',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Render HTML.
pub fn html(d: &ReportData<'_>) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title>\n<style>\
         body{{font-family:sans-serif;margin:1.5em;color:#222}}\
         table{{border-collapse:collapse;margin:.5em 0}}\
         td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:left;font-size:90%}}\
         .failed{{color:#b00}} img{{display:block;max-width:100%}}\
         .cand{{display:inline-block;margin:.3em;vertical-align:top;font-size:85%}}\
         </style></head><body>\n<h1>{}</h1>\n<p><em>Research software, not for clinical use.</em></p>\n<ul>\n",
        html_escape(&d.title),
        html_escape(&d.title)
    );
    for f in &d.facts {
        let _ = writeln!(s, "<li>{}</li>", html_escape(f));
    }
    s.push_str("</ul>\n<h2>Scans by study</h2>\n<table><tr><th>scan</th><th>series</th><th>status</th><th>candidates</th><th>seconds</th></tr>\n");
    for (heading, sc) in by_study(&d.scans) {
        if let Some(h) = heading {
            let _ = writeln!(
                s,
                "<tr class=\"study\"><th colspan=\"5\">{}</th></tr>",
                html_escape(&h)
            );
        }
        let r = sc.summary;
        let _ = writeln!(
            s,
            "<tr class=\"{}\"><td><a href=\"#{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.status,
            html_escape(&r.scan_id),
            html_escape(&r.scan_id),
            html_escape(&r.seriesuid),
            r.status,
            r.n_candidates,
            fixed(r.seconds, SECONDS_DECIMALS)
        );
    }
    s.push_str("</table>\n");
    for (_, sc) in by_study(&d.scans)
        .into_iter()
        .filter(|(_, sc)| sc.summary.status == Status::Ok)
    {
        let r = sc.summary;
        let _ = writeln!(
            s,
            "<h3 id=\"{}\">{}</h3>\n<p>{} — {} candidate(s)</p>",
            html_escape(&r.scan_id),
            html_escape(&r.scan_id),
            html_escape(&r.seriesuid),
            r.n_candidates
        );
        for (c, thumb) in sc.candidates.iter().zip(&sc.thumbnails).take(d.top) {
            let _ = write!(s, "<div class=\"cand\">");
            if let Some(t) = thumb {
                let _ = write!(
                    s,
                    "<img src=\"{}\" alt=\"candidate {}\" width=\"496\">",
                    html_escape(t),
                    c.rank
                );
            }
            let _ = writeln!(
                s,
                "#{} p={} at ({}, {}, {}) mm, slice {}{}, {} {} {}</div>",
                c.rank,
                html_escape(&fixed(c.probability, PROBABILITY_DECIMALS)),
                html_escape(&fixed(c.coord_x, COORD_DECIMALS)),
                html_escape(&fixed(c.coord_y, COORD_DECIMALS)),
                html_escape(&fixed(c.coord_z, COORD_DECIMALS)),
                html_escape(&cell(c.index_z)),
                c.instance_number
                    .map(|n| format!(" (Img {n})"))
                    .unwrap_or_default(),
                html_escape(&size_text(c)),
                html_escape(c.side.map_or("", |s| s.as_str())),
                if c.in_lung == Some(false) {
                    "(outside the lung mask)"
                } else {
                    ""
                }
            );
        }
    }
    if !d.errors.is_empty() {
        s.push_str("<h2>Errors</h2>\n<table><tr><th>input</th><th>series</th><th>stage</th><th>reason</th></tr>\n");
        for e in d.errors {
            let _ = writeln!(
                s,
                "<tr class=\"failed\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                html_escape(&e.input),
                html_escape(&e.series),
                e.stage,
                html_escape(&e.reason)
            );
        }
        s.push_str("</table>\n");
    }
    if !d.skipped.is_empty() {
        let _ = writeln!(
            s,
            "<h2>Skipped: not CT image series ({})</h2>\n<table><tr><th>input</th><th>series</th><th>kind</th><th>reason</th></tr>",
            d.skipped.len()
        );
        for k in d.skipped {
            let _ = writeln!(
                s,
                "<tr class=\"skipped\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                html_escape(&k.input),
                html_escape(&k.series),
                html_escape(&k.kind),
                html_escape(&k.reason)
            );
        }
        s.push_str("</table>\n");
    }
    s.push_str("</body></html>\n");
    s
}

/// Render Markdown.
pub fn markdown(d: &ReportData<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# {}\n\n*Research software, not for clinical use.*\n",
        md_cell(&d.title)
    );
    for f in &d.facts {
        let _ = writeln!(s, "- {}", md_cell(f));
    }
    s.push_str(
        "\n## Scans by study\n\n| scan | series | status | candidates | seconds |\n|---|---|---|---|---|\n",
    );
    for (heading, sc) in by_study(&d.scans) {
        if let Some(h) = heading {
            let _ = writeln!(s, "| **{}** | | | | |", md_cell(&h));
        }
        let r = sc.summary;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            md_cell(&r.scan_id),
            md_cell(&r.seriesuid),
            r.status,
            r.n_candidates,
            fixed(r.seconds, SECONDS_DECIMALS)
        );
    }
    for (_, sc) in by_study(&d.scans)
        .into_iter()
        .filter(|(_, sc)| sc.summary.status == Status::Ok && !sc.candidates.is_empty())
    {
        let _ = writeln!(s, "\n### {}\n", md_cell(&sc.summary.scan_id));
        for (c, thumb) in sc.candidates.iter().zip(&sc.thumbnails).take(d.top) {
            let _ = writeln!(
                s,
                "- #{} p={} at ({}, {}, {}) mm, slice {} {} {}",
                c.rank,
                md_cell(&fixed(c.probability, PROBABILITY_DECIMALS)),
                md_cell(&fixed(c.coord_x, COORD_DECIMALS)),
                md_cell(&fixed(c.coord_y, COORD_DECIMALS)),
                md_cell(&fixed(c.coord_z, COORD_DECIMALS)),
                md_cell(&cell(c.index_z)),
                md_cell(&size_text(c)),
                md_cell(c.side.map_or("", |s| s.as_str()))
            );
            if let Some(t) = thumb {
                // Thumbnail paths are built from safe names only.
                let _ = writeln!(s, "\n  ![candidate {}]({})\n", c.rank, t);
            }
        }
    }
    if !d.errors.is_empty() {
        s.push_str("\n## Errors\n\n| input | series | stage | reason |\n|---|---|---|---|\n");
        for e in d.errors {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                md_cell(&e.input),
                md_cell(&e.series),
                e.stage,
                md_cell(&e.reason)
            );
        }
    }
    if !d.skipped.is_empty() {
        let _ = write!(
            s,
            "\n## Skipped: not CT image series ({})\n\n| input | series | kind | reason |\n|---|---|---|---|\n",
            d.skipped.len()
        );
        for k in d.skipped {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                md_cell(&k.input),
                md_cell(&k.series),
                md_cell(&k.kind),
                md_cell(&k.reason)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_are_escaped() {
        let summary = SummaryRow {
            scan_id: "x".into(),
            seriesuid: "<script>alert(1)</script>".into(),
            status: Status::Ok,
            n_candidates: 0,
            seconds: 1.0,
            format: "nifti".into(),
            source: "a".into(),
            patient_id: String::new(),
            study_uid: String::new(),
        };
        let errors = vec![ErrorRow {
            input: "in|put".into(),
            series: "\"onerror=".into(),
            reason: "r".into(),
            scan_id: "y".into(),
            stage: crate::output::Stage::Load,
        }];
        let d = ReportData {
            title: "t".into(),
            facts: vec![],
            scans: vec![ReportScan {
                summary: &summary,
                candidates: vec![],
                thumbnails: vec![],
            }],
            errors: &errors,
            skipped: &[],
            top: 5,
        };
        let h = html(&d);
        assert!(!h.contains("<script>"));
        assert!(h.contains("&lt;script&gt;"));
        assert!(!h.contains("\"onerror="));
        let m = markdown(&d);
        assert!(!m.contains("<script>"));
        assert!(!m.contains("in|put"));
    }

    fn row(measured: &str, reliability: &str, class: &str) -> CandidateRow {
        use speck_candidates::Reliability as R;
        CandidateRow {
            seriesuid: "1.2".into(),
            coord_x: 1.0,
            coord_y: 2.0,
            coord_z: 3.0,
            probability: 0.99,
            scan_id: "s".into(),
            rank: 1,
            index_z: Some(1),
            index_y: Some(2),
            index_x: Some(3),
            diameter_mm: Some(6.1),
            side: Some(crate::output::Side::Left),
            in_lung: Some(true),
            instance_number: None,
            above_operating_point: true,
            measured_volume_mm3: Some(73.6),
            measured_diameter_mm: measured.parse().ok(),
            longest_axial_mm: Some(5.6),
            lung_rads_size: crate::output::LungRadsCell::CLASSES
                .into_iter()
                .find(|l| l.as_str() == class),
            measure_reliability: [R::Reliable, R::RoiBorder, R::Leaked, R::Empty]
                .into_iter()
                .find(|r| r.as_str() == reliability),
        }
    }

    #[test]
    fn the_report_gives_the_measured_size_and_its_lung_rads_class_first() {
        let t = size_text(&row("5.20", "reliable", "<6"));
        assert_eq!(
            t,
            "measured 5.20 mm (5.60 mm axial, 73.6 mm3), Lung-RADS size under 6 mm; model 6.10 mm,"
        );
        assert!(size_text(&row("5.20", "leaked", "<6")).contains("(leaked)"));
        // Not measured: the model's estimate only.
        assert_eq!(size_text(&row("", "", "")), "model 6.10 mm,");
        assert_eq!(size_text(&row("0.00", "empty", "")), "model 6.10 mm,");
        let summary = SummaryRow {
            scan_id: "s".into(),
            seriesuid: "1.2".into(),
            status: Status::Ok,
            n_candidates: 1,
            seconds: 1.0,
            format: "nifti".into(),
            source: "a".into(),
            patient_id: String::new(),
            study_uid: String::new(),
        };
        let c = row("5.20", "reliable", "<6");
        let d = ReportData {
            title: "t".into(),
            facts: vec![],
            scans: vec![ReportScan {
                summary: &summary,
                candidates: vec![&c],
                thumbnails: vec![None],
            }],
            errors: &[],
            skipped: &[],
            top: 5,
        };
        assert!(size_text(&row("9.00", "reliable", "8-15")).contains("Lung-RADS size 8-15 mm"));
        assert!(html(&d).contains("Lung-RADS size under 6 mm"));
        assert!(markdown(&d).contains("Lung-RADS size under 6 mm"));
    }
}
