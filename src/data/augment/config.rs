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
/// ```
///
/// See the [module documentation](super) for how they combine.
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
}

impl AugmentConfig {
    /// Whether every range is zero, i.e. the augmentation leaves images unchanged:
    /// `rotation = shift = scale = shear = 0` (`fill` does not matter then).
    pub fn is_identity(&self) -> bool {
        self.rotation == 0.0 && self.shift == 0.0 && self.scale == 0.0 && self.shear == 0.0
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
