//! Inference for convolutional encoders on the host: im2col and the packed AVX-512 kernel.
//!
//! burn's flex convolutions run a chain of generic passes per layer (layout changes, im2col
//! buffers, small `gemm` calls, a direct loop for one-channel inputs); on the `faces` preset
//! they predicted at a fifth of Keras's speed. Here each image is kept channels-last
//! (`[h, w, c]`) and every layer is one pass or one packed product:
//!
//! ```text
//! conv k×k, stride s:  cols[(y, x), (i, j, c)] = a[(s·y + i, s·x + j), c]      (im2col, NHWC)
//!                      a' = act(cols · W + b)          W[(i, j, c), o] = W_burn[o, c, i, j]
//!                      same padding: a is 0 outside the image, which is offset by burn's
//!                      padding (⌊total / 2⌋ above and left, the rest below and right)
//! batch norm:          a' = a·scale + shift per channel (or feature), scale = γ / √(var + ε),
//!                      shift = β − mean·scale: the running statistics, as in burn's inference
//! max-pool p, stride s: a'[(y, x), c] = max_{i, j < p} a[(s·y + i, s·x + j), c]
//! flatten + dense:     e = act(flat · W + b), the rows of W (and a batch norm's features)
//!                      permuted once from burn's [c, h, w] flattening order to [h, w, c]
//! l2-normalise:        e / max(‖e‖, 1e-12);   dropout: identity (inference)
//! ```
//!
//! Valid- and same-padding convolutions with ReLU or linear activations, batch norm (on maps,
//! after flatten or after a dense layer), max-pooling, dropout, flatten, dense layers (ReLU,
//! linear, sigmoid, tanh) and l2-normalisation are covered: every preset (`faces`, `koch-cpu`,
//! `signatures`, `koch2015`). Anything else (a sigmoid convolution, …) keeps the burn path.
//! Results match burn's forward pass to float rounding (`tests`). On the `faces` preset
//! (`bench/run.py --only conv`, run 7 of BENCHMARKS.md) predict went from 1,229 to 6,858
//! pairs/s, 1.09× Keras 3 and 4.1× PyTorch; 7,319 pairs/s in run 10 (1.7× Keras, 5.1×
//! PyTorch).

use super::host::{HostHead, check_pair_inputs, check_rows, with_thread_scratch};
use super::mlp::read;
use super::packed::PackedDense;
use crate::data::Matrix;
use crate::encoder::conv::{ConvEncoder, ConvLayerConfig as L, ConvModule, Padding};
use crate::encoder::{Activation, Encoder};
use crate::error::Result;
use crate::siamese::SiameseNetwork;
use crate::simd::multiversion;
use burn::module::Param;
use burn::tensor::{Device, Tensor};
use rayon::prelude::*;

/// One layer of the host encoder, with the shapes it maps between.
#[derive(Debug, Clone, PartialEq)]
enum Stage {
    /// A convolution through im2col: `[h, w, c_in] → [ho, wo, c_out]`.
    Conv {
        kernel: usize,
        stride: usize,
        /// Same padding: the zero rows above and columns left of the input (the rest of the
        /// padding is below and right); `None` for valid padding.
        pad: Option<[usize; 2]>,
        input: [usize; 3],
        output: [usize; 3],
        layer: PackedDense,
        relu: bool,
    },
    /// Batch norm in inference: `v·scale[i mod n] + shift[i mod n]` along each image's values
    /// (`n` channels of channels-last maps, or the features of a flat row).
    Affine { scale: Vec<f32>, shift: Vec<f32> },
    /// Max-pooling: `[h, w, c] → [ho, wo, c]`.
    Pool {
        size: usize,
        stride: usize,
        input: [usize; 3],
        output: [usize; 3],
    },
    /// A dense layer on flat rows (the first one's rows already in `[h, w, c]` order).
    Dense {
        layer: PackedDense,
        activation: Activation,
        units: usize,
    },
    /// `e / max(‖e‖, 1e-12)`.
    L2Normalize,
}

/// A convolutional encoder's weights packed for host inference.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedConv {
    /// `[height, width, channels]` of an input image.
    input: [usize; 3],
    stages: Vec<Stage>,
    output_dim: usize,
}

impl FusedConv {
    /// The host copy of `network`'s encoder, when it is a convolutional encoder this module
    /// covers, on the flex CPU device, and the CPU has AVX-512 (see the module docs).
    pub fn for_inference(network: &SiameseNetwork) -> Option<Self> {
        let Encoder::Conv(encoder) = &network.encoder else {
            return None;
        };
        let on_flex = encoder.modules.iter().all(|m| match m {
            ConvModule::Conv(c) => c.weight.val().device() == Device::flex(),
            ConvModule::Dense(d) => d.weight.val().device() == Device::flex(),
            _ => true,
        });
        if !on_flex {
            return None;
        }
        Self::from_encoder(encoder)
    }

    fn from_encoder(encoder: &ConvEncoder) -> Option<Self> {
        let config = encoder.config();
        let input = [config.height, config.width, config.channels];
        let mut modules = encoder.modules.iter();
        let mut stages = Vec::new();
        // Spatial `[h, w, c]` until flatten, then the flat width.
        let mut spatial = Some(input);
        let mut flat = 0;
        let mut pending_flatten: Option<[usize; 3]> = None;
        for layer in &config.layers {
            match layer {
                L::Conv2d {
                    filters,
                    kernel,
                    stride,
                    padding,
                    activation: activation @ (Activation::Relu | Activation::Linear),
                } => {
                    let Some(ConvModule::Conv(m)) = modules.next() else {
                        return None;
                    };
                    let [h, w, c] = spatial?;
                    let (k, s) = (*kernel, *stride);
                    let ([top, left], [ho, wo]) = conv_geometry([h, w], k, s, *padding)?;
                    let output = [ho, wo, *filters];
                    let kernel_rows = host_conv_kernel(m, c, k, *filters)?;
                    let bias = read_bias(m.bias.as_ref(), *filters)?;
                    stages.push(Stage::Conv {
                        kernel: k,
                        stride: s,
                        pad: (*padding == Padding::Same).then_some([top, left]),
                        input: [h, w, c],
                        output,
                        layer: PackedDense::new(&kernel_rows, &bias, k * k * c, *filters)?,
                        relu: *activation == Activation::Relu,
                    });
                    spatial = Some(output);
                }
                L::MaxPool2d { size, stride } => {
                    let Some(ConvModule::Pool(_)) = modules.next() else {
                        return None;
                    };
                    let [h, w, c] = spatial?;
                    let s = stride.unwrap_or(*size);
                    let output = [(h - size) / s + 1, (w - size) / s + 1, c];
                    stages.push(Stage::Pool {
                        size: *size,
                        stride: s,
                        input: [h, w, c],
                        output,
                    });
                    spatial = Some(output);
                }
                L::Dropout { .. } => {
                    let Some(ConvModule::Drop(_)) = modules.next() else {
                        return None;
                    };
                }
                L::BatchNorm => {
                    let Some(ConvModule::Norm(m)) = modules.next() else {
                        return None;
                    };
                    // Inference: (v − mean) / √(var + ε) · γ + β = v·scale + shift.
                    let n = m.gamma.val().dims()[0];
                    let values = |t: Tensor<1>| read(t.reshape([1, n]));
                    let (gamma, beta) = (values(m.gamma.val())?, values(m.beta.val())?);
                    let mean = values(m.running_mean.value())?;
                    let var = values(m.running_var.value())?;
                    let scale: Vec<f32> = (0..n)
                        .map(|i| gamma[i] / (var[i] + m.epsilon as f32).sqrt())
                        .collect();
                    let shift: Vec<f32> = (0..n).map(|i| beta[i] - mean[i] * scale[i]).collect();
                    let (scale, shift) = match (spatial, pending_flatten) {
                        (Some([_, _, c]), _) if c == n => (scale, shift),
                        // After flatten: burn's features are in [c, h, w] order, ours in
                        // [h, w, c].
                        (None, Some(chw)) if chw.iter().product::<usize>() == n => {
                            let order = |v: &[f32]| {
                                let mut out = vec![0.0f32; n];
                                chw_to_hwc(v, &mut out, chw, 1);
                                out
                            };
                            (order(&scale), order(&shift))
                        }
                        (None, None) if flat == n => (scale, shift),
                        _ => return None,
                    };
                    stages.push(Stage::Affine { scale, shift });
                }
                L::Flatten => {
                    let [h, w, c] = spatial.take()?;
                    pending_flatten = Some([h, w, c]);
                    // The channels-last maps of each image already are its flat row; the
                    // next dense layer's rows are permuted to match.
                    flat = h * w * c;
                }
                L::Dense { units, activation } => {
                    let Some(ConvModule::Dense(m)) = modules.next() else {
                        return None;
                    };
                    if spatial.is_some() {
                        return None;
                    }
                    if !matches!(
                        activation,
                        Activation::Relu
                            | Activation::Linear
                            | Activation::Sigmoid
                            | Activation::Tanh
                    ) {
                        return None;
                    }
                    // burn's Linear weight is [in, out], rows in burn's flattening order.
                    let mut weight = read(m.weight.val())?;
                    if let Some(chw) = pending_flatten.take() {
                        let mut permuted = vec![0.0f32; weight.len()];
                        chw_to_hwc(&weight, &mut permuted, chw, *units);
                        weight = permuted;
                    }
                    let bias = read_bias(m.bias.as_ref(), *units)?;
                    stages.push(Stage::Dense {
                        layer: PackedDense::new(&weight, &bias, flat, *units)?,
                        activation: *activation,
                        units: *units,
                    });
                    flat = *units;
                }
                L::L2Normalize => {
                    if spatial.is_some() {
                        return None;
                    }
                    stages.push(Stage::L2Normalize);
                }
                _ => return None,
            }
        }
        if spatial.is_some() || modules.next().is_some() {
            return None;
        }
        Some(Self {
            input,
            stages,
            output_dim: flat,
        })
    }

    /// Features per input row (`height × width × channels`).
    pub fn input_dim(&self) -> usize {
        self.input.iter().product()
    }

    /// Embedding size.
    pub fn output_dim(&self) -> usize {
        self.output_dim
    }

    /// Embeds `rows` images of `x` (each `[c, h, w]`, as burn reads a row) into `out`
    /// (`[rows, output_dim]`), on this thread, in this thread's scratch buffers.
    fn embed_block(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        with_thread_scratch(|[a, b, cols]| self.embed_in(x, rows, out, a, b, cols));
    }

    fn embed_in(
        &self,
        x: &[f32],
        rows: usize,
        out: &mut [f32],
        a: &mut Vec<f32>,
        b: &mut Vec<f32>,
        cols: &mut Vec<f32>,
    ) {
        if rows == 0 {
            return;
        }
        // The rows, `[c, h, w]` each, to channels-last `[h, w, c]`. `a` holds `len` values:
        // the block's images after the stages so far.
        let size = self.input_dim();
        let mut len = rows * size;
        for (src, dst) in x
            .chunks_exact(size)
            .zip(sized(a, len).chunks_exact_mut(size))
        {
            chw_to_hwc(src, dst, self.input, 1);
        }
        for stage in &self.stages {
            match stage {
                Stage::Conv {
                    kernel,
                    stride,
                    pad,
                    input,
                    output,
                    layer,
                    relu,
                } => {
                    let [hi, wi, ci] = *input;
                    let [ho, wo, co] = *output;
                    let cols = sized(cols, ho * wo * kernel * kernel * ci);
                    let images = a[..len].chunks_exact(hi * wi * ci);
                    len = rows * ho * wo * co;
                    for (image, dst) in images.zip(sized(b, len).chunks_exact_mut(ho * wo * co)) {
                        im2col_image(image, cols, *input, [ho, wo], [*kernel, *stride], *pad);
                        layer.forward(cols, ho * wo, dst, *relu);
                    }
                    std::mem::swap(a, b);
                }
                Stage::Affine { scale, shift } => {
                    for v in a[..len].chunks_exact_mut(scale.len()) {
                        for ((v, s), t) in v.iter_mut().zip(scale).zip(shift) {
                            *v = *v * s + t;
                        }
                    }
                }
                Stage::Pool {
                    size,
                    stride,
                    input,
                    output,
                } => {
                    let [hi, wi, ci] = *input;
                    let [ho, wo, _] = *output;
                    let images = a[..len].chunks_exact(hi * wi * ci);
                    len = rows * ho * wo * ci;
                    for (src, dst) in images.zip(sized(b, len).chunks_exact_mut(ho * wo * ci)) {
                        max_pool(src, dst, [wi, ci], [ho, wo], [*size, *stride]);
                    }
                    std::mem::swap(a, b);
                }
                Stage::Dense {
                    layer,
                    activation,
                    units,
                } => {
                    let dst = sized(b, rows * units);
                    layer.forward(&a[..len], rows, dst, *activation == Activation::Relu);
                    match activation {
                        Activation::Sigmoid => dst.iter_mut().for_each(|v| {
                            *v = 1.0 / (1.0 + (-*v).exp());
                        }),
                        Activation::Tanh => dst.iter_mut().for_each(|v| *v = v.tanh()),
                        _ => {}
                    }
                    len = rows * units;
                    std::mem::swap(a, b);
                }
                Stage::L2Normalize => {
                    for e in a[..len].chunks_exact_mut(len / rows) {
                        let norm = e.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                        e.iter_mut().for_each(|v| *v /= norm);
                    }
                }
            }
        }
        out[..rows * self.output_dim].copy_from_slice(&a[..rows * self.output_dim]);
    }

    /// Embeddings of every row of `x` (`[n, input_dim] → [n, output_dim]`), in parallel
    /// blocks of images. A NaN or ±∞ in `x` is an error naming `what`, its row and column.
    pub fn embed(&self, x: &Matrix, what: &str) -> Result<Matrix> {
        let (dim, emb) = (self.input_dim(), self.output_dim());
        check_rows(x, dim, what)?;
        x.check_finite(what)?;
        let mut out = vec![0.0f32; x.rows() * emb];
        out.par_chunks_mut(BLOCK * emb)
            .enumerate()
            .for_each(|(i, out)| {
                let rows = out.len() / emb;
                let x = &x.as_slice()[i * BLOCK * dim..(i * BLOCK + rows) * dim];
                self.embed_block(x, rows, out);
            });
        Matrix::new(x.rows(), emb, out)
    }

    /// The head's score of each pair `(a[i], b[i])`, in parallel blocks of pairs.
    pub fn pair_scores(&self, a: &Matrix, b: &Matrix, head: &HostHead) -> Result<Vec<f32>> {
        let (n, dim, emb) = (a.rows(), self.input_dim(), self.output_dim());
        check_pair_inputs(a, b, dim)?;
        a.check_finite("input a")?;
        b.check_finite("input b")?;
        let mut out = vec![0.0f32; n];
        out.par_chunks_mut(BLOCK).enumerate().for_each(|(i, out)| {
            let rows = out.len();
            let range = i * BLOCK * dim..(i * BLOCK + rows) * dim;
            let mut e = vec![0.0f32; 2 * rows * emb];
            let (ea, eb) = e.split_at_mut(rows * emb);
            self.embed_block(&a.as_slice()[range.clone()], rows, ea);
            self.embed_block(&b.as_slice()[range], rows, eb);
            head.score_rows(ea, eb, emb, out);
        });
        Ok(out)
    }
}

/// `buf[..n]`, growing `buf` (with zeros) only when it is shorter. The scratch buffers serve
/// stages of different sizes in turn; shrinking and regrowing them zeroed their memory again
/// at every stage of every block.
pub(super) fn sized(buf: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if buf.len() < n {
        buf.resize(n, 0.0);
    }
    &mut buf[..n]
}

/// `to.copy_from_slice(from)` for the short spans of im2col and pooling (5 values for a 5×5
/// kernel on one channel), in fixed-size pieces the compiler turns into register moves: a
/// `memmove` call per span had taken 17% of a `faces` predict.
#[inline(always)]
fn copy_span(to: &mut [f32], from: &[f32]) {
    /// Copies the first `N` values when there are that many; returns how many it copied.
    #[inline(always)]
    fn piece<const N: usize>(to: &mut [f32], from: &[f32]) -> usize {
        if to.len() < N {
            return 0;
        }
        let to: &mut [f32; N] = (&mut to[..N]).try_into().unwrap();
        to.copy_from_slice(&from[..N]);
        N
    }
    let n = to.len();
    let from = &from[..n];
    let mut i = 0;
    while n - i >= 16 {
        i += piece::<16>(&mut to[i..], &from[i..]);
    }
    i += piece::<8>(&mut to[i..], &from[i..]);
    i += piece::<4>(&mut to[i..], &from[i..]);
    i += piece::<2>(&mut to[i..], &from[i..]);
    piece::<1>(&mut to[i..], &from[i..]);
}

/// Reorders one `[c, h, w]` array of `block`-value items into `[h, w, c]`: burn's
/// channels-first order (of an image, of its flattened features, of the dense rows that read
/// them) into this module's channels-last one.
pub(super) fn chw_to_hwc(src: &[f32], dst: &mut [f32], [h, w, c]: [usize; 3], block: usize) {
    for (p, pixel) in dst[..h * w * c * block]
        .chunks_exact_mut(c * block)
        .enumerate()
    {
        for (ci, item) in pixel.chunks_exact_mut(block).enumerate() {
            copy_span(item, &src[(ci * h * w + p) * block..][..block]);
        }
    }
}

/// A layer's `n` biases on the host, zeros when it has none.
pub(super) fn read_bias(bias: Option<&Param<Tensor<1>>>, n: usize) -> Option<Vec<f32>> {
    match bias {
        Some(b) => read(b.val().reshape([1, n])),
        None => Some(vec![0.0; n]),
    }
}

multiversion! {
    /// `cols[(y, x), (i, j, c)] = image[(s·y + i, s·x + j), c]` for one channels-last image
    /// (`input`: width and channels; `output`: height and width; `window`: kernel side and
    /// stride); each kernel row is `k·ci` contiguous values.
    pub(super) fn im2col(image: &[f32], cols: &mut [f32], input: [usize; 2], output: [usize; 2], window: [usize; 2]) {
        let ([wi, ci], [ho, wo], [k, s]) = (input, output, window);
        let (span, fan_in) = (k * ci, k * k * ci);
        for y in 0..ho {
            for x in 0..wo {
                let row = &mut cols[(y * wo + x) * fan_in..][..fan_in];
                for i in 0..k {
                    let from = &image[((s * y + i) * wi + s * x) * ci..][..span];
                    copy_span(&mut row[i * span..][..span], from);
                }
            }
        }
    }
}

/// burn's geometry of a `k × k`, stride-`s` convolution over `[h, w]`: the padding above and
/// left (same padding: the output is `⌈size / s⌉`, the padding it needs split with the
/// smaller half first; valid: none) and the output `[ho, wo]`; `None` when the kernel does not
/// fit.
pub(super) fn conv_geometry(
    [h, w]: [usize; 2],
    k: usize,
    s: usize,
    padding: Padding,
) -> Option<([usize; 2], [usize; 2])> {
    let pads = |size: usize| match padding {
        Padding::Valid => [0, 0],
        Padding::Same => {
            let total = ((size.div_ceil(s) - 1) * s + k).saturating_sub(size);
            [total / 2, total - total / 2]
        }
    };
    let ([top, bottom], [left, right]) = (pads(h), pads(w));
    let (hp, wp) = (h + top + bottom, w + left + right);
    if hp < k || wp < k {
        return None;
    }
    Some(([top, left], [(hp - k) / s + 1, (wp - k) / s + 1]))
}

/// A convolution's kernel as host rows: burn's `[c_out, c_in, k, k]` → `[(i, j, c), o]`.
pub(super) fn host_conv_kernel(
    m: &burn::nn::conv::Conv2d,
    c: usize,
    k: usize,
    filters: usize,
) -> Option<Vec<f32>> {
    let burn_w = read(m.weight.val().reshape([filters, c * k * k]))?;
    let mut rows = vec![0.0f32; k * k * c * filters];
    for o in 0..filters {
        for ci in 0..c {
            for i in 0..k {
                for j in 0..k {
                    rows[((i * k + j) * c + ci) * filters + o] =
                        burn_w[o * c * k * k + (ci * k + i) * k + j];
                }
            }
        }
    }
    Some(rows)
}

/// im2col of one channels-last image: [`im2col`] without padding (`pad` None), else
/// [`im2col_padded`] with `pad` (top, left) (`input`: height, width, channels; `window`:
/// kernel side and stride).
pub(super) fn im2col_image(
    image: &[f32],
    cols: &mut [f32],
    input: [usize; 3],
    output: [usize; 2],
    window: [usize; 2],
    pad: Option<[usize; 2]>,
) {
    match pad {
        None => im2col(image, cols, [input[1], input[2]], output, window),
        Some(p) => im2col_padded(image, cols, input, output, window, p),
    }
}

/// [`im2col`] with zero padding (same-padding convolutions): input pixel `(s·y + i − top,
/// s·x + j − left)`, 0 outside the image (`input`: height, width and channels; `pad`: top
/// and left).
pub(super) fn im2col_padded(
    image: &[f32],
    cols: &mut [f32],
    input: [usize; 3],
    output: [usize; 2],
    window: [usize; 2],
    pad: [usize; 2],
) {
    let ([hi, wi, ci], [ho, wo], [k, s], [top, left]) = (input, output, window, pad);
    let (span, fan_in) = (k * ci, k * k * ci);
    for y in 0..ho {
        for x in 0..wo {
            let row = &mut cols[(y * wo + x) * fan_in..][..fan_in];
            // Kernel columns j in `lo..hi_j` fall inside the image's columns.
            let x0 = (s * x) as isize - left as isize;
            let lo = (-x0).clamp(0, k as isize) as usize;
            let hi_j = (wi as isize - x0).clamp(lo as isize, k as isize) as usize;
            for i in 0..k {
                let to = &mut row[i * span..][..span];
                let yy = (s * y + i) as isize - top as isize;
                if yy < 0 || yy >= hi as isize {
                    to.fill(0.0);
                    continue;
                }
                to[..lo * ci].fill(0.0);
                to[hi_j * ci..].fill(0.0);
                if hi_j > lo {
                    let from = (yy as usize * wi) as isize + x0 + lo as isize;
                    let from = &image[from as usize * ci..][..(hi_j - lo) * ci];
                    copy_span(&mut to[lo * ci..hi_j * ci], from);
                }
            }
        }
    }
}

multiversion! {
    /// Max-pooling of one channels-last image (`input`: width and channels; `output`: height
    /// and width; `window`: side and stride), `m = v > m ? v : m` so that it vectorises.
    fn max_pool(src: &[f32], dst: &mut [f32], input: [usize; 2], output: [usize; 2], window: [usize; 2]) {
        let ([wi, ci], [ho, wo], [p, s]) = (input, output, window);
        // Channels in registers of 16 (the window's maximum of 16 channels stays in one
        // register while the window passes), then the channels left one by one.
        let full = ci / 16 * 16;
        for y in 0..ho {
            for x in 0..wo {
                let d = &mut dst[(y * wo + x) * ci..][..ci];
                let first = (s * y * wi + s * x) * ci;
                for c0 in (0..full).step_by(16) {
                    let mut m: [f32; 16] = src[first + c0..][..16].try_into().unwrap();
                    for i in 0..p {
                        for j in 0..p {
                            let at = ((s * y + i) * wi + s * x + j) * ci + c0;
                            let w: &[f32; 16] = src[at..][..16].try_into().unwrap();
                            for (m, &v) in m.iter_mut().zip(w) {
                                *m = if v > *m { v } else { *m };
                            }
                        }
                    }
                    <&mut [f32; 16]>::try_from(&mut d[c0..c0 + 16]).unwrap().copy_from_slice(&m);
                }
                for (ch, m) in d.iter_mut().enumerate().skip(full) {
                    *m = src[first + ch];
                    for i in 0..p {
                        for j in 0..p {
                            let v = src[((s * y + i) * wi + s * x + j) * ci + ch];
                            *m = if v > *m { v } else { *m };
                        }
                    }
                }
            }
        }
    }
}

/// Images per parallel block: small, since one image is already a few MFLOP.
const BLOCK: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::Distance;
    use crate::encoder::EncoderConfig;
    use crate::encoder::conv::ConvEncoderConfig;
    use crate::siamese::SiameseConfig;
    use burn::module::{Module, RunningState};

    fn network(encoder: ConvEncoderConfig, seed: u64) -> SiameseNetwork {
        let config = SiameseConfig {
            encoder: EncoderConfig::Conv(encoder),
            distance: Distance::Euclidean,
            ..SiameseConfig::reference(4)
        };
        config
            .init(&Device::flex().autodiff(), seed)
            .unwrap()
            .valid()
    }

    fn images(n: usize, dim: usize, seed: u64) -> Matrix {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let values = (0..n * dim)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        Matrix::new(n, dim, values).unwrap()
    }

    /// Embeddings and pair scores agree with burn's forward pass on the presets it covers
    /// and on a layer list with strides, several channels, a sigmoid dense layer and
    /// l2-normalisation; other encoders keep the burn path.
    #[test]
    fn host_conv_matches_burn_forward() {
        if FusedConv::for_inference(&network(
            ConvEncoderConfig::preset("faces", 46, 56).unwrap(),
            0,
        ))
        .is_none()
        {
            eprintln!("skipped: no AVX-512 on this CPU, so conv inference stays on burn");
            return;
        }
        let custom: ConvEncoderConfig = serde_json::from_str(
            r#"{"width": 13, "height": 11, "channels": 2, "layers": [
                {"type": "conv2d", "filters": 5, "kernel": 3, "stride": 2},
                {"type": "conv2d", "filters": 70, "kernel": 2, "activation": "linear"},
                {"type": "max_pool2d", "size": 2, "stride": 1},
                {"type": "flatten"},
                {"type": "dropout", "rate": 0.5},
                {"type": "dense", "units": 9, "activation": "sigmoid"},
                {"type": "dense", "units": 6, "activation": "tanh"},
                {"type": "l2_normalize"}
            ]}"#,
        )
        .unwrap();
        // Same padding (odd and even kernels), batch norm on maps, after flatten and after a
        // dense layer.
        let padded: ConvEncoderConfig = serde_json::from_str(
            r#"{"width": 9, "height": 7, "channels": 2, "layers": [
                {"type": "conv2d", "filters": 3, "kernel": 3, "padding": "same"},
                {"type": "batch_norm"},
                {"type": "conv2d", "filters": 4, "kernel": 2, "padding": "same",
                 "activation": "linear"},
                {"type": "max_pool2d", "size": 2},
                {"type": "flatten"},
                {"type": "batch_norm"},
                {"type": "dense", "units": 5, "activation": "relu"},
                {"type": "batch_norm"},
                {"type": "dense", "units": 4, "activation": "linear"}
            ]}"#,
        )
        .unwrap();
        for (name, encoder) in [
            ("faces", ConvEncoderConfig::preset("faces", 46, 56).unwrap()),
            (
                "koch-cpu",
                ConvEncoderConfig::preset("koch-cpu", 52, 52).unwrap(),
            ),
            (
                "signatures",
                ConvEncoderConfig::preset("signatures", 64, 32).unwrap(),
            ),
            ("custom", custom),
            ("padded", padded),
        ] {
            let mut net = network(encoder, 7);
            set_batch_norm_statistics(&mut net);
            let host = FusedConv::for_inference(&net).unwrap();
            let (a, b) = (
                images(11, host.input_dim(), 1),
                images(11, host.input_dim(), 2),
            );
            let device = Device::flex();
            let want = net
                .embed(crate::data::to_tensor(&a, &device))
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let got = host.embed(&a, "input").unwrap();
            assert_eq!(got.shape(), [11, host.output_dim()], "{name}");
            for (i, (g, w)) in got.as_slice().iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{name} [{i}]: {g} vs {w}"
                );
            }
            let head = HostHead::from_network(&net).unwrap();
            let scores = host.pair_scores(&a, &b, &head).unwrap();
            let want = super::super::tests::burn_scores(&net, &a, &b);
            for (g, w) in scores.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{name} scores: {g} vs {w}"
                );
            }
            let mut bad = a.as_slice().to_vec();
            bad[3 * host.input_dim() + 17] = f32::NAN;
            let bad = Matrix::new(11, host.input_dim(), bad).unwrap();
            let err = host.pair_scores(&bad, &b, &head).unwrap_err().to_string();
            assert!(
                err.contains("input a") && err.contains("row 3, column 17"),
                "{err}"
            );
        }
        let sigmoid_conv: ConvEncoderConfig = serde_json::from_str(
            r#"{"width": 8, "height": 8, "layers": [
                {"type": "conv2d", "filters": 4, "kernel": 3, "activation": "sigmoid"},
                {"type": "flatten"}
            ]}"#,
        )
        .unwrap();
        assert!(FusedConv::for_inference(&network(sigmoid_conv, 0)).is_none());
    }

    /// Gives every batch norm of `net` running statistics and an affine map far from the
    /// identity of a fresh layer, so that the test sees them.
    fn set_batch_norm_statistics(net: &mut SiameseNetwork) {
        let Encoder::Conv(encoder) = &mut net.encoder else {
            return;
        };
        let device = Device::flex();
        let vector = |n: usize, f: &dyn Fn(usize) -> f32| -> Tensor<1> {
            let values = Matrix::new(1, n, (0..n).map(f).collect()).unwrap();
            crate::data::to_tensor(&values, &device).reshape([n])
        };
        for m in &mut encoder.modules {
            if let ConvModule::Norm(bn) = m {
                let n = bn.gamma.val().dims()[0];
                bn.gamma = Param::from_tensor(vector(n, &|i| 0.5 + 0.3 * i as f32));
                bn.beta = Param::from_tensor(vector(n, &|i| 0.2 - 0.1 * i as f32));
                bn.running_mean = RunningState::new(vector(n, &|i| 0.05 * i as f32 - 0.1));
                bn.running_var = RunningState::new(vector(n, &|i| 0.3 + 0.2 * i as f32));
            }
        }
    }
}
