//! The forward and backward passes of [`super::ConvTrainer`] over one thread's images.

use std::ops::Range;

use super::{NormBatch, Stage, Weights, Work, to_hwc};
use crate::encoder::Activation;
use crate::fused::conv::{im2col_image, sized};
use crate::fused::mlp::bias_act;
use crate::fused::mlp::{matmul, matmul_acc};
use crate::fused::trainer::{Grads, backward_mask, column_sums, mul_assign};
use crate::simd::multiversion;

/// Each dropout stage's mask rows `r0..r0 + n`, by dropout index.
pub(super) fn masks_rows<'a>(
    masks: &'a [Vec<f32>],
    stages: &[Stage],
    r0: usize,
    n: usize,
) -> Vec<&'a [f32]> {
    let mut out: Vec<&[f32]> = vec![&[]; masks.len()];
    for stage in stages {
        if let Stage::Drop { d, len, .. } = stage {
            out[*d] = &masks[*d][r0 * len..(r0 + n) * len];
        }
    }
    out
}

/// Fills one thread's `n` input rows (from stacked row `r0`), channels-last.
pub(super) fn load(
    w: &mut Work,
    r0: usize,
    n: usize,
    input: [usize; 3],
    fill: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    let dim: usize = input.iter().product();
    let x = sized(&mut w.x, n * dim);
    for (r, row) in x.chunks_exact_mut(dim).enumerate() {
        fill(r0 + r, row);
    }
    if input[2] > 1 {
        // Rows arrive in burn's [c, h, w] order.
        let tmp = sized(&mut w.dcols, dim);
        for row in x.chunks_exact_mut(dim) {
            to_hwc(row, tmp, input);
            row.copy_from_slice(tmp);
        }
    }
}

/// The forward pass of `stages[range]` over one thread's `n` rows (from stacked row `r0`),
/// keeping what the backward pass needs; a batch-norm stage takes the batch's statistics
/// from `norms`.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    w: &mut Work,
    r0: usize,
    n: usize,
    range: Range<usize>,
    dim: usize,
    stages: &[Stage],
    weights: &[Weights],
    lens: &[usize],
    masks: &[Vec<f32>],
    norms: &[NormBatch],
) {
    w.acts.resize_with(stages.len(), Vec::new);
    w.xhat.resize_with(stages.len(), Vec::new);
    w.argmax.resize_with(stages.len(), Vec::new);
    for si in range {
        let stage = &stages[si];
        let (done, rest) = w.acts.split_at_mut(si);
        let src: &[f32] = if si == 0 {
            &w.x[..n * dim]
        } else {
            &done[si - 1][..n * lens[si - 1]]
        };
        let out = sized(&mut rest[0], n * lens[si]);
        match stage {
            Stage::Conv {
                k,
                s,
                pad,
                input: [hi, wi, ci],
                output: [ho, wo, co],
                relu,
                w: wi_,
            } => {
                // Blocks of images whose columns stay in cache; the backward pass builds
                // them again instead of keeping the whole batch's.
                let (m, kkc) = (ho * wo, k * k * ci);
                let (in_len, out_len) = (hi * wi * ci, m * co);
                let layer = &weights[*wi_];
                if direct(*ci, *s, *pad, *co) {
                    for (image, y) in src.chunks_exact(in_len).zip(out.chunks_exact_mut(out_len)) {
                        direct_forward(image, y, &layer.kernel, *wi, [*ho, *wo], *k);
                        bias_act(y, &layer.bias, *relu);
                    }
                    continue;
                }
                let block = block_images(m * kkc);
                for i0 in (0..n).step_by(block) {
                    let nb = block.min(n - i0);
                    let cols = sized(&mut w.dcols, nb * m * kkc);
                    let images = &src[i0 * in_len..(i0 + nb) * in_len];
                    columns(images, cols, [*hi, *wi, *ci], [*ho, *wo], [*k, *s], *pad);
                    let y = &mut out[i0 * out_len..(i0 + nb) * out_len];
                    matmul(
                        y,
                        (nb * m, *co, kkc),
                        cols,
                        (kkc, 1),
                        &layer.kernel,
                        (*co, 1),
                    );
                    bias_act(y, &layer.bias, *relu);
                }
            }
            Stage::Pool {
                size,
                s,
                input: [_, wi, ci],
                output: [ho, wo, _],
            } => {
                let (in_len, out_len) = (if si == 0 { dim } else { lens[si - 1] }, lens[si]);
                let arg = &mut w.argmax[si];
                arg.resize(n * out_len, 0);
                for ((image, dst), arg) in src
                    .chunks_exact(in_len)
                    .zip(out.chunks_exact_mut(out_len))
                    .zip(arg.chunks_exact_mut(out_len))
                {
                    pool_forward(image, dst, arg, [*wi, *ci], [*ho, *wo], [*size, *s]);
                }
            }
            Stage::Drop { d, len, .. } => {
                let mask = &masks[*d][r0 * len..(r0 + n) * len];
                mul_into(out, src, mask);
            }
            Stage::Dense { w: wi_, activation } => {
                let layer = &weights[*wi_];
                let (fi, fo) = (layer.fan_in, layer.fan_out);
                matmul(out, (n, fo, fi), src, (fi, 1), &layer.kernel, (fo, 1));
                for row in out.chunks_exact_mut(fo) {
                    for (v, b) in row.iter_mut().zip(&layer.bias) {
                        let z = *v + b;
                        *v = match activation {
                            Activation::Relu => {
                                if z < 0.0 {
                                    0.0
                                } else {
                                    z
                                }
                            }
                            Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
                            Activation::Tanh => z.tanh(),
                            _ => z,
                        };
                    }
                }
            }
            Stage::Norm { c, w: wi_, stat } => {
                let (nb, layer) = (&norms[*stat], &weights[*wi_]);
                let xhat = sized(&mut w.xhat[si], n * lens[si]);
                norm_forward(
                    src,
                    xhat,
                    out,
                    *c,
                    &nb.mean,
                    &nb.inv,
                    &layer.kernel,
                    &layer.bias,
                );
            }
            Stage::L2 => {
                let len = lens[si];
                for (v, e) in src.chunks_exact(len).zip(out.chunks_exact_mut(len)) {
                    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
                    for (e, a) in e.iter_mut().zip(v) {
                        *e = a / norm;
                    }
                }
            }
        }
    }
}

/// Whether the ReLU backward of stage `si` (a ReLU convolution) is applied by the
/// max-pooling right after it, whose gradient reaches only positive maxima.
fn relu_in_pool(stages: &[Stage], si: usize) -> bool {
    matches!(stages[si], Stage::Conv { relu: true, .. })
        && matches!(stages.get(si + 1), Some(Stage::Pool { .. }))
}

/// Output channels of the convolutions [`direct_forward`] computes.
const DIRECT_CO: usize = 16;

/// Whether a convolution's forward pass runs directly, without im2col: one input channel (a
/// first layer on grey images, whose im2col copies spans of `k` values for a product with a
/// reduction of only `k²`), 16 filters (every preset's first layer), valid padding, stride 1.
fn direct(ci: usize, s: usize, pad: Option<[usize; 2]>, co: usize) -> bool {
    ci == 1 && s == 1 && pad.is_none() && co == DIRECT_CO
}

multiversion! {
    /// `y[(r, x), o] = Σ_{i,j} image[(r + i)·wi + x + j] · kernel[(i·k + j), o]` for one
    /// single-channel image and 16 filters (valid padding, stride 1), four positions at a
    /// time: their 4 × 16 sums stay in registers over the `k²` taps.
    fn direct_forward(
        image: &[f32],
        y: &mut [f32],
        kernel: &[f32],
        wi: usize,
        output: [usize; 2],
        k: usize,
    ) {
        const C: usize = DIRECT_CO;
        const P: usize = 4;
        let [ho, wo] = output;
        let taps: Vec<&[f32; C]> = (0..k * k)
            .map(|t| kernel[t * C..(t + 1) * C].try_into().expect("16 filters"))
            .collect();
        for r in 0..ho {
            let mut x = 0;
            while x < wo {
                let p = P.min(wo - x);
                let mut acc = [[0.0f32; C]; P];
                for i in 0..k {
                    let row = &image[(r + i) * wi + x..];
                    for j in 0..k {
                        let w = taps[i * k + j];
                        for (q, acc) in acc.iter_mut().enumerate().take(p) {
                            let v = row[q + j];
                            for o in 0..C {
                                acc[o] += v * w[o];
                            }
                        }
                    }
                }
                for (q, acc) in acc.iter().enumerate().take(p) {
                    y[(r * wo + x + q) * C..][..C].copy_from_slice(acc);
                }
                x += p;
            }
        }
    }
}

/// Images per block of a convolution whose im2col columns take `cols` values per image:
/// about 32K values (128 KB), so that the columns stay in cache between im2col and gemm.
fn block_images(cols: usize) -> usize {
    (32_768 / cols.max(1)).max(1)
}

/// im2col of consecutive images (`input`: height, width, channels; `window`: kernel side and
/// stride; `pad`: top and left for `same` padding).
fn columns(
    images: &[f32],
    cols: &mut [f32],
    input: [usize; 3],
    output: [usize; 2],
    window: [usize; 2],
    pad: Option<[usize; 2]>,
) {
    let [hi, wi, ci] = input;
    let per = output[0] * output[1] * window[0] * window[0] * ci;
    for (image, dst) in images
        .chunks_exact(hi * wi * ci)
        .zip(cols.chunks_exact_mut(per))
    {
        im2col_image(image, dst, input, output, window, pad);
    }
}

/// Starts one thread's backward pass: `∂L/∂e` of its `n` rows (`gemb`) into the current
/// gradient buffer.
pub(super) fn begin_backward(w: &mut Work, n: usize, widest: usize, gemb: &[f32]) {
    for g in &mut w.g {
        sized(g, n * widest);
    }
    w.cur = 0;
    w.g[0][..gemb.len()].copy_from_slice(gemb);
}

/// The backward pass of `stages[range]` (last stage first) over one thread's `n` rows, from
/// the gradient of the range's output in the current buffer, into `grads`; a batch-norm
/// stage takes the batch's sums from `norms`.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    w: &mut Work,
    grads: &mut Grads,
    n: usize,
    range: Range<usize>,
    dim: usize,
    stages: &[Stage],
    weights: &[Weights],
    lens: &[usize],
    masks: &[&[f32]],
    norms: &[NormBatch],
) {
    let [g0, g1] = &mut w.g;
    let (mut cur, mut next) = if w.cur == 0 { (g0, g1) } else { (g1, g0) };
    let mut swaps = 0;
    for si in range.rev() {
        let stage = &stages[si];
        let in_len = if si == 0 { dim } else { lens[si - 1] };
        let out_len = lens[si];
        let src: &[f32] = if si == 0 {
            &w.x[..n * dim]
        } else {
            &w.acts[si - 1][..n * in_len]
        };
        let out = &w.acts[si][..n * out_len];
        match stage {
            Stage::Conv {
                k,
                s,
                pad,
                input: [hi, wi, ci],
                output: [ho, wo, co],
                relu,
                w: wi_,
            } => {
                let (m, kkc) = (ho * wo, k * k * ci);
                let (img_len, out_img) = (hi * wi * ci, m * co);
                let gy = &mut cur[..n * out_img];
                if *relu && !relu_in_pool(stages, si) {
                    backward_mask(gy, out, &[], true);
                }
                let layer = &weights[*wi_];
                let [gk, gb] = &mut grads[*wi_];
                column_sums(gb, gy, true);
                let gx = &mut next[..n * in_len];
                if si > 0 {
                    gx.fill(0.0);
                }
                let block = block_images(m * kkc);
                let [top, left] = pad.unwrap_or([0, 0]);
                for i0 in (0..n).step_by(block) {
                    let nb = block.min(n - i0);
                    let cols = sized(&mut w.dcols, nb * m * kkc);
                    let images = &src[i0 * img_len..(i0 + nb) * img_len];
                    columns(images, cols, [*hi, *wi, *ci], [*ho, *wo], [*k, *s], *pad);
                    let g = &gy[i0 * out_img..(i0 + nb) * out_img];
                    let acc = i0 > 0;
                    matmul_acc(gk, (kkc, *co, nb * m), cols, (1, kkc), g, (*co, 1), acc);
                    if si > 0 {
                        // The columns' gradient, in the same buffer (its columns are done).
                        matmul(
                            cols,
                            (nb * m, kkc, *co),
                            g,
                            (*co, 1),
                            &layer.kernel,
                            (1, *co),
                        );
                        let gx = &mut gx[i0 * in_len..(i0 + nb) * in_len];
                        for (dc, gi) in cols.chunks_exact(m * kkc).zip(gx.chunks_exact_mut(in_len))
                        {
                            col2im(dc, gi, [*hi, *wi, *ci], [*ho, *wo], [*k, *s], [top, left]);
                        }
                    }
                }
                if si > 0 {
                    std::mem::swap(&mut cur, &mut next);
                    swaps += 1;
                }
            }
            Stage::Pool {
                size,
                s,
                input: [hi, wi, ci],
                output: [ho, wo, _],
            } => {
                let arg = &w.argmax[si][..n * out_len];
                let gx = &mut next[..n * in_len];
                // After a ReLU convolution, the ReLU's backward too: only a positive maximum
                // passes its gradient (the convolution then skips its mask).
                let relu = si > 0 && relu_in_pool(stages, si - 1);
                // Windows that tile the input write every input gradient; otherwise the
                // inputs no window covers stay zero.
                let tiles = size == s && ho * s == *hi && wo * s == *wi;
                if !tiles {
                    gx.fill(0.0);
                }
                for img in 0..n {
                    pool_backward(
                        &mut gx[img * in_len..(img + 1) * in_len],
                        &src[img * in_len..(img + 1) * in_len],
                        &cur[img * out_len..(img + 1) * out_len],
                        &arg[img * out_len..(img + 1) * out_len],
                        [*wi, *ci],
                        [*ho, *wo],
                        [*size, *s],
                        relu,
                    );
                }
                std::mem::swap(&mut cur, &mut next);
                swaps += 1;
            }
            Stage::Drop { d, .. } => {
                mul_assign(&mut cur[..n * out_len], masks[*d]);
            }
            Stage::Dense { w: wi_, activation } => {
                let layer = &weights[*wi_];
                let (fi, fo) = (layer.fan_in, layer.fan_out);
                let gz = &mut cur[..n * fo];
                for (g, &y) in gz.iter_mut().zip(out) {
                    *g *= match activation {
                        Activation::Relu => {
                            if y > 0.0 {
                                1.0
                            } else {
                                0.0
                            }
                        }
                        Activation::Sigmoid => y * (1.0 - y),
                        Activation::Tanh => 1.0 - y * y,
                        _ => 1.0,
                    };
                }
                let [gk, gb] = &mut grads[*wi_];
                matmul(gk, (fi, fo, n), src, (1, fi), gz, (fo, 1));
                column_sums(gb, gz, true);
                if si > 0 {
                    matmul(
                        &mut next[..n * fi],
                        (n, fi, fo),
                        gz,
                        (fo, 1),
                        &layer.kernel,
                        (1, fo),
                    );
                    std::mem::swap(&mut cur, &mut next);
                    swaps += 1;
                }
            }
            Stage::Norm { c, w: wi_, stat } => {
                if si > 0 {
                    let (nb, layer) = (&norms[*stat], &weights[*wi_]);
                    let xhat = &w.xhat[si][..n * out_len];
                    norm_backward(&mut cur[..n * out_len], xhat, *c, nb, &layer.kernel);
                }
            }
            Stage::L2 => {
                for ((g, v), e) in cur[..n * out_len]
                    .chunks_exact_mut(out_len)
                    .zip(src.chunks_exact(in_len))
                    .zip(out.chunks_exact(out_len))
                {
                    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                    if norm > 1e-12 {
                        let dot: f32 = e.iter().zip(g.iter()).map(|(e, g)| e * g).sum();
                        for (g, e) in g.iter_mut().zip(e) {
                            *g = (*g - e * dot) / norm;
                        }
                    } else {
                        g.iter_mut().for_each(|g| *g /= 1e-12);
                    }
                }
            }
        }
    }
    w.cur = (w.cur + swaps) % 2;
}

/// Adds one thread's per-channel sums to `acc` for a batch-norm stage at `si` (`c` channels
/// innermost): of its input (`centre` None), of its input's squared deviations from
/// `centre`, or (`backward`) `Σ gy` into `acc[..c]` and `Σ gy·x̂` into `acc[c..]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn norm_sums(
    w: &Work,
    si: usize,
    n: usize,
    len: usize,
    c: usize,
    centre: Option<&[f32]>,
    backward: bool,
    acc: &mut [f64],
) {
    if backward {
        let gy = &w.g[w.cur][..n * len];
        let xhat = &w.xhat[si][..n * len];
        let (sg, sgx) = acc.split_at_mut(c);
        for (g, x) in gy.chunks_exact(c).zip(xhat.chunks_exact(c)) {
            for ch in 0..c {
                sg[ch] += g[ch] as f64;
                sgx[ch] += (g[ch] * x[ch]) as f64;
            }
        }
        return;
    }
    let src: &[f32] = if si == 0 {
        &w.x[..n * len]
    } else {
        &w.acts[si - 1][..n * len]
    };
    for v in src.chunks_exact(c) {
        match centre {
            None => {
                for ch in 0..c {
                    acc[ch] += v[ch] as f64;
                }
            }
            Some(mean) => {
                for ch in 0..c {
                    let d = (v[ch] - mean[ch]) as f64;
                    acc[ch] += d * d;
                }
            }
        }
    }
}

/// `x̂ = (x − μ)·inv`, `y = γ·x̂ + β` per channel (`c` innermost).
#[allow(clippy::too_many_arguments)]
fn norm_forward(
    src: &[f32],
    xhat: &mut [f32],
    out: &mut [f32],
    c: usize,
    mean: &[f32],
    inv: &[f32],
    gamma: &[f32],
    beta: &[f32],
) {
    for ((v, xh), o) in src
        .chunks_exact(c)
        .zip(xhat.chunks_exact_mut(c))
        .zip(out.chunks_exact_mut(c))
    {
        for ch in 0..c {
            let t = (v[ch] - mean[ch]) * inv[ch];
            xh[ch] = t;
            o[ch] = t * gamma[ch] + beta[ch];
        }
    }
}

/// `∂x = γ·inv·(gy − Σgy/N − x̂·Σ(gy·x̂)/N)` in place of `gy` (`N` values per channel over
/// the whole batch).
fn norm_backward(g: &mut [f32], xhat: &[f32], c: usize, nb: &NormBatch, gamma: &[f32]) {
    let inv_n = 1.0 / nb.count as f32;
    for (g, x) in g.chunks_exact_mut(c).zip(xhat.chunks_exact(c)) {
        for ch in 0..c {
            g[ch] = gamma[ch]
                * nb.inv[ch]
                * (g[ch] - nb.sum_g[ch] * inv_n - x[ch] * nb.sum_gx[ch] * inv_n);
        }
    }
}

/// Channels handled together by the pooling passes (one AVX2 register of `f32`).
const LANES: usize = 8;

/// The first [`LANES`] values of `v` as an array (the pooling passes' unit of work).
#[inline(always)]
fn lanes<T: Copy>(v: &[T]) -> [T; LANES] {
    v[..LANES].try_into().expect("LANES values")
}

multiversion! {
    /// `out = a ⊙ m`.
    fn mul_into(out: &mut [f32], a: &[f32], m: &[f32]) {
        for ((o, v), m) in out.iter_mut().zip(a).zip(m) {
            *o = v * m;
        }
    }
}

multiversion! {
    /// Max-pooling of one channels-last image with the argmax of every output (its index in
    /// the image; the first maximum in window order). Channels are innermost and contiguous,
    /// so the compare-and-select vectorises.
    fn pool_forward(
        image: &[f32],
        dst: &mut [f32],
        arg: &mut [u32],
        input: [usize; 2],
        output: [usize; 2],
        window: [usize; 2],
    ) {
        let ([wi, ci], [ho, wo], [size, s]) = (input, output, window);
        if ci % LANES == 0 {
            // Eight channels at a time in fixed-size arrays, the selects written as bit masks
            // so that they compile to vector blends, not branches: the maximum and its index
            // stay in registers while the window passes.
            for y in 0..ho {
                for x in 0..wo {
                    let o = (y * wo + x) * ci;
                    for c0 in (0..ci).step_by(LANES) {
                        let first = (s * y * wi + s * x) * ci + c0;
                        let mut m = lanes(&image[first..]).map(f32::to_bits);
                        let mut a: [u32; LANES] = std::array::from_fn(|l| (first + l) as u32);
                        for i in 0..size {
                            for j in 0..size {
                                let at = ((s * y + i) * wi + s * x + j) * ci + c0;
                                let v = lanes(&image[at..]);
                                for l in 0..LANES {
                                    let keep = f32::from_bits(m[l]);
                                    let mask = 0u32.wrapping_sub(u32::from(v[l] > keep));
                                    m[l] = (m[l] & !mask) | (v[l].to_bits() & mask);
                                    a[l] = (a[l] & !mask) | ((at + l) as u32 & mask);
                                }
                            }
                        }
                        dst[o + c0..o + c0 + LANES].copy_from_slice(&m.map(f32::from_bits));
                        arg[o + c0..o + c0 + LANES].copy_from_slice(&a);
                    }
                }
            }
            return;
        }
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
    /// The gradient of one channels-last image's max-pooling: each window's maximum (its
    /// argmax `arg`) takes the output's gradient `g`, where `x` is positive when `relu`
    /// (the ReLU before the pooling), and every other input in a window gets 0 — so a
    /// window that overlaps another must have `gx` zeroed first and the later windows would
    /// overwrite it: only tiling windows (`size == stride`) write, others add.
    #[allow(clippy::too_many_arguments)]
    fn pool_backward(
        gx: &mut [f32],
        x: &[f32],
        g: &[f32],
        arg: &[u32],
        input: [usize; 2],
        output: [usize; 2],
        window: [usize; 2],
        relu: bool,
    ) {
        let ([wi, ci], [ho, wo], [size, s]) = (input, output, window);
        let tiles = size == s;
        if ci % LANES == 0 {
            for y in 0..ho {
                for x0 in 0..wo {
                    let o = (y * wo + x0) * ci;
                    for c0 in (0..ci).step_by(LANES) {
                        let (go, ao) = (lanes(&g[o + c0..]), lanes(&arg[o + c0..]));
                        for i in 0..size {
                            for j in 0..size {
                                let at = ((s * y + i) * wi + s * x0 + j) * ci + c0;
                                let xi = lanes(&x[at..]);
                                let gi = &mut gx[at..at + LANES];
                                for l in 0..LANES {
                                    let hit = ao[l] == (at + l) as u32 && (!relu || xi[l] > 0.0);
                                    let v = if hit { go[l] } else { 0.0 };
                                    gi[l] = if tiles { v } else { gi[l] + v };
                                }
                            }
                        }
                    }
                }
            }
            return;
        }
        for y in 0..ho {
            for x0 in 0..wo {
                let o = (y * wo + x0) * ci;
                let (go, ao) = (&g[o..o + ci], &arg[o..o + ci]);
                for i in 0..size {
                    for j in 0..size {
                        let at = ((s * y + i) * wi + s * x0 + j) * ci;
                        let (gi, xi) = (&mut gx[at..at + ci], &x[at..at + ci]);
                        for ch in 0..ci {
                            let hit = ao[ch] as usize == at + ch && (!relu || xi[ch] > 0.0);
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
    fn col2im(
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
