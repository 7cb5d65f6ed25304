//! Nodule size bins, in voxels and in millimetres.

use serde::Serialize;

use crate::EvalError;

/// One bin of rounded diameters in voxels: `lo ..= hi` (`hi = None`: no upper bound).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoxBin {
    /// The label as written in the specification (`"3"`, `"6-8"`, `"9+"`, `"<3"`).
    pub label: String,
    /// Smallest rounded diameter in the bin (voxels).
    pub lo: u32,
    /// Largest rounded diameter in the bin (voxels), `None` for an open bin.
    pub hi: Option<u32>,
}

/// Size bins over the diameter in voxels.
///
/// A nodule's diameter in voxels is **rounded to the nearest integer, halves away from zero**
/// (4.5 → 5, 2.49 → 2) and falls in the first bin whose `lo ..= hi` range contains it.
/// Nodules that fall in no bin are counted as unbinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoxBins(pub Vec<VoxBin>);

impl Default for VoxBins {
    /// `3, 4, 5, 6-8, 9+`.
    fn default() -> Self {
        Self::parse("3,4,5,6-8,9+").unwrap_or(Self(Vec::new()))
    }
}

impl VoxBins {
    /// Parse a comma-separated specification; each item is `N` (exactly N), `A-B` (A to B
    /// inclusive), `N+` (N or more) or `<N` (fewer than N). Bins must not overlap.
    ///
    /// # Errors
    /// [`EvalError::InvalidOption`] for an unreadable item, an empty range or overlapping bins.
    pub fn parse(spec: &str) -> Result<Self, EvalError> {
        let bad = |reason: String| EvalError::InvalidOption {
            option: "size_bins_vox".into(),
            reason: format!("{spec:?}: {reason}"),
        };
        let num = |s: &str| -> Result<u32, EvalError> {
            s.trim()
                .parse::<u32>()
                .map_err(|_| bad(format!("{s:?} is not a whole number of voxels")))
        };
        let mut bins = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (lo, hi) = if let Some(n) = item.strip_prefix('<') {
                let n = num(n)?;
                if n == 0 {
                    return Err(bad("<0 is empty".into()));
                }
                (0, Some(n - 1))
            } else if let Some(n) = item.strip_suffix('+') {
                (num(n)?, None)
            } else if let Some((a, b)) = item.split_once('-') {
                let (a, b) = (num(a)?, num(b)?);
                if b < a {
                    return Err(bad(format!("{item:?} is an empty range")));
                }
                (a, Some(b))
            } else {
                let n = num(item)?;
                (n, Some(n))
            };
            bins.push(VoxBin {
                label: item.to_string(),
                lo,
                hi,
            });
        }
        if bins.is_empty() {
            return Err(bad("no bins".into()));
        }
        for (i, a) in bins.iter().enumerate() {
            for b in &bins[i + 1..] {
                let a_hi = a.hi.unwrap_or(u32::MAX);
                let b_hi = b.hi.unwrap_or(u32::MAX);
                if a.lo <= b_hi && b.lo <= a_hi {
                    return Err(bad(format!("bins {:?} and {:?} overlap", a.label, b.label)));
                }
            }
        }
        Ok(Self(bins))
    }

    /// Index of the bin holding a diameter of `diameter_vox` voxels (rounded as documented).
    pub fn bin_of(&self, diameter_vox: f64) -> Option<usize> {
        if !diameter_vox.is_finite() || diameter_vox < 0.0 {
            return None;
        }
        let r = diameter_vox.round();
        if r > f64::from(u32::MAX) {
            return self.0.iter().position(|b| b.hi.is_none());
        }
        let r = r as u32;
        self.0
            .iter()
            .position(|b| r >= b.lo && b.hi.is_none_or(|hi| r <= hi))
    }
}

/// Size bins over the diameter in mm, from ascending edges `e₁ < e₂ < … < eₖ`:
/// `< e₁`, `[e₁, e₂)`, …, `≥ eₖ` (each bin includes its lower edge).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MmBins {
    /// The edges in mm, strictly ascending, finite and positive.
    pub edges: Vec<f64>,
}

impl Default for MmBins {
    /// Edges `4, 6, 10`: `<4`, `4-6`, `6-10`, `>=10` mm.
    fn default() -> Self {
        Self {
            edges: vec![4.0, 6.0, 10.0],
        }
    }
}

impl MmBins {
    /// Parse comma-separated edges in mm, e.g. `4,6,10`.
    ///
    /// # Errors
    /// [`EvalError::InvalidOption`] unless the edges are positive, finite and strictly ascending.
    pub fn parse(spec: &str) -> Result<Self, EvalError> {
        let bad = |reason: String| EvalError::InvalidOption {
            option: "size_bins_mm".into(),
            reason: format!("{spec:?}: {reason}"),
        };
        let mut edges = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let v: f64 = item
                .parse()
                .map_err(|_| bad(format!("{item:?} is not a number of mm")))?;
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(format!("{item:?} must be finite and positive")));
            }
            if edges.last().is_some_and(|&l| v <= l) {
                return Err(bad("edges must be strictly ascending".into()));
            }
            edges.push(v);
        }
        if edges.is_empty() {
            return Err(bad("no edges".into()));
        }
        Ok(Self { edges })
    }

    /// Labels of the `edges.len() + 1` bins: `<4`, `4-6`, …, `>=10`.
    pub fn labels(&self) -> Vec<String> {
        let f = |v: f64| format!("{v}");
        let mut out = Vec::with_capacity(self.edges.len() + 1);
        if let Some(first) = self.edges.first() {
            out.push(format!("<{}", f(*first)));
        }
        for w in self.edges.windows(2) {
            out.push(format!("{}-{}", f(w[0]), f(w[1])));
        }
        if let Some(last) = self.edges.last() {
            out.push(format!(">={}", f(*last)));
        }
        out
    }

    /// Index of the bin holding `diameter_mm` (`None` for a negative or non-finite diameter).
    pub fn bin_of(&self, diameter_mm: f64) -> Option<usize> {
        if !diameter_mm.is_finite() || diameter_mm < 0.0 {
            return None;
        }
        Some(self.edges.partition_point(|&e| e <= diameter_mm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_voxel_bins() {
        let b = VoxBins::default();
        let labels: Vec<&str> = b.0.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["3", "4", "5", "6-8", "9+"]);
        assert_eq!(b.bin_of(2.49), None);
        assert_eq!(b.bin_of(2.5), Some(0));
        assert_eq!(b.bin_of(3.49), Some(0));
        assert_eq!(b.bin_of(4.5), Some(2));
        assert_eq!(b.bin_of(8.4), Some(3));
        assert_eq!(b.bin_of(8.5), Some(4));
        assert_eq!(b.bin_of(400.0), Some(4));
        assert_eq!(b.bin_of(f64::NAN), None);
        let c = VoxBins::parse("<3, 3-4 ,5+").expect("parse");
        assert_eq!(c.bin_of(0.2), Some(0));
        assert_eq!(c.bin_of(4.0), Some(1));
        assert!(VoxBins::parse("3,2-4").is_err());
        assert!(VoxBins::parse("5-3").is_err());
        assert!(VoxBins::parse("x").is_err());
        assert!(VoxBins::parse("").is_err());
    }

    #[test]
    fn default_mm_bins_are_half_open() {
        let b = MmBins::default();
        assert_eq!(b.labels(), ["<4", "4-6", "6-10", ">=10"]);
        assert_eq!(b.bin_of(3.999), Some(0));
        assert_eq!(b.bin_of(4.0), Some(1));
        assert_eq!(b.bin_of(6.0), Some(2));
        assert_eq!(b.bin_of(9.99), Some(2));
        assert_eq!(b.bin_of(10.0), Some(3));
        assert_eq!(b.bin_of(-1.0), None);
        assert_eq!(
            MmBins::parse("3.5,8").expect("p").labels(),
            ["<3.5", "3.5-8", ">=8"]
        );
        assert!(MmBins::parse("6,4").is_err());
        assert!(MmBins::parse("0,4").is_err());
    }
}
