//! The first convolution of a grey-image network without im2col: one input channel,
//! [`DIRECT_CO`] filters, valid padding, stride 1 (every preset's first layer on grey
//! images). Its im2col copies spans of only `k` values, for products with a reduction of
//! `k²`; here the forward pass and the kernel gradient keep their sums in registers
//! instead (AVX2 + FMA, with a portable fallback).
//!
//! Shapes, channels-last: the image `[hi, wi]`, the output `[ho, wo, 16]` with
//! `ho = hi − k + 1`, `wo = wi − k + 1`, the kernel `[(i·k + j), o]` (`i` the kernel row).

/// Output channels of the convolutions this module computes.
pub(super) const DIRECT_CO: usize = 16;

/// `y[(r, x), o] = act(Σ_{i,j} image[(r + i)·wi + x + j] · kernel[(i·k + j), o] + b[o])`
/// for one single-channel image (`act`: ReLU when `relu`, else the identity; a NaN stays
/// NaN).
#[allow(clippy::too_many_arguments)]
pub(super) fn direct_forward(
    image: &[f32],
    y: &mut [f32],
    kernel: &[f32],
    bias: &[f32],
    wi: usize,
    output: [usize; 2],
    k: usize,
    relu: bool,
) {
    let [ho, wo] = output;
    check_shapes([image.len(), y.len(), kernel.len()], wi, output, k);
    assert!(
        bias.len() >= DIRECT_CO,
        "direct convolution: {DIRECT_CO} biases needed"
    );
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above); the assertion bounds
        // every index the kernel reads and writes.
        unsafe { avx2::forward(image, y, kernel, bias, wi, output, k, relu) };
        return;
    }
    portable_forward(image, y, kernel, wi, output, k);
    crate::fused::mlp::bias_act(&mut y[..ho * wo * DIRECT_CO], bias, relu);
}

/// `∂K[(i·k + j), o] (+)= Σ_{r,x} image[(r + i)·wi + x + j] · gy[(r, x), o]`: the kernel
/// gradient of [`direct_forward`]'s convolution for one image; overwrites `gk` unless
/// `acc`.
pub(super) fn direct_kernel_grad(
    image: &[f32],
    gy: &[f32],
    gk: &mut [f32],
    wi: usize,
    output: [usize; 2],
    k: usize,
    acc: bool,
) {
    check_shapes([image.len(), gy.len(), gk.len()], wi, output, k);
    if !acc {
        gk[..k * k * DIRECT_CO].fill(0.0);
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: as in `direct_forward`.
        unsafe { avx2::kernel_grad(image, gy, gk, wi, output, k) };
        return;
    }
    portable_kernel_grad(image, gy, gk, wi, output, k);
}

/// Panics unless the image (`lens[0]` values), the output or its gradient (`lens[1]`) and the
/// kernel or its gradient (`lens[2]`) hold a `k × k` valid convolution of `wi`-wide rows to
/// `output` positions: the bounds the AVX2 kernels rely on.
fn check_shapes(lens: [usize; 3], wi: usize, [ho, wo]: [usize; 2], k: usize) {
    let hi = ho + k - 1;
    assert!(
        wo + k - 1 == wi
            && lens[0] >= hi * wi
            && lens[1] >= ho * wo * DIRECT_CO
            && lens[2] >= k * k * DIRECT_CO,
        "direct convolution: buffers too small for a {hi}×{wi} image and a {k}×{k} kernel"
    );
}

/// The forward sums without bias and activation, in any instruction set.
fn portable_forward(
    image: &[f32],
    y: &mut [f32],
    kernel: &[f32],
    wi: usize,
    [ho, wo]: [usize; 2],
    k: usize,
) {
    const C: usize = DIRECT_CO;
    for r in 0..ho {
        for x in 0..wo {
            let mut acc = [0.0f32; C];
            for i in 0..k {
                for j in 0..k {
                    let v = image[(r + i) * wi + x + j];
                    let w = &kernel[(i * k + j) * C..][..C];
                    for (a, w) in acc.iter_mut().zip(w) {
                        *a += v * w;
                    }
                }
            }
            y[(r * wo + x) * C..][..C].copy_from_slice(&acc);
        }
    }
}

/// The kernel gradient added to `gk`, in any instruction set.
fn portable_kernel_grad(
    image: &[f32],
    gy: &[f32],
    gk: &mut [f32],
    wi: usize,
    [ho, wo]: [usize; 2],
    k: usize,
) {
    const C: usize = DIRECT_CO;
    for i in 0..k {
        for j in 0..k {
            let mut acc = [0.0f32; C];
            for r in 0..ho {
                for x in 0..wo {
                    let v = image[(r + i) * wi + x + j];
                    for (a, g) in acc.iter_mut().zip(&gy[(r * wo + x) * C..][..C]) {
                        *a += v * g;
                    }
                }
            }
            for (d, a) in gk[(i * k + j) * C..][..C].iter_mut().zip(&acc) {
                *d += a;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The two kernels on AVX2 + FMA: 16 channels are two registers; a block of output
    //! positions (forward) or of kernel columns (gradient) keeps its sums in up to 12
    //! registers while the other loop passes.

    use std::arch::x86_64::*;

    /// Output positions per register block of the forward pass (12 accumulators).
    const P: usize = 6;

    /// See [`super::direct_forward`]; the caller checked the bounds.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn forward(
        image: &[f32],
        y: &mut [f32],
        kernel: &[f32],
        bias: &[f32],
        wi: usize,
        [ho, wo]: [usize; 2],
        k: usize,
        relu: bool,
    ) {
        let (img, ker, out) = (image.as_ptr(), kernel.as_ptr(), y.as_mut_ptr());
        // SAFETY (all loads and stores below): the caller checked `image`, `kernel` and
        // `y` against the shapes; positions stay below `wo`, taps below `k`.
        let b = unsafe {
            [
                _mm256_loadu_ps(bias.as_ptr()),
                _mm256_loadu_ps(bias.as_ptr().add(8)),
            ]
        };
        for r in 0..ho {
            let mut x = 0;
            while x < wo {
                let at = Block {
                    img,
                    ker,
                    out,
                    wi,
                    wo,
                    k,
                    r,
                    x,
                    b,
                    relu,
                };
                // SAFETY: as above.
                unsafe {
                    match wo - x {
                        1 => at.run::<1>(),
                        2 => at.run::<2>(),
                        3 => at.run::<3>(),
                        4 => at.run::<4>(),
                        5 => at.run::<5>(),
                        _ => at.run::<P>(),
                    }
                }
                x += P.min(wo - x);
            }
        }
    }

    /// One block of output positions `x..x + N` in row `r`.
    struct Block {
        img: *const f32,
        ker: *const f32,
        out: *mut f32,
        wi: usize,
        wo: usize,
        k: usize,
        r: usize,
        x: usize,
        b: [__m256; 2],
        relu: bool,
    }

    impl Block {
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn run<const N: usize>(&self) {
            let mut acc = [[_mm256_setzero_ps(); 2]; N];
            for i in 0..self.k {
                // SAFETY: rows r + i < hi, columns x + N − 1 + j < wi.
                let row = unsafe { self.img.add((self.r + i) * self.wi + self.x) };
                for j in 0..self.k {
                    let t = (i * self.k + j) * 16;
                    // SAFETY: t + 16 ≤ k²·16.
                    let w = unsafe {
                        [
                            _mm256_loadu_ps(self.ker.add(t)),
                            _mm256_loadu_ps(self.ker.add(t + 8)),
                        ]
                    };
                    for (q, a) in acc.iter_mut().enumerate() {
                        // SAFETY: as for `row`.
                        let v = _mm256_set1_ps(unsafe { *row.add(q + j) });
                        a[0] = _mm256_fmadd_ps(v, w[0], a[0]);
                        a[1] = _mm256_fmadd_ps(v, w[1], a[1]);
                    }
                }
            }
            let zero = _mm256_setzero_ps();
            for (q, a) in acc.iter().enumerate() {
                let at = (self.r * self.wo + self.x + q) * 16;
                for (h, &a) in a.iter().enumerate() {
                    let z = _mm256_add_ps(a, self.b[h]);
                    // max(0, z) returns z when z is NaN (the second operand).
                    let z = if self.relu { _mm256_max_ps(zero, z) } else { z };
                    // SAFETY: the position is below ho·wo.
                    unsafe { _mm256_storeu_ps(self.out.add(at + 8 * h), z) };
                }
            }
        }
    }

    /// See [`super::direct_kernel_grad`] (adds to `gk`); the caller checked the bounds.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kernel_grad(
        image: &[f32],
        gy: &[f32],
        gk: &mut [f32],
        wi: usize,
        [ho, wo]: [usize; 2],
        k: usize,
    ) {
        // Kernel columns of one kernel row in groups of at most 6 (12 accumulators).
        let groups = k.div_ceil(6);
        let size = k.div_ceil(groups);
        let at = Taps {
            img: image.as_ptr(),
            gy: gy.as_ptr(),
            wi,
            ho,
            wo,
        };
        for i in 0..k {
            let mut j0 = 0;
            while j0 < k {
                let n = size.min(k - j0);
                let dst = &mut gk[(i * k + j0) * 16..(i * k + j0 + n) * 16];
                // SAFETY: taps j0..j0 + n of row i are inside the image.
                unsafe {
                    match n {
                        1 => at.run::<1>(i, j0, dst),
                        2 => at.run::<2>(i, j0, dst),
                        3 => at.run::<3>(i, j0, dst),
                        4 => at.run::<4>(i, j0, dst),
                        5 => at.run::<5>(i, j0, dst),
                        _ => at.run::<6>(i, j0, dst),
                    }
                }
                j0 += n;
            }
        }
    }

    /// The gradient of `N` kernel columns of one kernel row.
    struct Taps {
        img: *const f32,
        gy: *const f32,
        wi: usize,
        ho: usize,
        wo: usize,
    }

    impl Taps {
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn run<const N: usize>(&self, i: usize, j0: usize, dst: &mut [f32]) {
            let mut acc = [[_mm256_setzero_ps(); 2]; N];
            for r in 0..self.ho {
                // SAFETY: row r + i < hi; columns x + j0 + N − 1 < wi for x < wo.
                let row = unsafe { self.img.add((r + i) * self.wi + j0) };
                let grow = unsafe { self.gy.add(r * self.wo * 16) };
                for x in 0..self.wo {
                    // SAFETY: position (r, x) is below ho·wo.
                    let g = unsafe {
                        [
                            _mm256_loadu_ps(grow.add(x * 16)),
                            _mm256_loadu_ps(grow.add(x * 16 + 8)),
                        ]
                    };
                    for (q, a) in acc.iter_mut().enumerate() {
                        // SAFETY: as for `row`.
                        let v = _mm256_set1_ps(unsafe { *row.add(x + q) });
                        a[0] = _mm256_fmadd_ps(v, g[0], a[0]);
                        a[1] = _mm256_fmadd_ps(v, g[1], a[1]);
                    }
                }
            }
            let mut sums = [0.0f32; 16];
            for (q, a) in acc.iter().enumerate() {
                // SAFETY: `sums` holds 16 values.
                unsafe {
                    _mm256_storeu_ps(sums.as_mut_ptr(), a[0]);
                    _mm256_storeu_ps(sums.as_mut_ptr().add(8), a[1]);
                }
                for (d, s) in dst[q * 16..(q + 1) * 16].iter_mut().zip(&sums) {
                    *d += s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect()
    }

    /// The dispatched kernels (AVX2 here when the CPU has it) equal the portable ones,
    /// for kernel sides whose output widths leave every remainder of the register blocks.
    #[test]
    fn kernels_equal_the_portable_sums() {
        for (hi, wi, k) in [(12, 17, 5), (9, 13, 7), (6, 8, 3), (10, 11, 1)] {
            let (ho, wo) = (hi - k + 1, wi - k + 1);
            let image = values(hi * wi, 1);
            let kernel = values(k * k * DIRECT_CO, 2);
            let bias = values(DIRECT_CO, 3);
            let gy = values(ho * wo * DIRECT_CO, 4);
            for relu in [false, true] {
                let mut y = vec![0.0; ho * wo * DIRECT_CO];
                direct_forward(&image, &mut y, &kernel, &bias, wi, [ho, wo], k, relu);
                let mut want = vec![0.0; ho * wo * DIRECT_CO];
                portable_forward(&image, &mut want, &kernel, wi, [ho, wo], k);
                crate::fused::mlp::bias_act(&mut want, &bias, relu);
                for (a, b) in y.iter().zip(&want) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{a} vs {b} (k {k})"
                    );
                }
            }
            let mut gk = values(k * k * DIRECT_CO, 5);
            let mut want = gk.clone();
            direct_kernel_grad(&image, &gy, &mut gk, wi, [ho, wo], k, true);
            portable_kernel_grad(&image, &gy, &mut want, wi, [ho, wo], k);
            for (a, b) in gk.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{a} vs {b} (k {k})"
                );
            }
            direct_kernel_grad(&image, &gy, &mut gk, wi, [ho, wo], k, false);
            let mut fresh = vec![0.0; k * k * DIRECT_CO];
            portable_kernel_grad(&image, &gy, &mut fresh, wi, [ho, wo], k);
            for (a, b) in gk.iter().zip(&fresh) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{a} vs {b} (k {k})"
                );
            }
        }
    }
}
