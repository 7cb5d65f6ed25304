//! `--dicom-sr` / `--dicom-seg`: a scan's findings as DICOM objects ([`speck_dicom_out`]), for a
//! DICOM series.

use std::path::PathBuf;

use speck_volume::Format;

use crate::atomic;
use crate::discover::Item;
use crate::output::{CandidateRow, ScanPaths, Side};
use crate::process::Written;

/// What the DICOM objects of one scan are made from, and which are asked for.
pub(crate) struct DicomRequest<'a> {
    /// The scan.
    pub(crate) item: &'a Item,
    /// Its output paths.
    pub(crate) paths: &'a ScanPaths,
    /// Its reader: only a DICOM series has a study and instances to reference.
    pub(crate) format: Format,
    /// The series' files.
    pub(crate) files: &'a [PathBuf],
    /// Its candidates, ranked.
    pub(crate) rows: &'a [CandidateRow],
    /// The models, as in `scan.json` (the algorithm's parameters).
    pub(crate) models: &'a serde_json::Value,
    /// `sr.dcm` asked for.
    pub(crate) sr: bool,
    /// `seg.dcm` asked for.
    pub(crate) seg: bool,
}

/// The findings the DICOM objects report: the rows at or above the model's operating point (the
/// ones Speck reports; `--threshold` rows below it are left out), in rank order, with the
/// measured diameter (the model's when the measurement is empty) and volume.
fn reported_findings(
    rows: &[CandidateRow],
    stamp: &speck_dicom_out::Stamp,
) -> Vec<speck_dicom_out::Finding> {
    let finite = |v: f64| Some(v).filter(|v| v.is_finite());
    let positive = |v: Option<f64>| v.filter(|v| v.is_finite() && *v > 0.0);
    let mut rows: Vec<&CandidateRow> = rows.iter().filter(|r| r.above_operating_point).collect();
    rows.sort_by_key(|r| r.rank);
    rows.into_iter()
        .filter_map(|r| {
            Some(speck_dicom_out::Finding {
                rank: r.rank,
                tracking_uid: stamp.uid(),
                centre: speck_volume::WorldPoint::new(
                    finite(r.coord_x)?,
                    finite(r.coord_y)?,
                    finite(r.coord_z)?,
                ),
                probability: finite(r.probability)?.clamp(0.0, 1.0),
                diameter_mm: positive(r.measured_diameter_mm).or_else(|| positive(r.diameter_mm)),
                volume_mm3: positive(r.measured_volume_mm3),
                side: r.side.map(|s| match s {
                    Side::Left => speck_dicom_out::Side::Left,
                    Side::Right => speck_dicom_out::Side::Right,
                }),
            })
        })
        .collect()
}

/// The `scan.json` note of a scan with `--dicom-seg` and no reported finding.
const NO_SEG_WITHOUT_FINDINGS: &str = "--dicom-seg: no seg.dcm: no finding to segment (a DICOM \
     Segmentation needs at least one segment); sr.dcm, when asked for, reports no findings";

/// Write `sr.dcm` / `seg.dcm` (atomically) for a DICOM series, or say in a warning why not;
/// remove those of an earlier run that are not asked for now.
///
/// With no reported finding the report is written (it says so) and the segmentation is not (it
/// would have no segment); `scan.json` notes it. An object that cannot be built (a source without
/// frame of reference, slices of mixed geometry for the segmentation, a NIfTI or MetaImage
/// input) is a warning of the scan, not a failure: the candidates stand. Only an I/O error fails
/// the scan (stage `write`).
pub(crate) fn write_dicom(req: &DicomRequest<'_>, w: &mut Written) -> std::io::Result<()> {
    let paths = req.paths;
    for (wanted, path, name) in [
        (req.sr, &paths.dicom_sr, "sr.dcm"),
        (req.seg, &paths.dicom_seg, "seg.dcm"),
    ] {
        if !wanted && path.exists() {
            std::fs::remove_file(path)?;
            w.removed.push(name.into());
        }
    }
    if !req.sr && !req.seg {
        return Ok(());
    }
    build_dicom(req, w)?;
    // An object asked for but not written now (no finding to segment, or it could not be built:
    // the warnings say why) must not stay from an earlier run: it would describe other findings.
    for (path, name) in [(&paths.dicom_sr, "sr.dcm"), (&paths.dicom_seg, "seg.dcm")] {
        if !w.outputs.iter().any(|o| o == name) && path.exists() {
            std::fs::remove_file(path)?;
            w.warn(
                &req.item.id,
                format!(
                    "removed {name} of an earlier run of this scan: this run wrote none (see \
                     above)"
                ),
            );
        }
    }
    Ok(())
}

/// The building half of [`write_dicom`]: the objects asked for, or the warning why not.
fn build_dicom(req: &DicomRequest<'_>, w: &mut Written) -> std::io::Result<()> {
    let id = &req.item.id;
    let flags = match (req.sr, req.seg) {
        (true, true) => "--dicom-sr/--dicom-seg",
        (true, false) => "--dicom-sr",
        _ => "--dicom-seg",
    };
    let format = req.format;
    if format != Format::Dicom {
        w.warn(
            id,
            format!(
                "{flags}: nothing written: a {format} file has no DICOM study, series or \
                 instances to reference; scan the DICOM series for DICOM results"
            ),
        );
        return Ok(());
    }
    let series_uid = req.item.series.as_deref().unwrap_or(&req.item.uid);
    let source = match speck_dicom_out::SourceSeries::read(req.files, series_uid) {
        Ok(s) => s,
        Err(e) => {
            w.warn(id, format!("{flags}: nothing written: {e}"));
            return Ok(());
        }
    };
    let stamp = speck_dicom_out::Stamp::now();
    let findings = reported_findings(req.rows, &stamp);
    let algorithm = speck_dicom_out::Algorithm::speck(vec![
        serde_json::to_string(req.models).unwrap_or_default()
    ]);
    if req.sr {
        // Written with no finding too: the report then says so (Nodule = Absent, in a
        // Qualitative Evaluations container), so every scanned series has one in the PACS.
        match speck_dicom_out::measurement_report(&source, &findings, &algorithm, &stamp)
            .and_then(|o| o.to_bytes())
        {
            Ok(bytes) => {
                atomic::write_atomic(&req.paths.dicom_sr, &bytes)?;
                w.outputs.push("sr.dcm".into());
            }
            Err(e) => w.warn(id, format!("no sr.dcm: {e}")),
        }
    }
    if req.seg {
        if findings.is_empty() {
            // A segmentation needs at least one segment: with nothing found there is none to
            // write. Said in scan.json (not a warning on stderr: nothing is wrong).
            tracing::info!("scans/{id}: no seg.dcm: no finding to segment");
            w.warnings.push(NO_SEG_WITHOUT_FINDINGS.into());
        } else {
            match speck_dicom_out::segmentation(&source, &findings, &algorithm, &stamp)
                .and_then(|o| o.to_bytes())
            {
                Ok(bytes) => {
                    atomic::write_atomic(&req.paths.dicom_seg, &bytes)?;
                    w.outputs.push("seg.dcm".into());
                }
                Err(e) => w.warn(id, format!("no seg.dcm: {e}")),
            }
        }
    }
    Ok(())
}
