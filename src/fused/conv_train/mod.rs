//! Fused training of convolutional encoders ([`ConvTrainer`]): the forward pass of
//! [`super::conv`] kept for the backward pass, and the backward pass by hand, data-parallel
//! over each thread's images, with the optimizers of [`super::optimizer`].
//!
//! Each image is channels-last (`[h, w, c]`); every convolution is im2col plus one matrix
//! product over all of a thread's images, and so is its backward:
//!
//! ```text
//! conv:     cols = im2col(a)      y = act(cols·W + b)            gz = gy ⊙ act′(y)
//!           ∂W = colsᵀ·gz         ∂b = Σ_rows gz                 ∂a = col2im(gz·Wᵀ)
//! max-pool: y = max over the window, its argmax kept;             ∂a[argmax] += gy
//! dropout:  y = a ⊙ m  (m: the model's seeded masks, drawn as the burn path draws them over
//!           the stacked [a; b] batch in burn's [c, h, w] order, then permuted)   ∂a = gy ⊙ m
//! dense:    y = act(a·W + b)      ∂W = aᵀ·gz    ∂b = Σ gz         ∂a = gz·Wᵀ
//!           (the first dense layer's rows permuted from burn's [c, h, w] flattening order)
//! l2:       e = v / max(‖v‖, 1e-12)              ∂v = (ge − e·(e·ge)) / ‖v‖  (ge / 1e-12 when clamped)
//! ```
//!
//! Covered: valid and same padding, any stride, ReLU or linear convolutions, max-pooling,
//! dropout on maps or rows, flatten, dense layers (ReLU, linear, sigmoid, tanh) and
//! l2-normalisation, with the Euclidean distance and the contrastive loss — the `faces` and
//! `koch-cpu` encoders. Batch norm (training mode), the weighted-L1 head, other distances and
//! the triplet loss keep burn's autodiff path. Tests compare losses, every gradient and the
//! weights after optimizer steps with burn's autodiff.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::conv::{chw_to_hwc, conv_geometry, host_conv_kernel, read_bias};
use super::mlp::{read, trainable};
use super::optimizer::OptimizerState;
use super::trainer::{FusedHyper, Grads, StepOutput, apply_gradients, contrastive_backward};
use pass::{backward, forward, masks_rows};

mod pass;
#[cfg(test)]
mod tests;
use crate::distance::Distance;
use crate::encoder::conv::{ConvEncoder, ConvLayerConfig as L, ConvModule, Padding};
use crate::encoder::{Activation, Encoder, SeededDropout};
use crate::error::{Result, SiameseError};
use crate::siamese::SiameseNetwork;

/// A trainable layer's host weights: `kernel` is `[fan_in, fan_out]` row-major (a
/// convolution's rows in `(i, j, c)` order, a first dense layer's in `(h, w, c)` order).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Weights {
    pub(super) kernel: Vec<f32>,
    pub(super) bias: Vec<f32>,
    pub(super) fan_in: usize,
    pub(super) fan_out: usize,
    /// How the kernel maps back to burn's layout.
    layout: Layout,
}

/// burn's layout of a layer's kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    /// `[c_out, c_in, k, k]`.
    Conv { c_in: usize, k: usize },
    /// `[fan_in, fan_out]`, the rows in `[c, h, w]` order after a flatten of those maps.
    Dense { chw: Option<[usize; 3]> },
}

/// One layer of the trainer, with the shapes it maps between.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub(super) enum Stage {
    Conv {
        k: usize,
        s: usize,
        pad: Option<[usize; 2]>,
        input: [usize; 3],
        output: [usize; 3],
        relu: bool,
        w: usize,
    },
    Pool {
        size: usize,
        s: usize,
        input: [usize; 3],
        output: [usize; 3],
    },
    /// Dropout over values of `len` per image; masks in burn's order are permuted from
    /// `[c, h, w]` when `chw` is set.
    Drop {
        d: usize,
        len: usize,
        chw: Option<[usize; 3]>,
    },
    Dense {
        w: usize,
        activation: Activation,
    },
    L2,
}

/// One thread's buffers: its rows' input, every stage's output, im2col columns, pooling
/// argmaxes, gradient ping-pong buffers and its weight gradients.
#[derive(Debug, Default)]
pub(super) struct Work {
    pub(super) x: Vec<f32>,
    pub(super) acts: Vec<Vec<f32>>,
    pub(super) cols: Vec<Vec<f32>>,
    pub(super) argmax: Vec<Vec<u32>>,
    pub(super) g: [Vec<f32>; 2],
    pub(super) dcols: Vec<f32>,
}

/// Trains a convolutional Siamese network (see the module docs for what it covers).
#[derive(Debug)]
pub struct ConvTrainer {
    /// Input `[h, w, c]`.
    input: [usize; 3],
    stages: Vec<Stage>,
    weights: Vec<Weights>,
    /// Values per image after each stage.
    lens: Vec<usize>,
    state: OptimizerState,
    hyper: FusedHyper,
    /// The encoder's dropout modules (sharing their mask streams) with their module index.
    dropouts: Vec<(usize, SeededDropout)>,
    /// Masks of the current batch per dropout stage, host order, `[rows, len]`.
    masks: Vec<Vec<f32>>,
    works: Vec<Work>,
    /// Each thread's weight gradients.
    grads: Vec<Grads>,
    /// Embeddings of the batch and their gradient, `[rows, emb]`.
    emb: Vec<f32>,
    gemb: Vec<f32>,
}

/// A stage's output shape and trainable weights from burn's modules; `None` for what this
/// trainer does not cover.
struct Builder {
    stages: Vec<Stage>,
    weights: Vec<Weights>,
    lens: Vec<usize>,
    dropouts: Vec<(usize, SeededDropout)>,
}

impl Builder {
    fn build(encoder: &ConvEncoder) -> Option<Self> {
        let config = encoder.config();
        let mut b = Self {
            stages: Vec::new(),
            weights: Vec::new(),
            lens: Vec::new(),
            dropouts: Vec::new(),
        };
        let mut spatial = Some([config.height, config.width, config.channels]);
        let mut flat = 0;
        let mut pending: Option<[usize; 3]> = None;
        let mut modules = encoder.modules.iter().enumerate();
        for layer in &config.layers {
            match layer {
                L::Conv2d {
                    filters,
                    kernel,
                    stride,
                    padding,
                    activation: activation @ (Activation::Relu | Activation::Linear),
                } => {
                    let Some((_, ConvModule::Conv(m))) = modules.next() else {
                        return None;
                    };
                    let [h, w, c] = spatial?;
                    let (k, s, f) = (*kernel, *stride, *filters);
                    let ([top, left], [ho, wo]) = conv_geometry([h, w], k, s, *padding)?;
                    let output = [ho, wo, f];
                    let kernel = host_conv_kernel(m, c, k, f)?;
                    b.weights.push(Weights {
                        kernel,
                        bias: read_bias(m.bias.as_ref(), f)?,
                        fan_in: k * k * c,
                        fan_out: f,
                        layout: Layout::Conv { c_in: c, k },
                    });
                    b.push(
                        Stage::Conv {
                            k,
                            s,
                            pad: (*padding == Padding::Same).then_some([top, left]),
                            input: [h, w, c],
                            output,
                            relu: *activation == Activation::Relu,
                            w: b.weights.len() - 1,
                        },
                        output.iter().product(),
                    );
                    spatial = Some(output);
                }
                L::MaxPool2d { size, stride } => {
                    let Some((_, ConvModule::Pool(_))) = modules.next() else {
                        return None;
                    };
                    let [h, w, c] = spatial?;
                    let s = stride.unwrap_or(*size);
                    if h < *size || w < *size {
                        return None;
                    }
                    let output = [(h - size) / s + 1, (w - size) / s + 1, c];
                    b.push(
                        Stage::Pool {
                            size: *size,
                            s,
                            input: [h, w, c],
                            output,
                        },
                        output.iter().product(),
                    );
                    spatial = Some(output);
                }
                L::Dropout { .. } => {
                    let Some((i, ConvModule::Drop(d))) = modules.next() else {
                        return None;
                    };
                    let (len, chw) = match (spatial, pending) {
                        (Some(hwc), _) => (hwc.iter().product(), Some(hwc)),
                        (None, Some(hwc)) => (flat, Some(hwc)),
                        (None, None) => (flat, None),
                    };
                    b.dropouts.push((i, d.clone()));
                    b.push(
                        Stage::Drop {
                            d: b.dropouts.len() - 1,
                            len,
                            chw,
                        },
                        len,
                    );
                }
                L::Flatten => {
                    let hwc = spatial.take()?;
                    pending = Some(hwc);
                    flat = hwc.iter().product();
                }
                L::Dense { units, activation } => {
                    let Some((_, ConvModule::Dense(m))) = modules.next() else {
                        return None;
                    };
                    if spatial.is_some()
                        || !matches!(
                            activation,
                            Activation::Relu
                                | Activation::Linear
                                | Activation::Sigmoid
                                | Activation::Tanh
                        )
                    {
                        return None;
                    }
                    let mut kernel = read(m.weight.val())?;
                    let chw = pending.take();
                    if let Some(hwc) = chw {
                        let mut permuted = vec![0.0f32; kernel.len()];
                        chw_to_hwc(&kernel, &mut permuted, hwc, *units);
                        kernel = permuted;
                    }
                    b.weights.push(Weights {
                        kernel,
                        bias: read_bias(m.bias.as_ref(), *units)?,
                        fan_in: flat,
                        fan_out: *units,
                        layout: Layout::Dense { chw },
                    });
                    b.push(
                        Stage::Dense {
                            w: b.weights.len() - 1,
                            activation: *activation,
                        },
                        *units,
                    );
                    flat = *units;
                }
                L::L2Normalize => {
                    if spatial.is_some() {
                        return None;
                    }
                    b.push(Stage::L2, flat);
                }
                _ => return None,
            }
        }
        if spatial.is_some() || modules.next().is_some() || b.stages.is_empty() {
            return None;
        }
        Some(b)
    }

    fn push(&mut self, stage: Stage, len: usize) {
        self.stages.push(stage);
        self.lens.push(len);
    }
}

/// `[c, h, w]`-ordered values of one image to `[h, w, c]` order.
pub(super) fn to_hwc(src: &[f32], dst: &mut [f32], chw: [usize; 3]) {
    chw_to_hwc(src, dst, chw, 1);
}

impl ConvTrainer {
    /// A trainer for `network`, when it is a convolutional encoder with the Euclidean
    /// distance head that this module covers, on the flex device; the optimizer resumes from
    /// `state` when its shapes match.
    pub fn new(
        network: &SiameseNetwork,
        state: Option<OptimizerState>,
        hyper: FusedHyper,
    ) -> Option<Self> {
        if network.weighted_l1.is_some() || network.distance() != Distance::Euclidean {
            return None;
        }
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
        let config = encoder.config();
        let b = Builder::build(encoder)?;
        let shapes: Grads = b
            .weights
            .iter()
            .map(|w| [vec![0.0; w.kernel.len()], vec![0.0; w.bias.len()]])
            .collect();
        let state = OptimizerState::resume_or_fresh(state, &shapes, hyper.optimizer);
        let threads = rayon::current_num_threads().max(1);
        let works = (0..threads).map(|_| Work::default()).collect();
        let grads = vec![shapes; threads];
        Some(Self {
            input: [config.height, config.width, config.channels],
            masks: vec![Vec::new(); b.dropouts.len()],
            stages: b.stages,
            weights: b.weights,
            lens: b.lens,
            state,
            hyper,
            dropouts: b.dropouts,
            works,
            grads,
            emb: Vec::new(),
            gemb: Vec::new(),
        })
    }

    /// Restarts the dropout mask streams from `seed` (as `ConvEncoder::reseed` does).
    pub fn reseed(&self, seed: u64) {
        for (i, d) in &self.dropouts {
            d.reseed(seed.wrapping_add(*i as u64));
        }
    }

    /// The optimizer state so far.
    pub fn state(&self) -> &OptimizerState {
        &self.state
    }

    /// The optimizer state, to resume a later `fit` from.
    pub fn into_state(self) -> OptimizerState {
        self.state
    }

    /// Features per input row.
    pub fn input_dim(&self) -> usize {
        self.input.iter().product()
    }

    /// Embedding size.
    pub fn output_dim(&self) -> usize {
        *self.lens.last().unwrap_or(&0)
    }

    /// One optimizer step on a batch of `labels.len()` pairs, stacked as in
    /// [`super::FusedTrainer::step`]: `fill(r, row)` writes stacked row `r` (pair `r`'s A
    /// input for `r < pairs`, pair `r − pairs`'s B input otherwise), in burn's `[c, h, w]`
    /// order.
    pub fn step(
        &mut self,
        labels: &[f32],
        fill: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Result<StepOutput> {
        let pairs = labels.len();
        if pairs == 0 {
            return Err(SiameseError::Empty(
                "a fused training batch with no pairs".into(),
            ));
        }
        let rows = 2 * pairs;
        let (dim, emb) = (self.input_dim(), self.output_dim());
        // Dropout masks over the stacked batch in burn's order (each layer its own stream),
        // then permuted to channels-last.
        for stage in &self.stages {
            if let Stage::Drop { d, len, chw } = stage {
                let raw = self.dropouts[*d].1.mask(rows * len);
                self.masks[*d] = match chw {
                    None => raw,
                    Some(hwc) => {
                        let mut out = vec![0.0f32; raw.len()];
                        for (src, dst) in raw.chunks_exact(*len).zip(out.chunks_exact_mut(*len)) {
                            to_hwc(src, dst, *hwc);
                        }
                        out
                    }
                };
            }
        }
        let chunk = rows.div_ceil(self.works.len()).max(1);
        let used = rows.div_ceil(chunk);
        let (stages, weights, lens, masks) = (&self.stages, &self.weights, &self.lens, &self.masks);
        let input = self.input;
        self.works[..used]
            .par_iter_mut()
            .enumerate()
            .for_each(|(c, w)| {
                let r0 = c * chunk;
                let n = chunk.min(rows - r0);
                forward(w, r0, n, input, stages, weights, lens, masks, fill);
            });
        self.emb.resize(rows * emb, 0.0);
        for (c, w) in self.works[..used].iter().enumerate() {
            let r0 = c * chunk;
            let n = chunk.min(rows - r0);
            let last = &w.acts[stages.len() - 1];
            self.emb[r0 * emb..(r0 + n) * emb].copy_from_slice(&last[..n * emb]);
        }
        self.gemb.resize(rows * emb, 0.0);
        let gemb = &mut self.gemb;
        let (loss, distances) =
            contrastive_backward(&self.emb, emb, labels, self.hyper.margin, |r, j, v| {
                gemb[r * emb + j] = v
            });
        let gemb = &self.gemb;
        self.works[..used]
            .par_iter_mut()
            .zip(self.grads[..used].par_iter_mut())
            .enumerate()
            .for_each(|(c, (w, grads))| {
                let r0 = c * chunk;
                let n = chunk.min(rows - r0);
                let start = &gemb[r0 * emb..(r0 + n) * emb];
                backward(
                    w,
                    grads,
                    n,
                    dim,
                    start,
                    stages,
                    weights,
                    lens,
                    &masks_rows(masks, stages, r0, n),
                );
            });
        let params = self
            .weights
            .iter_mut()
            .map(|w| [&mut w.kernel, &mut w.bias])
            .collect();
        apply_gradients(
            params,
            &mut self.state,
            &mut self.grads[..used],
            self.hyper.optimizer,
        );
        Ok(StepOutput { loss, distances })
    }

    /// Writes the current weights into `network`'s burn modules (same parameter ids).
    pub fn write_back(&self, network: &mut SiameseNetwork) {
        let Encoder::Conv(encoder) = &mut network.encoder else {
            return;
        };
        let mut weights = self.weights.iter();
        for module in &mut encoder.modules {
            let (bias, host) = match module {
                ConvModule::Conv(m) => {
                    let Some(host) = weights.next() else { return };
                    let Layout::Conv { c_in, k } = host.layout else {
                        return;
                    };
                    let f = host.fan_out;
                    let mut burn_w = vec![0.0f32; host.kernel.len()];
                    for o in 0..f {
                        for ci in 0..c_in {
                            for i in 0..k {
                                for j in 0..k {
                                    burn_w[o * c_in * k * k + (ci * k + i) * k + j] =
                                        host.kernel[((i * k + j) * c_in + ci) * f + o];
                                }
                            }
                        }
                    }
                    let device = m.weight.val().device();
                    let t =
                        Tensor::<4>::from_data(TensorData::new(burn_w, [f, c_in, k, k]), &device);
                    m.weight = Param::initialized(m.weight.id, trainable(t));
                    (m.bias.as_mut(), host)
                }
                ConvModule::Dense(m) => {
                    let Some(host) = weights.next() else { return };
                    let values = match host.layout {
                        Layout::Dense {
                            chw: Some([h, w, c]),
                        } => {
                            // Ours: rows in [h, w, c] order; burn's: [c, h, w].
                            let mut burn_w = vec![0.0f32; host.kernel.len()];
                            let n = host.fan_out;
                            for y in 0..h {
                                for x in 0..w {
                                    for ch in 0..c {
                                        let ours = ((y * w + x) * c + ch) * n;
                                        let theirs = ((ch * h + y) * w + x) * n;
                                        burn_w[theirs..theirs + n]
                                            .copy_from_slice(&host.kernel[ours..ours + n]);
                                    }
                                }
                            }
                            burn_w
                        }
                        _ => host.kernel.clone(),
                    };
                    let device = m.weight.val().device();
                    let t = Tensor::<2>::from_data(
                        TensorData::new(values, [host.fan_in, host.fan_out]),
                        &device,
                    );
                    m.weight = Param::initialized(m.weight.id, trainable(t));
                    (m.bias.as_mut(), host)
                }
                _ => continue,
            };
            if let Some(bias) = bias {
                let device = bias.val().device();
                let t = Tensor::<1>::from_data(
                    TensorData::new(host.bias.clone(), [host.fan_out]),
                    &device,
                );
                *bias = Param::initialized(bias.id, trainable(t));
            }
        }
    }
}
