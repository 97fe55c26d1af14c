//! Bilinear resampling through an [`Affine`] map, random transforms, and the augmentation of
//! every row of a matrix.

use rand::{Rng, RngExt};

use super::affine::{Affine, AffineParams};
use super::config::AugmentConfig;
use crate::data::Matrix;
use crate::error::{Result, SiameseError};

impl Affine {
    /// Resamples the `width × height` row-major image `src` into `dst` with bilinear
    /// interpolation:
    ///
    /// ```text
    /// (x_in, y_in) = M · (x, y, 1),   x0 = ⌊x_in⌋, y0 = ⌊y_in⌋, fx = x_in − x0, fy = y_in − y0
    /// dst[y, x] = (1−fy)·((1−fx)·P(x0, y0)   + fx·P(x0+1, y0))
    ///           +    fy·((1−fx)·P(x0, y0+1) + fx·P(x0+1, y0+1))
    /// ```
    ///
    /// where `P(i, j) = src[j·width + i]` inside the image and `fill` outside. Samples at
    /// integer points copy the pixel exactly; the identity copies `src` bit for bit.
    /// Allocates nothing.
    ///
    /// # Panics
    ///
    /// If `src` or `dst` does not hold `width · height` values.
    pub fn apply(&self, src: &[f32], width: usize, height: usize, fill: f32, dst: &mut [f32]) {
        let n = width
            .checked_mul(height)
            .expect("image width × height overflows usize");
        assert_eq!(src.len(), n, "source image must hold width × height values");
        assert_eq!(dst.len(), n, "destination must hold width × height values");
        if n == 0 {
            return;
        }
        if *self == Self::identity() {
            dst.copy_from_slice(src);
            return;
        }
        let [[a, b, c], [d, e, f]] = self.m;
        for (y, out_row) in dst.chunks_exact_mut(width).enumerate() {
            let yf = y as f32;
            let (bx, by) = (b * yf + c, e * yf + f);
            for (x, out) in out_row.iter_mut().enumerate() {
                let xf = x as f32;
                *out = bilinear(src, width, height, a * xf + bx, d * xf + by, fill);
            }
        }
    }
}

/// The bilinear sample of `src` at `(sx, sy)`, reading `fill` outside the image.
#[inline]
fn bilinear(src: &[f32], width: usize, height: usize, sx: f32, sy: f32, fill: f32) -> f32 {
    // All four neighbours are outside (this also catches NaN coordinates).
    if !(sx > -1.0 && sx < width as f32 && sy > -1.0 && sy < height as f32) {
        return fill;
    }
    let (x0f, y0f) = (sx.floor(), sy.floor());
    let (fx, fy) = (sx - x0f, sy - y0f);
    // In [−1, width − 1] × [−1, height − 1] thanks to the check above.
    let (x0, y0) = (x0f as isize, y0f as isize);
    let (p00, p01, p10, p11);
    if x0 >= 0 && y0 >= 0 && (x0 as usize) + 1 < width && (y0 as usize) + 1 < height {
        let i = y0 as usize * width + x0 as usize;
        (p00, p01, p10, p11) = (src[i], src[i + 1], src[i + width], src[i + width + 1]);
    } else {
        let at = |x: isize, y: isize| {
            if x >= 0 && y >= 0 && (x as usize) < width && (y as usize) < height {
                src[y as usize * width + x as usize]
            } else {
                fill
            }
        };
        (p00, p01, p10, p11) = (
            at(x0, y0),
            at(x0 + 1, y0),
            at(x0, y0 + 1),
            at(x0 + 1, y0 + 1),
        );
    }
    let top = p00 + (p01 - p00) * fx;
    let bottom = p10 + (p11 - p10) * fx;
    top + (bottom - top) * fy
}

/// `r · U(−1, 1)` for a finite positive `r`, else 0 without touching `rng`.
fn symmetric(rng: &mut (impl Rng + ?Sized), r: f32) -> f32 {
    if r.is_finite() && r > 0.0 {
        r * rng.random_range(-1.0f32..=1.0)
    } else {
        0.0
    }
}

/// Draws one random affine transform about the centre of a `width × height` image:
///
/// ```text
/// θ ~ U(−rotation, rotation), φ ~ U(−shear, shear), s ~ U(1 − scale, 1 + scale),
/// t_x ~ U(−shift, shift)·width, t_y ~ U(−shift, shift)·height
/// ```
///
/// drawn in that order, skipping (and not consuming randomness for) ranges that are zero, then
/// [`Affine::about_centre`]. Deterministic for a seeded `rng`. Never panics: ranges that are
/// negative or not finite count as zero (call [`AugmentConfig::validate`] to reject them).
pub fn random_affine(
    config: &AugmentConfig,
    rng: &mut impl Rng,
    width: usize,
    height: usize,
) -> Affine {
    if config.is_geometric_identity() {
        return Affine::identity();
    }
    let rotation_deg = symmetric(rng, config.rotation);
    let shear_deg = symmetric(rng, config.shear);
    let scale = 1.0 + symmetric(rng, config.scale);
    let shift_x = symmetric(rng, config.shift) * width as f32;
    let shift_y = symmetric(rng, config.shift) * height as f32;
    // Drawn last, and only when asked, so configs without it draw what they always drew.
    let flip = config.flip && rng.random_bool(0.5);
    let params = AffineParams {
        rotation_deg,
        shear_deg,
        scale,
        shift_x,
        shift_y,
        flip,
    };
    Affine::about_centre(&params, width, height)
}

/// Augments every row of `images` (each a `width × height` image, row-major) in place with its
/// own transform `random_affine(config, rng, width, height)`, drawn row by row in order and
/// applied with [`Affine::apply`] and `config.fill`.
///
/// Validates `config` first and errors if `images.cols() ≠ width · height`. An identity config
/// leaves `images` and `rng` untouched. Allocates one scratch row per call.
pub fn augment_rows(
    images: &mut Matrix,
    width: usize,
    height: usize,
    config: &AugmentConfig,
    rng: &mut impl Rng,
) -> Result<()> {
    config.validate()?;
    if width.checked_mul(height) != Some(images.cols()) {
        return Err(SiameseError::shape(
            "images to augment",
            format!("{width} × {height} pixels per row"),
            format!("{} values per row", images.cols()),
        ));
    }
    if config.is_identity() || images.cols() == 0 {
        return Ok(());
    }
    let mut scratch = vec![0.0f32; images.cols()];
    for row in images.data.chunks_exact_mut(width * height) {
        if !config.is_geometric_identity() {
            let affine = random_affine(config, rng, width, height);
            affine.apply(row, width, height, config.fill, &mut scratch);
            row.copy_from_slice(&scratch);
        }
        jitter(row, config, rng);
    }
    Ok(())
}

/// The photometric part: `p ← clamp(μ + c·(p − μ) + β, 0, 1)` with `c ~ U(1 − contrast,
/// 1 + contrast)`, `β ~ U(−brightness, brightness)` (drawn in that order, each only when its
/// range is not zero) and `μ` the image's mean.
fn jitter(image: &mut [f32], config: &AugmentConfig, rng: &mut impl Rng) {
    if config.brightness == 0.0 && config.contrast == 0.0 {
        return;
    }
    let c = 1.0 + symmetric(rng, config.contrast);
    let beta = symmetric(rng, config.brightness);
    let mean = image.iter().map(|&p| p as f64).sum::<f64>() as f32 / image.len().max(1) as f32;
    for p in image {
        *p = (mean + c * (*p - mean) + beta).clamp(0.0, 1.0);
    }
}
