//! One scan, in typed steps: [`ScanInput::of`] (what discovery planned) → the resume check
//! ([`resumed`]) → the memory gate ([`admit`]) → [`load`] → [`detect`] → [`write_outputs`]. Each
//! step returns what the next one needs, or a [`Failure`] naming the stage that becomes the scan's
//! `errors.csv` row.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use speck_volume::{Format, Limits, LoadOptions, Probe, Volume, VoxelIndex};

use crate::discover::{Item, Plan};
use crate::engine::{EngineOutput, Found};
use crate::identity::{self, InputIdentity};
use crate::memory::{self, Reservation};
use crate::output::{
    self, as_written, CandidateRow, ErrorRow, ScanPaths, ScanRecord, Side, Stage, Status,
    SummaryRow, CANDIDATE_COLUMNS, COORD_DECIMALS, DIAMETER_DECIMALS, PROBABILITY_DECIMALS,
    RECORD_VERSION, SECONDS_DECIMALS, VOLUME_DECIMALS,
};
use crate::run::{round_to, Ctx};
use crate::{atomic, dicom, thumbs};

/// What became of one item.
pub(crate) enum Outcome {
    /// Its outputs are complete (written now, or by an earlier run when `resumed`).
    Done {
        summary: SummaryRow,
        rows: Vec<CandidateRow>,
        resumed: bool,
    },
    /// It failed: its summary line and its `errors.csv` row.
    Failed {
        summary: SummaryRow,
        error: ErrorRow,
    },
}

/// Why a step stopped the scan.
pub(crate) struct Failure {
    stage: Stage,
    reason: String,
}

impl Failure {
    fn new(stage: Stage, reason: impl Into<String>) -> Self {
        Self {
            stage,
            reason: reason.into(),
        }
    }
}

/// Reason recorded for the scans an interrupted run never started.
pub const NOT_STARTED: &str =
    "not started: the run was interrupted (Ctrl-C or SIGTERM); rerun with --resume";

/// Options stored in `scan.json` so `--resume` knows whether a finished scan has what is asked now.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Requested {
    pub(crate) heatmap: bool,
    pub(crate) thumbnails: usize,
    /// Absent in records written before the flag existed: not requested then.
    #[serde(default)]
    pub(crate) dicom_sr: bool,
    #[serde(default)]
    pub(crate) dicom_seg: bool,
}

/// The failure of `item` at `stage`, logged as a warning.
pub(crate) fn failed(item: &Item, stage: Stage, reason: String, seconds: f64) -> Outcome {
    tracing::warn!("{}: {stage}: {reason}", item.id);
    failed_quietly(item, stage, reason, seconds)
}

/// [`failed`] without the log line (for the many scans an interrupted run did not start).
pub(crate) fn failed_quietly(item: &Item, stage: Stage, reason: String, seconds: f64) -> Outcome {
    let format = match &item.plan {
        Plan::Scan { format, .. } => format.to_string(),
        Plan::Fail { .. } | Plan::Skip { .. } => String::new(),
    };
    let source = path_str(&item.source);
    Outcome::Failed {
        summary: summary_row(item, Status::Failed, 0, seconds, format, source.clone()),
        error: ErrorRow {
            input: source,
            series: item.series.clone().unwrap_or_default(),
            reason,
            scan_id: item.id.clone(),
            stage,
        },
    }
}

/// The `summary.csv` line of `item`.
fn summary_row(
    item: &Item,
    status: Status,
    n_candidates: usize,
    seconds: f64,
    format: String,
    source: String,
) -> SummaryRow {
    SummaryRow {
        scan_id: item.id.clone(),
        seriesuid: item.uid.clone(),
        status,
        n_candidates,
        seconds: as_written(seconds, SECONDS_DECIMALS),
        format,
        source,
        patient_id: item.patient_id.clone().unwrap_or_default(),
        study_uid: item.study_uid.clone().unwrap_or_default(),
    }
}

pub(crate) fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// What discovery planned for a scan: the reader, what to read, and what the header said.
pub(crate) struct ScanInput<'a> {
    pub(crate) format: Format,
    pub(crate) path: &'a Path,
    series_uid: Option<&'a String>,
    size: Option<&'a Probe>,
    pub(crate) files: &'a [PathBuf],
}

impl<'a> ScanInput<'a> {
    /// The scan planned for `item`; an item that failed discovery or is skipped fails here
    /// (stages `discover` and `skipped`).
    fn of(item: &'a Item) -> Result<Self, Failure> {
        match &item.plan {
            Plan::Fail { reason } => Err(Failure::new(Stage::Discover, reason.clone())),
            Plan::Skip { reason } => Err(Failure::new(
                Stage::Skipped,
                format!("{}: {reason}", reason.kind()),
            )),
            Plan::Scan {
                format,
                path,
                series_uid,
                size,
                files,
            } => Ok(Self {
                format: *format,
                path,
                series_uid: series_uid.as_ref(),
                size: size.as_ref(),
                files,
            }),
        }
    }

    /// Which input exactly (for `--resume`).
    fn identity(&self) -> Result<InputIdentity, Failure> {
        match self.series_uid {
            Some(uid) => identity::of_dicom_series(self.path, uid, self.files),
            None => identity::of_image_file(self.path),
        }
        .map_err(|e| Failure::new(Stage::Load, format!("cannot read: {e}")))
    }

    /// The summary line of this scan, done with `n_candidates` in `seconds`.
    fn done(&self, item: &Item, n_candidates: usize, seconds: f64) -> SummaryRow {
        let (format, source) = (self.format.to_string(), path_str(self.path));
        summary_row(item, Status::Ok, n_candidates, seconds, format, source)
    }
}

/// Scan one item: never fails, a problem is an [`Outcome::Failed`].
pub(crate) fn process(item: &Item, ctx: &Ctx<'_>, on_progress: &(dyn Fn(f32) + Sync)) -> Outcome {
    let input = match ScanInput::of(item) {
        Ok(input) => input,
        Err(f) => return failed(item, f.stage, f.reason, 0.0),
    };
    let t0 = Instant::now();
    pipeline(item, &input, ctx, on_progress, t0)
        .unwrap_or_else(|f| failed(item, f.stage, f.reason, t0.elapsed().as_secs_f64()))
}

/// The steps of [`process`] after the plan.
fn pipeline(
    item: &Item,
    input: &ScanInput<'_>,
    ctx: &Ctx<'_>,
    on_progress: &(dyn Fn(f32) + Sync),
    t0: Instant,
) -> Result<Outcome, Failure> {
    let identity = input.identity()?;
    let paths = ScanPaths::new(&ctx.opts.out, &item.id);
    if ctx.opts.resume {
        if let Some(outcome) = resumed(item, input, &identity, &paths, ctx) {
            return Ok(outcome);
        }
    }
    let admitted = admit(input, ctx)?;
    on_progress(0.0);
    let loaded = load(input, &admitted, ctx.budget.total())?;
    let detected = detect(ctx, &loaded.volume, on_progress)?;
    // Write: remove the old completion marker first, so a crash mid-way never leaves an old
    // marker beside new files.
    let t_write = Instant::now();
    let found = sorted_findings(&detected.output);
    let rows = candidate_rows(item, &loaded.volume, &found);
    let scanned = Scanned {
        item,
        input,
        paths: &paths,
        volume: &loaded.volume,
        det: &detected.output,
        found: &found,
        rows: &rows,
        identity,
        estimate: admitted.estimate.max(loaded.estimate),
        load_s: loaded.seconds,
        detect_s: detected.seconds,
        t_write,
        t0,
    };
    let seconds =
        write_outputs(&scanned, ctx).map_err(|e| Failure::new(Stage::Write, e.to_string()))?;
    Ok(Outcome::Done {
        summary: input.done(item, rows.len(), seconds),
        rows,
        resumed: false,
    })
}

/// Step 1, `--resume`: the outcome of a scan whose outputs an earlier run completed with the same
/// input, models and at least the same options; `None` when it must be scanned (again).
fn resumed(
    item: &Item,
    input: &ScanInput<'_>,
    identity: &InputIdentity,
    paths: &ScanPaths,
    ctx: &Ctx<'_>,
) -> Option<Outcome> {
    let (rec, rows) = completed(item, identity, paths, ctx)?;
    tracing::info!("{}: complete from an earlier run, skipped", item.id);
    let seconds = rec.timings_s.get("total").copied().unwrap_or(0.0);
    Some(Outcome::Done {
        summary: input.done(item, rows.len(), seconds),
        rows,
        resumed: true,
    })
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

/// A scan let through the memory gate: its estimate is reserved until this is dropped.
struct Admitted<'a> {
    estimate: u64,
    limits: Limits,
    _reservation: Reservation<'a>,
}

/// Step 2, the memory gate: refuse what can never fit, then wait for room (stage `memory`); a
/// run interrupted meanwhile stops here (stage `interrupted`).
fn admit<'a>(input: &ScanInput<'_>, ctx: &'a Ctx<'_>) -> Result<Admitted<'a>, Failure> {
    let total = ctx.budget.total();
    let estimate = match input.size {
        Some(s) => memory::estimate_peak_bytes(s.voxels(), s.bytes_per_voxel),
        // Unknown size: reserve an equal share and let the loader refuse anything larger.
        None => (total / ctx.opts.jobs.max(1) as u64).max(memory::BASE_BYTES),
    };
    if estimate > total {
        let voxels = input.size.map(Probe::voxels).unwrap_or(0);
        return Err(Failure::new(
            Stage::Memory,
            format!(
                "needs an estimated {} ({voxels} voxels from the header) but the memory budget \
                 (--max-memory) is {}",
                memory::gib(estimate),
                memory::gib(total)
            ),
        ));
    }
    let mut limits = Limits::default();
    limits.max_voxels = limits.max_voxels.min(memory::voxels_within(total, 4));
    limits.max_bytes = limits
        .max_bytes
        .min(total.saturating_sub(memory::BASE_BYTES));
    let Some(reservation) = ctx.budget.reserve(estimate) else {
        return Err(Failure::new(
            Stage::Memory,
            "does not fit the memory budget",
        ));
    };
    if ctx.interrupted.load(Ordering::SeqCst) {
        return Err(Failure::new(Stage::Interrupted, "the run was interrupted"));
    }
    Ok(Admitted {
        estimate,
        limits,
        _reservation: reservation,
    })
}

/// A loaded volume, the seconds it took and its memory estimate from its real size.
struct Loaded {
    volume: Volume,
    seconds: f64,
    estimate: u64,
}

/// Step 3: read the volume within the gate's limits (stage `load`), and refuse one whose real
/// size needs more than the budget (stage `memory`).
fn load(input: &ScanInput<'_>, admitted: &Admitted<'_>, total: u64) -> Result<Loaded, Failure> {
    let t_load = Instant::now();
    let load_opts = LoadOptions::new()
        .limits(admitted.limits)
        .series_uid(input.series_uid.cloned());
    // A DICOM series in a folder is read from the files discovery found for it, so that a flat
    // export of many series is not read once per series.
    let loaded = if input.format == Format::Dicom && !input.files.is_empty() && input.path.is_dir()
    {
        speck_volume::dicom::read_series_files(input.path, input.files, &load_opts)
    } else {
        speck_volume::open_with(input.path, &load_opts)
    };
    let volume = loaded.map_err(|e| Failure::new(Stage::Load, e.to_string()))?;
    let seconds = t_load.elapsed().as_secs_f64();
    let [nz, ny, nx] = volume.shape_zyx();
    let voxels = (nz * ny * nx) as u64;
    let estimate = memory::estimate_peak_bytes(voxels, 2);
    if estimate > total {
        return Err(Failure::new(
            Stage::Memory,
            format!(
                "the image has {nz}x{ny}x{nx} voxels, an estimated {} to scan, more than the \
                 memory budget (--max-memory) of {}",
                memory::gib(estimate),
                memory::gib(total)
            ),
        ));
    }
    Ok(Loaded {
        volume,
        seconds,
        estimate,
    })
}

/// What the engine found and the seconds it took.
struct Detected {
    output: EngineOutput,
    seconds: f64,
}

/// Step 4: run the engine (stage `detect`).
fn detect(
    ctx: &Ctx<'_>,
    volume: &Volume,
    on_progress: &(dyn Fn(f32) + Sync),
) -> Result<Detected, Failure> {
    let t_det = Instant::now();
    let output = ctx
        .engine
        .detect(volume, ctx.opts.heatmap, on_progress)
        .map_err(|e| Failure::new(Stage::Detect, crate::chain(&e)))?;
    Ok(Detected {
        output,
        seconds: t_det.elapsed().as_secs_f64(),
    })
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
            let side = idx
                .and_then(|v| {
                    *midlines
                        .entry(v.z)
                        .or_insert_with(|| midline_x_mm(volume, v.z))
                })
                .map(|mid| {
                    if c.world.x_mm >= mid {
                        Side::Left
                    } else {
                        Side::Right
                    }
                });
            let instance_number = idx
                .and_then(|v| slices.get(v.z))
                .and_then(|s| s.instance_number);
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
                coord_x: as_written(c.world.x_mm, COORD_DECIMALS),
                coord_y: as_written(c.world.y_mm, COORD_DECIMALS),
                coord_z: as_written(c.world.z_mm, COORD_DECIMALS),
                probability: as_written(f64::from(c.probability), PROBABILITY_DECIMALS),
                scan_id: item.id.clone(),
                rank: u32::try_from(i + 1).unwrap_or(u32::MAX),
                index_z: idx.map(|v| v.z),
                index_y: idx.map(|v| v.y),
                index_x: idx.map(|v| v.x),
                diameter_mm: c.diameter_mm.map(|d| as_written(d, DIAMETER_DECIMALS)),
                side,
                in_lung: f.in_lung,
                instance_number,
                above_operating_point: f.above_operating_point,
                measured_volume_mm3: m.map(|m| as_written(m.volume_mm3, VOLUME_DECIMALS)),
                measured_diameter_mm: m
                    .map(|m| as_written(m.equivalent_diameter_mm, DIAMETER_DECIMALS)),
                longest_axial_mm: m.map(|m| as_written(m.longest_axial_mm, DIAMETER_DECIMALS)),
                lung_rads_size: m.and_then(|m| m.lung_rads_size()),
                measure_reliability: m.map(|m| m.reliability),
            }
        })
        .collect()
}

/// Everything a scan's outputs are made of.
struct Scanned<'a> {
    item: &'a Item,
    input: &'a ScanInput<'a>,
    paths: &'a ScanPaths,
    volume: &'a Volume,
    det: &'a EngineOutput,
    found: &'a [Found],
    rows: &'a [CandidateRow],
    identity: InputIdentity,
    /// The larger of the header's and the volume's memory estimates.
    estimate: u64,
    load_s: f64,
    detect_s: f64,
    t_write: Instant,
    t0: Instant,
}

/// What a scan's outputs say about themselves while they are written: the files written, the
/// warnings for `scan.json`, and the files of an earlier run removed.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub(crate) outputs: Vec<String>,
    pub(crate) warnings: Vec<String>,
    pub(crate) removed: Vec<String>,
}

impl Written {
    /// A warning of scan `id`: logged, and kept for `scan.json`.
    pub(crate) fn warn(&mut self, id: &str, w: String) {
        tracing::warn!("scans/{id}: {w}");
        self.warnings.push(w);
    }
}

/// Step 5: write the scan's outputs, `scan.json` last; returns the scan's total seconds.
fn write_outputs(s: &Scanned<'_>, ctx: &Ctx<'_>) -> std::io::Result<f64> {
    let paths = s.paths;
    std::fs::create_dir_all(&paths.dir)?;
    match std::fs::remove_file(&paths.record) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    atomic::sweep_stale_temps(&paths.dir);
    let mut w = Written {
        outputs: vec!["candidates.csv".to_string()],
        warnings: s.volume.provenance().warnings.clone(),
        removed: Vec::new(),
    };
    w.warnings.extend(s.det.warnings.iter().cloned());
    output::write_csv(&paths.candidates, &CANDIDATE_COLUMNS, s.rows)?;
    write_heatmap(s, ctx, &mut w)?;
    let old_thumbnails = write_thumbnails(s, ctx, &mut w)?;
    dicom::write_dicom(
        &dicom::DicomRequest {
            item: s.item,
            paths,
            format: s.input.format,
            files: s.input.files,
            rows: s.rows,
            models: &ctx.models,
            sr: ctx.opts.dicom_sr,
            seg: ctx.opts.dicom_seg,
        },
        &mut w,
    )?;
    note_removed(s.item, &old_thumbnails, &mut w);
    let (record, total_s) = scan_record(s, ctx, w);
    output::write_record(&paths.record, &record)?;
    Ok(total_s)
}

/// `--heatmap`: write `heatmap.nii.gz` (or say why not); remove one of an earlier run otherwise.
fn write_heatmap(s: &Scanned<'_>, ctx: &Ctx<'_>, w: &mut Written) -> std::io::Result<()> {
    let path = &s.paths.heatmap;
    if !ctx.opts.heatmap {
        // Files of an earlier run of this scan that this run does not write again would describe
        // other results, so they go, and stderr and scan.json say so.
        if path.exists() {
            std::fs::remove_file(path)?;
            w.removed.push("heatmap.nii.gz".into());
        }
        return Ok(());
    }
    let Some((map, geometry)) = &s.det.heatmap else {
        w.warnings
            .push("no heatmap: the detector's pipeline has no coarse stage".into());
        return Ok(());
    };
    let (tmp, f) = atomic::create_temp(path)?;
    drop(f);
    match speck_volume::nifti::write_nifti_f32(map.view(), geometry, &tmp) {
        Ok(()) => atomic::commit(&tmp, path)?,
        Err(e) => {
            atomic::discard(&tmp);
            return Err(std::io::Error::other(format!("heatmap: {e}")));
        }
    }
    w.outputs.push("heatmap.nii.gz".into());
    Ok(())
}

/// `--thumbnails`: write the top candidates' thumbnails, after removing the folder of an earlier
/// run; returns the thumbnails that folder held.
fn write_thumbnails(
    s: &Scanned<'_>,
    ctx: &Ctx<'_>,
    w: &mut Written,
) -> std::io::Result<Vec<String>> {
    let dir = &s.paths.thumbnails;
    let old: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            let mut v: Vec<String> = d
                .flatten()
                .map(|e| format!("thumbnails/{}", e.file_name().to_string_lossy()))
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    if ctx.opts.thumbnails > 0 && !s.rows.is_empty() {
        std::fs::create_dir_all(dir)?;
        for (i, f) in s.found.iter().take(ctx.opts.thumbnails).enumerate() {
            let c = &f.candidate;
            let rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let p = s.paths.thumbnail(rank);
            thumbs::write_thumbnail(&p, s.volume, c.world, c.diameter_mm)?;
            if let Some(name) = p.file_name() {
                w.outputs
                    .push(format!("thumbnails/{}", name.to_string_lossy()));
            }
        }
    }
    Ok(old)
}

/// Say in a warning which files of an earlier run of this scan were removed (thumbnails of it
/// that this run did not write again among them).
fn note_removed(item: &Item, old_thumbnails: &[String], w: &mut Written) {
    let gone: Vec<&String> = old_thumbnails
        .iter()
        .filter(|t| !w.outputs.contains(t))
        .collect();
    match gone.as_slice() {
        [] => {}
        [one] => w.removed.push((*one).clone()),
        [first, .., last] => w
            .removed
            .push(format!("{} thumbnails ({first} .. {last})", gone.len())),
    }
    if !w.removed.is_empty() {
        let text = format!(
            "removed {} of an earlier run of this scan, which this run does not write \
             (ask for them with --heatmap / --thumbnails / --thumbnails-top / --dicom-sr / \
             --dicom-seg)",
            w.removed.join(" and ")
        );
        w.warn(&item.id, text);
    }
}

/// A JSON number with a fraction rounded to 6 decimals; anything else as it is.
fn rounded(v: &serde_json::Value) -> serde_json::Value {
    match v.as_f64() {
        Some(x) if v.is_f64() => serde_json::json!(round_to(x, 6)),
        _ => v.clone(),
    }
}

/// The scan's `scan.json`, its timings taken now, and its total seconds.
fn scan_record(s: &Scanned<'_>, ctx: &Ctx<'_>, w: Written) -> (ScanRecord, f64) {
    let mut timings: BTreeMap<String, f64> = BTreeMap::new();
    timings.insert("load".into(), s.load_s);
    timings.insert("detect".into(), s.detect_s);
    for (k, v) in &s.det.timings_s {
        timings.insert(format!("detect.{k}"), *v);
    }
    timings.insert("write".into(), s.t_write.elapsed().as_secs_f64());
    let total_s = s.t0.elapsed().as_secs_f64();
    timings.insert("total".into(), total_s);
    let prov = s.volume.provenance();
    let record = ScanRecord {
        version: RECORD_VERSION,
        scan_id: s.item.id.clone(),
        seriesuid: s.item.uid.clone(),
        input: path_str(&s.item.input),
        source: path_str(s.input.path),
        input_identity: s.identity.clone(),
        format: s.input.format.to_string(),
        study_uid: prov.study_uid.clone(),
        patient_id: prov.patient_id.clone(),
        series_choice: s.item.choice.clone(),
        shape_zyx: s.volume.shape_zyx(),
        spacing_zyx_mm: s.volume.geometry().spacing.zyx().map(|v| round_to(v, 6)),
        n_candidates: s.rows.len(),
        device: s.det.device.clone(),
        timings_s: timings
            .into_iter()
            .map(|(k, v)| (k, round_to(v, 4)))
            .collect(),
        counts: s
            .det
            .counts
            .iter()
            .map(|(k, v)| (k.clone(), rounded(v)))
            .collect(),
        warnings: w.warnings,
        estimated_peak_bytes: s.estimate,
        process_peak_rss_bytes: memory::peak_rss_bytes(),
        models: ctx.models.clone(),
        requested: serde_json::to_value(Requested {
            heatmap: ctx.opts.heatmap,
            thumbnails: ctx.opts.thumbnails,
            dicom_sr: ctx.opts.dicom_sr,
            dicom_seg: ctx.opts.dicom_seg,
        })
        .unwrap_or_default(),
        outputs: w.outputs,
    };
    (record, total_s)
}
