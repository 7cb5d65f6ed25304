//! Evaluation inputs and their CSV readers.
//!
//! All coordinates are LPS world millimetres, as in the LUNA16 files (`coordX, coordY, coordZ`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use speck_candidates::Candidate;
use speck_volume::luna16::{
    de, AnnotationRow, CandidateRow, ExcludedRow, ANNOTATION_REQUIRED, CANDIDATE_COLUMNS,
    EXCLUDED_COLUMNS,
};
use speck_volume::WorldPoint;

use crate::csv::Table;
use crate::EvalError;

/// One reference nodule (an included finding).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Nodule {
    /// The scan it lies in.
    pub seriesuid: String,
    /// Centre, LPS mm.
    pub center: WorldPoint,
    /// Diameter in mm (negative: the LUNA16 rule applies, a 10 mm hit sphere).
    pub diameter_mm: f64,
    /// Diameter in voxels, when the annotation file gives it.
    pub diameter_vox: Option<f64>,
    /// Density class (e.g. `solid`, `part-solid`, `ground-glass`), when given.
    pub density: Option<String>,
    /// Attachment class (e.g. `isolated`, `vessel`, `pleura`), when given.
    pub attachment: Option<String>,
    /// How many readers marked it, when known (`n_readers` column or clustered `reader` marks).
    pub n_readers: Option<u32>,
}

/// A finding that must count neither as a hit nor as a false positive (LUNA16
/// `annotations_excluded.csv`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExcludedFinding {
    /// The scan it lies in.
    pub seriesuid: String,
    /// Centre, LPS mm.
    pub center: WorldPoint,
    /// Diameter in mm; `-1` (any negative value) means 10 mm, as in the LUNA16 script.
    pub diameter_mm: f64,
}

/// One CAD mark to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredCandidate {
    /// The scan it lies in.
    pub seriesuid: String,
    /// Centre, LPS mm.
    pub center: WorldPoint,
    /// Score; any finite value (only the order matters).
    pub probability: f64,
}

impl ScoredCandidate {
    /// A scored candidate from a [`Candidate`] found in scan `seriesuid`.
    pub fn from_candidate(seriesuid: impl Into<String>, c: &Candidate) -> Self {
        Self {
            seriesuid: seriesuid.into(),
            center: c.world,
            probability: f64::from(c.probability),
        }
    }
}

/// The radius (mm) within which a candidate centre hits a finding of `diameter_mm`:
/// `diameter / 2`, with negative diameters (LUNA16's `-1`) read as 10 mm.
pub fn hit_radius_mm(diameter_mm: f64) -> f64 {
    if diameter_mm < 0.0 {
        5.0
    } else {
        diameter_mm / 2.0
    }
}

/// The reference annotations as read from a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AnnotationSet {
    /// The nodules (after clustering reader marks, when the file has a `reader` column).
    pub nodules: Vec<Nodule>,
    /// Whether the file had a `reader` column (rows were marks, clustered into nodules).
    pub from_reader_marks: bool,
    /// Number of marks read (rows), equal to `nodules.len()` without a `reader` column.
    pub n_marks: usize,
}

/// Read an annotation CSV.
///
/// Required columns: `seriesuid,coordX,coordY,coordZ,diameter_mm`. Optional: `diameter_vox`,
/// `density`, `attachment`, and either `reader` (one row per reader mark; marks are clustered
/// into nodules, see [`cluster_reader_marks`]) or `n_readers` (the agreement count per nodule).
/// Other columns are ignored. Empty, `NA` or `nan` optional values count as absent.
///
/// # Errors
/// [`EvalError`] naming the file, line, column and value for anything unreadable; a file with
/// both `reader` and `n_readers` columns is refused.
pub fn read_annotations(path: &Path) -> Result<AnnotationSet, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    parse_annotations(path, &text)
}

/// [`read_annotations`] from text; `path` names the source in errors.
///
/// # Errors
/// As [`read_annotations`].
pub fn parse_annotations(path: &Path, text: &str) -> Result<AnnotationSet, EvalError> {
    let t = Table::parse(path, text, &ANNOTATION_REQUIRED)?;
    t.require(&ANNOTATION_REQUIRED)?;
    let cvox = t.column("diameter_vox");
    let creader = t.column("reader");
    let cnr = t.column("n_readers");
    if creader.is_some() && cnr.is_some() {
        return Err(EvalError::Malformed {
            path: path.to_path_buf(),
            line: t.header_line,
            reason: "both `reader` and `n_readers` columns: give one row per reader mark \
                     (reader) or one row per nodule (n_readers), not both"
                .into(),
        });
    }
    let mut nodules = Vec::with_capacity(t.records.len());
    let mut readers = Vec::new();
    for r in &t.records {
        let row: AnnotationRow = t.row(r)?;
        if let (Some(v), Some(c)) = (row.diameter_vox, cvox) {
            if v < 0.0 {
                return Err(t.invalid(r, c, "negative diameter"));
            }
        }
        let agreement: ReaderColumns = t.row(r)?;
        let n_readers = match (agreement.n_readers, cnr) {
            (Some(v), _) if v >= 1.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX) => {
                Some(v as u32)
            }
            (Some(_), Some(c)) => return Err(t.invalid(r, c, "expected a whole number >= 1")),
            _ => None,
        };
        if let Some(reader) = agreement.reader {
            readers.push(reader);
        }
        nodules.push(Nodule {
            center: row.center(),
            seriesuid: row.seriesuid,
            diameter_mm: row.diameter_mm,
            diameter_vox: row.diameter_vox,
            density: row.density,
            attachment: row.attachment,
            n_readers,
        });
    }
    let n_marks = nodules.len();
    if creader.is_some() {
        let marks: Vec<ReaderMark> = nodules
            .into_iter()
            .zip(readers)
            .map(|(nodule, reader)| ReaderMark { nodule, reader })
            .collect();
        return Ok(AnnotationSet {
            nodules: cluster_reader_marks(&marks),
            from_reader_marks: true,
            n_marks,
        });
    }
    Ok(AnnotationSet {
        nodules,
        from_reader_marks: false,
        n_marks,
    })
}

/// The reader-agreement columns of an annotation file, beside the shared [`AnnotationRow`]:
/// `reader` (who marked this row; required in every row when the column exists) or
/// `n_readers` (how many readers marked the nodule).
#[derive(Debug, Deserialize)]
struct ReaderColumns {
    #[serde(default, deserialize_with = "present_text")]
    reader: Option<String>,
    #[serde(default, deserialize_with = "de::optional_finite")]
    n_readers: Option<f64>,
}

/// A required, non-empty text in a column that may be absent.
fn present_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de::required_text(d).map(Some)
}

/// One reader's mark of a nodule.
#[derive(Debug, Clone, PartialEq)]
pub struct ReaderMark {
    /// The mark (its `n_readers` is ignored).
    pub nodule: Nodule,
    /// Who marked it.
    pub reader: String,
}

/// Cluster reader marks into nodules, the LIDC way.
///
/// Within one scan, two marks belong to the same nodule when the distance between their centres
/// is at most the larger of their radii (`max(d₁, d₂) / 2`, mm; negative diameters count as
/// 10 mm); clusters are the connected components of that relation (single linkage), so the
/// result does not depend on the row order except for the order of the output.
///
/// Each cluster becomes one [`Nodule`]: centre, `diameter_mm` and `diameter_vox` are the means
/// over its marks (`diameter_vox` only when every mark has one), `density` and `attachment` are
/// the most frequent value (ties: alphabetically first), and `n_readers` is the number of
/// **distinct** readers in the cluster (the agreement level). Nodules come out in the order of
/// their first mark.
pub fn cluster_reader_marks(marks: &[ReaderMark]) -> Vec<Nodule> {
    let n = marks.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    // Group by scan first so the pairwise test stays per scan.
    let mut by_scan: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, m) in marks.iter().enumerate() {
        by_scan
            .entry(m.nodule.seriesuid.as_str())
            .or_default()
            .push(i);
    }
    for idx in by_scan.values() {
        for (k, &i) in idx.iter().enumerate() {
            for &j in &idx[k + 1..] {
                let (a, b) = (&marks[i].nodule, &marks[j].nodule);
                let r = hit_radius_mm(a.diameter_mm).max(hit_radius_mm(b.diameter_mm));
                if a.center.distance_mm(b.center) <= r {
                    let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                    if ri != rj {
                        // Keep the smaller index as root: the cluster is named by its first mark.
                        parent[ri.max(rj)] = ri.min(rj);
                    }
                }
            }
        }
    }
    let mut clusters: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let root = find(&mut parent, i);
        clusters.entry(root).or_default().push(i);
    }
    clusters
        .into_values()
        .map(|members| {
            let k = members.len() as f64;
            let mean = |f: &dyn Fn(&Nodule) -> f64| -> f64 {
                members.iter().map(|&i| f(&marks[i].nodule)).sum::<f64>() / k
            };
            let center = WorldPoint::new(
                mean(&|m| m.center.x_mm),
                mean(&|m| m.center.y_mm),
                mean(&|m| m.center.z_mm),
            );
            let diameter_vox = members
                .iter()
                .map(|&i| marks[i].nodule.diameter_vox)
                .collect::<Option<Vec<f64>>>()
                .map(|v| v.iter().sum::<f64>() / k);
            let mode = |f: &dyn Fn(&Nodule) -> Option<String>| -> Option<String> {
                let mut counts: BTreeMap<String, usize> = BTreeMap::new();
                for &i in &members {
                    if let Some(v) = f(&marks[i].nodule) {
                        *counts.entry(v).or_default() += 1;
                    }
                }
                let best = counts.values().copied().max()?;
                counts.into_iter().find(|(_, c)| *c == best).map(|(v, _)| v)
            };
            let mut readers: Vec<&str> =
                members.iter().map(|&i| marks[i].reader.as_str()).collect();
            readers.sort_unstable();
            readers.dedup();
            Nodule {
                seriesuid: marks[members[0]].nodule.seriesuid.clone(),
                center,
                diameter_mm: mean(&|m| m.diameter_mm),
                diameter_vox,
                density: mode(&|m| m.density.clone()),
                attachment: mode(&|m| m.attachment.clone()),
                n_readers: Some(u32::try_from(readers.len()).unwrap_or(u32::MAX)),
            }
        })
        .collect()
}

/// Read an excluded-findings CSV (`seriesuid,coordX,coordY,coordZ,diameter_mm`; other columns
/// ignored). A negative `diameter_mm` (LUNA16 writes `-1`) means a 10 mm hit sphere.
///
/// # Errors
/// [`EvalError`] naming the file, line, column and value.
pub fn read_excluded(path: &Path) -> Result<Vec<ExcludedFinding>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    parse_excluded(path, &text)
}

/// [`read_excluded`] from text.
///
/// # Errors
/// As [`read_excluded`].
pub fn parse_excluded(path: &Path, text: &str) -> Result<Vec<ExcludedFinding>, EvalError> {
    let t = Table::parse(path, text, &EXCLUDED_COLUMNS)?;
    t.require(&EXCLUDED_COLUMNS)?;
    t.records
        .iter()
        .map(|r| {
            let row: ExcludedRow = t.row(r)?;
            Ok(ExcludedFinding {
                center: row.center(),
                seriesuid: row.seriesuid,
                diameter_mm: row.diameter_mm,
            })
        })
        .collect()
}

/// Read a candidates CSV (`seriesuid,coordX,coordY,coordZ,probability`; other columns ignored).
///
/// # Errors
/// [`EvalError`] naming the file, line, column and value (a non-finite probability is an error).
pub fn read_candidates(path: &Path) -> Result<Vec<ScoredCandidate>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    parse_candidates(path, &text)
}

/// [`read_candidates`] from text.
///
/// # Errors
/// As [`read_candidates`].
pub fn parse_candidates(path: &Path, text: &str) -> Result<Vec<ScoredCandidate>, EvalError> {
    let t = Table::parse(path, text, &CANDIDATE_COLUMNS)?;
    t.require(&CANDIDATE_COLUMNS)?;
    t.records
        .iter()
        .map(|r| {
            let row: CandidateRow = t.row(r)?;
            Ok(ScoredCandidate {
                center: row.center(),
                seriesuid: row.seriesuid,
                probability: row.probability,
            })
        })
        .collect()
}

/// Read a series list: one seriesuid per line in the first column (the LUNA16 `seriesuids.csv`
/// has no header; a first line whose first field is `seriesuid` is taken as a header and
/// skipped). Duplicates are dropped, first occurrence kept.
///
/// # Errors
/// I/O and malformed-CSV errors; an empty list.
pub fn read_series(path: &Path) -> Result<Vec<String>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    parse_series(path, &text)
}

/// [`read_series`] from text.
///
/// # Errors
/// As [`read_series`].
pub fn parse_series(path: &Path, text: &str) -> Result<Vec<String>, EvalError> {
    let records = crate::csv::parse_records(path, text)?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (k, r) in records.iter().enumerate() {
        let id = r.fields.get(0).unwrap_or_default().to_string();
        if k == 0 && id == "seriesuid" {
            continue;
        }
        if id.is_empty() {
            return Err(EvalError::InvalidValue {
                path: path.to_path_buf(),
                line: r.line,
                column: "1".into(),
                value: id,
                reason: "empty seriesuid".into(),
            });
        }
        if seen.insert(id.clone()) {
            out.push(id);
        }
    }
    if out.is_empty() {
        return Err(EvalError::EmptyFile {
            path: path.to_path_buf(),
            expected: "one seriesuid per line".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("ann.csv")
    }

    #[test]
    fn annotations_with_optional_columns() {
        let t =
            "seriesuid,coordX,coordY,coordZ,diameter_mm,diameter_vox,density,attachment,extra\n\
                 s1,1,2,3,4.5,6,solid,vessel,zz\n\
                 s2,-1.5,0,1e1,3,,NA,,\n";
        let a = parse_annotations(p(), t).expect("parse");
        assert_eq!(a.nodules.len(), 2);
        assert_eq!(a.nodules[0].center, WorldPoint::new(1.0, 2.0, 3.0));
        assert_eq!(a.nodules[0].diameter_vox, Some(6.0));
        assert_eq!(a.nodules[0].density.as_deref(), Some("solid"));
        assert_eq!(a.nodules[0].attachment.as_deref(), Some("vessel"));
        assert_eq!(a.nodules[1].center.z_mm, 10.0);
        assert_eq!(a.nodules[1].diameter_vox, None);
        assert_eq!(a.nodules[1].density, None);
        assert!(!a.from_reader_marks);
    }

    #[test]
    fn csv_errors_name_line_column_and_value() {
        let t = "seriesuid,coordX,coordY,coordZ,diameter_mm\ns1,1,2,3,4\ns1,1,abc,3,4\n";
        let e = parse_annotations(p(), t).expect_err("bad y");
        let msg = e.to_string();
        assert!(
            msg.contains("ann.csv: line 3, column `coordY`: invalid value \"abc\""),
            "{msg}"
        );
        match e {
            EvalError::InvalidValue {
                line,
                column,
                value,
                ..
            } => {
                assert_eq!(
                    (line, column.as_str(), value.as_str()),
                    (3, "coordY", "abc")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let e = parse_candidates(
            Path::new("c.csv"),
            "seriesuid,coordX,coordY,coordZ\ns,1,2,3\n",
        )
        .expect_err("missing");
        assert!(
            e.to_string().contains("missing column `probability`"),
            "{e}"
        );
        let e = parse_candidates(
            Path::new("c.csv"),
            "seriesuid,coordX,coordY,coordZ,probability\ns,1,2,3,0.5\ns,1,2,3,nan\n",
        )
        .expect_err("nan");
        assert!(
            e.to_string().contains("line 3, column `probability`"),
            "{e}"
        );
        let e = parse_annotations(
            p(),
            "seriesuid,coordX,coordY,coordZ,diameter_mm,n_readers\ns,1,2,3,4,1.5\n",
        )
        .expect_err("fractional readers");
        assert!(e.to_string().contains("line 2, column `n_readers`"), "{e}");
        let e = parse_excluded(
            Path::new("e.csv"),
            "seriesuid,coordX,coordY,coordZ,diameter_mm\n,1,2,3,4\n",
        )
        .expect_err("empty uid");
        assert!(e.to_string().contains("line 2, column `seriesuid`"), "{e}");
    }

    #[test]
    fn reader_marks_cluster_into_nodules_with_agreement() {
        let t = "seriesuid,coordX,coordY,coordZ,diameter_mm,reader,density\n\
                 s1,0,0,0,6,r1,solid\n\
                 s1,1,0,0,6,r2,solid\n\
                 s1,40,0,0,4,r1,ggo\n\
                 s1,0.5,1,0,4,r3,ggo\n\
                 s2,0,0,0,6,r1,solid\n\
                 s1,1.5,0,0,6,r2,solid\n";
        let a = parse_annotations(p(), t).expect("parse");
        assert!(a.from_reader_marks);
        assert_eq!(a.n_marks, 6);
        assert_eq!(a.nodules.len(), 3, "{:?}", a.nodules);
        let n0 = &a.nodules[0];
        // Marks 1, 2, 4, 6: readers r1, r2, r3 (r2 twice) → 3.
        assert_eq!(n0.n_readers, Some(3));
        assert!((n0.center.x_mm - (0.0 + 1.0 + 0.5 + 1.5) / 4.0).abs() < 1e-12);
        assert!((n0.diameter_mm - 22.0 / 4.0).abs() < 1e-12);
        assert_eq!(n0.density.as_deref(), Some("solid"));
        assert_eq!(a.nodules[1].n_readers, Some(1));
        assert_eq!(a.nodules[1].center.x_mm, 40.0);
        assert_eq!(a.nodules[2].seriesuid, "s2");
    }

    #[test]
    fn series_list_with_or_without_header() {
        let s = parse_series(Path::new("s.csv"), "a\nb\na\n").expect("s");
        assert_eq!(s, vec!["a", "b"]);
        let s = parse_series(Path::new("s.csv"), "seriesuid\nx\n").expect("s");
        assert_eq!(s, vec!["x"]);
        assert!(parse_series(Path::new("s.csv"), "seriesuid\n").is_err());
    }
}
