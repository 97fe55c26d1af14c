//! The element kernels of the host conv trainer's passes: max-pooling forward and backward
//! through the argmax, col2im, dropout's product.

use crate::simd::multiversion;
/// Channels the AVX2 pooling passes handle together (one register of `f32`).
const LANES: usize = 8;

multiversion! {
    /// `out = a ⊙ m`.
    pub(super) fn mul_into(out: &mut [f32], a: &[f32], m: &[f32]) {
        for ((o, v), m) in out.iter_mut().zip(a).zip(m) {
            *o = v * m;
        }
    }
}

multiversion! {
    /// The portable max-pooling forward pass (see [`pool_forward`]).
    fn pool_forward_portable(
        image: &[f32],
        dst: &mut [f32],
        arg: &mut [u32],
        input: [usize; 2],
        output: [usize; 2],
        window: [usize; 2],
    ) {
        let ([wi, ci], [ho, wo], [size, s]) = (input, output, window);
        for y in 0..ho {
            for x in 0..wo {
                let o = (y * wo + x) * ci;
                let (d, a) = (&mut dst[o..o + ci], &mut arg[o..o + ci]);
                let first = (s * y * wi + s * x) * ci;
                d.copy_from_slice(&image[first..first + ci]);
                for (ch, a) in a.iter_mut().enumerate() {
                    *a = (first + ch) as u32;
                }
                for i in 0..size {
                    for j in 0..size {
                        let at = ((s * y + i) * wi + s * x + j) * ci;
                        let window = &image[at..at + ci];
                        for (ch, ((d, a), &v)) in
                            d.iter_mut().zip(a.iter_mut()).zip(window).enumerate()
                        {
                            let greater = v > *d;
                            *d = if greater { v } else { *d };
                            *a = if greater { (at + ch) as u32 } else { *a };
                        }
                    }
                }
            }
        }
    }
}

multiversion! {
    /// The portable max-pooling backward pass (see [`pool_backward`]).
    #[allow(clippy::too_many_arguments)]
    fn pool_backward_portable(
        gx: &mut [f32],
        y: &[f32],
        g: &[f32],
        arg: &[u32],
        input: [usize; 2],
        output: [usize; 2],
        window: [usize; 2],
        relu: bool,
    ) {
        let ([wi, ci], [ho, wo], [size, s]) = (input, output, window);
        let tiles = size == s;
        for r in 0..ho {
            for x0 in 0..wo {
                let o = (r * wo + x0) * ci;
                let (go, ao, yo) = (&g[o..o + ci], &arg[o..o + ci], &y[o..o + ci]);
                for i in 0..size {
                    for j in 0..size {
                        let at = ((s * r + i) * wi + s * x0 + j) * ci;
                        let gi = &mut gx[at..at + ci];
                        for ch in 0..ci {
                            let hit = ao[ch] as usize == at + ch && (!relu || yo[ch] > 0.0);
                            let v = if hit { go[ch] } else { 0.0 };
                            if tiles {
                                gi[ch] = v;
                            } else {
                                gi[ch] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

multiversion! {
    /// The adjoint of `im2col` for one image: `g[(s·y + i − top, s·x + j − left), c] +=
    /// dcols[(y, x), (i, j, c)]` for pixels inside the image (`input`: height, width,
    /// channels; `window`: kernel side and stride; `pad`: top and left).
    pub(super) fn col2im(
        dcols: &[f32],
        g: &mut [f32],
        input: [usize; 3],
        output: [usize; 2],
        window: [usize; 2],
        pad: [usize; 2],
    ) {
    let ([hi, wi, ci], [ho, wo], [k, s], [top, left]) = (input, output, window, pad);
    let (span, kkc) = (k * ci, k * k * ci);
    for y in 0..ho {
        for x in 0..wo {
            let row = &dcols[(y * wo + x) * kkc..][..kkc];
            // Kernel columns j in `lo..hi_j` fall inside the image: one contiguous run of
            // `(hi_j − lo)·ci` values per kernel row (channels-last).
            let x0 = (s * x) as isize - left as isize;
            let lo = (-x0).clamp(0, k as isize) as usize;
            let hi_j = (wi as isize - x0).clamp(lo as isize, k as isize) as usize;
            if hi_j == lo {
                continue;
            }
            for i in 0..k {
                let yy = (s * y + i) as isize - top as isize;
                if yy < 0 || yy >= hi as isize {
                    continue;
                }
                let at = ((yy as usize * wi) as isize + x0 + lo as isize) as usize * ci;
                let run = (hi_j - lo) * ci;
                for (gv, d) in g[at..at + run]
                    .iter_mut()
                    .zip(&row[i * span + lo * ci..][..run])
                {
                    *gv += d;
                }
            }
        }
    }
}
}

/// Max-pooling of one channels-last image with the argmax of every output (its index in
/// the image; the first maximum in window order; a NaN stays where it is). Channels are
/// innermost and contiguous: AVX2 takes eight at a time in compares and blends, when
/// they come in whole registers; else the portable loops.
pub(super) fn pool_forward(
    image: &[f32],
    dst: &mut [f32],
    arg: &mut [u32],
    input: [usize; 2],
    output: [usize; 2],
    window: [usize; 2],
) {
    #[cfg(target_arch = "x86_64")]
    if input[1].is_multiple_of(LANES) && std::is_x86_feature_detected!("avx2") {
        let g = Pooling::new(input, output, window);
        assert!(
            image.len() >= g.extent() && dst.len() >= g.outputs() && arg.len() >= g.outputs(),
            "max-pooling: buffers too small for the window"
        );
        // SAFETY: the CPU has AVX2 (checked above); the assertion bounds every access.
        unsafe { avx2::pool_forward(&g, image, dst, arg) };
        return;
    }
    pool_forward_portable(image, dst, arg, input, output, window);
}

/// The gradient of one channels-last image's max-pooling: each window's maximum (its
/// argmax `arg`) takes the output's gradient `g`, when `relu` (a ReLU before the pooling)
/// only where the maximum, the pooled output `y`, is positive; every other input in a
/// window gets 0. A window that overlaps another must have `gx` zeroed first: only tiling
/// windows (`size == stride`) write, others add. AVX2 when the channels come in whole
/// registers.
#[allow(clippy::too_many_arguments)]
pub(super) fn pool_backward(
    gx: &mut [f32],
    y: &[f32],
    g: &[f32],
    arg: &[u32],
    input: [usize; 2],
    output: [usize; 2],
    window: [usize; 2],
    relu: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if input[1].is_multiple_of(LANES) && std::is_x86_feature_detected!("avx2") {
        let p = Pooling::new(input, output, window);
        assert!(
            gx.len() >= p.extent()
                && y.len() >= p.outputs()
                && g.len() >= p.outputs()
                && arg.len() >= p.outputs(),
            "max-pooling backward: buffers too small for the window"
        );
        // SAFETY: as in `pool_forward`.
        unsafe { avx2::pool_backward(&p, gx, y, g, arg, relu) };
        return;
    }
    pool_backward_portable(gx, y, g, arg, input, output, window, relu);
}

/// The geometry of a max-pooling over a channels-last image.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Pooling {
    wi: usize,
    ci: usize,
    ho: usize,
    wo: usize,
    size: usize,
    s: usize,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl Pooling {
    fn new([wi, ci]: [usize; 2], [ho, wo]: [usize; 2], [size, s]: [usize; 2]) -> Self {
        Self {
            wi,
            ci,
            ho,
            wo,
            size,
            s,
        }
    }

    /// Values of the input the windows reach (one past the last).
    fn extent(&self) -> usize {
        if self.ho == 0 || self.wo == 0 {
            return 0;
        }
        let last_row = self.s * (self.ho - 1) + self.size - 1;
        let last_col = self.s * (self.wo - 1) + self.size - 1;
        (last_row * self.wi + last_col + 1) * self.ci
    }

    fn outputs(&self) -> usize {
        self.ho * self.wo * self.ci
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The pooling passes eight channels at a time in AVX2 registers: compares, blends and
    //! masks instead of branches.

    use std::arch::x86_64::*;

    use super::Pooling;

    /// See [`super::pool_forward`]; the caller checked the bounds.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pool_forward(
        p: &Pooling,
        image: &[f32],
        dst: &mut [f32],
        arg: &mut [u32],
    ) {
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let (src, out, idx) = (image.as_ptr(), dst.as_mut_ptr(), arg.as_mut_ptr());
        for y in 0..p.ho {
            for x in 0..p.wo {
                let o = (y * p.wo + x) * p.ci;
                for c0 in (0..p.ci).step_by(8) {
                    let first = (p.s * y * p.wi + p.s * x) * p.ci + c0;
                    // SAFETY (all loads and stores): window positions are below `extent`,
                    // outputs below `outputs`, both checked by the caller.
                    let mut m = unsafe { _mm256_loadu_ps(src.add(first)) };
                    let mut a = _mm256_add_epi32(_mm256_set1_epi32(first as i32), lane);
                    for i in 0..p.size {
                        for j in 0..p.size {
                            if i == 0 && j == 0 {
                                continue;
                            }
                            let at = ((p.s * y + i) * p.wi + p.s * x + j) * p.ci + c0;
                            let v = unsafe { _mm256_loadu_ps(src.add(at)) };
                            // Greater, not greater-or-equal: the first maximum wins; false
                            // against a NaN, which therefore stays.
                            let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(v, m);
                            m = _mm256_blendv_ps(m, v, gt);
                            let at = _mm256_add_epi32(_mm256_set1_epi32(at as i32), lane);
                            a = _mm256_blendv_epi8(a, at, _mm256_castps_si256(gt));
                        }
                    }
                    unsafe {
                        _mm256_storeu_ps(out.add(o + c0), m);
                        _mm256_storeu_si256(idx.add(o + c0).cast(), a);
                    }
                }
            }
        }
    }

    /// See [`super::pool_backward`]; the caller checked the bounds.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pool_backward(
        p: &Pooling,
        gx: &mut [f32],
        y: &[f32],
        g: &[f32],
        arg: &[u32],
        relu: bool,
    ) {
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let zero = _mm256_setzero_ps();
        let tiles = p.size == p.s;
        let (gxp, yp, gp, ap) = (gx.as_mut_ptr(), y.as_ptr(), g.as_ptr(), arg.as_ptr());
        for y in 0..p.ho {
            for x0 in 0..p.wo {
                let o = (y * p.wo + x0) * p.ci;
                for c0 in (0..p.ci).step_by(8) {
                    // SAFETY (all loads and stores): as in `pool_forward`.
                    let go = unsafe { _mm256_loadu_ps(gp.add(o + c0)) };
                    let ao = unsafe { _mm256_loadu_si256(ap.add(o + c0).cast()) };
                    // The ReLU's gate: the window's maximum (the pooled value) is positive.
                    let gate = if relu {
                        let yo = unsafe { _mm256_loadu_ps(yp.add(o + c0)) };
                        _mm256_cmp_ps::<_CMP_GT_OQ>(yo, zero)
                    } else {
                        _mm256_castsi256_ps(_mm256_set1_epi32(-1))
                    };
                    let go = _mm256_and_ps(gate, go);
                    for i in 0..p.size {
                        for j in 0..p.size {
                            let at = ((p.s * y + i) * p.wi + p.s * x0 + j) * p.ci + c0;
                            let here = _mm256_add_epi32(_mm256_set1_epi32(at as i32), lane);
                            let hit = _mm256_castsi256_ps(_mm256_cmpeq_epi32(ao, here));
                            let v = _mm256_and_ps(hit, go);
                            unsafe {
                                let v = if tiles {
                                    v
                                } else {
                                    _mm256_add_ps(_mm256_loadu_ps(gxp.add(at)), v)
                                };
                                _mm256_storeu_ps(gxp.add(at), v);
                            }
                        }
                    }
                }
            }
        }
    }
}
