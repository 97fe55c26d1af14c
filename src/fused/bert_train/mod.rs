//! Host training of BERT-family encoders ([`crate::encoder::bert`]): fine-tuning a
//! sentence-transformers model as the shared twin with the pair and triplet losses of
//! [`super::loss`], forward and backward on the host, computing what burn's autodiff
//! computes for [`BertEncoder::forward`](crate::encoder::bert::BertEncoder::forward).
//!
//! The batch's sentences are one matrix of tokens `[T, H]` without padding (as the host
//! inference path, [`super::FusedBert`], lays them out), so every dense layer's forward
//! and backward is one product over all tokens. With `x` a layer's input, `X̂`/`σ` a layer
//! norm's normalised input and deviation, `m` dropout masks and `g_v` = `∂L/∂v`:
//!
//! ```text
//! forward                                    backward
//! QKV = x·W_qkv + b                          g_x += g_QKV·W_qkvᵀ, ∂W_qkv = xᵀ·g_QKV
//! P = softmax(Q Kᵀ/√dh + M), c = (P⊙m₁) V    g_P = (g_c Vᵀ)⊙m₁, g_V = (P⊙m₁)ᵀ g_c,
//!                                            g_S = P⊙(g_P − rowsum(P⊙g_P)),
//!                                            g_Q = g_S K/√dh, g_K = g_Sᵀ Q/√dh
//! z₁ = x + (c·W_o + b_o)⊙m₂, x₁ = LN(z₁)     g_z = (1/σ)(ĝ − mean(ĝ) − X̂·mean(ĝ⊙X̂)),
//!                                            ĝ = γ⊙g_y, ∂γ = Σ g_y⊙X̂, ∂β = Σ g_y
//! u = x₁·W₁ + b₁, a = GELU(u)                g_u = g_a ⊙ GELU′(u)
//! z₂ = x₁ + (a·W₂ + b₂)⊙m₃, x₂ = LN(z₂)
//! ```
//!
//! then pooling (mean, CLS or max) and the optional L2 normalisation
//! (`g_v = (g_e − e(e·g_e))/‖v‖`), and at the bottom the embeddings' layer norm and
//! dropout, whose gradient is added to the word, position and type-0 rows each token used.
//! Weight gradients are products over the tokens (`xᵀ·g`); gemm splits each product
//! between the threads, and attention and the element-wise passes run by groups of
//! sentences or rows on rayon's pool.
//!
//! Dropout draws its masks from the encoder's own seeded stream, in this token layout (the
//! burn path draws them over its padded batch), so with dropout the two paths train on
//! different masks of the same rate; without dropout they compute the same function and
//! gradients (see the tests).

mod pass;
#[cfg(test)]
mod tests;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

use super::bert::FusedBert;
use super::loss::{HostBatch, HostLoss};
use super::mlp::trainable;
use super::optimizer::OptimizerState;
use super::trainer::{FusedHyper, Grads, StepOutput, apply_gradients, check_batch};
use crate::encoder::bert::BertEncoder;
use crate::encoder::{Encoder, SeededDropout};
use crate::error::Result;
use crate::siamese::SiameseNetwork;
use pass::{Cache, Masks, slot};

/// Trains a BERT encoder on the host (see the module docs).
#[derive(Debug)]
pub struct BertTrainer {
    bert: FusedBert,
    /// Token ids per input row.
    width: usize,
    pub(super) state: OptimizerState,
    pub(super) hyper: FusedHyper,
    loss: HostLoss,
    dropout: Option<SeededDropout>,
    grads: Vec<Grads>,
    /// An empty bias slot (the type embedding has none).
    empty: Vec<f32>,
    rows: Vec<f32>,
    gemb: Vec<f32>,
    masks: Masks,
    cache: Cache,
}

impl BertTrainer {
    /// A trainer for `network`, when it is a BERT encoder on the flex device without a
    /// weighted-L1 head, with a loss the host covers (see `fused::loss`); the optimizer
    /// resumes from `state` when its shapes match.
    pub fn new(
        network: &SiameseNetwork,
        state: Option<OptimizerState>,
        hyper: FusedHyper,
    ) -> Option<Self> {
        if network.weighted_l1.is_some() {
            return None;
        }
        let loss = HostLoss::new(network, hyper.loss, hyper.margin, hyper.miner)?;
        let Encoder::Bert(encoder) = &network.encoder else {
            return None;
        };
        if encoder.word.weight.val().device() != Device::flex() {
            return None;
        }
        let mut bert = FusedBert::from_encoder(encoder)?;
        let mut empty = Vec::new();
        let shapes: Grads = slots(&mut bert, &mut empty)
            .into_iter()
            .map(|[k, b]| [vec![0.0f32; k.len()], vec![0.0f32; b.len()]])
            .collect();
        debug_assert_eq!(shapes.len(), slot(bert.layers.len(), 0));
        let state = OptimizerState::resume_or_fresh(state, &shapes, hyper.optimizer);
        Some(Self {
            width: encoder.max_len(),
            bert,
            state,
            hyper,
            loss,
            dropout: encoder.dropout.clone(),
            grads: vec![shapes],
            empty,
            rows: Vec::new(),
            gemb: Vec::new(),
            masks: Masks::default(),
            cache: Cache::default(),
        })
    }

    /// Restarts the dropout mask stream from `seed` (as `BertEncoder::reseed` does).
    pub fn reseed(&self, seed: u64) {
        if let Some(d) = &self.dropout {
            d.reseed(seed);
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

    /// Token ids per input row.
    pub fn input_dim(&self) -> usize {
        self.width
    }

    /// Embedding size.
    pub fn output_dim(&self) -> usize {
        self.bert.h
    }

    /// One optimizer step on a batch stacked as [`HostBatch`] says: `fill(r, row)` writes
    /// stacked row `r` (token ids + 1, 0 = padding, [`Self::input_dim`] of them).
    pub fn step(
        &mut self,
        batch: HostBatch<'_>,
        fill: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Result<StepOutput> {
        let out = self.gradients(batch, fill)?;
        apply_gradients(
            slots(&mut self.bert, &mut self.empty),
            &mut self.state,
            &mut self.grads,
            self.hyper.optimizer,
        );
        Ok(out)
    }

    /// The forward and backward pass of one batch: the loss, the distances and the
    /// gradients in `self.grads[0]`; the weights stay as they are.
    pub(super) fn gradients(
        &mut self,
        batch: HostBatch<'_>,
        fill: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Result<StepOutput> {
        check_batch(&self.loss, batch)?;
        let (rows, width, h) = (batch.rows(), self.width, self.bert.h);
        self.rows.resize(rows * width, 0.0);
        for (r, row) in self.rows.chunks_exact_mut(width).enumerate() {
            fill(r, row);
        }
        let lens = self.bert.lengths_of(&self.rows, width, "training batch")?;
        self.cache.tokenize(&self.rows, width, &lens);
        self.draw_masks();
        let threads = rayon::current_num_threads().max(1);
        pass::forward(&self.bert, &self.masks, &mut self.cache, threads);
        self.gemb.resize(rows * h, 0.0);
        let (loss, distances) =
            self.loss
                .backward(&self.cache.emb, h, batch, None, &mut self.gemb, None);
        pass::backward(
            &self.bert,
            &self.masks,
            &mut self.cache,
            &self.gemb,
            &mut self.grads[0],
            threads,
        );
        Ok(StepOutput { loss, distances })
    }

    /// The step's dropout masks from the encoder's stream (none without dropout).
    fn draw_masks(&mut self) {
        let Some(d) = &self.dropout else {
            self.masks.emb.clear();
            self.masks.layers.clear();
            return;
        };
        let (t, h) = (self.cache.tokens(), self.bert.h);
        let probs = self.cache.prob_len(self.bert.heads);
        d.mask_into(&mut self.masks.emb, t * h);
        self.masks
            .layers
            .resize_with(self.bert.layers.len(), Default::default);
        for [p, a, f] in &mut self.masks.layers {
            d.mask_into(p, probs);
            d.mask_into(a, t * h);
            d.mask_into(f, t * h);
        }
    }

    /// Writes the current weights into `network`'s burn modules (same parameter ids).
    pub fn write_back(&self, network: &mut SiameseNetwork) {
        if let Encoder::Bert(encoder) = &mut network.encoder {
            write(&self.bert, encoder);
        }
    }
}

/// The weights of `b` as the optimizer's `[kernel, bias]` slots, in the order of
/// `pass::slot`: word and position embeddings, the type-0 embedding (with `empty` as its
/// bias), the embeddings' layer norm, then per layer the QKV and output projections, the
/// first layer norm, the two feed-forward layers and the second layer norm.
fn slots<'a>(b: &'a mut FusedBert, empty: &'a mut Vec<f32>) -> Vec<[&'a mut Vec<f32>; 2]> {
    let mut out: Vec<[&mut Vec<f32>; 2]> =
        vec![[&mut b.word, &mut b.position], [&mut b.type0, empty]];
    let [gamma, beta] = &mut b.norm;
    out.push([gamma, beta]);
    for l in &mut b.layers {
        let [g1, b1] = &mut l.norm1;
        let [g2, b2] = &mut l.norm2;
        out.extend([
            [&mut l.qkv, &mut l.qkv_b],
            [&mut l.out, &mut l.out_b],
            [g1, b1],
            [&mut l.w1, &mut l.b1],
            [&mut l.w2, &mut l.b2],
            [g2, b2],
        ]);
    }
    out
}

/// Writes host weights `b` (or gradients shaped as them) into `encoder`'s burn modules (same
/// parameter ids); the token-type table keeps its rows after the first.
fn write(b: &FusedBert, encoder: &mut BertEncoder) {
    let h = b.h;
    fn set2(p: &mut Param<Tensor<2>>, values: Vec<f32>, shape: [usize; 2]) {
        let device = p.val().device();
        let t = Tensor::<2>::from_data(TensorData::new(values, shape), &device);
        *p = Param::initialized(p.id, trainable(t));
    }
    fn set1(p: &mut Param<Tensor<1>>, values: &[f32]) {
        let device = p.val().device();
        let t = Tensor::<1>::from_data(TensorData::new(values.to_vec(), [values.len()]), &device);
        *p = Param::initialized(p.id, trainable(t));
    }
    fn set_linear(l: &mut burn::nn::Linear, w: Vec<f32>, bias: &[f32]) {
        let shape = l.weight.dims();
        set2(&mut l.weight, w, shape);
        if let Some(p) = l.bias.as_mut() {
            set1(p, bias);
        }
    }
    fn set_norm(l: &mut burn::nn::LayerNorm, [gamma, beta]: &[Vec<f32>; 2]) {
        set1(&mut l.gamma, gamma);
        if let Some(p) = l.beta.as_mut() {
            set1(p, beta);
        }
    }
    set2(&mut encoder.word.weight, b.word.clone(), [b.vocab, h]);
    set2(
        &mut encoder.position.weight,
        b.position.clone(),
        [b.max_position, h],
    );
    let types = encoder.token_type.weight.dims();
    if let Ok(mut table) = crate::data::read_tensor(encoder.token_type.weight.val()) {
        table[..h].copy_from_slice(&b.type0);
        set2(&mut encoder.token_type.weight, table, types);
    }
    set_norm(&mut encoder.embedding_norm, &b.norm);
    for (layer, host) in encoder.layers.iter_mut().zip(&b.layers) {
        // `W_qkv` is `[H, 3H]` with `Wq | Wk | Wv` side by side in each row.
        let part = |k: usize| -> Vec<f32> {
            host.qkv
                .chunks_exact(3 * h)
                .flat_map(|row| row[k * h..(k + 1) * h].iter().copied())
                .collect()
        };
        set_linear(&mut layer.query, part(0), &host.qkv_b[..h]);
        set_linear(&mut layer.key, part(1), &host.qkv_b[h..2 * h]);
        set_linear(&mut layer.value, part(2), &host.qkv_b[2 * h..]);
        set_linear(&mut layer.attention_out, host.out.clone(), &host.out_b);
        set_norm(&mut layer.attention_norm, &host.norm1);
        set_linear(&mut layer.intermediate, host.w1.clone(), &host.b1);
        set_linear(&mut layer.output, host.w2.clone(), &host.b2);
        set_norm(&mut layer.output_norm, &host.norm2);
    }
}

#[cfg(test)]
impl BertTrainer {
    /// The last [`Self::gradients`]' gradients, shaped as the weights.
    fn gradients_as_weights(&self) -> FusedBert {
        let mut g = self.bert.clone();
        let mut empty = Vec::new();
        for ([k, b], [gk, gb]) in slots(&mut g, &mut empty).into_iter().zip(&self.grads[0]) {
            k.clone_from(gk);
            b.clone_from(gb);
        }
        g
    }
}
