//! Fused training ([`FusedTrainer`]): one optimizer step of an MLP Siamese network with the
//! contrastive loss, forward and backward over each thread's rows with hand-fused kernels.

use rayon::prelude::*;

use super::loss::{HostBatch, HostLoss};
use super::mlp::{FusedMlp, matmul};
use super::optimizer::{FusedOptimizer, OptimizerState};
use crate::encoder::{Encoder, SeededDropout};
use crate::error::{Result, SiameseError};
use crate::loss::LossKind;
use crate::siamese::SiameseNetwork;
use crate::simd::multiversion;

multiversion! {
    /// `h ← h ⊙ m` (dropout).
    pub(super) fn mul_assign(h: &mut [f32], m: &[f32]) {
        for (v, m) in h.iter_mut().zip(m) {
            *v *= m;
        }
    }
}

multiversion! {
    /// `g ← g ⊙ act′ ⊙ m` from the layer's output `h` (ReLU: where `h > 0`), `m` the dropout
    /// mask or empty.
    pub(super) fn backward_mask(g: &mut [f32], h: &[f32], m: &[f32], relu: bool) {
        match (relu, m.is_empty()) {
            (true, false) => {
                for ((g, &h), &m) in g.iter_mut().zip(h).zip(m) {
                    *g = if h > 0.0 { *g * m } else { 0.0 };
                }
            }
            (true, true) => {
                for (g, &h) in g.iter_mut().zip(h) {
                    *g = if h > 0.0 { *g } else { 0.0 };
                }
            }
            (false, false) => {
                for (g, &m) in g.iter_mut().zip(m) {
                    *g *= m;
                }
            }
            (false, true) => {}
        }
    }
}

multiversion! {
    /// `acc ← acc + Σ_rows g` (`g: [rows, acc.len()]`), or `acc ← Σ_rows g` when `fresh`.
    pub(super) fn column_sums(acc: &mut [f32], g: &[f32], fresh: bool) {
        if fresh {
            acc.fill(0.0);
        }
        for row in g.chunks_exact(acc.len()) {
            for (a, v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
    }
}

/// Hyper-parameters of one fused training run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusedHyper {
    /// The optimizer.
    pub optimizer: FusedOptimizer,
    /// The loss.
    pub loss: LossKind,
    /// Contrastive or triplet margin.
    pub margin: f32,
    /// The miner of class-labelled batches ([`HostBatch::Classes`]), if any.
    pub miner: Option<crate::loss::Miner>,
}

impl FusedHyper {
    /// The host form of a configured optimizer and loss, when the optimizer has one (see
    /// [`FusedOptimizer::from_config`]).
    pub fn from_config(
        optimizer: &crate::optim::OptimizerConfig,
        loss: &crate::loss::LossConfig,
    ) -> Option<Self> {
        Some(Self {
            optimizer: FusedOptimizer::from_config(optimizer)?,
            loss: loss.kind,
            margin: loss.margin,
            miner: loss.miner,
        })
    }
}

/// What one fused step reports: the batch's mean loss and each pair's distance.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutput {
    /// Mean loss of the batch.
    pub loss: f32,
    /// Distance of every pair of the batch (of triplets: every `d(a, p)`, then every
    /// `d(a, n)`).
    pub distances: Vec<f32>,
}

/// Per-thread weight gradients, `[kernel, bias]` per layer.
pub(super) type Grads = Vec<[Vec<f32>; 2]>;

/// Checks that `batch` has rows and the layout `loss` takes.
pub(super) fn check_batch(loss: &HostLoss, batch: HostBatch<'_>) -> Result<()> {
    if batch.is_empty() {
        return Err(SiameseError::Empty(
            "a fused training batch with no pairs".into(),
        ));
    }
    if !loss.takes(batch) {
        return Err(SiameseError::invalid(
            "training batch",
            "a loss with a miner trains on class-labelled samples, the triplet loss on \
             triplets and every other loss on pairs",
        ));
    }
    Ok(())
}

/// Sums the threads' gradients (`grads[t][layer] = [kernel, bias]`) into the first thread's
/// and applies one optimizer step to `params` (`[kernel, bias]` per layer), in parallel over
/// spans of parameters (square roots and divisions are not cheap).
pub(super) fn apply_gradients(
    params: Vec<[&mut Vec<f32>; 2]>,
    state: &mut OptimizerState,
    grads: &mut [Grads],
    optimizer: FusedOptimizer,
) {
    const SPAN: usize = 8192;
    let (first, others) = grads.split_at_mut(1);
    let others = &*others;
    let mut spans = Vec::new();
    let slots = state.first.iter_mut().zip(state.second.iter_mut());
    for (l, ((layer, (first_slot, second_slot)), grads)) in params
        .into_iter()
        .zip(slots)
        .zip(first[0].iter_mut())
        .enumerate()
    {
        let ([s1k, s1b], [s2k, s2b], [gk, gb]) = (first_slot, second_slot, grads);
        let [kernel, bias] = layer;
        let params = [(kernel, s1k, s2k, gk), (bias, s1b, s2b, gb)];
        for (p, (w, s1, s2, g)) in params.into_iter().enumerate() {
            let parts = w
                .chunks_mut(SPAN)
                .zip(s1.chunks_mut(SPAN))
                .zip(s2.chunks_mut(SPAN))
                .zip(g.chunks_mut(SPAN));
            for (s, (((w, s1), s2), g)) in parts.enumerate() {
                spans.push((l, p, s * SPAN, w, s1, s2, g));
            }
        }
    }
    state.steps += 1;
    let t = state.steps;
    spans
        .into_par_iter()
        .for_each(|(l, p, start, w, s1, s2, g)| {
            for other in others {
                column_sums(g, &other[l][p][start..start + g.len()], false);
            }
            optimizer.update(w, s1, s2, g, t);
        });
}

/// Trains an MLP Siamese network with the Euclidean distance and the contrastive loss, with
/// fused kernels (see the module docs) and any of the crate's optimizers.
#[derive(Debug)]
pub struct FusedTrainer {
    mlp: FusedMlp,
    state: OptimizerState,
    hyper: FusedHyper,
    loss: HostLoss,
    dropout: Option<SeededDropout>,
    /// Stacked inputs of the current batch, `[2·batch, input_dim]`: branch A then branch B.
    x: Vec<f32>,
    /// Activations per layer, `[2·batch, fan_out]`.
    acts: Vec<Vec<f32>>,
    /// Dropout masks per layer (empty without dropout).
    masks: Vec<Vec<f32>>,
    /// Gradient ping-pong buffers, `[2·batch, widest]`.
    grad: [Vec<f32>; 2],
    /// Weight gradients of each thread's rows.
    grads: Vec<Grads>,
    /// `∂L/∂e` of the batch, `[rows, emb]`.
    gemb: Vec<f32>,
}

impl FusedTrainer {
    /// A trainer for `network` (None when the fused path cannot compute it), resuming the
    /// optimizer from `state` when its shapes match.
    pub fn new(
        network: &SiameseNetwork,
        state: Option<OptimizerState>,
        hyper: FusedHyper,
    ) -> Option<Self> {
        let loss = HostLoss::new(network, hyper.loss, hyper.margin, hyper.miner)
            .filter(|l| !l.has_head())?;
        let mlp = FusedMlp::from_network(network)?;
        let dropout = match &network.encoder {
            Encoder::Mlp(m) => m.dropout.clone(),
            _ => None,
        };
        let zeros = |m: &FusedMlp| -> Grads {
            m.layers
                .iter()
                .map(|d| [vec![0.0; d.kernel.len()], vec![0.0; d.bias.len()]])
                .collect()
        };
        let state = OptimizerState::resume_or_fresh(state, &zeros(&mlp), hyper.optimizer);
        let threads = rayon::current_num_threads().max(1);
        let grads = (0..threads).map(|_| zeros(&mlp)).collect();
        Some(Self {
            acts: vec![Vec::new(); mlp.layers.len()],
            masks: vec![Vec::new(); mlp.layers.len()],
            mlp,
            state,
            hyper,
            loss,
            dropout,
            x: Vec::new(),
            gemb: Vec::new(),
            grad: [Vec::new(), Vec::new()],
            grads,
        })
    }

    /// Restarts the dropout mask stream from `seed`.
    pub fn reseed(&self, seed: u64) {
        if let Some(d) = &self.dropout {
            d.reseed(seed);
        }
    }

    /// The current weights.
    pub fn mlp(&self) -> &FusedMlp {
        &self.mlp
    }

    /// The optimizer state, to resume a later `fit` from.
    pub fn into_state(self) -> OptimizerState {
        self.state
    }

    /// The optimizer state so far (moments and step count).
    pub fn state(&self) -> &OptimizerState {
        &self.state
    }

    /// One optimizer step on a batch. The inputs are stacked as [`HostBatch`] says (pairs:
    /// `[2·pairs, input_dim]`, branch A then branch B): `fill(r, row)` writes stacked row `r`
    /// (for pairs, pair `r`'s A input for `r < pairs`, pair `r − pairs`'s B input
    /// otherwise). Each thread fills its own rows, so gathering a shuffled batch runs in
    /// parallel too.
    pub fn step(
        &mut self,
        batch: HostBatch<'_>,
        fill: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Result<StepOutput> {
        check_batch(&self.loss, batch)?;
        let rows = batch.rows();
        let dim = self.mlp.input_dim();
        self.x.resize(rows * dim, 0.0);
        let layers = self.mlp.layers.len();
        for (l, d) in self.mlp.layers.iter().enumerate() {
            self.acts[l].resize(rows * d.fan_out, 0.0);
        }
        // Dropout masks are drawn layer by layer over all rows, as the burn path draws them.
        if let Some(dropout) = &self.dropout {
            for l in 0..layers - 1 {
                let len = rows * self.mlp.layers[l].fan_out;
                dropout.mask_into(&mut self.masks[l], len);
            }
        }
        let widest = self.mlp.widest();
        for g in &mut self.grad {
            g.resize(rows * widest, 0.0);
        }
        let threads = self.grads.len();
        let chunk = rows.div_ceil(threads).max(1);

        // Forward, each thread on its own rows through every layer.
        {
            let mlp = &self.mlp;
            let masks = &self.masks;
            let mut views: Vec<Vec<&mut [f32]>> = self.x[..rows * dim]
                .chunks_mut(chunk * dim)
                .map(|x| vec![x])
                .collect();
            for (l, act) in self.acts.iter_mut().enumerate() {
                for (c, part) in act.chunks_mut(chunk * mlp.layers[l].fan_out).enumerate() {
                    views[c].push(part);
                }
            }
            views.into_par_iter().enumerate().for_each(|(c, mut bufs)| {
                let r0 = c * chunk;
                let (x, acts) = bufs.split_at_mut(1);
                let n = x[0].len() / dim;
                for (r, row) in x[0].chunks_exact_mut(dim).enumerate() {
                    fill(r0 + r, row);
                }
                for l in 0..layers {
                    let (done, rest) = acts.split_at_mut(l);
                    let input: &[f32] = if l == 0 { &x[0][..] } else { &done[l - 1][..] };
                    mlp.dense_forward(l, input, n, &mut rest[0][..]);
                    if !masks[l].is_empty() {
                        let w = mlp.layers[l].fan_out;
                        mul_assign(&mut rest[0][..], &masks[l][r0 * w..(r0 + n) * w]);
                    }
                }
            });
        }

        // Distances, loss and ∂L/∂embedding for both branches (cheap: one pass over pairs).
        let emb = self.mlp.output_dim();
        let e = &self.acts[layers - 1];
        self.gemb.resize(rows * emb, 0.0);
        let (loss, distances) = self
            .loss
            .backward(e, emb, batch, None, &mut self.gemb, None);
        // Gradient buffers are laid out per thread chunk: `[chunk rows, widest]` blocks.
        let g = &mut self.grad[0];
        for (r, src) in self.gemb.chunks_exact(emb).enumerate() {
            let at = (r / chunk) * chunk * widest + (r % chunk) * emb;
            g[at..at + emb].copy_from_slice(src);
        }
        // Backward, each thread on its own rows; weight gradients per thread.
        {
            let mlp = &self.mlp;
            let masks = &self.masks;
            let x = &self.x[..rows * dim];
            let acts = &self.acts;
            let [g0, g1] = &mut self.grad;
            let parts: Vec<_> = g0
                .chunks_mut(chunk * widest)
                .zip(g1.chunks_mut(chunk * widest))
                .zip(self.grads.iter_mut())
                .take(rows.div_ceil(chunk))
                .collect();
            parts
                .into_par_iter()
                .enumerate()
                .for_each(|(c, ((g_out, g_in), grads))| {
                    let r0 = c * chunk;
                    let n = (rows - r0).min(chunk);
                    // g_out holds ∂L/∂H of the current layer, laid out [n, fan_out].
                    let (mut cur, mut next) = (g_out, g_in);
                    for l in (0..layers).rev() {
                        let d = &mlp.layers[l];
                        let h = &acts[l][r0 * d.fan_out..(r0 + n) * d.fan_out];
                        let gz = &mut cur[..n * d.fan_out];
                        let mask: &[f32] = if masks[l].is_empty() {
                            &[]
                        } else {
                            &masks[l][r0 * d.fan_out..(r0 + n) * d.fan_out]
                        };
                        backward_mask(gz, h, mask, mlp.activated(l));
                        let input: &[f32] = if l == 0 {
                            &x[r0 * dim..(r0 + n) * dim]
                        } else {
                            let w = mlp.layers[l - 1].fan_out;
                            &acts[l - 1][r0 * w..(r0 + n) * w]
                        };
                        let [gw, gb] = &mut grads[l];
                        matmul(
                            gw,
                            (d.fan_in, d.fan_out, n),
                            input,
                            (1, d.fan_in),
                            gz,
                            (d.fan_out, 1),
                        );
                        column_sums(gb, gz, true);
                        if l > 0 {
                            matmul(
                                &mut next[..n * d.fan_in],
                                (n, d.fan_in, d.fan_out),
                                gz,
                                (d.fan_out, 1),
                                &d.kernel,
                                (1, d.fan_out),
                            );
                            std::mem::swap(&mut cur, &mut next);
                        }
                    }
                });
        }

        let used = rows.div_ceil(chunk);
        let params = self
            .mlp
            .layers
            .iter_mut()
            .map(|d| [&mut d.kernel, &mut d.bias])
            .collect();
        apply_gradients(
            params,
            &mut self.state,
            &mut self.grads[..used],
            self.hyper.optimizer,
        );
        Ok(StepOutput { loss, distances })
    }
}

/// The host trainer a model can take: the fused MLP path or the conv path
/// ([`super::ConvTrainer`]).
#[derive(Debug)]
pub enum HostTrainer {
    /// An MLP encoder.
    Mlp(FusedTrainer),
    /// A convolutional encoder.
    Conv(super::ConvTrainer),
    /// A BERT-family encoder.
    Bert(Box<super::BertTrainer>),
}

impl From<FusedTrainer> for HostTrainer {
    fn from(t: FusedTrainer) -> Self {
        Self::Mlp(t)
    }
}

impl HostTrainer {
    /// The host trainer for `network`, when one covers it (see [`FusedTrainer::new`] and
    /// [`super::ConvTrainer::new`]).
    pub fn new(
        network: &SiameseNetwork,
        state: Option<OptimizerState>,
        hyper: FusedHyper,
    ) -> Option<Self> {
        match &network.encoder {
            Encoder::Mlp(_) => FusedTrainer::new(network, state, hyper).map(Self::Mlp),
            Encoder::Conv(_) => super::ConvTrainer::new(network, state, hyper).map(Self::Conv),
            Encoder::Bert(_) => {
                super::BertTrainer::new(network, state, hyper).map(|t| Self::Bert(Box::new(t)))
            }
            _ => None,
        }
    }

    /// One optimizer step (see [`FusedTrainer::step`]).
    pub fn step(
        &mut self,
        batch: HostBatch<'_>,
        fill: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Result<StepOutput> {
        match self {
            Self::Mlp(t) => t.step(batch, fill),
            Self::Conv(t) => t.step(batch, fill),
            Self::Bert(t) => t.step(batch, fill),
        }
    }

    /// Restarts the dropout mask streams from `seed`.
    pub fn reseed(&self, seed: u64) {
        match self {
            Self::Mlp(t) => t.reseed(seed),
            Self::Conv(t) => t.reseed(seed),
            Self::Bert(t) => t.reseed(seed),
        }
    }

    /// The optimizer's learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            Self::Mlp(t) => t.hyper.optimizer.lr(),
            Self::Conv(t) => t.hyper.optimizer.lr(),
            Self::Bert(t) => t.hyper.optimizer.lr(),
        }
    }

    /// Sets the optimizer's learning rate (a schedule's step).
    pub fn set_lr(&mut self, lr: f32) {
        let optimizer = match self {
            Self::Mlp(t) => &mut t.hyper.optimizer,
            Self::Conv(t) => &mut t.hyper.optimizer,
            Self::Bert(t) => &mut t.hyper.optimizer,
        };
        *optimizer = optimizer.with_lr(lr);
    }

    /// Writes the current weights into `network` (same parameter ids).
    pub fn write_back(&self, network: &mut SiameseNetwork) {
        match self {
            Self::Mlp(t) => t.mlp().write_back(network),
            Self::Conv(t) => t.write_back(network),
            Self::Bert(t) => t.write_back(network),
        }
    }

    /// The optimizer state so far.
    pub fn state(&self) -> &OptimizerState {
        match self {
            Self::Mlp(t) => t.state(),
            Self::Conv(t) => t.state(),
            Self::Bert(t) => t.state(),
        }
    }

    /// The optimizer state, to resume a later `fit` from.
    pub fn into_state(self) -> OptimizerState {
        match self {
            Self::Mlp(t) => t.into_state(),
            Self::Conv(t) => t.into_state(),
            Self::Bert(t) => (*t).into_state(),
        }
    }
}
