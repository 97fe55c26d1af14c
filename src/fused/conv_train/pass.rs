//! The forward and backward passes of [`super::ConvTrainer`] over one thread's images.

use std::ops::Range;

use super::direct::{DIRECT_CO, direct_forward, direct_kernel_grad};
use super::kernels::{col2im, mul_into, pool_backward, pool_forward};
use super::{NormBatch, Stage, Weights, Work, to_hwc};
use crate::encoder::Activation;
use crate::fused::conv::{im2col_image, sized};
use crate::fused::mlp::bias_act;
use crate::fused::mlp::{matmul, matmul_acc};
use crate::fused::trainer::{Grads, backward_mask, column_sums, mul_assign};

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

/// Values kept per image chunk of the spatial stages (about 512 KB): a stage's output is
/// still in the core's cache when the next stage (the pooling, the next im2col) reads it.
/// Whole-batch stages spilled every layer's output to memory between the layers.
const CHUNK_VALUES: usize = 131_072;

/// Values per image at or below which a stage runs over all rows at once (16 KB): small
/// late layers get products over many images instead of one image's few positions.
const SMALL_VALUES: usize = 4096;

/// Where the stages of `range` that run by chunks of images end: the rest, from the first
/// dense or L2 stage or the first of the small stages that end the range (input and output
/// at most [`SMALL_VALUES`] per image), run over all rows at once.
fn spatial_end(stages: &[Stage], lens: &[usize], dim: usize, range: &Range<usize>) -> usize {
    let mut split = range.end;
    for si in range.clone().rev() {
        let input = if si == 0 { dim } else { lens[si - 1] };
        let whole = matches!(stages[si], Stage::Dense { .. } | Stage::L2);
        if !whole && (input > SMALL_VALUES || lens[si] > SMALL_VALUES) {
            break;
        }
        split = si;
    }
    split
}

/// Images per chunk of `stages[spatial]`: what one image keeps (its input, every stage's
/// output, pooling argmaxes and batch norm's `x̂`) within [`CHUNK_VALUES`].
fn chunk_images(stages: &[Stage], lens: &[usize], dim: usize, spatial: Range<usize>) -> usize {
    let input = if spatial.start == 0 {
        dim
    } else {
        lens[spatial.start - 1]
    };
    let per: usize = input
        + spatial
            .map(|si| match stages[si] {
                Stage::Pool { .. } | Stage::Norm { .. } => 2 * lens[si],
                _ => lens[si],
            })
            .sum::<usize>();
    (CHUNK_VALUES / per.max(1)).max(1)
}

/// The forward pass of `stages[range]` over one thread's `n` rows (from stacked row `r0`),
/// keeping what the backward pass needs; a batch-norm stage takes the batch's statistics
/// from `norms`. The stages before the first dense layer run chunk of images by chunk of
/// images (each chunk through all of them), the rest over all `n` rows at once.
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
    for si in range.clone() {
        let len = n * lens[si];
        sized(&mut w.acts[si], len);
        match stages[si] {
            Stage::Pool { .. } if w.argmax[si].len() < len => w.argmax[si].resize(len, 0),
            Stage::Norm { .. } => {
                sized(&mut w.xhat[si], len);
            }
            _ => {}
        }
    }
    let split = spatial_end(stages, lens, dim, &range);
    let at = Forward {
        r0,
        dim,
        stages,
        weights,
        lens,
        masks,
        norms,
    };
    let chunk = chunk_images(stages, lens, dim, range.start..split);
    for i0 in (0..n).step_by(chunk) {
        let images = i0..(i0 + chunk).min(n);
        for si in range.start..split {
            forward_stage(w, si, images.clone(), &at);
        }
    }
    for si in split..range.end {
        forward_stage(w, si, 0..n, &at);
    }
}

/// What every forward stage reads besides the thread's buffers.
struct Forward<'a> {
    r0: usize,
    dim: usize,
    stages: &'a [Stage],
    weights: &'a [Weights],
    lens: &'a [usize],
    masks: &'a [Vec<f32>],
    norms: &'a [NormBatch],
}

/// Stage `si` of the forward pass over the thread's `images` (its buffers already sized).
fn forward_stage(w: &mut Work, si: usize, images: Range<usize>, at: &Forward<'_>) {
    let (i0, nc) = (images.start, images.len());
    let stage = &at.stages[si];
    let in_len = if si == 0 { at.dim } else { at.lens[si - 1] };
    let out_len = at.lens[si];
    let (done, rest) = w.acts.split_at_mut(si);
    let src: &[f32] = if si == 0 {
        &w.x[i0 * in_len..(i0 + nc) * in_len]
    } else {
        &done[si - 1][i0 * in_len..(i0 + nc) * in_len]
    };
    let out = &mut rest[0][i0 * out_len..(i0 + nc) * out_len];
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
            // Blocks of images whose columns stay in cache; the backward pass builds them
            // again instead of keeping the whole batch's.
            let (m, kkc) = (ho * wo, k * k * ci);
            let layer = &at.weights[*wi_];
            if direct(*ci, *s, *pad, *co) {
                for (image, y) in src.chunks_exact(in_len).zip(out.chunks_exact_mut(out_len)) {
                    let (kernel, bias) = (&layer.kernel, &layer.bias);
                    direct_forward(image, y, kernel, bias, *wi, [*ho, *wo], *k, *relu);
                }
                return;
            }
            let block = block_images(m * kkc);
            for b0 in (0..nc).step_by(block) {
                let nb = block.min(nc - b0);
                let cols = sized(&mut w.dcols, nb * m * kkc);
                let images = &src[b0 * in_len..(b0 + nb) * in_len];
                columns(images, cols, [*hi, *wi, *ci], [*ho, *wo], [*k, *s], *pad);
                let y = &mut out[b0 * out_len..(b0 + nb) * out_len];
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
            let arg = &mut w.argmax[si][i0 * out_len..(i0 + nc) * out_len];
            for ((image, dst), arg) in src
                .chunks_exact(in_len)
                .zip(out.chunks_exact_mut(out_len))
                .zip(arg.chunks_exact_mut(out_len))
            {
                pool_forward(image, dst, arg, [*wi, *ci], [*ho, *wo], [*size, *s]);
            }
        }
        Stage::Drop { d, len, .. } => {
            let r = at.r0 + i0;
            mul_into(out, src, &at.masks[*d][r * len..(r + nc) * len]);
        }
        Stage::Dense { w: wi_, activation } => {
            let layer = &at.weights[*wi_];
            let (fi, fo) = (layer.fan_in, layer.fan_out);
            matmul(out, (nc, fo, fi), src, (fi, 1), &layer.kernel, (fo, 1));
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
            let (nb, layer) = (&at.norms[*stat], &at.weights[*wi_]);
            let xhat = &mut w.xhat[si][i0 * out_len..(i0 + nc) * out_len];
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
            for (v, e) in src.chunks_exact(in_len).zip(out.chunks_exact_mut(out_len)) {
                let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
                for (e, a) in e.iter_mut().zip(v) {
                    *e = a / norm;
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

/// Whether a convolution's forward pass runs directly, without im2col: one input channel (a
/// first layer on grey images, whose im2col copies spans of `k` values for a product with a
/// reduction of only `k²`), 16 filters (every preset's first layer), valid padding, stride 1.
fn direct(ci: usize, s: usize, pad: Option<[usize; 2]>, co: usize) -> bool {
    ci == 1 && s == 1 && pad.is_none() && co == DIRECT_CO
}

/// Images per block of a convolution whose im2col columns take `cols` values per image:
/// about 64K values (256 KB), so that the columns stay in cache between im2col and gemm.
fn block_images(cols: usize) -> usize {
    (65_536 / cols.max(1)).max(1)
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
/// stage takes the batch's sums from `norms`. Like the forward pass, the stages from the
/// first dense layer on run over all rows, those before it chunk of images by chunk of
/// images, through scratch buffers of one chunk; the gradient of the range's input ends
/// in the current buffer.
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
    let Work {
        x,
        acts,
        xhat,
        argmax,
        g: [g0, g1],
        cur,
        dcols,
        gin,
        chunk_g: [ga, gb],
        ..
    } = w;
    let saved = Saved {
        x,
        acts,
        xhat,
        argmax,
        dim,
        stages,
        weights,
        lens,
        masks,
        norms,
    };
    let (mut now, mut next) = if *cur == 0 { (g0, g1) } else { (g1, g0) };
    let split = spatial_end(stages, lens, dim, &range);
    for si in (split..range.end).rev() {
        let (now_s, next_s) = (&mut now[..], &mut next[..]);
        if backward_stage(&saved, dcols, grads, si, 0..n, true, now_s, next_s) {
            std::mem::swap(&mut now, &mut next);
            *cur = 1 - *cur;
        }
    }
    if split == range.start {
        return;
    }
    // The spatial stages: the gradient of their output is copied out, so that each chunk's
    // gradient of the range's input can be written back in its place.
    let out_len = lens[split - 1];
    let in_len = if range.start == 0 {
        dim
    } else {
        lens[range.start - 1]
    };
    let gin = sized(gin, n * out_len);
    gin.copy_from_slice(&now[..n * out_len]);
    let widest = (range.start..split)
        .map(|si| lens[si])
        .chain([in_len])
        .max()
        .unwrap_or(in_len);
    let chunk = chunk_images(stages, lens, dim, range.start..split);
    for i0 in (0..n).step_by(chunk) {
        let nc = chunk.min(n - i0);
        let (mut a, mut b) = (sized(ga, nc * widest), sized(gb, nc * widest));
        a[..nc * out_len].copy_from_slice(&gin[i0 * out_len..(i0 + nc) * out_len]);
        for si in (range.start..split).rev() {
            if backward_stage(&saved, dcols, grads, si, i0..i0 + nc, i0 == 0, a, b) {
                std::mem::swap(&mut a, &mut b);
            }
        }
        if range.start > 0 {
            now[i0 * in_len..(i0 + nc) * in_len].copy_from_slice(&a[..nc * in_len]);
        }
    }
}

/// What the backward stages read: the forward pass's buffers and the network.
struct Saved<'a> {
    x: &'a [f32],
    acts: &'a [Vec<f32>],
    xhat: &'a [Vec<f32>],
    argmax: &'a [Vec<u32>],
    dim: usize,
    stages: &'a [Stage],
    weights: &'a [Weights],
    lens: &'a [usize],
    masks: &'a [&'a [f32]],
    norms: &'a [NormBatch],
}

/// Stage `si` of the backward pass over the thread's `images`: from the gradient of its
/// output in `now` (the images' rows from 0), the gradient of its input into `next`
/// (returns true) or in place (false); weight gradients into `grads`, added to what is
/// there unless `first`.
#[allow(clippy::too_many_arguments)]
fn backward_stage(
    at: &Saved<'_>,
    dcols: &mut Vec<f32>,
    grads: &mut Grads,
    si: usize,
    images: Range<usize>,
    first: bool,
    now: &mut [f32],
    next: &mut [f32],
) -> bool {
    let (i0, nc) = (images.start, images.len());
    let stage = &at.stages[si];
    let in_len = if si == 0 { at.dim } else { at.lens[si - 1] };
    let out_len = at.lens[si];
    let src: &[f32] = if si == 0 {
        &at.x[i0 * in_len..(i0 + nc) * in_len]
    } else {
        &at.acts[si - 1][i0 * in_len..(i0 + nc) * in_len]
    };
    let out = &at.acts[si][i0 * out_len..(i0 + nc) * out_len];
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
            let gy = &mut now[..nc * out_len];
            if *relu && !relu_in_pool(at.stages, si) {
                backward_mask(gy, out, &[], true);
            }
            let layer = &at.weights[*wi_];
            let [gk, gb] = &mut grads[*wi_];
            column_sums(gb, gy, first);
            let gx = &mut next[..nc * in_len];
            if si > 0 {
                gx.fill(0.0);
            }
            if si == 0 && direct(*ci, *s, *pad, *co) {
                // A first layer: no input gradient, and the kernel's without im2col.
                for (b, image) in src.chunks_exact(in_len).enumerate() {
                    let g = &gy[b * out_len..(b + 1) * out_len];
                    let acc = !first || b > 0;
                    direct_kernel_grad(image, g, gk, *wi, [*ho, *wo], *k, acc);
                }
                return false;
            }
            let block = block_images(m * kkc);
            let [top, left] = pad.unwrap_or([0, 0]);
            for b0 in (0..nc).step_by(block) {
                let nb = block.min(nc - b0);
                let cols = sized(dcols, nb * m * kkc);
                let images = &src[b0 * in_len..(b0 + nb) * in_len];
                columns(images, cols, [*hi, *wi, *ci], [*ho, *wo], [*k, *s], *pad);
                let g = &gy[b0 * out_len..(b0 + nb) * out_len];
                let acc = !first || b0 > 0;
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
                    let gx = &mut gx[b0 * in_len..(b0 + nb) * in_len];
                    for (dc, gi) in cols.chunks_exact(m * kkc).zip(gx.chunks_exact_mut(in_len)) {
                        col2im(dc, gi, [*hi, *wi, *ci], [*ho, *wo], [*k, *s], [top, left]);
                    }
                }
            }
            si > 0
        }
        Stage::Pool {
            size,
            s,
            input: [hi, wi, ci],
            output: [ho, wo, _],
        } => {
            let arg = &at.argmax[si][i0 * out_len..(i0 + nc) * out_len];
            let gx = &mut next[..nc * in_len];
            // After a ReLU convolution, the ReLU's backward too: only a positive maximum
            // (a positive pooled value) passes its gradient (the convolution then skips its
            // mask).
            let relu = si > 0 && relu_in_pool(at.stages, si - 1);
            // Windows that tile the input write every input gradient; otherwise the inputs
            // no window covers stay zero.
            let tiles = size == s && ho * s == *hi && wo * s == *wi;
            if !tiles {
                gx.fill(0.0);
            }
            for img in 0..nc {
                pool_backward(
                    &mut gx[img * in_len..(img + 1) * in_len],
                    &out[img * out_len..(img + 1) * out_len],
                    &now[img * out_len..(img + 1) * out_len],
                    &arg[img * out_len..(img + 1) * out_len],
                    [*wi, *ci],
                    [*ho, *wo],
                    [*size, *s],
                    relu,
                );
            }
            true
        }
        Stage::Drop { d, len, .. } => {
            mul_assign(
                &mut now[..nc * out_len],
                &at.masks[*d][i0 * len..(i0 + nc) * len],
            );
            false
        }
        Stage::Dense { w: wi_, activation } => {
            let layer = &at.weights[*wi_];
            let (fi, fo) = (layer.fan_in, layer.fan_out);
            let gz = &mut now[..nc * fo];
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
            matmul_acc(gk, (fi, fo, nc), src, (1, fi), gz, (fo, 1), !first);
            column_sums(gb, gz, first);
            if si > 0 {
                matmul(
                    &mut next[..nc * fi],
                    (nc, fi, fo),
                    gz,
                    (fo, 1),
                    &layer.kernel,
                    (1, fo),
                );
            }
            si > 0
        }
        Stage::Norm { c, w: wi_, stat } => {
            if si > 0 {
                let (nb, layer) = (&at.norms[*stat], &at.weights[*wi_]);
                let xhat = &at.xhat[si][i0 * out_len..(i0 + nc) * out_len];
                norm_backward(&mut now[..nc * out_len], xhat, *c, nb, &layer.kernel);
            }
            false
        }
        Stage::L2 => {
            for ((g, v), e) in now[..nc * out_len]
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
            false
        }
    }
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
