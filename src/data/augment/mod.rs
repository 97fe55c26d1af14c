//! Random affine data augmentation for grayscale images stored as matrix rows.
//!
//! Each image is one row of a [`Matrix`]: `height × width` pixels, row-major within the row,
//! values in `[0, 1]`. [`augment_rows`] gives every row its own random affine transform about
//! the image centre — rotation, shear, scale and shift, like Keras's `ImageDataGenerator` or
//! torchvision's `RandomAffine` — and resamples it with bilinear interpolation, in place.
//!
//! # Coordinates and the transform
//!
//! Pixel `(x, y)` (column `x`, row `y`, `y` pointing down) has its centre at the integer point
//! `(x, y)`; the image centre is `c = ((width − 1) / 2, (height − 1) / 2)`. A transform moves
//! image content forward by
//!
//! ```text
//! p_out = c + t + A · (p_in − c),      A = R(θ) · H(φ) · s·I
//!
//! R(θ) = [  cos θ   sin θ ]      H(φ) = [ 1  tan φ ]      t = (t_x, t_y) in pixels
//!        [ −sin θ   cos θ ]             [ 0    1   ]
//! ```
//!
//! so the content is scaled by `s`, sheared horizontally by `φ` (`x' = x + tan φ · y`), rotated
//! by `θ` (positive = counter-clockwise as displayed, like `np.rot90`), then shifted by `t`.
//! Resampling needs the inverse, which an [`Affine`] stores, computed once per image:
//!
//! ```text
//! p_in = A⁻¹ · p_out + (c − A⁻¹ · (c + t))
//! ```
//!
//! `det A = s² > 0`, so the inverse exists for every configuration [`AugmentConfig::validate`]
//! accepts. Output pixels are bilinear blends of the four input pixels around `p_in`; input
//! pixels outside the image read as [`AugmentConfig::fill`].
//!
//! Unlike Keras's `zoom_range` (whose factor shrinks the content when above 1), the scale here
//! is the forward content scale, as in torchvision: `s > 1` enlarges the content.
//!
//! The code is split by concern: `config` holds the ranges and their validation, `affine` the
//! transform maths, and `resample` the bilinear resampling and the per-row augmentation.
//!
//! [`Matrix`]: crate::data::Matrix

mod affine;
mod config;
mod resample;

#[cfg(test)]
mod tests;

pub use affine::{Affine, AffineParams};
pub use config::{
    AUGMENT_PRESETS, AugmentConfig, MAX_ROTATION_DEG, MAX_SCALE, MAX_SHEAR_DEG, MAX_SHIFT,
};
pub use resample::{augment_rows, random_affine};
