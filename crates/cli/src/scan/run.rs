//! The batch runner: scans items in parallel within a memory budget, writes each scan's outputs
//! atomically with its `scan.json` last, records every failure, and builds the run-level files
//! from the per-scan ones (so a resumed run loses nothing that an earlier one finished).

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use speck_volume::{Format, LoadOptions, Probe, Volume, VoxelIndex};

use super::discover::{Item, Plan};
use super::engine::{Engine, EngineOutput, Found};
use super::identity::{self, InputIdentity};
use super::memory::{self, Budget};
use super::output::{
    self, fixed, CandidateRow, ErrorRow, ScanPaths, ScanRecord, SkippedRow, SummaryRow,
    CANDIDATE_COLUMNS, ERROR_COLUMNS, RECORD_VERSION, SKIPPED_COLUMNS, STUDY_COLUMNS,
    SUMMARY_COLUMNS,
};
use super::report::{self, ReportFormat};
use super::{atomic, names, thumbs};

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The output folder (`--out`); per-scan outputs go to `scans/<id>/` under it.
    pub out: PathBuf,
    /// Where the run-level files go (`out`, or `out/shards/K-of-N` for a shard).
    pub run_dir: PathBuf,
    /// Scans processed at once.
    pub jobs: usize,
    /// Memory budget in bytes for all scans in flight.
    pub budget_bytes: u64,
    /// Skip scans whose outputs are complete.
    pub resume: bool,
    /// Write the heatmap as NIfTI.
    pub heatmap: bool,
    /// Write a DICOM measurement report (`sr.dcm`) for each DICOM series.
    pub dicom_sr: bool,
    /// Write a DICOM segmentation (`seg.dcm`) for each DICOM series.
    pub dicom_seg: bool,
    /// Thumbnails for this many top candidates per scan (0: none).
    pub thumbnails: usize,
    /// Report format.
    pub report: ReportFormat,
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Lines describing the run, for the report.
    pub facts: Vec<String>,
    /// Count skipped items as failures too (`--strict-skips`): each also gets an `errors.csv`
    /// row, stage `skipped`.
    pub strict_skips: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    /// Scans that succeeded in this run.
    pub ok: usize,
    /// Scans skipped because an earlier run completed them.
    pub resumed: usize,
    /// Items that failed.
    pub failed: usize,
    /// Items skipped: not CT image series (`skipped.csv`).
    pub skipped: usize,
    /// Items not started because the run was interrupted.
    pub not_started: usize,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// Complete scan folders of earlier runs (not among this run's inputs) that the run-level
    /// files list too (unsharded runs only), by scan id.
    pub earlier: Vec<String>,
}

/// Options stored in `scan.json` so `--resume` knows whether a finished scan has what is asked now.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Requested {
    heatmap: bool,
    thumbnails: usize,
    /// Absent in records written before the flag existed: not requested then.
    #[serde(default)]
    dicom_sr: bool,
    #[serde(default)]
    dicom_seg: bool,
}

enum Outcome {
    Done {
        summary: SummaryRow,
        rows: Vec<CandidateRow>,
        resumed: bool,
    },
    Failed {
        summary: SummaryRow,
        error: ErrorRow,
    },
}

struct Ctx<'a> {
    engine: &'a dyn Engine,
    models: serde_json::Value,
    opts: &'a Options,
    budget: Budget,
    interrupted: &'a AtomicBool,
}

/// `v` to `decimals` decimals, so JSON shows `0.7`, not `0.699999988079071` (an `f32` widened).
pub fn round_to(v: f64, decimals: i32) -> f64 {
    let k = 10f64.powi(decimals);
    let r = (v * k).round() / k;
    if r.is_finite() {
        r + 0.0
    } else {
        v
    }
}

/// A JSON number with a fraction rounded to 6 decimals; anything else as it is.
fn rounded(v: &serde_json::Value) -> serde_json::Value {
    match v.as_f64() {
        Some(x) if v.is_f64() => serde_json::json!(round_to(x, 6)),
        _ => v.clone(),
    }
}

fn failed(item: &Item, stage: &str, reason: String, seconds: f64) -> Outcome {
    tracing::warn!("{}: {stage}: {reason}", item.id);
    failed_quietly(item, stage, reason, seconds)
}

/// Reason recorded for the scans an interrupted run never started.
pub const NOT_STARTED: &str =
    "not started: the run was interrupted (Ctrl-C or SIGTERM); rerun with --resume";

/// [`failed`] without the log line (for the many scans an interrupted run did not start).
fn failed_quietly(item: &Item, stage: &str, reason: String, seconds: f64) -> Outcome {
    let format = match &item.plan {
        Plan::Scan { format, .. } => format.to_string(),
        Plan::Fail { .. } | Plan::Skip { .. } => String::new(),
    };
    let source = path_str(&item.source);
    Outcome::Failed {
        summary: SummaryRow {
            scan_id: item.id.clone(),
            seriesuid: item.uid.clone(),
            status: "failed".into(),
            n_candidates: 0,
            seconds: fixed(seconds, 2),
            format,
            source: source.clone(),
            patient_id: item.patient_id.clone().unwrap_or_default(),
            study_uid: item.study_uid.clone().unwrap_or_default(),
        },
        error: ErrorRow {
            input: source,
            series: item.series.clone().unwrap_or_default(),
            reason,
            scan_id: item.id.clone(),
            stage: stage.into(),
        },
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The scan's outputs are complete and were made with the same models and at least the same
/// options: return its summary and candidates.
fn completed(
    item: &Item,
    identity: &InputIdentity,
    paths: &ScanPaths,
    ctx: &Ctx<'_>,
) -> Option<(ScanRecord, Vec<CandidateRow>)> {
    let rec = output::read_record(&paths.record)?;
    if rec.version != RECORD_VERSION || rec.seriesuid != item.uid || rec.models != ctx.models {
        return None;
    }
    if rec.series_choice != item.choice {
        tracing::info!(
            "{}: the series of its acquisition or --series-policy changed; scanned again",
            item.id
        );
        return None;
    }
    if &rec.input_identity != identity {
        tracing::info!(
            "{}: the earlier result came from another input or an earlier version of it ({}); \
             scanned again",
            item.id,
            rec.input_identity.path
        );
        return None;
    }
    let req: Requested = serde_json::from_value(rec.requested.clone()).ok()?;
    if (ctx.opts.heatmap && !req.heatmap)
        || req.thumbnails < ctx.opts.thumbnails
        || (ctx.opts.dicom_sr && !req.dicom_sr)
        || (ctx.opts.dicom_seg && !req.dicom_seg)
    {
        return None;
    }
    if !rec.outputs.iter().all(|o| paths.dir.join(o).is_file()) {
        return None;
    }
    let rows: Vec<CandidateRow> = output::read_csv(&paths.candidates).ok()?;
    if rows.len() != rec.n_candidates || rows.iter().any(|r| r.scan_id != item.id) {
        return None;
    }
    Some((rec, rows))
}

/// Body midline (LPS x, mm) of slice `z`: the world x of the centroid of body voxels (> -500 HU).
/// The centroid of an affine image of points is the image of their centroid, so one conversion
/// suffices.
fn midline_x_mm(volume: &Volume, z: usize) -> Option<f64> {
    let v = volume.voxels();
    let slice = v.index_axis(ndarray::Axis(0), z);
    let (mut n, mut sy, mut sx) = (0u64, 0f64, 0f64);
    for ((y, x), &hu) in slice.indexed_iter() {
        if hu > -500 {
            n += 1;
            sy += y as f64;
            sx += x as f64;
        }
    }
    if n == 0 {
        return None;
    }
    let c = speck_volume::ContinuousIndex::new(z as f64, sy / n as f64, sx / n as f64);
    Some(volume.geometry().index_to_world(c).x_mm)
}

/// Findings sorted by probability (descending), then position: the order of ranks.
fn sorted_findings(det: &EngineOutput) -> Vec<Found> {
    let mut found = det.candidates.clone();
    found.sort_by(|a, b| {
        let (a, b) = (&a.candidate, &b.candidate);
        b.probability
            .total_cmp(&a.probability)
            .then(a.world.z_mm.total_cmp(&b.world.z_mm))
            .then(a.world.y_mm.total_cmp(&b.world.y_mm))
            .then(a.world.x_mm.total_cmp(&b.world.x_mm))
    });
    found
}

/// Candidate rows for one scan, ranked from 1 in the order of [`sorted_findings`].
fn candidate_rows(item: &Item, volume: &Volume, found: &[Found]) -> Vec<CandidateRow> {
    let slices = &volume.provenance().slices;
    let mut midlines: HashMap<usize, Option<f64>> = HashMap::new();
    found
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let c = &f.candidate;
            let idx: Option<VoxelIndex> = volume.world_to_voxel(c.world);
            let (iz, iy, ix) = match idx {
                Some(v) => (v.z.to_string(), v.y.to_string(), v.x.to_string()),
                None => (String::new(), String::new(), String::new()),
            };
            let side = idx
                .and_then(|v| {
                    *midlines
                        .entry(v.z)
                        .or_insert_with(|| midline_x_mm(volume, v.z))
                })
                .map(|mid| if c.world.x_mm >= mid { "left" } else { "right" })
                .unwrap_or_default();
            let instance = idx
                .and_then(|v| slices.get(v.z))
                .and_then(|s| s.instance_number)
                .map(|n| n.to_string())
                .unwrap_or_default();
            // The size from the image itself (the model's diameter only sizes the search).
            let m = match speck_candidates::measure(volume, c.world, c.diameter_mm) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::debug!("{}: rank {}: not measured: {e}", item.id, i + 1);
                    None
                }
            };
            CandidateRow {
                seriesuid: item.uid.clone(),
                coord_x: fixed(c.world.x_mm, 3),
                coord_y: fixed(c.world.y_mm, 3),
                coord_z: fixed(c.world.z_mm, 3),
                probability: fixed(f64::from(c.probability), 6),
                scan_id: item.id.clone(),
                rank: u32::try_from(i + 1).unwrap_or(u32::MAX),
                index_z: iz,
                index_y: iy,
                index_x: ix,
                diameter_mm: c.diameter_mm.map(|d| fixed(d, 2)).unwrap_or_default(),
                side: side.to_string(),
                in_lung: f.in_lung.map(|b| b.to_string()).unwrap_or_default(),
                instance_number: instance,
                above_operating_point: f.above_operating_point.to_string(),
                measured_volume_mm3: m.map(|m| fixed(m.volume_mm3, 1)).unwrap_or_default(),
                measured_diameter_mm: m
                    .map(|m| fixed(m.equivalent_diameter_mm, 2))
                    .unwrap_or_default(),
                longest_axial_mm: m.map(|m| fixed(m.longest_axial_mm, 2)).unwrap_or_default(),
                lung_rads_size: m
                    .and_then(|m| m.lung_rads_size())
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                measure_reliability: m.map(|m| m.reliability.to_string()).unwrap_or_default(),
            }
        })
        .collect()
}

#[allow(clippy::field_reassign_with_default)]
fn process(item: &Item, ctx: &Ctx<'_>, on_progress: &(dyn Fn(f32) + Sync)) -> Outcome {
    let t0 = Instant::now();
    let secs = |t: Instant| t.elapsed().as_secs_f64();
    let (format, path, series_uid, size, files) = match &item.plan {
        Plan::Fail { reason } => return failed(item, "discover", reason.clone(), 0.0),
        Plan::Skip { reason } => {
            return failed(item, "skipped", format!("{}: {reason}", reason.kind()), 0.0)
        }
        Plan::Scan {
            format,
            path,
            series_uid,
            size,
            files,
        } => (*format, path, series_uid, size, files),
    };
    let identity = match series_uid {
        Some(uid) => identity::of_dicom_series(path, uid, files),
        None => identity::of_image_file(path),
    };
    let identity = match identity {
        Ok(i) => i,
        Err(e) => return failed(item, "load", format!("cannot read: {e}"), secs(t0)),
    };
    let paths = ScanPaths::new(&ctx.opts.out, &item.id);
    if ctx.opts.resume {
        if let Some((rec, rows)) = completed(item, &identity, &paths, ctx) {
            tracing::info!("{}: complete from an earlier run, skipped", item.id);
            let seconds = rec.timings_s.get("total").copied().unwrap_or(0.0);
            return Outcome::Done {
                summary: SummaryRow {
                    scan_id: item.id.clone(),
                    seriesuid: item.uid.clone(),
                    status: "ok".into(),
                    n_candidates: rows.len(),
                    seconds: fixed(seconds, 2),
                    format: format.to_string(),
                    source: path_str(path),
                    patient_id: item.patient_id.clone().unwrap_or_default(),
                    study_uid: item.study_uid.clone().unwrap_or_default(),
                },
                rows,
                resumed: true,
            };
        }
    }

    // Memory: refuse what can never fit, then wait for room.
    let total = ctx.budget.total();
    let (estimate, mut limits) = match size {
        Some(s) => (
            memory::estimate_peak_bytes(s.voxels(), s.bytes_per_voxel),
            speck_volume::Limits::default(),
        ),
        None => {
            // Unknown size: reserve an equal share and let the loader refuse anything larger.
            let share = (total / ctx.opts.jobs.max(1) as u64).max(memory::BASE_BYTES);
            (share, speck_volume::Limits::default())
        }
    };
    if estimate > total {
        let voxels = size.as_ref().map(Probe::voxels).unwrap_or(0);
        return failed(
            item,
            "memory",
            format!(
                "needs an estimated {} ({voxels} voxels from the header) but the memory budget \
                 (--max-memory) is {}",
                memory::gib(estimate),
                memory::gib(total)
            ),
            secs(t0),
        );
    }
    limits.max_voxels = limits.max_voxels.min(memory::voxels_within(total, 4));
    limits.max_bytes = limits
        .max_bytes
        .min(total.saturating_sub(memory::BASE_BYTES));
    let Some(_reservation) = ctx.budget.reserve(estimate) else {
        return failed(
            item,
            "memory",
            "does not fit the memory budget".into(),
            secs(t0),
        );
    };
    if ctx.interrupted.load(Ordering::SeqCst) {
        return failed(
            item,
            "interrupted",
            "the run was interrupted".into(),
            secs(t0),
        );
    }

    // Load.
    on_progress(0.0);
    let t_load = Instant::now();
    let load_opts = LoadOptions::new()
        .limits(limits)
        .series_uid(series_uid.clone());
    // A DICOM series in a folder is read from the files discovery found for it, so that a flat
    // export of many series is not read once per series.
    let loaded = if format == Format::Dicom && !files.is_empty() && path.is_dir() {
        speck_volume::dicom::read_series_files(path, files, &load_opts)
    } else {
        speck_volume::open_with(path, &load_opts)
    };
    let volume = match loaded {
        Ok(v) => v,
        Err(e) => return failed(item, "load", e.to_string(), secs(t0)),
    };
    let load_s = secs(t_load);
    let [nz, ny, nx] = volume.shape_zyx();
    let voxels = (nz * ny * nx) as u64;
    let actual_estimate = memory::estimate_peak_bytes(voxels, 2);
    if actual_estimate > total {
        return failed(
            item,
            "memory",
            format!(
                "the image has {nz}x{ny}x{nx} voxels, an estimated {} to scan, more than the \
                 memory budget (--max-memory) of {}",
                memory::gib(actual_estimate),
                memory::gib(total)
            ),
            secs(t0),
        );
    }

    // Detect.
    let t_det = Instant::now();
    let det = match ctx.engine.detect(&volume, ctx.opts.heatmap, on_progress) {
        Ok(d) => d,
        Err(e) => return failed(item, "detect", format!("{e:#}"), secs(t0)),
    };
    let detect_s = secs(t_det);

    // Write: remove the old completion marker first, so a crash mid-way never leaves an old
    // marker beside new files.
    let t_write = Instant::now();
    let found = sorted_findings(&det);
    let rows = candidate_rows(item, &volume, &found);
    match write_scan(
        item,
        &paths,
        ctx,
        &volume,
        &det,
        &found,
        &rows,
        identity,
        estimate.max(actual_estimate),
        format,
        path,
        files,
        load_s,
        detect_s,
        t_write,
        t0,
    ) {
        Ok(seconds) => Outcome::Done {
            summary: SummaryRow {
                scan_id: item.id.clone(),
                seriesuid: item.uid.clone(),
                status: "ok".into(),
                n_candidates: rows.len(),
                seconds: fixed(seconds, 2),
                format: format.to_string(),
                source: path_str(path),
                patient_id: item.patient_id.clone().unwrap_or_default(),
                study_uid: item.study_uid.clone().unwrap_or_default(),
            },
            rows,
            resumed: false,
        },
        Err(e) => failed(item, "write", format!("{e}"), secs(t0)),
    }
}

#[allow(clippy::too_many_arguments)]
fn write_scan(
    item: &Item,
    paths: &ScanPaths,
    ctx: &Ctx<'_>,
    volume: &Volume,
    det: &EngineOutput,
    found: &[Found],
    rows: &[CandidateRow],
    input_identity: InputIdentity,
    estimate: u64,
    format: Format,
    path: &Path,
    files: &[PathBuf],
    load_s: f64,
    detect_s: f64,
    t_write: Instant,
    t0: Instant,
) -> std::io::Result<f64> {
    std::fs::create_dir_all(&paths.dir)?;
    match std::fs::remove_file(&paths.record) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    atomic::sweep_stale_temps(&paths.dir);
    let mut outputs = vec!["candidates.csv".to_string()];
    let mut warnings = volume.provenance().warnings.clone();
    warnings.extend(det.warnings.iter().cloned());
    output::write_csv(&paths.candidates, &CANDIDATE_COLUMNS, rows)?;

    if ctx.opts.heatmap {
        match &det.heatmap {
            Some((map, geometry)) => {
                let (tmp, f) = atomic::create_temp(&paths.heatmap)?;
                drop(f);
                match speck_volume::nifti::write_nifti_f32(map.view(), geometry, &tmp) {
                    Ok(()) => atomic::commit(&tmp, &paths.heatmap)?,
                    Err(e) => {
                        atomic::discard(&tmp);
                        return Err(std::io::Error::other(format!("heatmap: {e}")));
                    }
                }
                outputs.push("heatmap.nii.gz".into());
            }
            None => warnings.push("no heatmap: the detector's pipeline has no coarse stage".into()),
        }
    }

    // Files of an earlier run of this scan that this run does not write again (a heatmap or
    // thumbnails not requested now, fewer thumbnails): they would describe other results, so
    // they go, and stderr and scan.json say so.
    let mut removed: Vec<String> = Vec::new();
    if !ctx.opts.heatmap && paths.heatmap.exists() {
        std::fs::remove_file(&paths.heatmap)?;
        removed.push("heatmap.nii.gz".into());
    }
    let old_thumbnails: Vec<String> = std::fs::read_dir(&paths.thumbnails)
        .map(|d| {
            let mut v: Vec<String> = d
                .flatten()
                .map(|e| format!("thumbnails/{}", e.file_name().to_string_lossy()))
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    if paths.thumbnails.exists() {
        std::fs::remove_dir_all(&paths.thumbnails)?;
    }
    if ctx.opts.thumbnails > 0 && !rows.is_empty() {
        std::fs::create_dir_all(&paths.thumbnails)?;
        for (i, f) in found.iter().take(ctx.opts.thumbnails).enumerate() {
            let c = &f.candidate;
            let rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let p = paths.thumbnail(rank);
            thumbs::write_thumbnail(&p, volume, c.world, c.diameter_mm)?;
            if let Some(name) = p.file_name() {
                outputs.push(format!("thumbnails/{}", name.to_string_lossy()));
            }
        }
    }

    write_dicom(
        item,
        paths,
        ctx,
        format,
        files,
        rows,
        &mut outputs,
        &mut warnings,
        &mut removed,
    )?;

    let gone: Vec<&String> = old_thumbnails
        .iter()
        .filter(|t| !outputs.contains(t))
        .collect();
    match gone.as_slice() {
        [] => {}
        [one] => removed.push((*one).clone()),
        [first, .., last] => removed.push(format!("{} thumbnails ({first} .. {last})", gone.len())),
    }
    if !removed.is_empty() {
        let w = format!(
            "removed {} of an earlier run of this scan, which this run does not write \
             (ask for them with --heatmap / --thumbnails / --thumbnails-top / --dicom-sr / \
             --dicom-seg)",
            removed.join(" and ")
        );
        tracing::warn!("scans/{}: {w}", item.id);
        warnings.push(w);
    }

    let mut timings: BTreeMap<String, f64> = BTreeMap::new();
    timings.insert("load".into(), load_s);
    timings.insert("detect".into(), detect_s);
    for (k, v) in &det.timings_s {
        timings.insert(format!("detect.{k}"), *v);
    }
    timings.insert("write".into(), t_write.elapsed().as_secs_f64());
    let total_s = t0.elapsed().as_secs_f64();
    timings.insert("total".into(), total_s);
    let prov = volume.provenance();
    let spacing = volume.geometry().spacing.zyx().map(|v| round_to(v, 6));
    let record = ScanRecord {
        version: RECORD_VERSION,
        scan_id: item.id.clone(),
        seriesuid: item.uid.clone(),
        input: path_str(&item.input),
        source: path_str(path),
        input_identity,
        format: format.to_string(),
        study_uid: prov.study_uid.clone(),
        patient_id: prov.patient_id.clone(),
        series_choice: item.choice.clone(),
        shape_zyx: volume.shape_zyx(),
        spacing_zyx_mm: spacing,
        n_candidates: rows.len(),
        device: det.device.clone(),
        timings_s: timings
            .into_iter()
            .map(|(k, v)| (k, round_to(v, 4)))
            .collect(),
        counts: det
            .counts
            .iter()
            .map(|(k, v)| (k.clone(), rounded(v)))
            .collect(),
        warnings,
        estimated_peak_bytes: estimate,
        process_peak_rss_bytes: memory::peak_rss_bytes(),
        models: ctx.models.clone(),
        requested: serde_json::to_value(Requested {
            heatmap: ctx.opts.heatmap,
            thumbnails: ctx.opts.thumbnails,
            dicom_sr: ctx.opts.dicom_sr,
            dicom_seg: ctx.opts.dicom_seg,
        })
        .unwrap_or_default(),
        outputs,
    };
    output::write_record(&paths.record, &record)?;
    Ok(total_s)
}

/// The findings the DICOM objects report: the rows at or above the model's operating point (the
/// ones Speck reports; `--threshold` rows below it are left out), in rank order, with the
/// measured diameter (the model's when the measurement is empty) and volume.
fn reported_findings(
    rows: &[CandidateRow],
    stamp: &speck_dicom_out::Stamp,
) -> Vec<speck_dicom_out::Finding> {
    let num = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
    let positive = |s: &str| num(s).filter(|v| *v > 0.0);
    let mut rows: Vec<&CandidateRow> = rows
        .iter()
        .filter(|r| r.above_operating_point == "true")
        .collect();
    rows.sort_by_key(|r| r.rank);
    rows.into_iter()
        .filter_map(|r| {
            Some(speck_dicom_out::Finding {
                rank: r.rank,
                tracking_uid: stamp.uid(),
                centre: speck_volume::WorldPoint::new(
                    num(&r.coord_x)?,
                    num(&r.coord_y)?,
                    num(&r.coord_z)?,
                ),
                probability: num(&r.probability)?.clamp(0.0, 1.0),
                diameter_mm: positive(&r.measured_diameter_mm).or_else(|| positive(&r.diameter_mm)),
                volume_mm3: positive(&r.measured_volume_mm3),
                side: match r.side.as_str() {
                    "left" => Some(speck_dicom_out::Side::Left),
                    "right" => Some(speck_dicom_out::Side::Right),
                    _ => None,
                },
            })
        })
        .collect()
}

/// The `scan.json` note of a scan with `--dicom-seg` and no reported finding.
const NO_SEG_WITHOUT_FINDINGS: &str = "--dicom-seg: no seg.dcm: no finding to segment (a DICOM \
     Segmentation needs at least one segment); sr.dcm, when asked for, reports no findings";

/// `--dicom-sr` / `--dicom-seg`: write `sr.dcm` / `seg.dcm` (atomically) for a DICOM series,
/// or say in a warning why not; remove those of an earlier run that are not asked for now.
///
/// With no reported finding the report is written (it says so) and the segmentation is not (it
/// would have no segment); `scan.json` notes it. An object that cannot be built (a source without
/// frame of reference, slices of mixed geometry for the segmentation, a NIfTI or MetaImage
/// input) is a warning of the scan, not a failure: the candidates stand. Only an I/O error fails
/// the scan (stage `write`).
#[allow(clippy::too_many_arguments)]
fn write_dicom(
    item: &Item,
    paths: &ScanPaths,
    ctx: &Ctx<'_>,
    format: Format,
    files: &[PathBuf],
    rows: &[CandidateRow],
    outputs: &mut Vec<String>,
    warnings: &mut Vec<String>,
    removed: &mut Vec<String>,
) -> std::io::Result<()> {
    for (wanted, path, name) in [
        (ctx.opts.dicom_sr, &paths.dicom_sr, "sr.dcm"),
        (ctx.opts.dicom_seg, &paths.dicom_seg, "seg.dcm"),
    ] {
        if !wanted && path.exists() {
            std::fs::remove_file(path)?;
            removed.push(name.into());
        }
    }
    if !ctx.opts.dicom_sr && !ctx.opts.dicom_seg {
        return Ok(());
    }
    build_dicom(item, paths, ctx, format, files, rows, outputs, warnings)?;
    // An object asked for but not written now (no finding to segment, or it could not be built:
    // the warnings say why) must not stay from an earlier run: it would describe other findings.
    for (path, name) in [(&paths.dicom_sr, "sr.dcm"), (&paths.dicom_seg, "seg.dcm")] {
        if !outputs.iter().any(|o| o == name) && path.exists() {
            std::fs::remove_file(path)?;
            let w = format!(
                "removed {name} of an earlier run of this scan: this run wrote none (see above)"
            );
            tracing::warn!("scans/{}: {w}", item.id);
            warnings.push(w);
        }
    }
    Ok(())
}

/// The building half of [`write_dicom`]: the objects asked for, or the warning why not.
#[allow(clippy::too_many_arguments)]
fn build_dicom(
    item: &Item,
    paths: &ScanPaths,
    ctx: &Ctx<'_>,
    format: Format,
    files: &[PathBuf],
    rows: &[CandidateRow],
    outputs: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> std::io::Result<()> {
    let warn = |warnings: &mut Vec<String>, w: String| {
        tracing::warn!("scans/{}: {w}", item.id);
        warnings.push(w);
    };
    let flags = match (ctx.opts.dicom_sr, ctx.opts.dicom_seg) {
        (true, true) => "--dicom-sr/--dicom-seg",
        (true, false) => "--dicom-sr",
        _ => "--dicom-seg",
    };
    if format != Format::Dicom {
        warn(
            warnings,
            format!(
                "{flags}: nothing written: a {format} file has no DICOM study, series or \
                 instances to reference; scan the DICOM series for DICOM results"
            ),
        );
        return Ok(());
    }
    let series_uid = item.series.as_deref().unwrap_or(&item.uid);
    let source = match speck_dicom_out::SourceSeries::read(files, series_uid) {
        Ok(s) => s,
        Err(e) => {
            warn(warnings, format!("{flags}: nothing written: {e}"));
            return Ok(());
        }
    };
    let stamp = speck_dicom_out::Stamp::now();
    let findings = reported_findings(rows, &stamp);
    let algorithm = speck_dicom_out::Algorithm::speck(vec![
        serde_json::to_string(&ctx.models).unwrap_or_default()
    ]);
    if ctx.opts.dicom_sr {
        // Written with no finding too: the report then says so (Nodule = Absent, in a
        // Qualitative Evaluations container), so every scanned series has one in the PACS.
        match speck_dicom_out::measurement_report(&source, &findings, &algorithm, &stamp)
            .and_then(|o| o.to_bytes())
        {
            Ok(bytes) => {
                atomic::write_atomic(&paths.dicom_sr, &bytes)?;
                outputs.push("sr.dcm".into());
            }
            Err(e) => warn(warnings, format!("no sr.dcm: {e}")),
        }
    }
    if ctx.opts.dicom_seg {
        if findings.is_empty() {
            // A segmentation needs at least one segment: with nothing found there is none to
            // write. Said in scan.json (not a warning on stderr: nothing is wrong).
            tracing::info!("scans/{}: no seg.dcm: no finding to segment", item.id);
            warnings.push(NO_SEG_WITHOUT_FINDINGS.into());
        } else {
            match speck_dicom_out::segmentation(&source, &findings, &algorithm, &stamp)
                .and_then(|o| o.to_bytes())
            {
                Ok(bytes) => {
                    atomic::write_atomic(&paths.dicom_seg, &bytes)?;
                    outputs.push("seg.dcm".into());
                }
                Err(e) => warn(warnings, format!("no seg.dcm: {e}")),
            }
        }
    }
    Ok(())
}

/// Run every item: returns the counts. Run-level files are written even when interrupted.
///
/// # Errors
/// Only when a run-level file cannot be written (per-scan problems are recorded, not returned).
pub fn run(
    items: &[Item],
    engine: &dyn Engine,
    opts: &Options,
    interrupted: &AtomicBool,
) -> anyhow::Result<RunResult> {
    use anyhow::Context as _;
    let (skips, planned): (Vec<&Item>, Vec<&Item>) = items
        .iter()
        .partition(|i| matches!(i.plan, Plan::Skip { .. }));
    let items = planned;
    std::fs::create_dir_all(opts.out.join("scans"))
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    std::fs::create_dir_all(&opts.run_dir)
        .with_context(|| format!("cannot create {}", opts.run_dir.display()))?;
    atomic::sweep_stale_temps(&opts.run_dir);

    let ctx = Ctx {
        engine,
        models: engine.describe(),
        opts,
        budget: Budget::new(opts.budget_bytes),
        interrupted,
    };
    let bar = progress_bar(items.len() as u64, opts.progress);
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Option<Outcome>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    let (n_ok, n_failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let jobs = opts.jobs.clamp(1, items.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                if interrupted.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&item) = items.get(i) else { break };
                let show = |f: f32| {
                    bar.set_message(format!(
                        "{} ok, {} failed; {} {:.0}%",
                        n_ok.load(Ordering::SeqCst),
                        n_failed.load(Ordering::SeqCst),
                        short(&item.id),
                        f * 100.0
                    ));
                };
                let outcome = process(item, &ctx, &show);
                if matches!(outcome, Outcome::Failed { ref error, .. } if error.stage == "interrupted") {
                    break;
                }
                match &outcome {
                    Outcome::Done { .. } => n_ok.fetch_add(1, Ordering::SeqCst),
                    Outcome::Failed { .. } => n_failed.fetch_add(1, Ordering::SeqCst),
                };
                if let Ok(mut o) = outcomes.lock() {
                    o[i] = Some(outcome);
                }
                bar.set_message(format!(
                    "{} ok, {} failed",
                    n_ok.load(Ordering::SeqCst),
                    n_failed.load(Ordering::SeqCst)
                ));
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();

    let outcomes = outcomes
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut result = RunResult {
        interrupted: interrupted.load(Ordering::SeqCst),
        ..RunResult::default()
    };
    let mut candidates = Vec::new();
    let mut summary = Vec::new();
    let mut errors = Vec::new();
    for (i, o) in outcomes.into_iter().enumerate() {
        match o {
            None => {
                result.not_started += 1;
                // Listed as failed (stage `interrupted`), so that the run's files, and a merge of
                // shards, show that the scan is missing.
                if let Some(Outcome::Failed { summary: s, error }) = items
                    .get(i)
                    .map(|item| failed_quietly(item, "interrupted", NOT_STARTED.into(), 0.0))
                {
                    summary.push(s);
                    errors.push(error);
                }
            }
            Some(Outcome::Done {
                summary: s,
                rows,
                resumed,
            }) => {
                if resumed {
                    result.resumed += 1;
                } else {
                    result.ok += 1;
                }
                summary.push(s);
                candidates.extend(rows);
            }
            Some(Outcome::Failed { summary: s, error }) => {
                result.failed += 1;
                summary.push(s);
                errors.push(error);
            }
        }
    }
    if opts.run_dir == opts.out {
        let ours: std::collections::BTreeSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
        // seriesuid is what `speck eval` matches on: an earlier scan whose seriesuid one of this
        // run's scans (or another earlier one) already has would merge two scans into one there,
        // so it is left out (and named by the caller).
        let mut uids: std::collections::BTreeSet<String> =
            summary.iter().map(|s| s.seriesuid.clone()).collect();
        for (s, rows) in earlier_scans(&opts.out, &ours) {
            if !uids.insert(s.seriesuid.clone()) {
                continue;
            }
            result.earlier.push(s.scan_id.clone());
            summary.push(s);
            candidates.extend(rows);
        }
    }
    let mut skipped: Vec<SkippedRow> = Vec::with_capacity(skips.len());
    for item in &skips {
        let Plan::Skip { reason } = &item.plan else {
            continue;
        };
        result.skipped += 1;
        skipped.push(skipped_row(item, reason));
        if opts.strict_skips {
            if let Outcome::Failed { error, .. } = failed(
                item,
                "skipped",
                format!("not a CT image series (--strict-skips): {reason}"),
                0.0,
            ) {
                errors.push(error);
            }
        } else {
            tracing::info!("{}: skipped: {reason}", item.source.display());
        }
    }
    output::sort_candidates(&mut candidates);
    output::sort_summary(&mut summary);
    output::sort_errors(&mut errors);
    output::sort_skipped(&mut skipped);
    let d = &opts.run_dir;
    output::write_csv(&d.join("candidates.csv"), &CANDIDATE_COLUMNS, &candidates)
        .with_context(|| format!("cannot write {}", d.join("candidates.csv").display()))?;
    output::write_csv(&d.join("summary.csv"), &SUMMARY_COLUMNS, &summary)
        .with_context(|| format!("cannot write {}", d.join("summary.csv").display()))?;
    output::write_csv(&d.join("errors.csv"), &ERROR_COLUMNS, &errors)
        .with_context(|| format!("cannot write {}", d.join("errors.csv").display()))?;
    output::write_csv(&d.join("skipped.csv"), &SKIPPED_COLUMNS, &skipped)
        .with_context(|| format!("cannot write {}", d.join("skipped.csv").display()))?;
    output::write_csv(
        &d.join("studies.csv"),
        &STUDY_COLUMNS,
        &output::studies(&summary, &skipped),
    )
    .with_context(|| format!("cannot write {}", d.join("studies.csv").display()))?;
    let mut facts = opts.facts.clone();
    facts.push(format!(
        "{} scan(s) ok ({} from an earlier run), {} failed, {} skipped (not CT image series{}){}",
        result.ok + result.resumed,
        result.resumed,
        result.failed,
        result.skipped,
        if opts.strict_skips {
            "; failures under --strict-skips"
        } else {
            ""
        },
        if result.interrupted {
            format!(", interrupted with {} not started", result.not_started)
        } else {
            String::new()
        }
    ));
    write_report(
        &opts.out,
        &opts.run_dir,
        opts.report,
        opts.thumbnails.max(5),
        facts,
        &summary,
        &candidates,
        &errors,
        &skipped,
    )?;
    Ok(result)
}

/// The `skipped.csv` line of a skipped item.
fn skipped_row(item: &Item, reason: &super::discover::SkipReason) -> SkippedRow {
    SkippedRow {
        input: path_str(&item.source),
        series: item.series.clone().unwrap_or_default(),
        kind: reason.kind().into(),
        reason: reason.to_string(),
        patient_id: item.patient_id.clone().unwrap_or_default(),
        study_uid: item.study_uid.clone().unwrap_or_default(),
    }
}

/// Complete scans under `out/scans/` that are not in `ours` (folders of earlier runs into the same
/// `--out`): their summary rows and candidates, read back from their own `scan.json` and
/// `candidates.csv`, so that an unsharded run's files describe every scan folder present. A folder
/// whose record or candidates do not read back (an older record version, a half-written scan) is
/// left out; the caller names such folders.
fn earlier_scans(
    out: &Path,
    ours: &std::collections::BTreeSet<&str>,
) -> Vec<(SummaryRow, Vec<CandidateRow>)> {
    let Ok(rd) = std::fs::read_dir(out.join("scans")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in rd.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if ours.contains(id.as_str()) || !names::is_safe_component(&id) {
            continue;
        }
        let paths = ScanPaths::new(out, &id);
        let Some(rec) = output::read_record(&paths.record) else {
            continue;
        };
        if rec.version != RECORD_VERSION || rec.scan_id != id {
            continue;
        }
        let Ok(rows) = output::read_csv::<CandidateRow>(&paths.candidates) else {
            continue;
        };
        if rows.len() != rec.n_candidates || rows.iter().any(|r| r.scan_id != id) {
            continue;
        }
        let seconds = rec.timings_s.get("total").copied().unwrap_or(0.0);
        found.push((
            SummaryRow {
                scan_id: id,
                seriesuid: rec.seriesuid.clone(),
                status: "ok".into(),
                n_candidates: rows.len(),
                seconds: fixed(seconds, 2),
                format: rec.format.clone(),
                source: rec.source.clone(),
                patient_id: rec.patient_id.clone().unwrap_or_default(),
                study_uid: rec.study_uid.clone().unwrap_or_default(),
            },
            rows,
        ));
    }
    found.sort_by(|a, b| a.0.scan_id.cmp(&b.0.scan_id));
    found
}

/// Write `report.html`/`report.md` into `run_dir`, linking thumbnails under `out/scans/`.
///
/// # Errors
/// When the report cannot be written.
#[allow(clippy::too_many_arguments)]
pub fn write_report(
    out: &Path,
    run_dir: &Path,
    format: ReportFormat,
    top: usize,
    facts: Vec<String>,
    summary: &[SummaryRow],
    candidates: &[CandidateRow],
    errors: &[ErrorRow],
    skipped: &[SkippedRow],
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let (name, render): (&str, fn(&report::ReportData<'_>) -> String) = match format {
        ReportFormat::None => return Ok(()),
        ReportFormat::Html => ("report.html", report::html),
        ReportFormat::Md => ("report.md", report::markdown),
    };
    let mut by_scan: BTreeMap<&str, Vec<&CandidateRow>> = BTreeMap::new();
    for c in candidates {
        by_scan.entry(c.scan_id.as_str()).or_default().push(c);
    }
    let rel_prefix = relative_prefix(run_dir, out);
    let scans = summary
        .iter()
        .map(|s| {
            let mut cands = by_scan.remove(s.scan_id.as_str()).unwrap_or_default();
            cands.sort_by_key(|c| c.rank);
            let paths = ScanPaths::new(out, &s.scan_id);
            let safe = names::is_safe_component(&s.scan_id);
            let thumbnails = cands
                .iter()
                .map(|c| {
                    (safe && paths.thumbnail(c.rank).is_file()).then(|| {
                        format!(
                            "{rel_prefix}scans/{}/thumbnails/candidate-{:03}.png",
                            s.scan_id, c.rank
                        )
                    })
                })
                .collect();
            report::ReportScan {
                summary: s,
                candidates: cands,
                thumbnails,
            }
        })
        .collect();
    let data = report::ReportData {
        title: "Speck scan report".into(),
        facts,
        scans,
        errors,
        skipped,
        top,
    };
    let path = run_dir.join(name);
    atomic::write_atomic(&path, render(&data).as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The end of a long id, for the progress bar.
fn short(id: &str) -> &str {
    let n = id.len();
    // Ids are ASCII (safe names), so any byte offset is a char boundary.
    if n > 24 {
        &id[n - 24..]
    } else {
        id
    }
}

/// `../../` from `run_dir` back to `out` (run_dir is `out` or `out/shards/K-of-N`).
fn relative_prefix(run_dir: &Path, out: &Path) -> String {
    match run_dir.strip_prefix(out) {
        Ok(rel) => "../".repeat(rel.components().count()),
        Err(_) => String::new(),
    }
}

fn progress_bar(len: u64, enabled: bool) -> indicatif::ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} scans ({msg}) ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar.set_message("0 ok, 0 failed");
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    bar
}
