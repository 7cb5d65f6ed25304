//! Which annotated scans the candidates cover: a candidates file that names none of the annotated
//! scans (a different seriesuid convention, the wrong file) or misses some of them (scans not run
//! or failed) still evaluates, with every nodule of those scans counted as a miss. These checks let
//! a caller say so before anyone reads a CPM of 0.

use std::collections::BTreeSet;

use crate::data::{Nodule, ScoredCandidate};

/// How the seriesuids of the annotations and of the candidates overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Distinct annotated seriesuids, sorted.
    pub annotated: Vec<String>,
    /// Distinct seriesuids in the candidates, sorted.
    pub with_candidates: Vec<String>,
    /// Annotated seriesuids with no candidate at all, sorted: their nodules all count as misses.
    pub annotated_without_candidates: Vec<String>,
}

impl Coverage {
    /// Compare the scans of `nodules` with those of `candidates`. With a `series` list (the
    /// evaluated scans, as [`crate::evaluate`] takes it) only the annotated scans in that list
    /// count, since the others are not evaluated.
    #[must_use]
    pub fn of(
        nodules: &[Nodule],
        candidates: &[ScoredCandidate],
        series: Option<&[String]>,
    ) -> Self {
        let evaluated: Option<BTreeSet<&str>> =
            series.map(|s| s.iter().map(String::as_str).collect());
        let annotated: BTreeSet<&str> = nodules
            .iter()
            .map(|n| n.seriesuid.as_str())
            .filter(|s| evaluated.as_ref().is_none_or(|e| e.contains(s)))
            .collect();
        let with: BTreeSet<&str> = candidates.iter().map(|c| c.seriesuid.as_str()).collect();
        Self {
            annotated_without_candidates: annotated
                .difference(&with)
                .map(|s| (*s).to_string())
                .collect(),
            annotated: annotated.iter().map(|s| (*s).to_string()).collect(),
            with_candidates: with.iter().map(|s| (*s).to_string()).collect(),
        }
    }

    /// True when there are annotated scans and candidates, but no seriesuid in common.
    #[must_use]
    pub fn disjoint(&self) -> bool {
        !self.annotated.is_empty()
            && !self.with_candidates.is_empty()
            && self.annotated_without_candidates.len() == self.annotated.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use speck_volume::WorldPoint;

    fn nodule(s: &str) -> Nodule {
        Nodule {
            seriesuid: s.into(),
            center: WorldPoint::new(0.0, 0.0, 0.0),
            diameter_mm: 4.0,
            diameter_vox: None,
            density: None,
            attachment: None,
            n_readers: None,
        }
    }
    fn mark(s: &str) -> ScoredCandidate {
        ScoredCandidate {
            seriesuid: s.into(),
            center: WorldPoint::new(0.0, 0.0, 0.0),
            probability: 0.5,
        }
    }

    #[test]
    fn lists_annotated_scans_without_candidates() {
        let c = Coverage::of(
            &[nodule("b"), nodule("a"), nodule("c"), nodule("a")],
            &[mark("a"), mark("z"), mark("a")],
            None,
        );
        assert_eq!(c.annotated, ["a", "b", "c"]);
        assert_eq!(c.with_candidates, ["a", "z"]);
        assert_eq!(c.annotated_without_candidates, ["b", "c"]);
        assert!(!c.disjoint());
    }

    #[test]
    fn disjoint_only_when_both_sides_have_scans() {
        assert!(Coverage::of(&[nodule("a")], &[mark("b")], None).disjoint());
        assert!(!Coverage::of(&[nodule("a")], &[], None).disjoint());
        assert!(!Coverage::of(&[], &[mark("b")], None).disjoint());
        let c = Coverage::of(&[nodule("a")], &[], None);
        assert_eq!(c.annotated_without_candidates, ["a"]);
    }

    #[test]
    fn a_series_list_limits_the_annotated_scans() {
        let series = ["a".to_string(), "c".to_string()];
        let c = Coverage::of(
            &[nodule("a"), nodule("b"), nodule("c")],
            &[mark("a")],
            Some(&series),
        );
        assert_eq!(c.annotated, ["a", "c"]);
        assert_eq!(c.annotated_without_candidates, ["c"]);
    }
}
