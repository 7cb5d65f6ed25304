//! # speck-eval
//!
//! Scores nodule candidates against reference annotations with the **LUNA16 protocol**, exactly
//! as the official `noduleCADEvaluationLUNA16.py` does, and adds what a detector of tiny nodules
//! needs: sensitivity per nodule size (in voxels and in mm), per density and attachment class,
//! per reader-consensus level, each with bootstrap confidence intervals.
//!
//! The protocol in one paragraph (details and a worked example in `docs/evaluation.md`): a
//! candidate hits a nodule when its centre lies strictly within the nodule's radius
//! (`diameter_mm / 2`, world mm); a nodule counts once, at the highest probability among its
//! hits, and extra hits are not false positives; candidates hitting an excluded finding
//! (`diameter_mm = -1` ⇒ 10 mm) are ignored; everything else is a false positive; FP/scan
//! divides by all evaluated scans, with or without nodules; the FROC curve is interpolated as
//! `numpy.interp` does and the CPM is the mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8 FP
//! per scan; confidence intervals come from bootstrapping the scans.
//!
//! No ONNX Runtime, no voxels: inputs are plain records in world millimetres.
//!
//! ```
//! use speck_eval::{evaluate, EvalOptions, Nodule, ScoredCandidate};
//! use speck_volume::WorldPoint;
//!
//! let nodule = |x: f64| Nodule {
//!     seriesuid: "scan1".into(),
//!     center: WorldPoint::new(x, 0.0, 0.0),
//!     diameter_mm: 4.0,
//!     diameter_vox: Some(5.7),
//!     density: None,
//!     attachment: None,
//!     n_readers: None,
//! };
//! let mark = |x: f64, p: f64| ScoredCandidate {
//!     seriesuid: "scan1".into(),
//!     center: WorldPoint::new(x, 0.0, 0.0),
//!     probability: p,
//! };
//! let nodules = [nodule(0.0), nodule(50.0)];
//! let marks = [mark(0.5, 0.9), mark(30.0, 0.4)]; // one hit, one false positive
//! let options = EvalOptions::default().with_bootstrap(100);
//! let e = evaluate(&nodules, &[], &marks, None, &options).unwrap();
//! assert_eq!(e.n_detected, 1);
//! assert!((e.cpm - 0.5).abs() < 1e-12);
//! println!("{}", e.to_table());
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod bins;
mod bootstrap;
mod coverage;
mod csv;
mod data;
mod error;
mod evaluate;
mod protocol;
mod report;

pub use bins::{MmBins, VoxBin, VoxBins};
pub use coverage::Coverage;
pub use data::{
    cluster_reader_marks, hit_radius_mm, parse_annotations, parse_candidates, parse_excluded,
    parse_series, read_annotations, read_candidates, read_excluded, read_series, AnnotationSet,
    ExcludedFinding, Nodule, ReaderMark, ScoredCandidate,
};
pub use error::EvalError;
pub use evaluate::{
    evaluate, Band, BootstrapInfo, BySize, EvalOptions, Evaluation, GroupResult, RatePoint,
    MAX_BOOTSTRAP,
};
pub use protocol::{
    interp_like_numpy, sensitivity_on_curve, FrocPoint, MatchCounts, LUNA16_FP_RATES,
    LUNA16_MAX_MARKS_PER_SCAN,
};
