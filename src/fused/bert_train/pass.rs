//! The forward pass that keeps what the backward pass needs, and the backward pass, of a
//! BERT encoder on the host (see the [parent module](super) for the formulas).

use rayon::prelude::*;

use super::super::bert::{FusedBert, HostLayer, attend_sentence, dot, erf, exp_neg};
use super::super::mlp::{matmul_with, parallelism};
use super::super::trainer::{Grads, column_sums};
use crate::encoder::bert::{BertActivation, BertPooling};
use crate::simd::multiversion;

/// Rows per task of the element-wise passes split between threads.
const PASS_ROWS: usize = 16;

/// Slots of the optimizer's `[kernel, bias]` list: the embeddings first, then six per layer.
const WORD_POSITION: usize = 0;
const TYPE: usize = 1;
const EMB_NORM: usize = 2;
const PER_LAYER: usize = 6;
const QKV: usize = 0;
const OUT: usize = 1;
const NORM1: usize = 2;
const FF1: usize = 3;
const FF2: usize = 4;
const NORM2: usize = 5;

/// Slot of a layer's parameters.
pub(super) fn slot(layer: usize, which: usize) -> usize {
    3 + layer * PER_LAYER + which
}

/// Dropout masks of one step (`1/(1−p)` kept, 0 dropped; all empty without dropout).
#[derive(Debug, Default)]
pub(super) struct Masks {
    /// After the embeddings' layer norm, `[T, H]`.
    pub(super) emb: Vec<f32>,
    /// Per layer: attention probabilities (per sentence and head, `L × L`), the attention
    /// output `[T, H]` and the feed-forward output `[T, H]`.
    pub(super) layers: Vec<[Vec<f32>; 3]>,
}

impl Masks {
    fn on(&self) -> bool {
        !self.emb.is_empty()
    }
}

/// What one layer's backward pass reads.
#[derive(Debug, Default)]
struct LayerCache {
    /// The layer's input `[T, H]`.
    x: Vec<f32>,
    /// `[Q K V]` after the bias, `[T, 3H]`.
    qkv: Vec<f32>,
    /// Softmax probabilities before dropout, per sentence and head `L × L`.
    probs: Vec<f32>,
    /// Attention context `[T, H]`.
    ctx: Vec<f32>,
    /// First layer norm: normalised values and `1/σ` per token; its output `[T, H]`.
    xhat1: Vec<f32>,
    inv1: Vec<f32>,
    x1: Vec<f32>,
    /// Feed-forward pre-activation and activation `[T, I]`.
    u: Vec<f32>,
    a: Vec<f32>,
    /// Second layer norm.
    xhat2: Vec<f32>,
    inv2: Vec<f32>,
}

/// The forward pass's record and the backward pass's buffers, kept between steps.
#[derive(Debug, Default)]
pub(super) struct Cache {
    /// Tokens per sentence (at least 1), token mask (1 on tokens), each token's word row
    /// and position.
    pub(super) spans: Vec<usize>,
    mask: Vec<f32>,
    words: Vec<usize>,
    positions: Vec<usize>,
    /// Offset of each sentence's probabilities in a layer's `probs`.
    prob_at: Vec<usize>,
    xhat0: Vec<f32>,
    inv0: Vec<f32>,
    layers: Vec<LayerCache>,
    /// Last layer's output `[T, H]`.
    states: Vec<f32>,
    /// Pooled `[n, H]` before normalisation, and the embeddings `[n, H]`.
    pooled: Vec<f32>,
    pub(super) emb: Vec<f32>,
    /// Backward buffers.
    g: Vec<f32>,
    gt: Vec<f32>,
    gi: Vec<f32>,
    gqkv: Vec<f32>,
}

impl Cache {
    /// Total tokens.
    pub(super) fn tokens(&self) -> usize {
        self.mask.len()
    }

    /// Probabilities per layer (`heads · Σ L²`).
    pub(super) fn prob_len(&self, heads: usize) -> usize {
        heads * self.spans.iter().map(|l| l * l).sum::<usize>()
    }

    /// Lays out the tokens of `rows` (`width` ids each, lengths `lens`).
    pub(super) fn tokenize(&mut self, rows: &[f32], width: usize, lens: &[usize]) {
        self.spans.clear();
        self.spans.extend(lens.iter().map(|&l| l.max(1)));
        self.mask.clear();
        self.words.clear();
        self.positions.clear();
        self.prob_at.clear();
        let mut at = 0;
        for (row, &len) in rows.chunks_exact(width).zip(&self.spans) {
            self.prob_at.push(at);
            at += len * len;
            for p in 0..len {
                let id = row.get(p).copied().unwrap_or(0.0);
                self.mask.push(if id > 0.0 { 1.0 } else { 0.0 });
                self.words.push((id as usize).saturating_sub(1));
                self.positions.push(p);
            }
        }
    }
}

fn resize(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    v.resize(n, 0.0);
    &mut v[..n]
}

/// `dst = l · r` (or `dst += l · r`), `l: [m, k]`, `r: [k, n]`, row-major.
fn mm(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    l: &[f32],
    r: &[f32],
    acc: bool,
    t: usize,
) {
    matmul_with(dst, (m, n, k), l, (k, 1), r, (n, 1), acc, parallelism(t));
}

/// `dst = l · rᵀ` (or `+=`), `l: [m, k]`, `r: [n, k]`: a gradient through a weight `r`
/// stored `[in = n, out = k]`.
fn mm_nt(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    l: &[f32],
    r: &[f32],
    acc: bool,
    t: usize,
) {
    matmul_with(dst, (m, n, k), l, (k, 1), r, (1, k), acc, parallelism(t));
}

/// `dst = lᵀ · r`, `l: [k, m]`, `r: [k, n]`: a weight's gradient from its input `l` and
/// the output's gradient `r`, both with one row per token.
fn mm_tn(dst: &mut [f32], (m, n, k): (usize, usize, usize), l: &[f32], r: &[f32], t: usize) {
    matmul_with(dst, (m, n, k), l, (1, m), r, (n, 1), false, parallelism(t));
}

multiversion! {
    /// Per row of `z` (`[rows, H]`): `x̂ = (z − μ)/σ`, `y = γ·x̂ + β` into `z`, keeping `x̂`
    /// and `1/σ` (`σ = √(var + ε)`, biased variance).
    fn norm_rows(z: &mut [f32], xhat: &mut [f32], inv: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let h = gamma.len();
        for ((row, xh), iv) in z.chunks_exact_mut(h).zip(xhat.chunks_exact_mut(h)).zip(inv.iter_mut()) {
            let mean = row.iter().sum::<f32>() / h as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
            let s = 1.0 / (var + eps).sqrt();
            *iv = s;
            for (((v, x), g), b) in row.iter_mut().zip(xh.iter_mut()).zip(gamma).zip(beta) {
                *x = (*v - mean) * s;
                *v = *x * g + b;
            }
        }
    }
}

multiversion! {
    /// Per row: `g ← (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))` with `ĝ = γ·g`, the gradient of the
    /// layer norm's input from its output's; `∂γ += g·x̂`, `∂β += g` summed over rows.
    fn norm_rows_backward(g: &mut [f32], xhat: &[f32], inv: &[f32], gamma: &[f32], dgamma: &mut [f32], dbeta: &mut [f32]) {
        let h = gamma.len();
        for ((row, xh), &s) in g.chunks_exact_mut(h).zip(xhat.chunks_exact(h)).zip(inv) {
            let (mut m1, mut m2) = (0.0f32, 0.0f32);
            for ((((v, x), gm), dg), db) in row.iter().zip(xh).zip(gamma).zip(dgamma.iter_mut()).zip(dbeta.iter_mut()) {
                *dg += v * x;
                *db += v;
                let gh = v * gm;
                m1 += gh;
                m2 += gh * x;
            }
            let (m1, m2) = (m1 / h as f32, m2 / h as f32);
            for ((v, x), gm) in row.iter_mut().zip(xh).zip(gamma) {
                *v = s * (*v * gm - m1 - x * m2);
            }
        }
    }
}

multiversion! {
    /// `a = GELU(u + b)`, keeping `u + b` in `u`.
    fn bias_gelu_keep(u: &mut [f32], a: &mut [f32], b: &[f32], tanh: bool) {
        const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
        const K: f32 = 0.797_884_6;
        for (ur, ar) in u.chunks_exact_mut(b.len()).zip(a.chunks_exact_mut(b.len())) {
            for ((u, a), b) in ur.iter_mut().zip(ar.iter_mut()).zip(b) {
                let x = *u + b;
                *u = x;
                *a = if tanh {
                    let v = K * (x + 0.044_715 * x * x * x);
                    let e = exp_neg(-2.0 * v.abs());
                    0.5 * x * (1.0 + ((1.0 - e) / (1.0 + e)).copysign(v))
                } else {
                    0.5 * x * (1.0 + erf(x * SQRT_HALF))
                };
            }
        }
    }
}

multiversion! {
    /// `g ← g · GELU′(u)`: `Φ(u) + u·φ(u)` (exact), or the tanh form's derivative
    /// `½(1 + t) + ½u(1 − t²)·√(2/π)(1 + 3·0.044715u²)`.
    fn gelu_backward(g: &mut [f32], u: &[f32], tanh: bool) {
        const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
        // 1/√(2π)
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        const K: f32 = 0.797_884_6;
        for (g, &x) in g.iter_mut().zip(u) {
            let d = if tanh {
                let v = K * (x + 0.044_715 * x * x * x);
                let e = exp_neg(-2.0 * v.abs());
                let t = ((1.0 - e) / (1.0 + e)).copysign(v);
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * K * (1.0 + 3.0 * 0.044_715 * x * x)
            } else {
                0.5 * (1.0 + erf(x * SQRT_HALF)) + x * INV_SQRT_2PI * exp_neg(-0.5 * x * x)
            };
            *g *= d;
        }
    }
}

multiversion! {
    /// `t ← (t + b)·m` per row (`m` empty: no dropout), then `x ← x + t` (the residual).
    fn bias_drop_residual(t: &mut [f32], b: &[f32], m: &[f32], x: &mut [f32]) {
        for (r, (tr, xr)) in t.chunks_exact_mut(b.len()).zip(x.chunks_exact_mut(b.len())).enumerate() {
            if m.is_empty() {
                for ((t, b), x) in tr.iter_mut().zip(b).zip(xr.iter_mut()) {
                    *t += b;
                    *x += *t;
                }
            } else {
                let mr = &m[r * b.len()..(r + 1) * b.len()];
                for (((t, b), x), m) in tr.iter_mut().zip(b).zip(xr.iter_mut()).zip(mr) {
                    *t = (*t + b) * m;
                    *x += *t;
                }
            }
        }
    }
}

/// A dense layer's gradients from its input `x` (`[T, fan_in]`) and its output's gradient
/// `g` (`[T, fan_out]`): `∂W = xᵀ·g` and `∂b = Σ_rows g` into `slot` (`[∂W, ∂b]`).
fn dense_grads(
    slot: &mut [Vec<f32>; 2],
    x: &[f32],
    g: &[f32],
    (fan_in, fan_out, t): (usize, usize, usize),
    threads: usize,
) {
    let [dw, db] = slot;
    column_sums(db, g, true);
    mm_tn(dw, (fan_in, fan_out, t), x, g, threads);
}

/// [`norm_rows_backward`] with `∂γ, ∂β` accumulated into `slot` (`[∂γ, ∂β]`).
fn norm_grads(g: &mut [f32], xhat: &[f32], inv: &[f32], gamma: &[f32], slot: &mut [Vec<f32>; 2]) {
    let [dgamma, dbeta] = slot;
    norm_rows_backward(g, xhat, inv, gamma, dgamma, dbeta);
}

/// `dst ← src ⊙ m` (a copy when `m` is empty).
fn masked_copy(dst: &mut [f32], src: &[f32], m: &[f32]) {
    if m.is_empty() {
        dst.copy_from_slice(src);
    } else {
        for ((d, s), m) in dst.iter_mut().zip(src).zip(m) {
            *d = s * m;
        }
    }
}

/// Sentences split into about `2 × threads` groups of equal token counts: `(first
/// sentence, end sentence, first token, tokens)`.
fn groups(spans: &[usize], threads: usize) -> Vec<(usize, usize, usize, usize)> {
    let total: usize = spans.iter().sum();
    let target = total.div_ceil(2 * threads.max(1)).max(1);
    let mut out = Vec::new();
    let (mut first, mut t0, mut tokens) = (0, 0, 0);
    for (i, &len) in spans.iter().enumerate() {
        tokens += len;
        if tokens >= target || i + 1 == spans.len() {
            out.push((first, i + 1, t0, tokens));
            (first, t0, tokens) = (i + 1, t0 + tokens, 0);
        }
    }
    out
}

/// Splits `buf` into consecutive pieces of `sizes[i] · unit` values.
fn split_by(mut buf: &mut [f32], sizes: impl Iterator<Item = usize>) -> Vec<&mut [f32]> {
    let mut out = Vec::new();
    for n in sizes {
        let (head, tail) = buf.split_at_mut(n);
        out.push(head);
        buf = tail;
    }
    out
}

/// The gradient of one sentence's `qkv` (`gqkv`, overwritten) from its context's (`gctx`).
#[allow(clippy::too_many_arguments)]
fn attend_sentence_backward(
    qkv: &[f32],
    probs: &[f32],
    pm: &[f32],
    gctx: &[f32],
    gqkv: &mut [f32],
    len: usize,
    h: usize,
    heads: usize,
    gp: &mut Vec<f32>,
) {
    let dh = h / heads;
    let scale = 1.0 / (dh as f32).sqrt();
    gqkv.fill(0.0);
    gp.resize(len, 0.0);
    for a in 0..heads {
        let (qo, ko, vo) = (a * dh, h + a * dh, 2 * h + a * dh);
        for i in 0..len {
            let at = (a * len + i) * len;
            let p = &probs[at..at + len];
            let gc = &gctx[i * h + qo..i * h + qo + dh];
            // ∂L/∂P (through the dropout mask), and ∂L/∂V += P′ᵀ ∂L/∂ctx.
            let mut s = 0.0f32;
            for j in 0..len {
                let m = if pm.is_empty() { 1.0 } else { pm[at + j] };
                let v = &qkv[j * 3 * h + vo..j * 3 * h + vo + dh];
                let g = dot(gc, v) * m;
                gp[j] = g;
                s += p[j] * g;
                let w = p[j] * m;
                if w != 0.0 {
                    let gv = &mut gqkv[j * 3 * h + vo..j * 3 * h + vo + dh];
                    for (gv, c) in gv.iter_mut().zip(gc) {
                        *gv += w * c;
                    }
                }
            }
            // ∂L/∂S = P ⊙ (∂L/∂P − Σ P ∂L/∂P), then Q and K.
            for j in 0..len {
                let gs = p[j] * (gp[j] - s) * scale;
                if gs == 0.0 {
                    continue;
                }
                for d in 0..dh {
                    let k = qkv[j * 3 * h + ko + d];
                    let q = qkv[i * 3 * h + qo + d];
                    gqkv[i * 3 * h + qo + d] += gs * k;
                    gqkv[j * 3 * h + ko + d] += gs * q;
                }
            }
        }
    }
}

/// The encoder's forward pass over the tokens `cache.tokenize` laid out, keeping what the
/// backward pass needs; the embeddings end in `cache.emb` (`[n, H]`).
pub(super) fn forward(w: &FusedBert, masks: &Masks, c: &mut Cache, threads: usize) {
    let (h, t) = (w.h, c.tokens());
    let heads = w.heads;
    let tanh = w.activation == BertActivation::GeluTanh;
    if c.layers.len() != w.layers.len() {
        c.layers = (0..w.layers.len()).map(|_| LayerCache::default()).collect();
    }
    // Embeddings, their layer norm and dropout: the first layer's input.
    let mut x = std::mem::take(&mut c.layers[0].x);
    let xs = resize(&mut x, t * h);
    for (k, row) in xs.chunks_exact_mut(h).enumerate() {
        let word = &w.word[c.words[k] * h..][..h];
        let pos = &w.position[c.positions[k] * h..][..h];
        for (((d, a), b), y) in row.iter_mut().zip(word).zip(pos).zip(&w.type0) {
            *d = a + b + y;
        }
    }
    let xhat0 = resize(&mut c.xhat0, t * h);
    let inv0 = resize(&mut c.inv0, t);
    norm_rows(xs, xhat0, inv0, &w.norm[0], &w.norm[1], w.eps);
    if masks.on() {
        xs.iter_mut().zip(&masks.emb).for_each(|(v, m)| *v *= m);
    }
    c.layers[0].x = x;
    let plen = c.prob_len(heads);
    for (l, wl) in w.layers.iter().enumerate() {
        let lm = masks.layers.get(l);
        let next = forward_layer(w, wl, lm, c, l, threads, plen, tanh);
        match c.layers.get_mut(l + 1) {
            Some(n) => n.x = next,
            None => c.states = next,
        }
    }
    // Pooling and normalisation.
    let n = c.spans.len();
    resize(&mut c.pooled, n * h);
    let mut at = 0;
    for (s, &len) in c.spans.iter().enumerate() {
        let e = &mut c.pooled[s * h..(s + 1) * h];
        super::super::bert::pool(
            e,
            &c.states[at * h..(at + len) * h],
            &c.mask[at..at + len],
            w.pooling,
        );
        at += len;
    }
    resize(&mut c.emb, n * h).copy_from_slice(&c.pooled[..n * h]);
    if w.normalize {
        for e in c.emb.chunks_exact_mut(h) {
            let norm = e.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            e.iter_mut().for_each(|v| *v /= norm);
        }
    }
}

/// One layer forward; returns its output (the next layer's input).
#[allow(clippy::too_many_arguments)]
fn forward_layer(
    w: &FusedBert,
    wl: &HostLayer,
    lm: Option<&[Vec<f32>; 3]>,
    c: &mut Cache,
    l: usize,
    threads: usize,
    plen: usize,
    tanh: bool,
) -> Vec<f32> {
    let (h, inter, t, heads) = (w.h, w.inter, c.tokens(), w.heads);
    let none: &[f32] = &[];
    let (pm, am, fm) = match lm {
        Some([p, a, f]) => (p.as_slice(), a.as_slice(), f.as_slice()),
        None => (none, none, none),
    };
    let (spans, mask, prob_at) = (&c.spans, &c.mask, &c.prob_at);
    let lc = &mut c.layers[l];
    let qkv = resize(&mut lc.qkv, t * 3 * h);
    mm(qkv, (t, 3 * h, h), &lc.x, &wl.qkv, false, threads);
    qkv.par_chunks_mut(PASS_ROWS * 3 * h)
        .for_each(|r| super::super::bert::add_bias(r, &wl.qkv_b));
    let probs = resize(&mut lc.probs, plen);
    let ctx = resize(&mut lc.ctx, t * h);
    // Attention by groups of sentences.
    let gs = groups(spans, threads);
    let prob_sizes = gs
        .iter()
        .map(|g| heads * spans[g.0..g.1].iter().map(|l| l * l).sum::<usize>());
    let pieces = split_by(probs, prob_sizes.collect::<Vec<_>>().into_iter());
    let cpieces = split_by(
        ctx,
        gs.iter().map(|g| g.3 * h).collect::<Vec<_>>().into_iter(),
    );
    let qkv: &[f32] = qkv;
    gs.par_iter()
        .zip(pieces)
        .zip(cpieces)
        .for_each(|((&(s0, s1, t0, _), probs), ctx)| {
            let (mut tk, mut pk) = (t0, 0);
            for &len in &spans[s0..s1] {
                let pn = heads * len * len;
                let pm = if pm.is_empty() {
                    none
                } else {
                    &pm[heads * prob_at[s0] + pk..][..pn]
                };
                attend_sentence(
                    &qkv[tk * 3 * h..(tk + len) * 3 * h],
                    &mask[tk..tk + len],
                    pm,
                    &mut probs[pk..pk + pn],
                    &mut ctx[(tk - t0) * h..(tk - t0 + len) * h],
                    len,
                    h,
                    heads,
                );
                tk += len;
                pk += pn;
            }
        });
    // Output projection, bias, dropout, residual, layer norm.
    let mut z = lc.x.clone();
    let mut tmp = vec![0.0f32; t * h];
    mm(&mut tmp, (t, h, h), &lc.ctx, &wl.out, false, threads);
    bias_drop_residual(&mut tmp, &wl.out_b, am, &mut z);
    let xhat1 = resize(&mut lc.xhat1, t * h);
    let inv1 = resize(&mut lc.inv1, t);
    norm_rows(&mut z, xhat1, inv1, &wl.norm1[0], &wl.norm1[1], w.eps);
    lc.x1.clear();
    lc.x1.extend_from_slice(&z);
    // Feed-forward.
    let u = resize(&mut lc.u, t * inter);
    mm(u, (t, inter, h), &lc.x1, &wl.w1, false, threads);
    let a = resize(&mut lc.a, t * inter);
    u.par_chunks_mut(PASS_ROWS * inter)
        .zip(a.par_chunks_mut(PASS_ROWS * inter))
        .for_each(|(u, a)| bias_gelu_keep(u, a, &wl.b1, tanh));
    mm(&mut tmp, (t, h, inter), &lc.a, &wl.w2, false, threads);
    bias_drop_residual(&mut tmp, &wl.b2, fm, &mut z);
    let xhat2 = resize(&mut lc.xhat2, t * h);
    let inv2 = resize(&mut lc.inv2, t);
    norm_rows(&mut z, xhat2, inv2, &wl.norm2[0], &wl.norm2[1], w.eps);
    z
}

/// The backward pass from `gemb` (`∂L/∂e`, `[n, H]`): every parameter's gradient into
/// `grads` (overwritten), in the slots of [`slot`].
pub(super) fn backward(
    w: &FusedBert,
    masks: &Masks,
    c: &mut Cache,
    gemb: &[f32],
    grads: &mut Grads,
    threads: usize,
) {
    let (h, t, n) = (w.h, c.tokens(), c.spans.len());
    for [k, b] in grads.iter_mut() {
        k.fill(0.0);
        b.fill(0.0);
    }
    // Normalisation and pooling.
    let mut gv = gemb[..n * h].to_vec();
    if w.normalize {
        for ((g, e), v) in gv
            .chunks_exact_mut(h)
            .zip(c.emb.chunks_exact(h))
            .zip(c.pooled.chunks_exact(h))
        {
            let norm = v.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm <= 1e-12 {
                g.iter_mut().for_each(|g| *g /= 1e-12);
            } else {
                let eg = dot(e, g);
                for (g, e) in g.iter_mut().zip(e) {
                    *g = (*g - e * eg) / norm;
                }
            }
        }
    }
    let mut g = std::mem::take(&mut c.g);
    resize(&mut g, t * h).fill(0.0);
    let mut at = 0;
    for (s, &len) in c.spans.iter().enumerate() {
        let gs = &gv[s * h..(s + 1) * h];
        let m = &c.mask[at..at + len];
        let gx = &mut g[at * h..(at + len) * h];
        match w.pooling {
            BertPooling::Mean => {
                let count = m.iter().sum::<f32>().max(1e-9);
                for (row, &m) in gx.chunks_exact_mut(h).zip(m) {
                    if m > 0.0 {
                        row.iter_mut().zip(gs).for_each(|(r, g)| *r = g * m / count);
                    }
                }
            }
            BertPooling::Cls => gx[..h].copy_from_slice(gs),
            BertPooling::Max => {
                let states = &c.states[at * h..(at + len) * h];
                for d in 0..h {
                    let (mut best, mut arg) = (f32::NEG_INFINITY, 0);
                    for (k, &m) in m.iter().enumerate() {
                        let v = states[k * h + d] * m + (m - 1.0) * 1e9;
                        if v > best {
                            (best, arg) = (v, k);
                        }
                    }
                    gx[arg * h + d] = gs[d] * m[arg];
                }
            }
        }
        at += len;
    }
    for l in (0..w.layers.len()).rev() {
        backward_layer(w, masks.layers.get(l), c, l, &mut g, grads, threads);
    }
    // Embedding dropout, layer norm, and the three tables.
    if masks.on() {
        g.iter_mut().zip(&masks.emb).for_each(|(g, m)| *g *= m);
    }
    norm_grads(&mut g, &c.xhat0, &c.inv0, &w.norm[0], &mut grads[EMB_NORM]);
    let [dword, dpos] = &mut grads[WORD_POSITION];
    for (k, row) in g.chunks_exact(h).enumerate() {
        let (wi, pi) = (c.words[k] * h, c.positions[k] * h);
        dword[wi..wi + h]
            .iter_mut()
            .zip(row)
            .for_each(|(d, g)| *d += g);
        dpos[pi..pi + h]
            .iter_mut()
            .zip(row)
            .for_each(|(d, g)| *d += g);
    }
    let dtype = &mut grads[TYPE][0];
    for row in g.chunks_exact(h) {
        dtype[..h].iter_mut().zip(row).for_each(|(d, g)| *d += g);
    }
    c.g = g;
}

/// One layer backward: `g` (`∂L/∂` the layer's output, `[T, H]`) becomes `∂L/∂` its input.
fn backward_layer(
    w: &FusedBert,
    lm: Option<&[Vec<f32>; 3]>,
    c: &mut Cache,
    l: usize,
    g: &mut [f32],
    grads: &mut Grads,
    threads: usize,
) {
    let (h, inter, t, heads) = (w.h, w.inter, c.tokens(), w.heads);
    let tanh = w.activation == BertActivation::GeluTanh;
    let wl = &w.layers[l];
    let none: &[f32] = &[];
    let (pm, am, fm) = match lm {
        Some([p, a, f]) => (p.as_slice(), a.as_slice(), f.as_slice()),
        None => (none, none, none),
    };
    let mut gt = std::mem::take(&mut c.gt);
    let mut gi = std::mem::take(&mut c.gi);
    let mut gqkv = std::mem::take(&mut c.gqkv);
    let lc = &c.layers[l];
    // Second layer norm; the residual keeps its output's gradient in `g`.
    norm_grads(
        g,
        &lc.xhat2,
        &lc.inv2,
        &wl.norm2[0],
        &mut grads[slot(l, NORM2)],
    );
    let go = resize(&mut gt, t * h);
    masked_copy(go, g, fm);
    dense_grads(&mut grads[slot(l, FF2)], &lc.a, go, (inter, h, t), threads);
    let ga = resize(&mut gi, t * inter);
    mm_nt(ga, (t, inter, h), go, &wl.w2, false, threads);
    ga.par_chunks_mut(PASS_ROWS * inter)
        .zip(lc.u.par_chunks(PASS_ROWS * inter))
        .for_each(|(g, u)| gelu_backward(g, u, tanh));
    dense_grads(&mut grads[slot(l, FF1)], &lc.x1, ga, (h, inter, t), threads);
    mm_nt(g, (t, h, inter), ga, &wl.w1, true, threads);
    // First layer norm.
    norm_grads(
        g,
        &lc.xhat1,
        &lc.inv1,
        &wl.norm1[0],
        &mut grads[slot(l, NORM1)],
    );
    let gatt = resize(&mut gt, t * h);
    masked_copy(gatt, g, am);
    dense_grads(&mut grads[slot(l, OUT)], &lc.ctx, gatt, (h, h, t), threads);
    let gctx = resize(&mut gi, t * h);
    mm_nt(gctx, (t, h, h), gatt, &wl.out, false, threads);
    // Attention, by groups of sentences.
    let gq = resize(&mut gqkv, t * 3 * h);
    let (spans, prob_at) = (&c.spans, &c.prob_at);
    let gs = groups(spans, threads);
    let pieces = split_by(
        gq,
        gs.iter()
            .map(|g| g.3 * 3 * h)
            .collect::<Vec<_>>()
            .into_iter(),
    );
    let (qkv, probs, gctx): (&[f32], &[f32], &[f32]) = (&lc.qkv, &lc.probs, gctx);
    gs.par_iter()
        .zip(pieces)
        .for_each(|(&(s0, s1, t0, _), gq)| {
            let mut gp = Vec::new();
            let mut tk = t0;
            for (s, &len) in spans[s0..s1].iter().enumerate() {
                let pn = heads * len * len;
                let p0 = heads * prob_at[s0 + s];
                let pm = if pm.is_empty() {
                    none
                } else {
                    &pm[p0..p0 + pn]
                };
                attend_sentence_backward(
                    &qkv[tk * 3 * h..(tk + len) * 3 * h],
                    &probs[p0..p0 + pn],
                    pm,
                    &gctx[tk * h..(tk + len) * h],
                    &mut gq[(tk - t0) * 3 * h..(tk - t0 + len) * 3 * h],
                    len,
                    h,
                    heads,
                    &mut gp,
                );
                tk += len;
            }
        });
    dense_grads(&mut grads[slot(l, QKV)], &lc.x, gq, (h, 3 * h, t), threads);
    mm_nt(g, (t, h, 3 * h), gq, &wl.qkv, true, threads);
    c.gt = gt;
    c.gi = gi;
    c.gqkv = gqkv;
}
