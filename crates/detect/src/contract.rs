//! The Speck model contract: what a model says about itself in its ONNX `metadata_props`.
//!
//! The full specification, with an export recipe, is `docs/models.md`. In short, every key is a
//! string:
//!
//! | key | example | meaning |
//! |---|---|---|
//! | `speck.role` | `coarse` | `coarse` heatmap, `fine` patch classifier, `segmentation` map |
//! | `speck.version` | `1.0.0` | free text, non-empty |
//! | `speck.spacing_mm` | `1.0,0.7,0.7` | input voxel spacing `z,y,x` (mm) |
//! | `speck.patch_size` | `64,64,64` | input patch `z,y,x` (voxels) |
//! | `speck.output_stride` | `1,1,1` | input voxels per output voxel, `z,y,x` |
//! | `speck.hu_window` | `-1000,400` | HU clip window `lo,hi` |
//! | `speck.normalization` | `window_to_unit` | or `zscore:MEAN,STD` (after clipping) |
//! | `speck.output_channels` | `prob,diameter_mm,dz,dy,dx` | channel names, `prob` first |
//! | `speck.threshold` (optional) | `0.5` | suggested peak threshold on `prob` |
//! | `speck.flip_tta` (optional, fine) | `true` | the threshold was measured with flip TTA; use it by default |
//! | `speck.tile_multiple` (optional, dense) | `4,8,8` | fully convolutional: any input whose `z,y,x` are multiples of these runs (input axes dynamic), so the engine may run tiles larger than the patch |

use serde::{Deserialize, Serialize};

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ModelRole {
    /// A dense heatmap over the volume (possibly at a lower resolution), for high-recall candidates.
    Coarse,
    /// A classifier of patches centred on candidates: one value per channel per patch.
    Fine,
    /// A dense probability map at full model resolution (used like a coarse model, stage recorded
    /// as segmentation).
    Segmentation,
}

impl ModelRole {
    /// The metadata spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelRole::Coarse => "coarse",
            ModelRole::Fine => "fine",
            ModelRole::Segmentation => "segmentation",
        }
    }

    /// Whether the model produces a dense map (run by sliding windows).
    pub fn is_dense(self) -> bool {
        matches!(self, ModelRole::Coarse | ModelRole::Segmentation)
    }
}

/// How HU values become model input, after clipping to the HU window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Normalization {
    /// `(clip(hu, lo, hi) - lo) / (hi - lo)`: the window maps to `[0, 1]`.
    WindowToUnit,
    /// `(clip(hu, lo, hi) - mean) / std`.
    ZScore {
        /// Mean (HU).
        mean: f32,
        /// Standard deviation (HU), positive.
        std: f32,
    },
}

/// A validated description of a Speck model, read from its metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelContract {
    /// What the model does.
    pub role: ModelRole,
    /// The model's own version string.
    pub version: String,
    /// Input voxel spacing, `[z, y, x]` mm.
    pub spacing_mm: [f64; 3],
    /// Input patch size, `[z, y, x]` voxels.
    pub patch_size: [usize; 3],
    /// Input voxels per output voxel, `[z, y, x]` (dense roles; `1,1,1` for fine models).
    pub output_stride: [usize; 3],
    /// HU clip window `(lo, hi)`.
    pub hu_window: (f32, f32),
    /// Normalisation after clipping.
    pub normalization: Normalization,
    /// Output channel names, `prob` first (`diameter_mm`, `dz`, `dy`, `dx` are understood).
    pub output_channels: Vec<String>,
    /// Suggested threshold on `prob` for peaks, when the model gives one.
    pub threshold: Option<f32>,
    /// Whether the model's operating point (`threshold`) was measured with flip test-time
    /// augmentation, when the model says (fine models); the detector's default follows it.
    pub flip_tta: Option<bool>,
    /// For a fully convolutional dense model: input sizes (`[z, y, x]`) must be multiples of
    /// this, and any such size at least the patch runs. `None`: only `patch_size` runs.
    pub tile_multiple: Option<[usize; 3]>,
}

/// Why a model's metadata breaks the contract: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// A required key is absent.
    #[error("metadata key `{key}` is missing")]
    Missing {
        /// The key (one of [`keys`]).
        key: &'static str,
    },
    /// A key's value is malformed, out of range, or inconsistent with another key.
    #[error("{reason}")]
    Invalid {
        /// The key (one of [`keys`]) whose value is refused.
        key: &'static str,
        /// The key, what was expected and what was found, in words.
        reason: String,
    },
    /// The model's input tensor disagrees with the contract (count, element type, rank, channels,
    /// or a static size the metadata contradicts).
    #[error("{reason}")]
    Input {
        /// What was expected and what was found, in words.
        reason: String,
    },
    /// The model's output tensor disagrees with the contract (element type, rank, channels or
    /// size).
    #[error("{reason}")]
    Output {
        /// What was expected and what was found, in words.
        reason: String,
    },
}

impl ContractError {
    fn invalid(key: &'static str, reason: String) -> Self {
        ContractError::Invalid { key, reason }
    }

    /// The metadata key at fault; `"input"` or `"output"` when the model's input or output
    /// tensor is.
    pub fn key(&self) -> &'static str {
        match self {
            ContractError::Missing { key } | ContractError::Invalid { key, .. } => key,
            ContractError::Input { .. } => "input",
            ContractError::Output { .. } => "output",
        }
    }
}

/// Metadata keys of the contract.
pub mod keys {
    /// `coarse` | `fine` | `segmentation`.
    pub const ROLE: &str = "speck.role";
    /// Free-text model version.
    pub const VERSION: &str = "speck.version";
    /// `z,y,x` mm.
    pub const SPACING: &str = "speck.spacing_mm";
    /// `z,y,x` voxels.
    pub const PATCH: &str = "speck.patch_size";
    /// `z,y,x` input voxels per output voxel.
    pub const STRIDE: &str = "speck.output_stride";
    /// `lo,hi` HU.
    pub const WINDOW: &str = "speck.hu_window";
    /// `window_to_unit` or `zscore:MEAN,STD`.
    pub const NORMALIZATION: &str = "speck.normalization";
    /// Comma-separated channel names.
    pub const CHANNELS: &str = "speck.output_channels";
    /// Optional suggested threshold.
    pub const THRESHOLD: &str = "speck.threshold";
    /// Optional `true` | `false`: flip test-time augmentation by default (fine models).
    pub const FLIP_TTA: &str = "speck.flip_tta";
    /// Optional `z,y,x`: a dense model that accepts any input size that is a multiple of these.
    pub const TILE_MULTIPLE: &str = "speck.tile_multiple";
}

/// Largest patch edge accepted (voxels); bigger patches are almost certainly a metadata error.
const MAX_PATCH: usize = 1024;

impl ModelContract {
    /// Read and validate the contract from a metadata lookup (`key -> value`).
    ///
    /// # Errors
    /// [`ContractError`]: which key, and (for a malformed one) expected vs found.
    pub fn from_metadata(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ContractError> {
        let req = |key: &'static str| -> Result<String, ContractError> {
            get(key)
                .map(|v| v.trim().to_string())
                .ok_or(ContractError::Missing { key })
        };
        let role = match req(keys::ROLE)?.as_str() {
            "coarse" => ModelRole::Coarse,
            "fine" => ModelRole::Fine,
            "segmentation" => ModelRole::Segmentation,
            other => {
                return Err(ContractError::invalid(
                    keys::ROLE,
                    format!(
                        "`{}` must be coarse, fine or segmentation, found {other:?}",
                        keys::ROLE
                    ),
                ))
            }
        };
        let version = req(keys::VERSION)?;
        if version.is_empty() {
            return Err(ContractError::invalid(
                keys::VERSION,
                format!("`{}` is empty", keys::VERSION),
            ));
        }
        let spacing = parse_list::<f64>(keys::SPACING, &req(keys::SPACING)?, 3, "z,y,x mm")?;
        if spacing
            .iter()
            .any(|s| !s.is_finite() || *s <= 0.0 || *s > 100.0)
        {
            return Err(ContractError::invalid(
                keys::SPACING,
                format!(
                    "`{}` must be three positive spacings in mm (at most 100), found {spacing:?}",
                    keys::SPACING
                ),
            ));
        }
        let patch = parse_list::<usize>(keys::PATCH, &req(keys::PATCH)?, 3, "z,y,x voxels")?;
        if patch.iter().any(|p| *p == 0 || *p > MAX_PATCH) {
            return Err(ContractError::invalid(
                keys::PATCH,
                format!(
                    "`{}` must be three sizes in 1..={MAX_PATCH}, found {patch:?}",
                    keys::PATCH
                ),
            ));
        }
        let stride = parse_list::<usize>(keys::STRIDE, &req(keys::STRIDE)?, 3, "z,y,x voxels")?;
        if stride.contains(&0) {
            return Err(ContractError::invalid(
                keys::STRIDE,
                format!("`{}` must be positive, found {stride:?}", keys::STRIDE),
            ));
        }
        if role.is_dense() {
            for a in 0..3 {
                if patch[a] % stride[a] != 0 {
                    return Err(ContractError::invalid(
                        keys::PATCH,
                        format!(
                            "`{}` {:?} is not a multiple of `{}` {:?} on axis {}",
                            keys::PATCH,
                            patch,
                            keys::STRIDE,
                            stride,
                            ["z", "y", "x"][a]
                        ),
                    ));
                }
            }
        }
        // Whatever the role, a stride larger than the patch leaves an empty output tile
        // (`output_patch` would be 0; fuzz: regression_model_contract_1).
        if (0..3).any(|a| stride[a] > patch[a]) {
            return Err(ContractError::invalid(
                keys::STRIDE,
                format!(
                    "`{}` {:?} is larger than `{}` {:?}",
                    keys::STRIDE,
                    stride,
                    keys::PATCH,
                    patch
                ),
            ));
        }
        let window = parse_list::<f32>(keys::WINDOW, &req(keys::WINDOW)?, 2, "lo,hi HU")?;
        if !(window[0].is_finite() && window[1].is_finite() && window[0] < window[1]) {
            return Err(ContractError::invalid(
                keys::WINDOW,
                format!(
                    "`{}` must be lo,hi with lo < hi, found {window:?}",
                    keys::WINDOW
                ),
            ));
        }
        let norm_s = req(keys::NORMALIZATION)?;
        let normalization = if norm_s == "window_to_unit" {
            Normalization::WindowToUnit
        } else if let Some(rest) = norm_s.strip_prefix("zscore:") {
            let v = parse_list::<f32>(keys::NORMALIZATION, rest, 2, "zscore:MEAN,STD")?;
            if !(v[0].is_finite() && v[1].is_finite() && v[1] > 0.0) {
                return Err(ContractError::invalid(
                    keys::NORMALIZATION,
                    format!(
                        "`{}` zscore needs a finite mean and a positive std, found {v:?}",
                        keys::NORMALIZATION
                    ),
                ));
            }
            Normalization::ZScore {
                mean: v[0],
                std: v[1],
            }
        } else {
            return Err(ContractError::invalid(
                keys::NORMALIZATION,
                format!(
                    "`{}` must be window_to_unit or zscore:MEAN,STD, found {norm_s:?}",
                    keys::NORMALIZATION
                ),
            ));
        };
        let channels: Vec<String> = req(keys::CHANNELS)?
            .split(',')
            .map(|c| c.trim().to_string())
            .collect();
        if channels.first().map(String::as_str) != Some("prob") {
            return Err(ContractError::invalid(
                keys::CHANNELS,
                format!(
                    "`{}` must start with `prob`, found {channels:?}",
                    keys::CHANNELS
                ),
            ));
        }
        if let Some(bad) = channels.iter().find(|c| {
            c.is_empty()
                || !c
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        }) {
            return Err(ContractError::invalid(
                keys::CHANNELS,
                format!(
                    "`{}` has an invalid channel name {bad:?} (use [a-z0-9_]+)",
                    keys::CHANNELS
                ),
            ));
        }
        for (i, c) in channels.iter().enumerate() {
            if channels[..i].contains(c) {
                return Err(ContractError::invalid(
                    keys::CHANNELS,
                    format!("`{}` repeats channel {c:?}", keys::CHANNELS),
                ));
            }
        }
        let threshold = match get(keys::THRESHOLD) {
            None => None,
            Some(t) => {
                let v = t.trim().parse::<f32>().map_err(|_| {
                    ContractError::invalid(
                        keys::THRESHOLD,
                        format!(
                            "`{}` must be a number in [0,1], found {t:?}",
                            keys::THRESHOLD
                        ),
                    )
                })?;
                if !(0.0..=1.0).contains(&v) {
                    return Err(ContractError::invalid(
                        keys::THRESHOLD,
                        format!("`{}` must be in [0,1], found {v}", keys::THRESHOLD),
                    ));
                }
                Some(v)
            }
        };
        let flip_tta = match get(keys::FLIP_TTA).as_deref().map(str::trim) {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(ContractError::invalid(
                    keys::FLIP_TTA,
                    format!(
                        "`{}` must be `true` or `false`, found {other:?}",
                        keys::FLIP_TTA
                    ),
                ))
            }
        };
        if flip_tta == Some(true) && role != ModelRole::Fine {
            return Err(ContractError::invalid(
                keys::FLIP_TTA,
                format!(
                    "`{}` is for fine models; this one is `{}`",
                    keys::FLIP_TTA,
                    role.as_str()
                ),
            ));
        }
        let tile_multiple = match get(keys::TILE_MULTIPLE) {
            None => None,
            Some(v) => {
                let m = parse_list::<usize>(keys::TILE_MULTIPLE, &v, 3, "z,y,x voxels")?;
                if !role.is_dense() {
                    return Err(ContractError::invalid(
                        keys::TILE_MULTIPLE,
                        format!(
                            "`{}` is for dense models; this one is `{}`",
                            keys::TILE_MULTIPLE,
                            role.as_str()
                        ),
                    ));
                }
                // Every accepted tile must give whole output voxels and include the patch size.
                if (0..3).any(|a| m[a] == 0 || m[a] % stride[a] != 0 || patch[a] % m[a] != 0) {
                    return Err(ContractError::invalid(keys::TILE_MULTIPLE, format!(
                        "`{}` {m:?} must be positive multiples of `{}` {stride:?} that divide `{}` {patch:?}",
                        keys::TILE_MULTIPLE,
                        keys::STRIDE,
                        keys::PATCH
                    )));
                }
                Some([m[0], m[1], m[2]])
            }
        };
        Ok(Self {
            role,
            version,
            spacing_mm: [spacing[0], spacing[1], spacing[2]],
            patch_size: [patch[0], patch[1], patch[2]],
            output_stride: [stride[0], stride[1], stride[2]],
            hu_window: (window[0], window[1]),
            normalization,
            output_channels: channels,
            threshold,
            flip_tta,
            tile_multiple,
        })
    }

    /// Model input value for a HU value (clip to the window, then normalise).
    #[inline]
    pub fn normalize(&self, hu: f32) -> f32 {
        let (lo, hi) = self.hu_window;
        let c = hu.clamp(lo, hi);
        match self.normalization {
            Normalization::WindowToUnit => (c - lo) / (hi - lo),
            Normalization::ZScore { mean, std } => (c - mean) / std,
        }
    }

    /// Index of an output channel by name.
    pub fn channel(&self, name: &str) -> Option<usize> {
        self.output_channels.iter().position(|c| c == name)
    }

    /// Output tile size (`patch / stride`), `[z, y, x]`.
    pub fn output_patch(&self) -> [usize; 3] {
        std::array::from_fn(|a| self.patch_size[a] / self.output_stride[a])
    }
}

fn parse_list<T: std::str::FromStr>(
    key: &'static str,
    value: &str,
    n: usize,
    what: &str,
) -> Result<Vec<T>, ContractError> {
    let parts: Vec<&str> = value.split(',').map(str::trim).collect();
    if parts.len() != n {
        return Err(ContractError::invalid(
            key,
            format!("`{key}` must have {n} comma-separated values ({what}), found {value:?}"),
        ));
    }
    parts
        .iter()
        .map(|p| {
            p.parse::<T>().map_err(|_| {
                ContractError::invalid(
                    key,
                    format!("`{key}` must be {what}, found {value:?} ({p:?} is not a number)"),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn good() -> HashMap<String, String> {
        [
            (keys::ROLE, "coarse"),
            (keys::VERSION, "1"),
            (keys::SPACING, "1.0,0.7,0.7"),
            (keys::PATCH, "32,64,64"),
            (keys::STRIDE, "2,2,2"),
            (keys::WINDOW, "-1000,400"),
            (keys::NORMALIZATION, "window_to_unit"),
            (keys::CHANNELS, "prob,diameter_mm"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn parse(m: &HashMap<String, String>) -> Result<ModelContract, String> {
        ModelContract::from_metadata(&|k| m.get(k).cloned()).map_err(|e| e.to_string())
    }

    #[test]
    fn valid_metadata_parses() {
        let c = parse(&good()).expect("valid");
        assert_eq!(c.role, ModelRole::Coarse);
        assert_eq!(c.spacing_mm, [1.0, 0.7, 0.7]);
        assert_eq!(c.output_patch(), [16, 32, 32]);
        assert_eq!(c.channel("diameter_mm"), Some(1));
        assert_eq!(c.normalize(-1000.0), 0.0);
        assert_eq!(c.normalize(400.0), 1.0);
        assert_eq!(c.normalize(2000.0), 1.0);
        assert!((c.normalize(-300.0) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn each_bad_key_is_named() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            (keys::ROLE, None, "`speck.role` is missing"),
            (keys::ROLE, Some("detector"), "found \"detector\""),
            (keys::SPACING, Some("1,2"), "3 comma-separated"),
            (keys::SPACING, Some("1,x,1"), "\"x\" is not a number"),
            (keys::SPACING, Some("1,0,1"), "positive"),
            (keys::PATCH, Some("32,63,64"), "not a multiple"),
            (keys::WINDOW, Some("400,-1000"), "lo < hi"),
            (keys::NORMALIZATION, Some("zscore:0,0"), "positive std"),
            (
                keys::NORMALIZATION,
                Some("minmax"),
                "window_to_unit or zscore",
            ),
            (
                keys::CHANNELS,
                Some("diameter_mm,prob"),
                "start with `prob`",
            ),
            (keys::CHANNELS, Some("prob,Prob X"), "invalid channel name"),
            (keys::THRESHOLD, Some("1.5"), "in [0,1]"),
            (
                keys::FLIP_TTA,
                Some("yes"),
                "`true` or `false`, found \"yes\"",
            ),
            (
                keys::FLIP_TTA,
                Some("true"),
                "for fine models; this one is `coarse`",
            ),
            (keys::TILE_MULTIPLE, Some("2,8"), "3 comma-separated"),
            // 3 is not a multiple of the stride 2; 64 does not divide the patch's 32.
            (keys::TILE_MULTIPLE, Some("2,3,8"), "positive multiples"),
            (keys::TILE_MULTIPLE, Some("64,8,8"), "divide"),
        ];
        for (key, value, expect) in cases {
            let mut m = good();
            match value {
                Some(v) => m.insert(key.to_string(), v.to_string()),
                None => m.remove(*key),
            };
            let err = parse(&m).expect_err("must be refused");
            assert!(err.contains(key), "{err} should name {key}");
            assert!(err.contains(expect), "{err} should contain {expect}");
        }
    }

    #[test]
    fn errors_name_their_key() {
        let mut m = good();
        m.remove(keys::WINDOW);
        let e = ModelContract::from_metadata(&|k| m.get(k).cloned()).expect_err("missing");
        assert_eq!(e, ContractError::Missing { key: keys::WINDOW });
        let mut m = good();
        m.insert(keys::PATCH.into(), "32,63,64".into());
        let e = ModelContract::from_metadata(&|k| m.get(k).cloned()).expect_err("invalid");
        assert_eq!(e.key(), keys::PATCH);
        assert!(matches!(e, ContractError::Invalid { .. }));
    }

    #[test]
    fn a_fine_model_may_ask_for_flip_tta() {
        let mut m = good();
        assert_eq!(parse(&m).expect("valid").flip_tta, None);
        m.insert(keys::ROLE.into(), "fine".into());
        m.insert(keys::STRIDE.into(), "1,1,1".into());
        for (v, want) in [("true", true), (" false ", false)] {
            m.insert(keys::FLIP_TTA.into(), v.into());
            assert_eq!(parse(&m).expect("valid").flip_tta, Some(want));
        }
    }

    #[test]
    fn only_a_dense_model_may_accept_larger_tiles() {
        let mut m = good();
        assert_eq!(parse(&m).expect("valid").tile_multiple, None);
        m.insert(keys::TILE_MULTIPLE.into(), "4,8,8".into());
        assert_eq!(parse(&m).expect("valid").tile_multiple, Some([4, 8, 8]));
        m.insert(keys::ROLE.into(), "fine".into());
        m.insert(keys::STRIDE.into(), "1,1,1".into());
        let err = parse(&m).expect_err("fine");
        assert!(err.contains("for dense models"), "{err}");
    }

    #[test]
    fn zscore_normalises_after_clipping() {
        let mut m = good();
        m.insert(keys::NORMALIZATION.into(), "zscore:-500,250".into());
        let c = parse(&m).expect("valid");
        assert_eq!(c.normalize(-250.0), 1.0);
        assert_eq!(c.normalize(-5000.0), (-1000.0 + 500.0) / 250.0);
    }
}
