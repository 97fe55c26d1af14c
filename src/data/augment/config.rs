//! The ranges of the random augmentation and their validation.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SiameseError};

/// Largest accepted [`AugmentConfig::rotation`], in degrees (inclusive).
pub const MAX_ROTATION_DEG: f32 = 180.0;
/// Bound on [`AugmentConfig::shift`], a fraction of the image size (exclusive).
pub const MAX_SHIFT: f32 = 1.0;
/// Bound on [`AugmentConfig::scale`], a relative change (exclusive; the scale stays positive).
pub const MAX_SCALE: f32 = 1.0;
/// Bound on [`AugmentConfig::shear`], in degrees (exclusive; `tan φ` stays finite).
pub const MAX_SHEAR_DEG: f32 = 80.0;

/// Ranges of the random affine augmentation; all zero (the default) means no augmentation.
///
/// For each image, with `U(a, b)` a uniform draw:
///
/// ```text
/// θ   ~ U(−rotation, rotation)            degrees
/// φ   ~ U(−shear, shear)                  degrees
/// s   ~ U(1 − scale, 1 + scale)
/// t_x ~ U(−shift, shift) · width          pixels
/// t_y ~ U(−shift, shift) · height         pixels
/// mirrored left–right with probability ½  (flip)
/// c   ~ U(1 − contrast, 1 + contrast),  β ~ U(−brightness, brightness)
/// p ← clamp(μ + c·(p − μ) + β, 0, 1)      μ: the image's mean, after the affine resampling
/// ```
///
/// See the [module documentation](super) for how they combine, and [`AugmentConfig::preset`]
/// for the ranges of each use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// Max rotation in degrees: `θ ~ U(−rotation, rotation)`; in `[0, 180]`.
    #[serde(default)]
    pub rotation: f32,
    /// Max shift as a fraction of width/height: `t_x ~ U(−shift, shift) · width`,
    /// `t_y ~ U(−shift, shift) · height`, drawn independently; in `[0, 1)`.
    #[serde(default)]
    pub shift: f32,
    /// Max relative scale change: `s ~ U(1 − scale, 1 + scale)`; in `[0, 1)`.
    #[serde(default)]
    pub scale: f32,
    /// Max horizontal shear in degrees: `φ ~ U(−shear, shear)`, `x' = x + tan φ · y`;
    /// in `[0, 80)`.
    #[serde(default)]
    pub shear: f32,
    /// Value of pixels sampled from outside the image (0 = black background; 1 for inverted
    /// scans); any finite number.
    #[serde(default)]
    pub fill: f32,
    /// Mirror each image left–right with probability ½ (faces; not for text or characters).
    #[serde(default)]
    pub flip: bool,
    /// Max brightness offset `β ~ U(−brightness, brightness)` (pixel values in `[0, 1]`);
    /// in `[0, 1)`.
    #[serde(default)]
    pub brightness: f32,
    /// Max relative contrast change `c ~ U(1 − contrast, 1 + contrast)` about the image's
    /// mean; in `[0, 1)`.
    #[serde(default)]
    pub contrast: f32,
}

/// Names of [`AugmentConfig::preset`]s.
pub const AUGMENT_PRESETS: [&str; 3] = ["faces", "signatures", "characters"];

impl AugmentConfig {
    /// Whether every range is zero, i.e. the augmentation leaves images unchanged:
    /// `rotation = shift = scale = shear = brightness = contrast = 0` and no `flip` (`fill`
    /// does not matter then).
    pub fn is_identity(&self) -> bool {
        self.is_geometric_identity() && self.brightness == 0.0 && self.contrast == 0.0
    }

    /// Whether the affine part (rotation, shift, scale, shear, flip) is the identity.
    pub fn is_geometric_identity(&self) -> bool {
        self.rotation == 0.0
            && self.shift == 0.0
            && self.scale == 0.0
            && self.shear == 0.0
            && !self.flip
    }

    /// The ranges for one use:
    ///
    /// - `faces`: flip, shift 5%, rotation 5°, scale 5%, brightness 0.1, contrast 20%
    ///   (the usual face-recognition jitter: pose, framing and lighting, a face mirrored is
    ///   the same face);
    /// - `signatures`: rotation 3°, shear 5°, scale 5%, shift 3% (small changes of slant,
    ///   size and placement; no flip — a mirrored signature is not the same one);
    /// - `characters`: Koch et al. (2015)'s affine distortions, rotation 10°, shear 17°
    ///   (0.3 rad), scale 20%, shift 2% (±2 pixels of 105).
    ///
    /// ```
    /// use siamese::data::augment::AugmentConfig;
    /// let faces = AugmentConfig::preset("faces").unwrap();
    /// assert!(faces.flip && faces.validate().is_ok());
    /// assert!(AugmentConfig::preset("cats").unwrap_err().to_string().contains("faces"));
    /// ```
    pub fn preset(name: &str) -> Result<Self> {
        let base = Self::default();
        Ok(match name {
            "faces" => Self {
                flip: true,
                shift: 0.05,
                rotation: 5.0,
                scale: 0.05,
                brightness: 0.1,
                contrast: 0.2,
                ..base
            },
            "signatures" => Self {
                rotation: 3.0,
                shear: 5.0,
                scale: 0.05,
                shift: 0.03,
                ..base
            },
            "characters" => Self {
                rotation: 10.0,
                shear: 17.0,
                scale: 0.2,
                shift: 0.02,
                ..base
            },
            other => {
                return Err(SiameseError::config(
                    "augment_preset",
                    format!(
                        "unknown preset `{other}`; expected one of {}",
                        AUGMENT_PRESETS.join(", ")
                    ),
                ));
            }
        })
    }

    /// Checks that every range is finite and non-negative, with `rotation ≤ 180`,
    /// `shift < 1`, `scale < 1`, `shear < 80` and a finite `fill`; the error names the field
    /// (`augment.rotation`, ...).
    pub fn validate(&self) -> Result<()> {
        check_range(
            "augment.rotation",
            self.rotation,
            MAX_ROTATION_DEG,
            true,
            "degrees",
        )?;
        check_range(
            "augment.shift",
            self.shift,
            MAX_SHIFT,
            false,
            "of the image size",
        )?;
        check_range(
            "augment.scale",
            self.scale,
            MAX_SCALE,
            false,
            "relative change",
        )?;
        check_range("augment.shear", self.shear, MAX_SHEAR_DEG, false, "degrees")?;
        check_range(
            "augment.brightness",
            self.brightness,
            1.0,
            false,
            "pixel value",
        )?;
        check_range(
            "augment.contrast",
            self.contrast,
            1.0,
            false,
            "relative change",
        )?;
        if !self.fill.is_finite() {
            return Err(SiameseError::config(
                "augment.fill",
                format!("{} is not a finite number", self.fill),
            ));
        }
        Ok(())
    }
}

/// Errors naming `field` unless `0 ≤ value ≤ max` (`inclusive`) or `0 ≤ value < max`.
fn check_range(field: &str, value: f32, max: f32, inclusive: bool, unit: &str) -> Result<()> {
    if !value.is_finite() {
        return Err(SiameseError::config(
            field,
            format!("{value} is not a finite number"),
        ));
    }
    if value < 0.0 {
        return Err(SiameseError::config(
            field,
            format!("{value} is negative; it is the half-width of a symmetric range, use ≥ 0"),
        ));
    }
    let too_big = if inclusive { value > max } else { value >= max };
    if too_big {
        let bound = if inclusive { "at most" } else { "below" };
        return Err(SiameseError::config(
            field,
            format!("{value} is too large; it must be {bound} {max} ({unit})"),
        ));
    }
    Ok(())
}
