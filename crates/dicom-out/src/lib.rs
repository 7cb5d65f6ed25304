//! Speck's results where clinicians look: a DICOM **measurement report** (Comprehensive 3D SR
//! following PS3.16 TID 1500) and a binary DICOM **segmentation** for a scanned DICOM series, so
//! that a PACS, OHIF or 3D Slicer shows the findings over the images.
//!
//! This crate is output only: it reads the headers of the source series (never its pixels) with
//! dicom-rs, builds the objects as dicom-rs data sets, and encodes them with dicom-rs (explicit
//! VR little endian, Part 10). The caller decides where the bytes go (`speck scan` writes them
//! atomically into the scan's folder).
//!
//! # What the objects hold
//! - **Both**: the source's Patient and General Study attributes (PS3.3 C.7.1.1, C.7.2.1, and
//!   the Patient Study module's), so the objects file under the same patient and study; a new
//!   series and instance with new `2.25` UIDs; the source's Frame of Reference; General and
//!   Enhanced General Equipment naming the algorithm, its version and (as Device Serial Number)
//!   a hash of its models.
//! - **The report** ([`measurement_report`], SOP Class Comprehensive 3D SR Storage
//!   1.2.840.10008.5.1.4.1.1.88.34, PS3.3 A.35.13): one TID 1410 measurement group per finding
//!   with tracking identifier and UID, finding (Nodule) and finding site (Lung, with
//!   laterality), the centre as a SCOORD3D POINT in the series' frame of reference, the
//!   diameter, volume and detection probability (as Certainty of Finding in %) each inferred
//!   from the nearest source slice, and the algorithm's name, version and parameters (TID 4019);
//!   the evidence lists every instance of the series. See [`codes`] for every coded concept.
//!   With no finding the report is still written, so that every scanned series has one: a
//!   Qualitative Evaluations container saying Nodule = Absent, in code and words.
//! - **The segmentation** ([`segmentation`], Segmentation Storage 1.2.840.10008.5.1.4.1.1.66.4,
//!   PS3.3 A.51): one segment per finding on the source slices' geometry, binary and
//!   bit-packed, only the frames a finding touches, each frame referencing its source slice;
//!   segment `k` carries the tracking UID of the report's `k`-th group. A segmentation needs at
//!   least one segment (PS3.3 C.8.20.2: Segment Sequence, one or more items), so with no finding
//!   there is none.
//!
//! Determinism: the same source, findings, algorithm and [`Stamp::fixed`] give byte-identical
//! objects; [`Stamp::now`] changes only the UIDs and the dates and times.
//!
//! # Example
//! ```
//! use speck_dicom_out::{measurement_report, segmentation, Algorithm, Finding, Side, SourceSeries, Stamp};
//! use speck_volume::dicom::{write_series, DicomWriteOptions};
//! use speck_volume::{Direction, Geometry, Provenance, Spacing, Volume, WorldPoint};
//!
//! // A small CT series to report on.
//! let geometry = Geometry::new(
//!     Spacing::new(0.7, 0.7, 2.5)?, WorldPoint::new(-10.0, -10.0, -5.0), Direction::IDENTITY);
//! let volume = Volume::new(ndarray::Array3::from_elem((4, 32, 32), -800i16), geometry, Provenance::default())?;
//! let dir = tempfile::tempdir()?;
//! let options = DicomWriteOptions { series_uid: Some("1.2.3.4".into()), ..Default::default() };
//! write_series(&volume, dir.path(), &options)?;
//! let files: Vec<_> = std::fs::read_dir(dir.path())?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
//!
//! let source = SourceSeries::read(&files, "1.2.3.4")?;
//! let stamp = Stamp::now();
//! let finding = Finding {
//!     rank: 1,
//!     tracking_uid: stamp.uid(),
//!     centre: WorldPoint::new(0.5, 1.0, 0.0),
//!     probability: 0.93,
//!     diameter_mm: Some(4.2),
//!     volume_mm3: Some(38.8),
//!     side: Some(Side::Left),
//! };
//! let algorithm = Algorithm::speck(vec!["coarse-v8.onnx".into()]);
//! let sr = measurement_report(&source, &[finding.clone()], &algorithm, &stamp)?;
//! let seg = segmentation(&source, &[finding], &algorithm, &stamp)?;
//! assert_eq!(&sr.to_bytes()?[128..132], b"DICM");
//! assert_ne!(sr.sop_instance_uid(), seg.sop_instance_uid());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod codes;
mod error;
mod items;
mod object;
mod seg;
mod source;
mod sr;
mod stamp;

pub use error::DicomOutError;
pub use object::{Algorithm, DicomObject, Finding, Side};
pub use seg::{segmentation, DEFAULT_DIAMETER_MM, SEG_SERIES_NUMBER};
pub use source::{SourceFrame, SourceInstance, SourceSeries};
pub use sr::{measurement_report, NO_FINDING_TEXT, SR_SERIES_NUMBER};
pub use stamp::Stamp;
