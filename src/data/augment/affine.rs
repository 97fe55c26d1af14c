//! The affine transform maths: forward content transform parameters and the inverse
//! (output → input) map that resampling uses.

/// The parameters of one affine transform about the image centre (see the
/// [module documentation](super)): `p_out = c + t + R(θ)·H(φ)·s·(p_in − c)`.
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
    /// Mirror left–right first (`F = diag(−1, 1)`).
    pub flip: bool,
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
            flip: false,
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
///
/// [`random_affine`]: super::random_affine
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub(super) m: [[f32; 3]; 2],
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

    /// The transform moving content by `p_out = c + t + R(θ)·H(φ)·s·F·(p_in − c)` in a
    /// `width × height` image with centre `c = ((width − 1)/2, (height − 1)/2)`, stored as its
    /// inverse `p_in = A⁻¹·p_out + (c − A⁻¹·(c + t))`, `A = R(θ)·H(φ)·s·F` (`F = diag(−1, 1)`
    /// with `flip`, else the identity).
    ///
    /// Rotations by multiples of 90° use exact sines and cosines, so on a square image they
    /// permute pixels exactly. A degenerate `A` (`s = 0`, non-finite parameters) yields a map
    /// whose every output pixel is the fill value.
    pub fn about_centre(params: &AffineParams, width: usize, height: usize) -> Self {
        let (sin, cos) = sin_cos_deg(f64::from(params.rotation_deg));
        let tan = f64::from(params.shear_deg).to_radians().tan();
        let s = f64::from(params.scale);
        // A = R · H · s with R = [[cos, sin], [−sin, cos]], H = [[1, tan], [0, 1]].
        // F mirrors x: it negates A's first column.
        let f = if params.flip { -1.0 } else { 1.0 };
        let a00 = cos * s * f;
        let a01 = (cos * tan + sin) * s;
        let a10 = -sin * s * f;
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
