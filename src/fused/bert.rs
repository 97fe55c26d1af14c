//! Host inference for BERT-family sentence encoders ([`crate::encoder::bert`]): the same
//! function as [`BertEncoder::forward`](crate::encoder::bert::BertEncoder::forward), on
//! weights copied out of burn once, without padding.
//!
//! A block of sentences is one matrix of tokens `[T, H]`, `T` the sum of the sentences'
//! lengths (no padding at all: each sentence is cut at its last token, which makes
//! batching by length unnecessary), so every dense layer is one product over all tokens
//! of the block:
//!
//! ```text
//! x = LN(E_word[t] + E_pos[i] + E_type[0])                                 [T, H]
//! per layer:  [Q K V] = x·[Wq Wk Wv] + [bq bk bv]                          [T, 3H]
//!             per sentence and head: softmax(Q Kᵀ/√dh + M) V  into c        [L, dh]
//!             x = LN(x + c·Wo + bo)                  (bias, residual and LN in one pass)
//!             x = LN(x + GELU(x·W₁ + b₁)·W₂ + b₂)    (bias and GELU in one pass)
//! pooling per sentence (mean, CLS or max over its tokens), optional L2 normalisation
//! ```
//!
//! Attention scores are only `L × L` per sentence and head, computed row by row and never
//! stored for the whole block. Blocks of at most about 256 tokens (at least two per thread)
//! run in parallel on rayon's pool, each with its thread's scratch buffers (no allocation in
//! steady state).

use std::cell::RefCell;

use rayon::prelude::*;

use super::conv::sized;
use super::mlp::{matmul_with, parallelism, read};
use crate::data::Matrix;
use crate::encoder::Encoder;
use crate::encoder::bert::{BertActivation, BertEncoder, BertPooling};
use crate::error::{Result, SiameseError};
use crate::siamese::SiameseNetwork;
use crate::simd::multiversion;

/// Tokens per parallel block (the products' rows): enough for efficient products, few
/// enough for the block's `[T, I]` feed-forward activations to stay in the L2/L3 caches.
const BLOCK_TOKENS: usize = 256;

/// Batches of at most this many tokens run as one block whose products gemm splits between
/// the threads, instead of one block per thread.
const WHOLE_BATCH_TOKENS: usize = 1024;

/// Rows per task of the element-wise passes of a block split between threads.
const PASS_ROWS: usize = 32;

/// One transformer layer's weights, row-major `[in, out]`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HostLayer {
    /// `[H, 3H]`: `Wq | Wk | Wv` side by side, and their biases `[3H]`.
    pub(super) qkv: Vec<f32>,
    pub(super) qkv_b: Vec<f32>,
    pub(super) out: Vec<f32>,
    pub(super) out_b: Vec<f32>,
    /// The attention block's layer norm `[γ, β]`.
    pub(super) norm1: [Vec<f32>; 2],
    pub(super) w1: Vec<f32>,
    pub(super) b1: Vec<f32>,
    pub(super) w2: Vec<f32>,
    pub(super) b2: Vec<f32>,
    pub(super) norm2: [Vec<f32>; 2],
}

/// A BERT encoder's weights on the host, for inference (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct FusedBert {
    pub(super) h: usize,
    pub(super) heads: usize,
    pub(super) inter: usize,
    pub(super) vocab: usize,
    pub(super) max_position: usize,
    pub(super) eps: f32,
    pub(super) activation: BertActivation,
    pub(super) pooling: BertPooling,
    pub(super) normalize: bool,
    /// `[vocab, H]`, `[max_position, H]`, the type-0 embedding `[H]`.
    pub(super) word: Vec<f32>,
    pub(super) position: Vec<f32>,
    pub(super) type0: Vec<f32>,
    pub(super) norm: [Vec<f32>; 2],
    pub(super) layers: Vec<HostLayer>,
}

/// A burn vector as host values.
fn vector(t: burn::tensor::Tensor<1>) -> Option<Vec<f32>> {
    crate::data::read_tensor(t).ok()
}

fn linear(l: &burn::nn::Linear) -> Option<(Vec<f32>, Vec<f32>)> {
    let w = read(l.weight.val())?;
    let b = vector(l.bias.as_ref()?.val())?;
    Some((w, b))
}

fn norm(l: &burn::nn::LayerNorm) -> Option<[Vec<f32>; 2]> {
    Some([vector(l.gamma.val())?, vector(l.beta.as_ref()?.val())?])
}

impl FusedBert {
    /// The host copy of `network`'s encoder, when it is a BERT encoder on the flex CPU
    /// device with biases in every dense layer and layer norm (as every BERT has).
    pub fn for_inference(network: &SiameseNetwork) -> Option<Self> {
        let Encoder::Bert(bert) = &network.encoder else {
            return None;
        };
        if bert.word.weight.val().device() != burn::tensor::Device::flex() {
            return None;
        }
        Self::from_encoder(bert)
    }

    pub(super) fn from_encoder(bert: &BertEncoder) -> Option<Self> {
        let [vocab, h] = bert.word.weight.dims();
        let [max_position, _] = bert.position.weight.dims();
        let heads = bert.heads();
        if heads == 0 || h % heads != 0 {
            return None;
        }
        let mut layers = Vec::with_capacity(bert.layers.len());
        let mut inter = 0;
        for l in &bert.layers {
            let (q, qb) = linear(&l.query)?;
            let (k, kb) = linear(&l.key)?;
            let (v, vb) = linear(&l.value)?;
            let mut qkv = Vec::with_capacity(3 * h * h);
            for r in 0..h {
                for m in [&q, &k, &v] {
                    qkv.extend_from_slice(&m[r * h..(r + 1) * h]);
                }
            }
            let (out, out_b) = linear(&l.attention_out)?;
            let (w1, b1) = linear(&l.intermediate)?;
            let (w2, b2) = linear(&l.output)?;
            inter = b1.len();
            layers.push(HostLayer {
                qkv,
                qkv_b: [qb, kb, vb].concat(),
                out,
                out_b,
                norm1: norm(&l.attention_norm)?,
                w1,
                b1,
                w2,
                b2,
                norm2: norm(&l.output_norm)?,
            });
        }
        let types = read(bert.token_type.weight.val())?;
        Some(Self {
            h,
            heads,
            inter,
            vocab,
            max_position,
            eps: bert.layer_norm_eps() as f32,
            activation: bert.activation(),
            pooling: bert.pooling(),
            normalize: bert.normalize(),
            word: read(bert.word.weight.val())?,
            position: read(bert.position.weight.val())?,
            type0: types[..h].to_vec(),
            norm: norm(&bert.embedding_norm)?,
            layers,
        })
    }

    /// Embedding width `H`.
    pub fn output_dim(&self) -> usize {
        self.h
    }

    /// Sentence embeddings of rows of token ids (`[n, width]`, ids + 1 as floats, 0 =
    /// padding) → `[n, H]`; ids that are not whole numbers in `0..=vocab`, or rows longer
    /// than the position table, are errors naming `what`, the row and the column.
    pub fn embed(&self, x: &Matrix, what: &str) -> Result<Matrix> {
        let lens = self.lengths(x, what)?;
        let (h, width) = (self.h, x.cols());
        let mut out = vec![0.0f32; x.rows() * h];
        let total: usize = lens.iter().map(|&l| l.max(1)).sum();
        let threads = rayon::current_num_threads().max(1);
        if threads > 1 && total <= WHOLE_BATCH_TOKENS {
            // A small batch as one block: gemm splits each product between the threads
            // (larger products, the weights packed once), the other passes split by rows.
            SCRATCH.with(|s| {
                let s = &mut s.borrow_mut();
                self.embed_block(x.as_slice(), width, &lens, &mut out, s, threads);
            });
            return Matrix::new(x.rows(), h, out);
        }
        // Consecutive rows in blocks of at most about BLOCK_TOKENS tokens, at least two
        // per thread (a small batch in two blocks left one thread idle while the other
        // finished the longer one), of equal token counts.
        let count = total
            .div_ceil(BLOCK_TOKENS)
            .max(2 * threads)
            .min(lens.len().max(1));
        let target = total.div_ceil(count);
        let mut blocks = Vec::new();
        let (mut start, mut tokens) = (0, 0);
        for (r, &len) in lens.iter().enumerate() {
            tokens += len.max(1);
            if tokens >= target || r + 1 == lens.len() {
                blocks.push(start..r + 1);
                (start, tokens) = (r + 1, 0);
            }
        }
        let mut outs = Vec::with_capacity(blocks.len());
        let mut rest = out.as_mut_slice();
        for b in &blocks {
            let (head, tail) = rest.split_at_mut(b.len() * h);
            outs.push(head);
            rest = tail;
        }
        blocks.into_par_iter().zip(outs).for_each(|(rows, dst)| {
            let x = &x.as_slice()[rows.start * width..rows.end * width];
            SCRATCH.with(|s| {
                self.embed_block(x, width, &lens[rows], dst, &mut s.borrow_mut(), 1);
            });
        });
        Matrix::new(x.rows(), h, out)
    }

    /// Each row's length: one past its last token (its `[SEP]`), checking every id.
    fn lengths(&self, x: &Matrix, what: &str) -> Result<Vec<usize>> {
        self.lengths_of(x.as_slice(), x.cols(), what)
    }

    /// [`Self::lengths`] of rows of `width` ids stored one after the other in `x`.
    pub(super) fn lengths_of(&self, x: &[f32], width: usize, what: &str) -> Result<Vec<usize>> {
        let mut lens = Vec::with_capacity(x.len() / width.max(1));
        for (r, row) in x.chunks_exact(width.max(1)).enumerate() {
            let mut len = 0;
            for (c, &v) in row.iter().enumerate() {
                if !(v >= 0.0 && v <= self.vocab as f32 && v.fract() == 0.0) {
                    return Err(SiameseError::invalid(
                        what,
                        format!(
                            "row {r}, column {c} is {v}; token rows hold whole numbers from 0 \
                             (padding) to {} (the vocabulary's ids + 1)",
                            self.vocab
                        ),
                    ));
                }
                if v > 0.0 {
                    len = c + 1;
                }
            }
            if len > self.max_position {
                return Err(SiameseError::shape(
                    what,
                    format!("at most {} tokens per row", self.max_position),
                    format!("row {r} with {len}"),
                ));
            }
            lens.push(len);
        }
        Ok(lens)
    }

    /// Embeddings of one block of rows into `dst` (`[rows, H]`), its products and passes
    /// split between `threads` threads (1: all on the calling thread).
    fn embed_block(
        &self,
        x: &[f32],
        width: usize,
        lens: &[usize],
        dst: &mut [f32],
        s: &mut Scratch,
        threads: usize,
    ) {
        let parallelism = parallelism(threads);
        let mm = |d: &mut [f32], shape, l: &[f32], ls, r: &[f32], rs| {
            matmul_with(d, shape, l, ls, r, rs, false, parallelism);
        };
        let (h, inter) = (self.h, self.inter);
        // A row without tokens runs as one masked padding token (through burn its states
        // depend on the longest row of its batch; mean pooling gives 0 either way).
        let spans: Vec<usize> = lens.iter().map(|&l| l.max(1)).collect();
        let t: usize = spans.iter().sum();
        let xs = sized(&mut s.x, t * h);
        let mask = sized(&mut s.mask, t);
        let mut at = 0;
        for (row, &len) in x.chunks_exact(width).zip(&spans) {
            for p in 0..len {
                let id = row.get(p).copied().unwrap_or(0.0);
                mask[at] = if id > 0.0 { 1.0 } else { 0.0 };
                let word = &self.word[(id as usize).saturating_sub(1) * h..][..h];
                let pos = &self.position[p * h..][..h];
                let dst = &mut xs[at * h..(at + 1) * h];
                for (((d, w), p), y) in dst.iter_mut().zip(word).zip(pos).zip(&self.type0) {
                    *d = w + p + y;
                }
                at += 1;
            }
        }
        layer_norm(xs, None, None, &self.norm, self.eps, h);
        let qkv = sized(&mut s.qkv, t * 3 * h);
        let ctx = sized(&mut s.ctx, t * h);
        let tmp = sized(&mut s.tmp, t * h);
        let inner = sized(&mut s.inner, t * inter);
        let longest = spans.iter().copied().max().unwrap_or(1);
        let probs = sized(&mut s.probs, self.heads * longest * longest);
        let tanh = self.activation == BertActivation::GeluTanh;
        for l in &self.layers {
            mm(qkv, (t, 3 * h, h), xs, (h, 1), &l.qkv, (3 * h, 1));
            if threads > 1 {
                qkv.par_chunks_mut(PASS_ROWS * 3 * h)
                    .for_each(|c| add_bias(c, &l.qkv_b));
                self.attend_split(qkv, mask, &spans, ctx, threads);
            } else {
                add_bias(qkv, &l.qkv_b);
                attend(qkv, mask, &spans, ctx, probs, h, self.heads);
            }
            mm(tmp, (t, h, h), ctx, (h, 1), &l.out, (h, 1));
            self.residual_norm(xs, tmp, &l.out_b, &l.norm1, threads);
            mm(inner, (t, inter, h), xs, (h, 1), &l.w1, (inter, 1));
            if threads > 1 {
                inner
                    .par_chunks_mut(PASS_ROWS * inter)
                    .for_each(|c| bias_gelu(c, &l.b1, tanh));
            } else {
                bias_gelu(inner, &l.b1, tanh);
            }
            mm(tmp, (t, h, inter), inner, (inter, 1), &l.w2, (h, 1));
            self.residual_norm(xs, tmp, &l.b2, &l.norm2, threads);
        }
        let mut at = 0;
        for (e, &len) in dst.chunks_exact_mut(h).zip(&spans) {
            let states = &xs[at * h..(at + len) * h];
            pool(e, states, &mask[at..at + len], self.pooling);
            if self.normalize {
                let norm = e.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                e.iter_mut().for_each(|v| *v /= norm);
            }
            at += len;
        }
    }
}

impl FusedBert {
    /// `x = LN(x + y + b)` per token, split by rows between `threads` threads.
    fn residual_norm(
        &self,
        x: &mut [f32],
        y: &[f32],
        b: &[f32],
        norm: &[Vec<f32>; 2],
        threads: usize,
    ) {
        let h = self.h;
        if threads > 1 {
            x.par_chunks_mut(PASS_ROWS * h)
                .zip(y.par_chunks(PASS_ROWS * h))
                .for_each(|(x, y)| layer_norm(x, Some(y), Some(b), norm, self.eps, h));
        } else {
            layer_norm(x, Some(y), Some(b), norm, self.eps, h);
        }
    }

    /// [`attend`] with the sentences split into groups of about equal token counts, one
    /// task each (each with its own row of scores).
    fn attend_split(
        &self,
        qkv: &[f32],
        mask: &[f32],
        spans: &[usize],
        ctx: &mut [f32],
        threads: usize,
    ) {
        let h = self.h;
        let total: usize = spans.iter().sum();
        let target = total.div_ceil(2 * threads).max(1);
        let mut groups = Vec::new();
        let (mut first, mut t0, mut tokens) = (0, 0, 0);
        let mut rest = ctx;
        for (i, &len) in spans.iter().enumerate() {
            tokens += len;
            if tokens >= target || i + 1 == spans.len() {
                let (head, tail) = rest.split_at_mut(tokens * h);
                groups.push((first..i + 1, t0, head));
                rest = tail;
                (first, t0, tokens) = (i + 1, t0 + tokens, 0);
            }
        }
        groups.into_par_iter().for_each(|(range, t0, ctx)| {
            let group = &spans[range];
            let n: usize = group.iter().sum();
            let longest = group.iter().copied().max().unwrap_or(1);
            let mut p = vec![0.0f32; self.heads * longest * longest];
            let qkv = &qkv[t0 * 3 * h..(t0 + n) * 3 * h];
            attend(qkv, &mask[t0..t0 + n], group, ctx, &mut p, h, self.heads);
        });
    }
}

/// A thread's buffers for [`FusedBert::embed_block`], kept between calls.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    mask: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    tmp: Vec<f32>,
    inner: Vec<f32>,
    probs: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// `e^a` for `a ≤ 0` in plain arithmetic that vectorises: `2^(a·log₂e)` split into an
/// integer power (the float's exponent bits) and `e^g`, `|g| ≤ ln2/2`, by its Taylor series
/// to `g⁷` (relative error below 1e-8); 0 below −87.
#[inline(always)]
pub(super) fn exp_neg(a: f32) -> f32 {
    let y = a.max(-87.0) * std::f32::consts::LOG2_E;
    let n = (y + 0.5).floor();
    let g = (y - n) * std::f32::consts::LN_2;
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * g + c;
    }
    let scale = f32::from_bits((((n as i32) + 127) as u32) << 23);
    if a < -87.0 { 0.0 } else { p * scale }
}

/// `erf(x)` by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), branch-free.
#[inline(always)]
pub(super) fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - poly * exp_neg(-z * z)).copysign(x)
}

multiversion! {
    /// `z = GELU(z + b)` per row: exact `x·Φ(x) = ½x(1 + erf(x/√2))`, or when `tanh` the
    /// form `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`, with `tanh u = 1 − 2/(e^{2u} + 1)`.
    fn bias_gelu(z: &mut [f32], b: &[f32], tanh: bool) {
        const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
        // √(2/π)
        const K: f32 = 0.797_884_6;
        for row in z.chunks_exact_mut(b.len()) {
            for (v, b) in row.iter_mut().zip(b) {
                let x = *v + b;
                *v = if tanh {
                    let u = K * (x + 0.044_715 * x * x * x);
                    // tanh(u) = sign(u)·(1 − 2/(e^{2|u|} + 1)) with e^{−2|u|} from exp_neg.
                    let e = exp_neg(-2.0 * u.abs());
                    let th = ((1.0 - e) / (1.0 + e)).copysign(u);
                    0.5 * x * (1.0 + th)
                } else {
                    0.5 * x * (1.0 + erf(x * SQRT_HALF))
                };
            }
        }
    }
}

multiversion! {
    /// `z += b` per row.
    pub(super) fn add_bias(z: &mut [f32], b: &[f32]) {
        for row in z.chunks_exact_mut(b.len()) {
            for (v, b) in row.iter_mut().zip(b) {
                *v += b;
            }
        }
    }
}

/// `Σ aᵢbᵢ` in eight partial sums (so that it vectorises).
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// [`attend_sentence`] for each sentence (`spans`: token counts) of `qkv` (`[T, 3H]`) into
/// `ctx` (`[T, H]`), `p` holding one sentence's probabilities (`heads · L²`).
fn attend(
    qkv: &[f32],
    mask: &[f32],
    spans: &[usize],
    ctx: &mut [f32],
    p: &mut [f32],
    h: usize,
    heads: usize,
) {
    let mut t0 = 0;
    for &len in spans {
        attend_sentence(
            &qkv[t0 * 3 * h..(t0 + len) * 3 * h],
            &mask[t0..t0 + len],
            &[],
            &mut p[..heads * len * len],
            &mut ctx[t0 * h..(t0 + len) * h],
            len,
            h,
            heads,
        );
        t0 += len;
    }
}

multiversion! {
    /// One sentence's attention: `probs` (`heads` blocks of `L × L`) and `ctx` (`[L, H]`) from
    /// its `qkv` (`[L, 3H]`), token mask and dropout mask of the probabilities (may be empty).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn attend_sentence(
        qkv: &[f32],
        mask: &[f32],
        pm: &[f32],
        probs: &mut [f32],
        ctx: &mut [f32],
        len: usize,
        h: usize,
        heads: usize,
    ) {
        let dh = h / heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let row = |i: usize| &qkv[i * 3 * h..(i + 1) * 3 * h];
        ctx.fill(0.0);
        for a in 0..heads {
            let (qo, ko, vo) = (a * dh, h + a * dh, 2 * h + a * dh);
            for i in 0..len {
                let at = (a * len + i) * len;
                let p = &mut probs[at..at + len];
                let q = &row(i)[qo..qo + dh];
                let mut max = f32::NEG_INFINITY;
                for (j, p) in p.iter_mut().enumerate() {
                    let bias = if mask[j] > 0.0 { 0.0 } else { f32::MIN };
                    *p = dot(q, &row(j)[ko..ko + dh]) * scale + bias;
                    max = max.max(*p);
                }
                let mut sum = 0.0;
                for p in p.iter_mut() {
                    *p = (*p - max).exp();
                    sum += *p;
                }
                p.iter_mut().for_each(|p| *p /= sum);
                let c = &mut ctx[i * h + qo..i * h + qo + dh];
                for (j, &pj) in p.iter().enumerate() {
                    let w = if pm.is_empty() { pj } else { pj * pm[at + j] };
                    for (c, v) in c.iter_mut().zip(&row(j)[vo..vo + dh]) {
                        *c += w * v;
                    }
                }
            }
        }
    }
}

multiversion! {
    /// Per token: `x = LN(x + y + b)` when `residual`, else `x = LN(x)`, with `LN(v) =
    /// γ·(v − mean)/√(var + ε) + β` (biased variance).
    #[allow(clippy::too_many_arguments)]
    fn layer_norm_rows(x: &mut [f32], y: &[f32], b: &[f32], gamma: &[f32], beta: &[f32], eps: f32, h: usize, residual: bool) {
        for (r, row) in x.chunks_exact_mut(h).enumerate() {
            if residual {
                for ((v, y), b) in row.iter_mut().zip(&y[r * h..(r + 1) * h]).zip(b) {
                    *v += y + b;
                }
            }
            let mean = row.iter().sum::<f32>() / h as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    }
}

/// [`layer_norm_rows`] with the residual `y + b` when given.
fn layer_norm(
    x: &mut [f32],
    y: Option<&[f32]>,
    b: Option<&[f32]>,
    norm: &[Vec<f32>; 2],
    eps: f32,
    h: usize,
) {
    let [gamma, beta] = norm;
    match (y, b) {
        (Some(y), Some(b)) => layer_norm_rows(x, y, b, gamma, beta, eps, h, true),
        _ => layer_norm_rows(x, &[], &[], gamma, beta, eps, h, false),
    }
}

/// One sentence's embedding from its token states `[len, H]` and token mask.
pub(super) fn pool(e: &mut [f32], states: &[f32], mask: &[f32], pooling: BertPooling) {
    let h = e.len();
    match pooling {
        BertPooling::Mean => {
            e.fill(0.0);
            let mut count = 0.0f32;
            for (s, &m) in states.chunks_exact(h).zip(mask) {
                count += m;
                for (e, s) in e.iter_mut().zip(s) {
                    *e += s * m;
                }
            }
            let count = count.max(1e-9);
            e.iter_mut().for_each(|v| *v /= count);
        }
        BertPooling::Cls => e.copy_from_slice(&states[..h]),
        BertPooling::Max => {
            e.fill(f32::NEG_INFINITY);
            for (s, &m) in states.chunks_exact(h).zip(mask) {
                for (e, s) in e.iter_mut().zip(s) {
                    // Padding set to −1e9 first, as sentence-transformers does.
                    *e = e.max(s * m + (m - 1.0) * 1e9);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor};

    use super::*;
    use crate::encoder::bert::BertEncoderConfig;

    /// Rows of ids + 1 (0 = padding): different lengths, a padding id inside a sentence,
    /// and a row filling the whole width.
    fn rows(width: usize, vocab: usize) -> Matrix {
        let sentences: [&[usize]; 4] = [&[3, 8, 10, 4], &[3, 6, 4], &[3, 7, 0, 9, 4], &[5; 8]];
        let mut data = vec![0.0f32; sentences.len() * width];
        for (r, s) in sentences.iter().enumerate() {
            for (c, &id) in s.iter().enumerate().take(width) {
                data[r * width + c] = (id % (vocab + 1)) as f32;
            }
        }
        Matrix::new(sentences.len(), width, data).unwrap()
    }

    /// The host path equals burn's forward pass for every pooling, both GELUs, with and
    /// without normalisation.
    #[test]
    fn host_embeddings_equal_burns() {
        let device = Device::flex();
        for (pooling, activation, normalize) in [
            (BertPooling::Mean, BertActivation::Gelu, true),
            (BertPooling::Cls, BertActivation::GeluTanh, false),
            (BertPooling::Max, BertActivation::Gelu, false),
        ] {
            let config = BertEncoderConfig {
                pooling,
                activation,
                normalize,
                ..BertEncoderConfig::tiny(50, 8)
            };
            let encoder = config.init(&device, 7).unwrap();
            let host = FusedBert::from_encoder(&encoder).unwrap();
            let x = rows(8, 50);
            let got = host.embed(&x, "input").unwrap();
            let t = Tensor::<1>::from_floats(x.as_slice(), &device).reshape([x.rows(), 8]);
            let want = crate::data::read_tensor(encoder.forward(t)).unwrap();
            assert_eq!(got.as_slice().len(), want.len());
            // A row of padding only is one masked token here; through burn its states
            // depend on the longest row of its batch (mean pooling gives 0 either way).
            let empty = host
                .embed(&Matrix::new(1, 8, vec![0.0; 8]).unwrap(), "x")
                .unwrap();
            assert!(empty.as_slice().iter().all(|v| v.is_finite()));
            for (i, (a, b)) in got.as_slice().iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{pooling:?} {activation:?}: value {i}: host {a} vs burn {b}"
                );
            }
        }
    }

    /// A batch too large for one block (blocks per thread) embeds each row as a small
    /// batch does (one block, products split between threads), and as the row alone.
    #[test]
    fn large_and_small_batches_agree() {
        let encoder = BertEncoderConfig::tiny(50, 8)
            .init(&Device::flex(), 3)
            .unwrap();
        let host = FusedBert::from_encoder(&encoder).unwrap();
        let x = rows(8, 50);
        let small = host.embed(&x, "x").unwrap();
        let copies = 2 * WHOLE_BATCH_TOKENS / 4;
        let big = Matrix::new(x.rows() * copies, 8, x.as_slice().repeat(copies)).unwrap();
        let large = host.embed(&big, "x").unwrap();
        for r in 0..big.rows() {
            let want = small.row(r % x.rows());
            for (a, b) in large.row(r).iter().zip(want) {
                assert!((a - b).abs() <= 1e-6, "row {r}: {a} vs {b}");
            }
        }
        for r in 0..x.rows() {
            let one = Matrix::new(1, 8, x.row(r).to_vec()).unwrap();
            let alone = host.embed(&one, "x").unwrap();
            for (a, b) in alone.as_slice().iter().zip(small.row(r)) {
                assert!((a - b).abs() <= 1e-6, "row {r} alone: {a} vs {b}");
            }
        }
    }

    #[test]
    fn bad_ids_are_named() {
        let encoder = BertEncoderConfig::tiny(50, 8)
            .init(&Device::flex(), 0)
            .unwrap();
        let host = FusedBert::from_encoder(&encoder).unwrap();
        for bad in [51.0, 2.5, -1.0, f32::NAN] {
            let mut x = rows(8, 50);
            let mut data = x.as_slice().to_vec();
            data[8 + 2] = bad;
            x = Matrix::new(x.rows(), 8, data).unwrap();
            let err = host.embed(&x, "input a").unwrap_err().to_string();
            assert!(
                err.contains("input a") && err.contains("row 1, column 2"),
                "{err}"
            );
        }
    }
}
