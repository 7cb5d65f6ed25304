//! What the objects need from the scanned series: its patient and study attributes, its frame of
//! reference, and every instance with its position.

use std::path::{Path, PathBuf};

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use speck_volume::WorldPoint;

use crate::DicomOutError;

/// Attributes of the Patient, Patient Study and General Study modules (PS3.3 C.7.1.1, C.7.2.1,
/// C.7.2.2) copied into every object written, so that a PACS files the objects with the
/// images. Type 2 attributes missing in the source are written empty.
const COPIED: &[(Tag, VR, bool)] = &[
    (tags::PATIENT_NAME, VR::PN, true),
    (tags::PATIENT_ID, VR::LO, true),
    (tags::ISSUER_OF_PATIENT_ID, VR::LO, false),
    (tags::PATIENT_BIRTH_DATE, VR::DA, true),
    (tags::PATIENT_SEX, VR::CS, true),
    (tags::PATIENT_AGE, VR::AS, false),
    (tags::PATIENT_SIZE, VR::DS, false),
    (tags::PATIENT_WEIGHT, VR::DS, false),
    (tags::PATIENT_IDENTITY_REMOVED, VR::CS, false),
    (tags::DEIDENTIFICATION_METHOD, VR::LO, false),
    (tags::STUDY_INSTANCE_UID, VR::UI, true),
    (tags::STUDY_DATE, VR::DA, true),
    (tags::STUDY_TIME, VR::TM, true),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN, true),
    (tags::STUDY_ID, VR::SH, true),
    (tags::ACCESSION_NUMBER, VR::SH, true),
    (tags::STUDY_DESCRIPTION, VR::LO, false),
];

/// One image file of the source series.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInstance {
    /// The file.
    pub path: PathBuf,
    /// SOP Class UID (0008,0016), e.g. CT Image Storage.
    pub sop_class_uid: String,
    /// SOP Instance UID (0008,0018).
    pub sop_instance_uid: String,
    /// Number of Frames (0028,0008); 1 for a single-frame image.
    pub frames: u32,
    /// Rows (0028,0010).
    pub rows: u16,
    /// Columns (0028,0011).
    pub columns: u16,
    /// Image Position (Patient) (0020,0032): LPS mm of the centre of the first pixel; `None`
    /// for a multi-frame image, whose positions are per frame.
    pub position_mm: Option<[f64; 3]>,
    /// Image Orientation (Patient) (0020,0037): the row direction (in which the column index
    /// grows) then the column direction, LPS unit vectors.
    pub orientation: Option<[f64; 6]>,
    /// Pixel Spacing (0028,0030): `[between rows, between columns]` mm.
    pub pixel_spacing_mm: Option<[f64; 2]>,
    /// Slice Thickness (0018,0050), mm.
    pub slice_thickness_mm: Option<f64>,
}

/// Row direction × column direction of an Image Orientation (Patient).
fn cross_normal(o: [f64; 6]) -> [f64; 3] {
    let (r, c) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    [
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    ]
}

/// Signed distance (mm) of `p` from the plane through `position` with `orientation`.
fn plane_distance(position: [f64; 3], orientation: [f64; 6], p: WorldPoint) -> f64 {
    let n = cross_normal(orientation);
    let o = position;
    (p.x_mm - o[0]) * n[0] + (p.y_mm - o[1]) * n[1] + (p.z_mm - o[2]) * n[2]
}

/// `p` in the pixel grid of a plane: `(column, row)`, continuous, integers at pixel centres.
fn plane_pixel(
    position: [f64; 3],
    o: [f64; 6],
    [row_mm, col_mm]: [f64; 2],
    p: WorldPoint,
) -> (f64, f64) {
    let d = [
        p.x_mm - position[0],
        p.y_mm - position[1],
        p.z_mm - position[2],
    ];
    let u = (d[0] * o[0] + d[1] * o[1] + d[2] * o[2]) / col_mm;
    let v = (d[0] * o[3] + d[1] * o[4] + d[2] * o[5]) / row_mm;
    (u, v)
}

impl SourceInstance {
    /// The slice normal (row direction × column direction), when the orientation is known.
    pub fn normal(&self) -> Option<[f64; 3]> {
        self.orientation.map(cross_normal)
    }

    /// Signed distance (mm) of `p` from the slice's plane along its normal; `None` without
    /// geometry.
    pub fn distance_mm(&self, p: WorldPoint) -> Option<f64> {
        Some(plane_distance(self.position_mm?, self.orientation?, p))
    }

    /// `p` in the slice's pixel grid: `(column, row)`, continuous, integer values at pixel
    /// centres; `None` without geometry.
    pub fn pixel_of(&self, p: WorldPoint) -> Option<(f64, f64)> {
        Some(plane_pixel(
            self.position_mm?,
            self.orientation?,
            self.pixel_spacing_mm?,
            p,
        ))
    }
}

/// One image plane of the source series, as the objects cite it: a single-frame image, or one
/// frame of a multi-frame image such as an Enhanced CT Image (PS3.3 A.38), whose frames carry
/// their geometry in the Multi-frame Functional Groups (PS3.3 C.7.6.16: Plane Position
/// (Patient), Plane Orientation (Patient) and Pixel Measures, per frame or shared).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFrame {
    /// Index of its image in [`SourceSeries::instances`].
    pub instance: usize,
    /// Referenced Frame Number (0008,1160) that cites this plane: the 1-based frame of a
    /// multi-frame image; `None` for a single-frame image, cited by its SOP Instance UID alone
    /// (PS3.3 Table 10-3, Image SOP Instance Reference Macro).
    pub frame_number: Option<u32>,
    /// Image Position (Patient): LPS mm of the centre of the plane's first pixel.
    pub position_mm: [f64; 3],
    /// Image Orientation (Patient): row direction, then column direction.
    pub orientation: [f64; 6],
    /// Pixel Spacing: `[between rows, between columns]` mm.
    pub pixel_spacing_mm: [f64; 2],
    /// Slice Thickness, mm, when given.
    pub slice_thickness_mm: Option<f64>,
}

impl SourceFrame {
    /// The plane normal (row direction × column direction).
    pub fn normal(&self) -> [f64; 3] {
        cross_normal(self.orientation)
    }

    /// Signed distance (mm) of `p` from the plane along its normal.
    pub fn distance_mm(&self, p: WorldPoint) -> f64 {
        plane_distance(self.position_mm, self.orientation, p)
    }

    /// `p` in the plane's pixel grid: `(column, row)`, continuous, integer values at pixel
    /// centres.
    pub fn pixel_of(&self, p: WorldPoint) -> (f64, f64) {
        plane_pixel(self.position_mm, self.orientation, self.pixel_spacing_mm, p)
    }
}

/// Geometry of one frame of a multi-frame image, before it is tied to its sorted instance.
#[derive(Debug, Clone)]
struct FrameGeometry {
    number: u32,
    position: [f64; 3],
    orientation: [f64; 6],
    spacing: [f64; 2],
    thickness: Option<f64>,
}

/// The first item of sequence `seq` in `obj`.
fn first_item(obj: &InMemDicomObject, seq: Tag) -> Option<&InMemDicomObject> {
    obj.element_opt(seq).ok()??.items()?.first()
}

/// The frames of a multi-frame image with per-frame geometry: each frame's functional group
/// `seq` holding `attr`, from its Per-frame Functional Groups item, else the Shared one, else
/// the top level (PS3.3 C.7.6.16). Frames without a position are left out.
fn multiframe_geometry(obj: &InMemDicomObject) -> Vec<FrameGeometry> {
    let Some(per_frame) = obj
        .element_opt(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .ok()
        .flatten()
        .and_then(|e| e.items())
    else {
        return Vec::new();
    };
    let shared = first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    fn group<'a>(
        frame: &'a InMemDicomObject,
        shared: Option<&'a InMemDicomObject>,
        seq: Tag,
    ) -> Option<&'a InMemDicomObject> {
        first_item(frame, seq).or_else(|| shared.and_then(|s| first_item(s, seq)))
    }
    per_frame
        .iter()
        .enumerate()
        .filter_map(|(k, f)| {
            let measures = group(f, shared, tags::PIXEL_MEASURES_SEQUENCE);
            Some(FrameGeometry {
                number: u32::try_from(k + 1).ok()?,
                position: floats(
                    group(f, shared, tags::PLANE_POSITION_SEQUENCE)?,
                    tags::IMAGE_POSITION_PATIENT,
                )?,
                orientation: group(f, shared, tags::PLANE_ORIENTATION_SEQUENCE)
                    .and_then(|g| floats(g, tags::IMAGE_ORIENTATION_PATIENT))
                    .or_else(|| floats(obj, tags::IMAGE_ORIENTATION_PATIENT))?,
                spacing: measures
                    .and_then(|g| floats(g, tags::PIXEL_SPACING))
                    .or_else(|| floats(obj, tags::PIXEL_SPACING))?,
                thickness: measures
                    .and_then(|g| floats::<1>(g, tags::SLICE_THICKNESS))
                    .or_else(|| floats::<1>(obj, tags::SLICE_THICKNESS))
                    .map(|v| v[0]),
            })
        })
        .collect()
}

/// The scanned series as the DICOM objects reference it: read from the headers of its files
/// (never its pixels).
#[derive(Debug, Clone)]
pub struct SourceSeries {
    series_uid: String,
    study_uid: String,
    frame_of_reference_uid: Option<String>,
    position_reference_indicator: Option<String>,
    instances: Vec<SourceInstance>,
    frames: Vec<SourceFrame>,
    common: InMemDicomObject,
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> DicomOutError {
    DicomOutError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok()??;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

fn floats<const N: usize>(obj: &InMemDicomObject, tag: Tag) -> Option<[f64; N]> {
    let v = obj.element_opt(tag).ok()??.to_multi_float64().ok()?;
    let a: [f64; N] = v.get(..N)?.try_into().ok()?;
    a.iter().all(|x| x.is_finite()).then_some(a)
}

fn uint(obj: &InMemDicomObject, tag: Tag) -> Option<u32> {
    obj.element_opt(tag).ok()??.to_int::<u32>().ok()
}

impl SourceSeries {
    /// Read the headers of `files` and keep those of series `series_uid` (the files of other
    /// series are skipped). Instances are sorted along the slice normal (by Image Position
    /// (Patient) projected on it), as the volume's z axis is; the planes ([`Self::frames`]) of
    /// single-frame images and of the frames of multi-frame images (Enhanced CT: geometry from
    /// the functional groups) likewise.
    ///
    /// # Errors
    /// [`DicomOutError::Read`] naming a file that cannot be parsed (a bare data set without the
    /// Part 10 header among them), [`DicomOutError::Source`] for one without SOP Class or SOP
    /// Instance UID or Study Instance UID, [`DicomOutError::Series`] when no file is of series
    /// `series_uid`.
    pub fn read(files: &[PathBuf], series_uid: &str) -> Result<Self, DicomOutError> {
        let mut instances = Vec::new();
        let mut geometry: Vec<Vec<FrameGeometry>> = Vec::new();
        let mut first: Option<InMemDicomObject> = None;
        for path in files {
            let file = OpenFileOptions::new()
                .read_until(tags::PIXEL_DATA)
                .open_file(path)
                .map_err(|e| read_err(path, e))?;
            let obj = file.into_inner();
            if text(&obj, tags::SERIES_INSTANCE_UID).as_deref() != Some(series_uid) {
                continue;
            }
            let need = |tag: Tag, name: &str| {
                text(&obj, tag).ok_or_else(|| DicomOutError::Source {
                    path: path.clone(),
                    reason: format!("no {name} {tag}"),
                })
            };
            let sop_class_uid = need(tags::SOP_CLASS_UID, "SOPClassUID")?;
            let sop_instance_uid = need(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?;
            need(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?;
            let frames = uint(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
            let single = frames == 1;
            instances.push(SourceInstance {
                path: path.clone(),
                sop_class_uid,
                sop_instance_uid,
                frames,
                rows: uint(&obj, tags::ROWS)
                    .and_then(|v| u16::try_from(v).ok())
                    .unwrap_or(0),
                columns: uint(&obj, tags::COLUMNS)
                    .and_then(|v| u16::try_from(v).ok())
                    .unwrap_or(0),
                position_mm: floats(&obj, tags::IMAGE_POSITION_PATIENT).filter(|_| single),
                orientation: floats(&obj, tags::IMAGE_ORIENTATION_PATIENT).filter(|_| single),
                pixel_spacing_mm: floats(&obj, tags::PIXEL_SPACING).filter(|_| single),
                slice_thickness_mm: floats::<1>(&obj, tags::SLICE_THICKNESS).map(|v| v[0]),
            });
            geometry.push(if single {
                Vec::new()
            } else {
                multiframe_geometry(&obj)
            });
            if first.is_none() {
                first = Some(obj);
            }
        }
        let Some(first) = first else {
            return Err(DicomOutError::Series {
                series_uid: series_uid.to_string(),
                reason: format!(
                    "none of the {} file(s) given is of this series",
                    files.len()
                ),
            });
        };
        // Sort along the normal of the first slice, ties (and images without geometry) by
        // SOP Instance UID, so the order never depends on the order of `files`.
        let n = instances
            .iter()
            .find_map(SourceInstance::normal)
            .or_else(|| {
                geometry
                    .iter()
                    .flatten()
                    .next()
                    .map(|g| cross_normal(g.orientation))
            });
        let along = |p: [f64; 3]| n.map_or(f64::NAN, |n| p[0] * n[0] + p[1] * n[1] + p[2] * n[2]);
        let key = |i: &SourceInstance| -> f64 { i.position_mm.map_or(f64::NAN, along) };
        let mut paired: Vec<(SourceInstance, Vec<FrameGeometry>)> =
            instances.into_iter().zip(geometry).collect();
        paired.sort_by(|(a, _), (b, _)| {
            key(a)
                .total_cmp(&key(b))
                .then_with(|| a.sop_instance_uid.cmp(&b.sop_instance_uid))
        });
        paired.dedup_by(|(a, _), (b, _)| a.sop_instance_uid == b.sop_instance_uid);
        let mut frames = Vec::new();
        for (k, (i, g)) in paired.iter().enumerate() {
            if let (Some(position), Some(orientation), Some(spacing)) =
                (i.position_mm, i.orientation, i.pixel_spacing_mm)
            {
                frames.push(SourceFrame {
                    instance: k,
                    frame_number: None,
                    position_mm: position,
                    orientation,
                    pixel_spacing_mm: spacing,
                    slice_thickness_mm: i.slice_thickness_mm,
                });
            }
            frames.extend(g.iter().map(|g| SourceFrame {
                instance: k,
                frame_number: Some(g.number),
                position_mm: g.position,
                orientation: g.orientation,
                pixel_spacing_mm: g.spacing,
                slice_thickness_mm: g.thickness,
            }));
        }
        // Planes in the same order, ties by image then frame number.
        frames.sort_by(|a, b| {
            along(a.position_mm)
                .total_cmp(&along(b.position_mm))
                .then_with(|| a.instance.cmp(&b.instance))
                .then_with(|| a.frame_number.cmp(&b.frame_number))
        });
        let instances: Vec<SourceInstance> = paired.into_iter().map(|(i, _)| i).collect();

        let mut common = InMemDicomObject::new_empty();
        for &(tag, vr, type2) in COPIED {
            match first.element_opt(tag).ok().flatten() {
                Some(e) => {
                    common.put(e.clone());
                }
                None if type2 => {
                    common.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
                }
                None => {}
            }
        }
        if let Some(cs) = text(&first, tags::SPECIFIC_CHARACTER_SET) {
            let e = first
                .element_opt(tags::SPECIFIC_CHARACTER_SET)
                .ok()
                .flatten()
                .cloned();
            if let Some(e) = e {
                tracing::debug!(charset = %cs, "source character set kept");
                common.put(e);
            }
        }
        let study_uid = text(&first, tags::STUDY_INSTANCE_UID).unwrap_or_default();
        Ok(Self {
            series_uid: series_uid.to_string(),
            study_uid,
            frame_of_reference_uid: text(&first, tags::FRAME_OF_REFERENCE_UID),
            position_reference_indicator: text(&first, tags::POSITION_REFERENCE_INDICATOR),
            instances,
            frames,
            common,
        })
    }

    /// SeriesInstanceUID of the source.
    pub fn series_uid(&self) -> &str {
        &self.series_uid
    }

    /// StudyInstanceUID of the source (and of every object written for it).
    pub fn study_uid(&self) -> &str {
        &self.study_uid
    }

    /// FrameOfReferenceUID of the source, in which SCOORD3D points are given.
    pub fn frame_of_reference_uid(&self) -> Option<&str> {
        self.frame_of_reference_uid.as_deref()
    }

    /// The instances, sorted along the slice normal.
    pub fn instances(&self) -> &[SourceInstance] {
        &self.instances
    }

    /// The image planes (single-frame images and the frames of multi-frame images with
    /// per-frame geometry), sorted along the normal; images without geometry have none.
    pub fn frames(&self) -> &[SourceFrame] {
        &self.frames
    }

    /// The plane nearest to `p` (the slice a reader would look at for a finding there);
    /// `None` when no image has a position and orientation.
    pub fn nearest_frame(&self, p: WorldPoint) -> Option<&SourceFrame> {
        self.frames
            .iter()
            .map(|f| (f.distance_mm(p).abs(), f))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, f)| f)
    }

    /// The image of the plane nearest to `p` (see [`Self::nearest_frame`]): a single-frame
    /// slice, or the multi-frame image holding that frame.
    pub fn nearest_instance(&self, p: WorldPoint) -> Option<&SourceInstance> {
        self.nearest_frame(p)
            .and_then(|f| self.instances.get(f.instance))
    }

    /// The copied patient and study attributes (see the module list in the crate docs).
    pub(crate) fn common(&self) -> &InMemDicomObject {
        &self.common
    }

    /// Position Reference Indicator (0020,1040) of the source, if any.
    pub(crate) fn position_reference_indicator(&self) -> Option<&str> {
        self.position_reference_indicator.as_deref()
    }
}
