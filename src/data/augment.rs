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

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::data::Matrix;
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
/// See the [module documentation](self) for how they combine.
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

/// The parameters of one affine transform about the image centre (see the
/// [module documentation](self)): `p_out = c + t + R(θ)·H(φ)·s·(p_in − c)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineParams {
    /// `θ`, degrees, positive = counter-clockwise as displayed.
    pub rotation_deg: f32,
    /// `φ`, degrees: horizontal shear `x' = x + tan φ · y`.
    pub shear_deg: f32,
    /// `s`, forward content scale (`> 1` enlarges).
    pub scale: f32,
    /// `t_x`, pixels, positive = right.
    pub shift_x: f32,
    /// `t_y`, pixels, positive = down.
    pub shift_y: f32,
}

impl Default for AffineParams {
    /// The identity: `θ = φ = 0`, `s = 1`, `t = 0`.
    fn default() -> Self {
        Self {
            rotation_deg: 0.0,
            shear_deg: 0.0,
            scale: 1.0,
            shift_x: 0.0,
            shift_y: 0.0,
        }
    }
}

/// An affine resampling map: a 2×3 matrix `M` taking OUTPUT pixel coordinates to the INPUT
/// coordinates they are sampled from,
///
/// ```text
/// [x_in]   [m00 m01 m02]   [x_out]
/// [y_in] = [m10 m11 m12] · [y_out]
///                          [  1  ]
/// ```
///
/// Build one with [`Affine::about_centre`] (or [`random_affine`]), which inverts the forward
/// content transform once, then [`Affine::apply`] it to any number of images of that size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    m: [[f32; 3]; 2],
}

impl Affine {
    /// The identity map, `M = [[1, 0, 0], [0, 1, 0]]`.
    pub fn identity() -> Self {
        Self {
            m: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        }
    }

    /// Wraps an output→input matrix `M` as is.
    pub fn from_inverse_matrix(m: [[f32; 3]; 2]) -> Self {
        Self { m }
    }

    /// The output→input matrix `M`.
    pub fn matrix(&self) -> [[f32; 3]; 2] {
        self.m
    }

    /// The transform moving content by `p_out = c + t + R(θ)·H(φ)·s·(p_in − c)` in a
    /// `width × height` image with centre `c = ((width − 1)/2, (height − 1)/2)`, stored as its
    /// inverse `p_in = A⁻¹·p_out + (c − A⁻¹·(c + t))`, `A = R(θ)·H(φ)·s`.
    ///
    /// Rotations by multiples of 90° use exact sines and cosines, so on a square image they
    /// permute pixels exactly. A degenerate `A` (`s = 0`, non-finite parameters) yields a map
    /// whose every output pixel is the fill value.
    pub fn about_centre(params: &AffineParams, width: usize, height: usize) -> Self {
        let (sin, cos) = sin_cos_deg(f64::from(params.rotation_deg));
        let tan = f64::from(params.shear_deg).to_radians().tan();
        let s = f64::from(params.scale);
        // A = R · H · s with R = [[cos, sin], [−sin, cos]], H = [[1, tan], [0, 1]].
        let a00 = cos * s;
        let a01 = (cos * tan + sin) * s;
        let a10 = -sin * s;
        let a11 = (cos - sin * tan) * s;
        let det = a00 * a11 - a01 * a10;
        // A⁻¹ = [[a11, −a01], [−a10, a00]] / det.
        let (i00, i01, i10, i11) = (a11 / det, -a01 / det, -a10 / det, a00 / det);
        let cx = (width as f64 - 1.0) / 2.0;
        let cy = (height as f64 - 1.0) / 2.0;
        let (ux, uy) = (
            cx + f64::from(params.shift_x),
            cy + f64::from(params.shift_y),
        );
        let ox = cx - (i00 * ux + i01 * uy);
        let oy = cy - (i10 * ux + i11 * uy);
        Self {
            m: [
                [i00 as f32, i01 as f32, ox as f32],
                [i10 as f32, i11 as f32, oy as f32],
            ],
        }
    }

    /// A pure rotation by `angle_deg` (counter-clockwise as displayed) about the centre of a
    /// `width × height` image: [`Affine::about_centre`] with only `θ` set.
    pub fn rotation_deg(angle_deg: f32, width: usize, height: usize) -> Self {
        let params = AffineParams {
            rotation_deg: angle_deg,
            ..AffineParams::default()
        };
        Self::about_centre(&params, width, height)
    }

    /// A pure shift of the content by `(dx, dy)` pixels (right, down):
    /// `M = [[1, 0, −dx], [0, 1, −dy]]`.
    pub fn translation(dx: f32, dy: f32) -> Self {
        Self {
            m: [[1.0, 0.0, -dx], [0.0, 1.0, -dy]],
        }
    }

    /// The input point sampled for output pixel `(x, y)`: `M · (x, y, 1)`.
    pub fn map(&self, x: f32, y: f32) -> (f32, f32) {
        let [[a, b, c], [d, e, f]] = self.m;
        (a * x + b * y + c, d * x + e * y + f)
    }

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

impl Default for Affine {
    /// [`Affine::identity`].
    fn default() -> Self {
        Self::identity()
    }
}

/// `(sin, cos)` of `deg` degrees, exact at multiples of 90°.
fn sin_cos_deg(deg: f64) -> (f64, f64) {
    let r = deg.rem_euclid(360.0);
    if r == 0.0 {
        (0.0, 1.0)
    } else if r == 90.0 {
        (1.0, 0.0)
    } else if r == 180.0 {
        (0.0, -1.0)
    } else if r == 270.0 {
        (-1.0, 0.0)
    } else {
        r.to_radians().sin_cos()
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
    if config.is_identity() {
        return Affine::identity();
    }
    let rotation_deg = symmetric(rng, config.rotation);
    let shear_deg = symmetric(rng, config.shear);
    let scale = 1.0 + symmetric(rng, config.scale);
    let shift_x = symmetric(rng, config.shift) * width as f32;
    let shift_y = symmetric(rng, config.shift) * height as f32;
    let params = AffineParams {
        rotation_deg,
        shear_deg,
        scale,
        shift_x,
        shift_y,
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
        let affine = random_affine(config, rng, width, height);
        affine.apply(row, width, height, config.fill, &mut scratch);
        row.copy_from_slice(&scratch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// `rows` images of `w × h` with distinct, non-symmetric pixel values.
    fn ramp(rows: usize, w: usize, h: usize) -> Matrix {
        let data = (0..rows * w * h)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        Matrix::new(rows, w * h, data).unwrap()
    }

    fn apply(affine: &Affine, src: &[f32], w: usize, h: usize, fill: f32) -> Vec<f32> {
        let mut dst = vec![f32::NAN; src.len()];
        affine.apply(src, w, h, fill, &mut dst);
        dst
    }

    fn full() -> AugmentConfig {
        AugmentConfig {
            rotation: 15.0,
            shift: 0.1,
            scale: 0.1,
            shear: 10.0,
            fill: 0.0,
        }
    }

    #[test]
    fn identity_config_leaves_images_bit_identical() {
        let mut images = ramp(5, 7, 6);
        // Values an arithmetic identity would not preserve bit for bit.
        images.data[0] = -0.0;
        images.data[1] = f32::NAN;
        images.data[2] = 1e-42; // subnormal
        let before: Vec<u32> = images.as_slice().iter().map(|v| v.to_bits()).collect();
        let config = AugmentConfig {
            fill: 1.0,
            ..AugmentConfig::default()
        };
        assert!(config.is_identity());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        augment_rows(&mut images, 7, 6, &config, &mut rng).unwrap();
        let after: Vec<u32> = images.as_slice().iter().map(|v| v.to_bits()).collect();
        assert_eq!(before, after);
        // The rng was not consumed.
        let mut fresh = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(rng.random::<u64>(), fresh.random::<u64>());
        // The identity Affine copies exactly too.
        let src = images.row(0).to_vec();
        let out = apply(&Affine::identity(), &src, 7, 6, 0.5);
        assert_eq!(
            src.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(random_affine(&config, &mut rng, 7, 6), Affine::identity());
    }

    #[test]
    fn rotation_by_90_degrees_permutes_pixels_like_rot90() {
        // 3 × 3, values 0..9 row-major: np.rot90 (counter-clockwise) gives
        // [[2, 5, 8], [1, 4, 7], [0, 3, 6]].
        let src: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let ccw = apply(&Affine::rotation_deg(90.0, 3, 3), &src, 3, 3, -1.0);
        assert_eq!(ccw, [2., 5., 8., 1., 4., 7., 0., 3., 6.]);
        let cw = apply(&Affine::rotation_deg(-90.0, 3, 3), &src, 3, 3, -1.0);
        assert_eq!(cw, [6., 3., 0., 7., 4., 1., 8., 5., 2.]);
        let half = apply(&Affine::rotation_deg(180.0, 3, 3), &src, 3, 3, -1.0);
        assert_eq!(half, [8., 7., 6., 5., 4., 3., 2., 1., 0.]);
        let full_turn = apply(&Affine::rotation_deg(360.0, 3, 3), &src, 3, 3, -1.0);
        assert_eq!(full_turn, src);

        // Even size (half-integer centre), 4 × 4: out[i][j] = in[j][n − 1 − i].
        let src: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let out = apply(&Affine::rotation_deg(90.0, 4, 4), &src, 4, 4, -1.0);
        let expected: Vec<f32> = (0..4)
            .flat_map(|i| (0..4).map(move |j| (j * 4 + (3 - i)) as f32))
            .collect();
        assert_eq!(out, expected);
        // Four quarter turns come back to the start.
        let mut img = src.clone();
        for _ in 0..4 {
            img = apply(&Affine::rotation_deg(90.0, 4, 4), &img, 4, 4, -1.0);
        }
        assert_eq!(img, src);
    }

    #[test]
    fn small_rotation_is_smooth_and_centre_fixed() {
        // The centre pixel of an odd image maps to itself under any rotation.
        let a = Affine::rotation_deg(33.0, 5, 5);
        let (x, y) = a.map(2.0, 2.0);
        assert!(
            (x - 2.0).abs() < 1e-6 && (y - 2.0).abs() < 1e-6,
            "({x}, {y})"
        );
        // Non-square images: a quarter turn keeps the centre and does not panic.
        let src: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let out = apply(&Affine::rotation_deg(90.0, 4, 3), &src, 4, 3, 0.0);
        assert!(out.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn integer_shift_moves_pixels_and_fills() {
        let (w, h) = (5, 4);
        let src: Vec<f32> = (0..w * h).map(|v| 0.01 * v as f32).collect();
        let fill = 0.75;
        let out = apply(&Affine::translation(2.0, -1.0), &src, w, h, fill);
        for y in 0..h {
            for x in 0..w {
                let (sx, sy) = (x as isize - 2, y as isize + 1);
                let expected = if sx >= 0 && sy < h as isize {
                    src[sy as usize * w + sx as usize]
                } else {
                    fill
                };
                assert_eq!(out[y * w + x], expected, "pixel ({x}, {y})");
            }
        }
        // The same shift built through about_centre.
        let params = AffineParams {
            shift_x: 2.0,
            shift_y: -1.0,
            ..AffineParams::default()
        };
        assert_eq!(
            apply(&Affine::about_centre(&params, w, h), &src, w, h, fill),
            out
        );
        // Shifting everything out leaves only fill.
        let gone = apply(&Affine::translation(w as f32, 0.0), &src, w, h, fill);
        assert!(gone.iter().all(|&v| v == fill));
    }

    #[test]
    fn half_pixel_shift_interpolates_bilinearly() {
        // One row [0, 1, 0, 0]: shifting right by 0.5 averages neighbours, fill on the left.
        let src = [0.0, 1.0, 0.0, 0.0];
        let out = apply(&Affine::translation(0.5, 0.0), &src, 4, 1, 0.2);
        assert_eq!(out, [0.1, 0.5, 0.5, 0.0]);
    }

    #[test]
    fn scale_and_shear_follow_the_formula() {
        // Scale 2 about the centre of a 5 × 5 image: output (4, 2) samples input (3, 2).
        let params = AffineParams {
            scale: 2.0,
            ..AffineParams::default()
        };
        let (x, y) = Affine::about_centre(&params, 5, 5).map(4.0, 2.0);
        assert!(
            (x - 3.0).abs() < 1e-6 && (y - 2.0).abs() < 1e-6,
            "({x}, {y})"
        );
        // Shear 45°: x' = x + (y − cy), so output (2, 4) samples input (0, 4).
        let params = AffineParams {
            shear_deg: 45.0,
            ..AffineParams::default()
        };
        let (x, y) = Affine::about_centre(&params, 5, 5).map(2.0, 4.0);
        assert!(
            (x - 0.0).abs() < 1e-6 && (y - 4.0).abs() < 1e-6,
            "({x}, {y})"
        );
    }

    #[test]
    fn same_seed_same_output_different_seed_different() {
        let run = |seed: u64| {
            let mut images = ramp(8, 10, 12);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            augment_rows(&mut images, 10, 12, &full(), &mut rng).unwrap();
            images
        };
        let original = ramp(8, 10, 12);
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        assert_ne!(a, original);
        // Each row gets its own transform: identical input rows come out different.
        let mut twins = Matrix::new(
            2,
            100,
            [ramp(1, 10, 10).into_vec(), ramp(1, 10, 10).into_vec()].concat(),
        )
        .unwrap();
        augment_rows(
            &mut twins,
            10,
            10,
            &full(),
            &mut ChaCha8Rng::seed_from_u64(3),
        )
        .unwrap();
        assert_ne!(twins.row(0), twins.row(1));
        // Output stays in [0, 1] for inputs and fill in [0, 1].
        assert!(a.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn random_affine_draws_within_the_configured_ranges() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let (w, h) = (20, 10);
        let draws = 300;
        // Shift only: M = [[1, 0, −t_x], [0, 1, −t_y]], |t_x| ≤ 0.1·20, |t_y| ≤ 0.1·10.
        let shift = AugmentConfig {
            shift: 0.1,
            ..AugmentConfig::default()
        };
        let (mut max_x, mut max_y) = (0.0f32, 0.0f32);
        for _ in 0..draws {
            let [[a, b, c], [d, e, f]] = random_affine(&shift, &mut rng, w, h).matrix();
            assert!((a - 1.0).abs() < 1e-6 && b.abs() < 1e-6 && d.abs() < 1e-6);
            assert!((e - 1.0).abs() < 1e-6);
            assert!(
                c.abs() <= 2.0 + 1e-5 && f.abs() <= 1.0 + 1e-5,
                "shift ({c}, {f})"
            );
            (max_x, max_y) = (max_x.max(c.abs()), max_y.max(f.abs()));
        }
        assert!(
            max_x > 1.8 && max_y > 0.9,
            "shifts span the range: {max_x}, {max_y}"
        );
        // Rotation only: θ within ±15°, spanning the range.
        let rotation = AugmentConfig {
            rotation: 15.0,
            ..AugmentConfig::default()
        };
        let (mut lo, mut hi) = (0.0f32, 0.0f32);
        for _ in 0..draws {
            let [[a, b, _], _] = random_affine(&rotation, &mut rng, w, h).matrix();
            // A⁻¹ = [[cos, −sin], [sin, cos]] for A = [[cos, sin], [−sin, cos]].
            let theta = (-b).atan2(a).to_degrees();
            assert!(theta.abs() <= 15.0 + 1e-3, "θ = {theta}");
            (lo, hi) = (lo.min(theta), hi.max(theta));
        }
        assert!(
            lo < -13.0 && hi > 13.0,
            "rotations span the range: [{lo}, {hi}]"
        );
        // Scale only: M = I / s, s ∈ [0.8, 1.2].
        let scale = AugmentConfig {
            scale: 0.2,
            ..AugmentConfig::default()
        };
        let (mut lo, mut hi) = (f32::MAX, 0.0f32);
        for _ in 0..draws {
            let [[a, _, _], [_, e, _]] = random_affine(&scale, &mut rng, w, h).matrix();
            let s = 1.0 / a;
            assert!(
                (a - e).abs() < 1e-6 && (0.8 - 1e-5..=1.2 + 1e-5).contains(&s),
                "s = {s}"
            );
            (lo, hi) = (lo.min(s), hi.max(s));
        }
        assert!(
            lo < 0.82 && hi > 1.18,
            "scales span the range: [{lo}, {hi}]"
        );
    }

    #[test]
    fn centred_blob_keeps_its_mean_under_small_transforms() {
        let (w, h) = (28, 28);
        let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        let blob: Vec<f32> = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32 - cx, (i / w) as f32 - cy);
                (-(x * x + y * y) / (2.0 * 3.0 * 3.0)).exp()
            })
            .collect();
        let n = 200;
        let mut images = Matrix::new(n, w * h, blob.repeat(n)).unwrap();
        let config = AugmentConfig {
            rotation: 10.0,
            shift: 0.05,
            scale: 0.1,
            shear: 5.0,
            fill: 0.0,
        };
        augment_rows(
            &mut images,
            w,
            h,
            &config,
            &mut ChaCha8Rng::seed_from_u64(11),
        )
        .unwrap();
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        let original = mean(&blob);
        let mut total = 0.0;
        let mut changed = 0;
        for r in 0..n {
            let row = images.row(r);
            let ratio = mean(row) / original;
            // Area scales by s² ∈ [0.81, 1.21]; bilinear blur adds a little.
            assert!(
                (0.78..=1.24).contains(&ratio),
                "row {r}: mean ratio {ratio}"
            );
            total += ratio;
            changed += usize::from(row != blob.as_slice());
        }
        let average = total / n as f32;
        // E[s²] = 1 + scale²/3 ≈ 1.0033.
        assert!((average - 1.0).abs() < 0.03, "average mean ratio {average}");
        assert_eq!(changed, n, "every image should be transformed");
    }

    #[test]
    fn validate_rejects_bad_values_naming_the_field() {
        full().validate().unwrap();
        AugmentConfig::default().validate().unwrap();
        AugmentConfig {
            rotation: 180.0,
            shift: 0.99,
            scale: 0.99,
            shear: 79.9,
            fill: 1.0,
        }
        .validate()
        .unwrap();
        let cases: [(&str, AugmentConfig); 10] = [
            (
                "augment.rotation",
                AugmentConfig {
                    rotation: -1.0,
                    ..full()
                },
            ),
            (
                "augment.rotation",
                AugmentConfig {
                    rotation: 180.5,
                    ..full()
                },
            ),
            (
                "augment.rotation",
                AugmentConfig {
                    rotation: f32::NAN,
                    ..full()
                },
            ),
            (
                "augment.shift",
                AugmentConfig {
                    shift: -0.1,
                    ..full()
                },
            ),
            (
                "augment.shift",
                AugmentConfig {
                    shift: 1.0,
                    ..full()
                },
            ),
            (
                "augment.scale",
                AugmentConfig {
                    scale: 1.0,
                    ..full()
                },
            ),
            (
                "augment.scale",
                AugmentConfig {
                    scale: f32::INFINITY,
                    ..full()
                },
            ),
            (
                "augment.shear",
                AugmentConfig {
                    shear: -5.0,
                    ..full()
                },
            ),
            (
                "augment.shear",
                AugmentConfig {
                    shear: 80.0,
                    ..full()
                },
            ),
            (
                "augment.fill",
                AugmentConfig {
                    fill: f32::NAN,
                    ..full()
                },
            ),
        ];
        for (field, config) in cases {
            let err = config.validate().expect_err(field);
            match &err {
                SiameseError::Config { field: f, .. } => assert_eq!(f, field, "{err}"),
                other => panic!("expected a config error for {field}, got {other}"),
            }
            assert!(err.to_string().contains(field), "{err}");
            // augment_rows refuses it too.
            let mut images = ramp(1, 4, 4);
            assert!(
                augment_rows(
                    &mut images,
                    4,
                    4,
                    &config,
                    &mut ChaCha8Rng::seed_from_u64(0)
                )
                .is_err()
            );
        }
    }

    #[test]
    fn augment_rows_checks_the_image_size() {
        let mut images = ramp(2, 4, 4);
        let err = augment_rows(
            &mut images,
            5,
            4,
            &full(),
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap_err();
        assert!(matches!(err, SiameseError::Shape { .. }), "{err}");
        assert!(
            augment_rows(
                &mut images,
                usize::MAX,
                2,
                &full(),
                &mut ChaCha8Rng::seed_from_u64(0)
            )
            .is_err()
        );
        // Degenerate but consistent sizes are fine.
        for (w, h) in [(0, 0), (0, 3), (1, 1), (1, 5)] {
            let mut m = ramp(3, w, h);
            augment_rows(&mut m, w, h, &full(), &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        }
    }

    #[test]
    fn never_panics_on_extreme_valid_or_invalid_configs() {
        let extreme = AugmentConfig {
            rotation: 180.0,
            shift: 0.999,
            scale: 0.999,
            shear: 79.999,
            fill: 1.0,
        };
        extreme.validate().unwrap();
        let mut images = ramp(50, 9, 7);
        augment_rows(
            &mut images,
            9,
            7,
            &extreme,
            &mut ChaCha8Rng::seed_from_u64(5),
        )
        .unwrap();
        assert!(images.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
        // random_affine itself tolerates configs validate() would reject.
        let wild = AugmentConfig {
            rotation: f32::INFINITY,
            shift: -3.0,
            scale: f32::MAX,
            shear: f32::NAN,
            fill: 0.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let src = ramp(1, 6, 6).into_vec();
        for _ in 0..100 {
            let a = random_affine(&wild, &mut rng, 6, 6);
            let _ = apply(&a, &src, 6, 6, 0.0);
        }
        // A singular map samples nothing but fill.
        let params = AffineParams {
            scale: 0.0,
            ..AffineParams::default()
        };
        let out = apply(&Affine::about_centre(&params, 6, 6), &src, 6, 6, 0.25);
        assert!(out.iter().all(|&v| v == 0.25));
    }

    #[test]
    fn config_reads_from_toml_with_defaults() {
        let config: AugmentConfig = toml::from_str("rotation = 10.0\nshift = 0.1").unwrap();
        assert_eq!(
            config,
            AugmentConfig {
                rotation: 10.0,
                shift: 0.1,
                ..AugmentConfig::default()
            }
        );
        assert!(toml::from_str::<AugmentConfig>("zoom = 0.1").is_err());
        let empty: AugmentConfig = toml::from_str("").unwrap();
        assert!(empty.is_identity());
    }
}
