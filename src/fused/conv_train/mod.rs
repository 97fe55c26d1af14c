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
//! batch norm (training mode; per channel over the whole stacked batch, N values each):
//!           μ, σ² = mean and biased variance      x̂ = (x − μ)/√(σ² + ε)      y = γ·x̂ + β
//!           running ← (1 − momentum)·running + momentum·(μ, σ²)   (burn's update)
//!           ∂γ = Σ gy·x̂    ∂β = Σ gy    ∂x = γ/√(σ² + ε) · (gy − Σgy/N − x̂·Σ(gy·x̂)/N)
//! ```
//!
//! Batch norm needs the statistics of the whole batch, so each pass runs in segments between
//! batch-norm stages, with one reduction over the threads' partial sums at each.
//!
//! Covered: valid and same padding, any stride, ReLU or linear convolutions, max-pooling,
//! batch norm on maps or features, dropout on maps or rows, flatten, dense layers (ReLU,
//! linear, sigmoid, tanh) and l2-normalisation — the `faces`, `koch-cpu` and `signatures`
//! encoders — with every head and loss of `fused::loss` (Euclidean, Manhattan and cosine
//! distances; contrastive, triplet, cosine-mse and exp-mse losses; the weighted-L1 head with
//! binary cross-entropy). Tests compare losses, every gradient and the weights after
//! optimizer steps with burn's autodiff.

use burn::tensor::{Device, Tensor};
use rayon::prelude::*;

use super::conv::{chw_to_hwc, conv_geometry, host_conv_kernel, read_bias};
use super::loss::{HostBatch, HostLoss};
use super::mlp::read;
use super::optimizer::OptimizerState;
use super::trainer::{FusedHyper, Grads, StepOutput, apply_gradients, check_batch};
use pass::{backward, begin_backward, forward, load, masks_rows, norm_sums};

mod direct;
mod kernels;
mod pass;
#[cfg(test)]
mod tests;
mod write_back;
use crate::encoder::conv::{ConvEncoder, ConvLayerConfig as L, ConvModule, Padding};
use crate::encoder::{Activation, Encoder, SeededDropout};
use crate::error::Result;
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
    /// A batch norm's `γ` (kernel) and `β` (bias), `[features]`, in `[c, h, w]` order after
    /// a flatten of those maps.
    Norm { chw: Option<[usize; 3]> },
}

/// A batch-norm stage's running statistics (host order) and settings.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NormState {
    mean: Vec<f32>,
    var: Vec<f32>,
    momentum: f32,
    epsilon: f32,
}

/// A batch-norm stage's statistics over the current batch: per channel the mean and
/// `1/√(var + ε)` (biased variance, as burn's training forward), then in the backward pass
/// `Σ gy` and `Σ gy·x̂`, over `count` values per channel.
#[derive(Debug, Clone, Default)]
pub(super) struct NormBatch {
    pub(super) mean: Vec<f32>,
    pub(super) inv: Vec<f32>,
    pub(super) sum_g: Vec<f32>,
    pub(super) sum_gx: Vec<f32>,
    pub(super) count: usize,
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
    /// Batch norm in training mode over `c` channels (innermost), weights `w`, statistics
    /// `stat`.
    Norm {
        c: usize,
        w: usize,
        stat: usize,
    },
    L2,
}

/// One thread's buffers: its rows' input, every stage's output, batch-norm `x̂`, pooling
/// argmaxes, gradient ping-pong buffers and scratch.
#[derive(Debug, Default)]
pub(super) struct Work {
    pub(super) x: Vec<f32>,
    pub(super) acts: Vec<Vec<f32>>,
    /// The normalised input `x̂` of each batch-norm stage (empty for other stages).
    pub(super) xhat: Vec<Vec<f32>>,
    pub(super) argmax: Vec<Vec<u32>>,
    pub(super) g: [Vec<f32>; 2],
    /// Which of `g` holds the current gradient.
    pub(super) cur: usize,
    /// Scratch: a block of images' im2col columns, then their gradient (and a row while
    /// the input is loaded).
    pub(super) dcols: Vec<f32>,
    /// Per-channel partial sums of a batch-norm stage.
    pub(super) acc: Vec<f64>,
    /// The backward pass's copy of the gradient entering the stages that run by chunks of
    /// images, and the ping-pong gradient buffers of one chunk.
    pub(super) gin: Vec<f32>,
    pub(super) chunk_g: [Vec<f32>; 2],
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
    pub(in crate::fused) hyper: FusedHyper,
    /// The encoder's dropout modules (sharing their mask streams) with their module index.
    dropouts: Vec<(usize, SeededDropout)>,
    /// Masks of the current batch per dropout stage, host order, `[rows, len]`.
    masks: Vec<Vec<f32>>,
    /// A mask in burn's order before its permutation.
    raw_mask: Vec<f32>,
    works: Vec<Work>,
    /// Each thread's weight gradients.
    grads: Vec<Grads>,
    /// Embeddings of the batch and their gradient, `[rows, emb]`.
    emb: Vec<f32>,
    gemb: Vec<f32>,
    /// The head and loss.
    loss: HostLoss,
    /// Index in `weights` of the weighted-L1 head's `[w, b]`, when the network has it.
    head: Option<usize>,
    /// Running statistics of each batch-norm stage.
    norms: Vec<NormState>,
    /// Each batch-norm stage's statistics over the current batch.
    norm_batch: Vec<NormBatch>,
    /// Indices of the batch-norm stages.
    norm_stages: Vec<usize>,
}

/// A stage's output shape and trainable weights from burn's modules; `None` for what this
/// trainer does not cover.
struct Builder {
    stages: Vec<Stage>,
    weights: Vec<Weights>,
    lens: Vec<usize>,
    dropouts: Vec<(usize, SeededDropout)>,
    norms: Vec<NormState>,
}

impl Builder {
    fn build(encoder: &ConvEncoder) -> Option<Self> {
        let config = encoder.config();
        let mut b = Self {
            stages: Vec::new(),
            weights: Vec::new(),
            lens: Vec::new(),
            dropouts: Vec::new(),
            norms: Vec::new(),
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
                L::BatchNorm => {
                    let Some((_, ConvModule::Norm(m))) = modules.next() else {
                        return None;
                    };
                    let (c, len, chw) = match (spatial, pending) {
                        (Some(hwc), _) => (hwc[2], hwc.iter().product(), None),
                        (None, chw) => (flat, flat, chw),
                    };
                    let n = m.gamma.val().dims()[0];
                    if n != c {
                        return None;
                    }
                    // burn's [c, h, w] feature order (after a flatten) to ours.
                    let values = |t: Tensor<1>| -> Option<Vec<f32>> {
                        let v = read(t.reshape([1, n]))?;
                        Some(match chw {
                            None => v,
                            Some(hwc) => {
                                let mut out = vec![0.0f32; n];
                                to_hwc(&v, &mut out, hwc);
                                out
                            }
                        })
                    };
                    b.weights.push(Weights {
                        kernel: values(m.gamma.val())?,
                        bias: values(m.beta.val())?,
                        fan_in: 1,
                        fan_out: n,
                        layout: Layout::Norm { chw },
                    });
                    b.norms.push(NormState {
                        mean: values(m.running_mean.value_sync())?,
                        var: values(m.running_var.value_sync())?,
                        momentum: m.momentum as f32,
                        epsilon: m.epsilon as f32,
                    });
                    b.push(
                        Stage::Norm {
                            c,
                            w: b.weights.len() - 1,
                            stat: b.norms.len() - 1,
                        },
                        len,
                    );
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
    /// A trainer for `network`, when it is a convolutional encoder with a head and loss this
    /// module covers (see `fused::loss`) on the flex device; the optimizer resumes from
    /// `state` when its shapes match.
    pub fn new(
        network: &SiameseNetwork,
        state: Option<OptimizerState>,
        hyper: FusedHyper,
    ) -> Option<Self> {
        let loss = HostLoss::new(network, hyper.loss, hyper.margin, hyper.miner)?;
        let Encoder::Conv(encoder) = &network.encoder else {
            return None;
        };
        let on_flex = encoder.modules.iter().all(|m| match m {
            ConvModule::Conv(c) => c.weight.val().device() == Device::flex(),
            ConvModule::Dense(d) => d.weight.val().device() == Device::flex(),
            ConvModule::Norm(n) => n.gamma.val().device() == Device::flex(),
            _ => true,
        });
        if !on_flex {
            return None;
        }
        let config = encoder.config();
        let mut b = Builder::build(encoder)?;
        let emb = *b.lens.last()?;
        let head = match &network.weighted_l1 {
            None => None,
            Some(layer) => {
                b.weights.push(Weights {
                    kernel: read(layer.weight.val())?,
                    bias: read_bias(layer.bias.as_ref(), 1)?,
                    fan_in: emb,
                    fan_out: 1,
                    layout: Layout::Dense { chw: None },
                });
                Some(b.weights.len() - 1)
            }
        };
        let shapes: Grads = b
            .weights
            .iter()
            .map(|w| [vec![0.0; w.kernel.len()], vec![0.0; w.bias.len()]])
            .collect();
        let state = OptimizerState::resume_or_fresh(state, &shapes, hyper.optimizer);
        let threads = rayon::current_num_threads().max(1);
        let works = (0..threads).map(|_| Work::default()).collect();
        let grads = vec![shapes; threads];
        let norm_stages = (b.stages.iter().enumerate())
            .filter(|(_, s)| matches!(s, Stage::Norm { .. }))
            .map(|(i, _)| i)
            .collect();
        Some(Self {
            input: [config.height, config.width, config.channels],
            masks: vec![Vec::new(); b.dropouts.len()],
            raw_mask: Vec::new(),
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
            loss,
            head,
            norm_batch: vec![NormBatch::default(); b.norms.len()],
            norms: b.norms,
            norm_stages,
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

    /// One optimizer step on a batch stacked as [`HostBatch`] says (see
    /// [`super::FusedTrainer::step`]): `fill(r, row)` writes stacked row `r` in burn's
    /// `[c, h, w]` order.
    pub fn step(
        &mut self,
        batch: HostBatch<'_>,
        fill: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Result<StepOutput> {
        let out = self.gradients(batch, fill)?;
        let used = self.used(batch.rows());
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
        Ok(out)
    }

    /// Threads that take part in a batch of `rows` rows, and the rows each takes.
    fn chunking(&self, rows: usize) -> (usize, usize) {
        let chunk = rows.div_ceil(self.works.len()).max(1);
        (rows.div_ceil(chunk), chunk)
    }

    fn used(&self, rows: usize) -> usize {
        self.chunking(rows).0
    }

    /// The forward and backward pass of one batch: the loss, the distances, each thread's
    /// weight gradients in `self.grads` (their sum is the batch's gradient) and the
    /// batch-norm running statistics updated; the weights stay as they are.
    pub(super) fn gradients(
        &mut self,
        batch: HostBatch<'_>,
        fill: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Result<StepOutput> {
        check_batch(&self.loss, batch)?;
        let rows = batch.rows();
        let (dim, emb) = (self.input_dim(), self.output_dim());
        self.draw_masks(rows);
        let (used, chunk) = self.chunking(rows);
        let span = |c: usize| (c * chunk, chunk.min(rows - c * chunk));
        let input = self.input;
        self.works[..used]
            .par_iter_mut()
            .enumerate()
            .for_each(|(c, w)| {
                let (r0, n) = span(c);
                load(w, r0, n, input, fill);
            });
        // Forward, segment by segment: each batch norm needs the whole batch's statistics.
        let mut start = 0;
        for k in 0..=self.norm_stages.len() {
            let end = self
                .norm_stages
                .get(k)
                .copied()
                .unwrap_or(self.stages.len());
            if k > 0 {
                // `start` is the batch norm that ended the previous segment.
                self.batch_statistics(start, used, chunk, rows);
            }
            let (stages, weights, lens, masks) =
                (&self.stages, &self.weights, &self.lens, &self.masks);
            let norms = &self.norm_batch;
            self.works[..used]
                .par_iter_mut()
                .enumerate()
                .for_each(|(c, w)| {
                    let (r0, n) = span(c);
                    let range = start..end;
                    forward(w, r0, n, range, dim, stages, weights, lens, masks, norms);
                });
            start = end;
        }
        self.emb.resize(rows * emb, 0.0);
        for (c, w) in self.works[..used].iter().enumerate() {
            let (r0, n) = span(c);
            let last = &w.acts[self.stages.len() - 1];
            self.emb[r0 * emb..(r0 + n) * emb].copy_from_slice(&last[..n * emb]);
        }
        self.gemb.resize(rows * emb, 0.0);
        let (loss, distances) = match self.head {
            None => self
                .loss
                .backward(&self.emb, emb, batch, None, &mut self.gemb, None),
            Some(h) => {
                let [w, b] = [&self.weights[h].kernel, &self.weights[h].bias];
                let (first, others) = self.grads.split_at_mut(1);
                for g in others {
                    g[h][0].fill(0.0);
                    g[h][1].fill(0.0);
                }
                let [gw, gb] = &mut first[0][h];
                self.loss.backward(
                    &self.emb,
                    emb,
                    batch,
                    Some([w, b]),
                    &mut self.gemb,
                    Some([gw, gb]),
                )
            }
        };
        let widest = self.lens.iter().copied().chain([dim]).max().unwrap_or(dim);
        let gemb = &self.gemb;
        self.works[..used]
            .par_iter_mut()
            .enumerate()
            .for_each(|(c, w)| {
                let (r0, n) = span(c);
                begin_backward(w, n, widest, &gemb[r0 * emb..(r0 + n) * emb]);
            });
        // Backward, segment by segment: each batch norm needs the whole batch's sums.
        let mut end = self.stages.len();
        for k in (0..=self.norm_stages.len()).rev() {
            let start = if k == 0 {
                0
            } else {
                self.norm_stages[k - 1] + 1
            };
            if end < self.stages.len() {
                self.gradient_sums(end - 1, used, chunk, rows);
            }
            let (stages, weights, lens, masks) =
                (&self.stages, &self.weights, &self.lens, &self.masks);
            let norms = &self.norm_batch;
            self.works[..used]
                .par_iter_mut()
                .zip(self.grads[..used].par_iter_mut())
                .enumerate()
                .for_each(|(c, (w, grads))| {
                    let (r0, n) = span(c);
                    let masks = &masks_rows(masks, stages, r0, n);
                    let range = start..end;
                    backward(w, grads, n, range, dim, stages, weights, lens, masks, norms);
                });
            end = start;
        }
        Ok(StepOutput { loss, distances })
    }

    /// Dropout masks over the stacked batch in burn's order (each layer its own stream),
    /// permuted to channels-last.
    fn draw_masks(&mut self, rows: usize) {
        for stage in &self.stages {
            if let Stage::Drop { d, len, chw } = stage {
                let dropout = &self.dropouts[*d].1;
                match chw {
                    None => dropout.mask_into(&mut self.masks[*d], rows * len),
                    Some(hwc) => {
                        dropout.mask_into(&mut self.raw_mask, rows * len);
                        let out = &mut self.masks[*d];
                        out.resize(rows * len, 0.0);
                        for (src, dst) in
                            (self.raw_mask.chunks_exact(*len)).zip(out.chunks_exact_mut(*len))
                        {
                            to_hwc(src, dst, *hwc);
                        }
                    }
                }
            }
        }
    }

    /// Per-channel sums over the batch for the batch-norm stage `si`, each thread's partial
    /// sums added in thread order (deterministic for a fixed number of threads).
    fn channel_sums(
        &mut self,
        si: usize,
        used: usize,
        chunk: usize,
        rows: usize,
        centre: Option<&[f32]>,
        backward: bool,
    ) -> Vec<f64> {
        let Stage::Norm { c, .. } = self.stages[si] else {
            unreachable!("channel sums of a batch-norm stage")
        };
        let (len, width) = (self.lens[si], if backward { 2 * c } else { c });
        self.works[..used]
            .par_iter_mut()
            .enumerate()
            .for_each(|(t, w)| {
                let n = chunk.min(rows - t * chunk);
                let mut acc = std::mem::take(&mut w.acc);
                acc.clear();
                acc.resize(width, 0.0);
                norm_sums(w, si, n, len, c, centre, backward, &mut acc);
                w.acc = acc;
            });
        let mut total = vec![0.0f64; width];
        for w in &self.works[..used] {
            for (t, v) in total.iter_mut().zip(&w.acc) {
                *t += v;
            }
        }
        total
    }

    /// The batch's mean and variance at the batch-norm stage `si` (over all rows and
    /// positions), and the running statistics updated as burn updates them:
    /// `running ← (1 − momentum)·running + momentum·batch` (biased variance).
    fn batch_statistics(&mut self, si: usize, used: usize, chunk: usize, rows: usize) {
        let Stage::Norm { c, stat, .. } = self.stages[si] else {
            unreachable!("statistics of a batch-norm stage")
        };
        let count = rows * self.lens[si] / c;
        let mean: Vec<f32> = (self.channel_sums(si, used, chunk, rows, None, false).iter())
            .map(|s| (s / count as f64) as f32)
            .collect();
        let var: Vec<f32> = (self.channel_sums(si, used, chunk, rows, Some(&mean), false))
            .iter()
            .map(|s| (s / count as f64) as f32)
            .collect();
        let state = &mut self.norms[stat];
        let m = state.momentum;
        for ch in 0..c {
            state.mean[ch] = (1.0 - m) * state.mean[ch] + m * mean[ch];
            state.var[ch] = (1.0 - m) * state.var[ch] + m * var[ch];
        }
        let nb = &mut self.norm_batch[stat];
        nb.inv = var
            .iter()
            .map(|v| 1.0 / (v + state.epsilon).sqrt())
            .collect();
        nb.mean = mean;
        nb.count = count;
    }

    /// `Σ gy` and `Σ gy·x̂` at the batch-norm stage `si`: `∂β` and `∂γ`, written as the
    /// first thread's gradients (the others' zero), and kept for `∂x`.
    fn gradient_sums(&mut self, si: usize, used: usize, chunk: usize, rows: usize) {
        let Stage::Norm { c, w, stat } = self.stages[si] else {
            unreachable!("gradient sums of a batch-norm stage")
        };
        let sums = self.channel_sums(si, used, chunk, rows, None, true);
        let nb = &mut self.norm_batch[stat];
        nb.sum_g = sums[..c].iter().map(|&v| v as f32).collect();
        nb.sum_gx = sums[c..].iter().map(|&v| v as f32).collect();
        for (t, g) in self.grads[..used].iter_mut().enumerate() {
            let [gk, gb] = &mut g[w];
            if t == 0 {
                gk.copy_from_slice(&nb.sum_gx);
                gb.copy_from_slice(&nb.sum_g);
            } else {
                gk.fill(0.0);
                gb.fill(0.0);
            }
        }
    }
}
