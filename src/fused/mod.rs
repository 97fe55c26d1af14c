//! The fused CPU path for MLP Siamese networks: the same model, computed without a graph.
//!
//! On the flex backend every tensor op of the reference model is its own pass over memory, and
//! autodiff records and replays each one; at batch 1024 that framework work costs more than the
//! matrix products themselves. For a Siamese network whose encoder is an MLP (ReLU or linear
//! activations, optional dropout) on the flex CPU device, this module computes the very same
//! function with hand-fused kernels around `gemm`, the crate flex itself calls:
//!
//! ```text
//! forward, layer l:   Hₗ = act(Hₗ₋₁·Wₗ + bₗ) ⊙ Mₗ          (bias, activation and dropout mask Mₗ in one pass)
//! distance:           d = √max(Σ(eₐ − e_b)², ε)
//! contrastive loss:   L = mean(y·d² + (1 − y)·max(0, m − d)²)
//! ∂L/∂d = (2/B)·(y·d − (1 − y)·max(0, m − d)),  ∂L/∂eₐ = ∂L/∂d · (eₐ − e_b)/d = −∂L/∂e_b
//! backward, layer l:  Gₗ = ∂L/∂Hₗ ⊙ act′ ⊙ Mₗ,   ∂L/∂Wₗ = Hₗ₋₁ᵀ·Gₗ,   ∂L/∂bₗ = Σ_rows Gₗ,
//!                     ∂L/∂Hₗ₋₁ = Gₗ·Wₗᵀ
//! RMSprop (Keras):    v ← ρ·v + (1 − ρ)·g²,   w ← w − lr·g/√(v + ε)
//!                     (or burn's Adam or SGD, with the formulas of `crate::optim`)
//! ```
//!
//! Work is split over rows, not inside each product: every rayon thread runs whole layers on
//! its own slice of the batch (both branches stacked, `[2·batch, input_dim]`, as the burn path
//! does), so there is one fork-join per phase instead of one per op. Per-thread weight
//! gradients are summed in the optimizer pass, so float rounding depends on the number of
//! threads: a fixed `RAYON_NUM_THREADS` gives bit-identical runs.
//!
//! Inference (`predict`, `evaluate`, `embed`) runs on weights packed once per model for an
//! AVX-512 kernel (`packed`), where the CPU has AVX-512, and through `gemm` otherwise. Inputs
//! are checked for NaN and ±∞ without a pass of their own: such a value makes every
//! first-layer pre-activation of its row non-finite, so only a block where that happens is
//! scanned to name the bad value. Convolutional encoders get host inference in [`conv`] (im2col
//! and the same kernel); [`HostEncoder`] picks the host path a model can take.
//!
//! The burn module stays the source of truth: weights are read from it when a `fit` or
//! `predict` starts and written back (same parameter ids) after every epoch. The results
//! match the burn path to float rounding (see the tests); `Siamese::set_fused(false)` runs
//! everything through burn instead.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use crate::data::Matrix;
use crate::distance::{ClampMinNan, Distance, EPSILON};
use crate::encoder::{Activation, Encoder, SeededDropout};
use crate::error::{Result, SiameseError};
use crate::siamese::SiameseNetwork;
use crate::simd::multiversion;

pub mod conv;
mod packed;
pub use conv::FusedConv;
use packed::PackedDense;

/// Whether a new model uses the fused path where it covers the model: always in the library
/// (see `Siamese::set_fused`); the crate's own unit tests read `SIAMESE_FUSED=0` so that CI can
/// run them once through burn alone.
pub fn enabled_by_default() -> bool {
    #[cfg(test)]
    {
        !matches!(
            std::env::var("SIAMESE_FUSED").as_deref(),
            Ok("0" | "off" | "false")
        )
    }
    #[cfg(not(test))]
    true
}

/// One dense layer's weights on the host: `kernel` is `[fan_in, fan_out]`, row-major.
#[derive(Debug, Clone, PartialEq)]
struct Dense {
    fan_in: usize,
    fan_out: usize,
    kernel: Vec<f32>,
    bias: Vec<f32>,
}

/// An MLP encoder's weights on the host, with the activation pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedMlp {
    layers: Vec<Dense>,
    relu: bool,
    final_activation: bool,
    /// The layers packed for inference ([`FusedMlp::for_inference`]), when the CPU has
    /// AVX-512; never set on a trainer's copy, whose weights change every step.
    packed: Option<Vec<PackedDense>>,
}

/// `dst[m×n] = lhs[m×k] · rhs[k×n]`, overwriting `dst` (row-major, row stride `n`); `lhs` and
/// `rhs` are read through (row stride, column stride), so transposes cost nothing.
#[allow(clippy::too_many_arguments)]
fn matmul(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        k > 0
            && dst.len() >= m * n
            && lhs.len() > last(m, k, lhs_rs, lhs_cs)
            && rhs.len() > last(k, n, rhs_rs, rhs_cs),
        "fused matmul: operands too small for [{m}×{k}]·[{k}×{n}]"
    );
    // SAFETY: the assertion above bounds every index gemm reads or writes; `dst` does not
    // alias the inputs (it is a distinct `&mut`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

multiversion! {
    /// `z ← act(z + b)` row by row (`z: [rows, b.len()]`), ReLU when `relu`.
    fn bias_act(z: &mut [f32], bias: &[f32], relu: bool) {
        for row in z.chunks_exact_mut(bias.len()) {
            if relu {
                for (v, b) in row.iter_mut().zip(bias) {
                    // Not `max(0.0)`, which would turn NaN into 0 and hide a diverged
                    // training from the loss check.
                    let z = *v + b;
                    *v = if z < 0.0 { 0.0 } else { z };
                }
            } else {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
            }
        }
    }
}

multiversion! {
    /// `Σ (a − b)²` in 16 interleaved partial sums (so that it vectorises), into `out`.
    fn squared_distance(a: &[f32], b: &[f32], out: &mut f32) {
        let mut acc = [0.0f32; 16];
        let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
        let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| (x - y) * (x - y)).sum();
        for (x, y) in ca.zip(cb) {
            for k in 0..16 {
                let d = x[k] - y[k];
                acc[k] += d * d;
            }
        }
        *out = acc.iter().sum::<f32>() + tail;
    }
}

multiversion! {
    /// `h ← h ⊙ m` (dropout).
    fn mul_assign(h: &mut [f32], m: &[f32]) {
        for (v, m) in h.iter_mut().zip(m) {
            *v *= m;
        }
    }
}

multiversion! {
    /// `g ← g ⊙ act′ ⊙ m` from the layer's output `h` (ReLU: where `h > 0`), `m` the dropout
    /// mask or empty.
    fn backward_mask(g: &mut [f32], h: &[f32], m: &[f32], relu: bool) {
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
    fn column_sums(acc: &mut [f32], g: &[f32], fresh: bool) {
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

multiversion! {
    /// Keras RMSprop on one parameter: `v ← ρ·v + (1 − ρ)·g²`, `w ← w − lr·g/√(v + ε)`, in
    /// the operation order of [`crate::optim::KerasRmsProp`].
    ///
    /// Averages that decay below `f32::MIN_POSITIVE` (≈ 1.2e-38), and squares of gradients
    /// below 1e-19, are flushed to zero: weights that stop receiving gradient (dead ReLU units)
    /// otherwise drive `v` into subnormal numbers, which x86 cores handle in microcode at up
    /// to a hundred times the cost (a quarter of a batch-32 step was spent there). With
    /// `ε ≥ 1e-30` (the fused path is not used below) the change to `v + ε` is under an
    /// eighth of its last place, so the weights move exactly as without the flush, up to a
    /// rare one-ulp rounding of `v + ε`; at Keras's `ε = 1e-7`, `v + ε` is `ε` either way.
    fn rmsprop(w: &mut [f32], v: &mut [f32], g: &[f32], lr: f32, rho: f32, epsilon: f32) {
        for ((w, v), &g) in w.iter_mut().zip(v.iter_mut()).zip(g) {
            let gs = if g.abs() < 1e-19 { 0.0 } else { g };
            let nv = *v * rho + gs * gs * (1.0 - rho);
            *v = if nv < f32::MIN_POSITIVE { 0.0 } else { nv };
            *w -= g / (*v + epsilon).sqrt() * lr;
        }
    }
}

/// One Adam step's scalars: the decays, `c = √(1 − β₂ᵗ)/(1 − β₁ᵗ)` and `ε·√(1 − β₂ᵗ)`.
#[derive(Debug, Clone, Copy)]
struct AdamStep {
    lr: f32,
    beta_1: f32,
    beta_2: f32,
    factor: f32,
    eps: f32,
}

multiversion! {
    /// burn's Adam on one parameter, in its operation order: `m ← β₁·m + (1 − β₁)·g`,
    /// `v ← β₂·v + (1 − β₂)·g²`, `w ← w − lr·(c·m)/(√v + ε·√(1 − β₂ᵗ))`.
    fn adam(w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: AdamStep) {
        for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
            *m = *m * k.beta_1 + g * (1.0 - k.beta_1);
            *v = *v * k.beta_2 + g * g * (1.0 - k.beta_2);
            *w -= *m * k.factor / (v.sqrt() + k.eps) * k.lr;
        }
    }
}

multiversion! {
    /// burn's SGD on one parameter (dampening 0): with momentum `μ > 0`, `u ← g + μ·u` and the
    /// step is `u` (Nesterov: `μ·u + g`); without, the step is `g`. `w ← w − lr·step`.
    fn sgd(w: &mut [f32], u: &mut [f32], g: &[f32], lr: f32, momentum: f32, nesterov: bool) {
        if momentum > 0.0 {
            for ((w, u), &g) in w.iter_mut().zip(u.iter_mut()).zip(g) {
                *u = g + *u * momentum;
                let step = if nesterov { *u * momentum + g } else { *u };
                *w -= step * lr;
            }
        } else {
            for (w, &g) in w.iter_mut().zip(g) {
                *w -= g * lr;
            }
        }
    }
}

/// A parameter tensor as `Param::from_tensor` makes one: tracked on an autodiff device.
fn trainable<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    if t.device().is_autodiff() {
        t.require_grad()
    } else {
        t
    }
}

fn read(t: Tensor<2>) -> Option<Vec<f32>> {
    t.into_data().try_to_vec::<f32>().ok()
}

impl FusedMlp {
    /// The host weights of `network`'s encoder, when the fused path can compute it: an MLP
    /// with ReLU or linear activations and biases, on the flex CPU device.
    pub fn from_network(network: &SiameseNetwork) -> Option<Self> {
        let Encoder::Mlp(mlp) = &network.encoder else {
            return None;
        };
        let relu = match mlp.activation() {
            Activation::Relu => true,
            Activation::Linear => false,
            _ => return None,
        };
        let mut layers = Vec::with_capacity(mlp.layers.len());
        for layer in &mlp.layers {
            let weight = layer.weight.val();
            if weight.device() != Device::flex() {
                return None;
            }
            let [fan_in, fan_out] = weight.dims();
            let bias = read(layer.bias.as_ref()?.val().reshape([1, fan_out]))?;
            layers.push(Dense {
                fan_in,
                fan_out,
                kernel: read(weight)?,
                bias,
            });
        }
        Some(Self {
            layers,
            relu,
            final_activation: mlp.final_activation(),
            packed: None,
        })
    }

    /// [`FusedMlp::from_network`] with the layers also packed for the inference kernel (see
    /// `packed`), which `embed` and `pair_scores` then use. The packed copy is not updated by
    /// training: use this for weights that stay fixed.
    pub fn for_inference(network: &SiameseNetwork) -> Option<Self> {
        let mut mlp = Self::from_network(network)?;
        mlp.packed = mlp
            .layers
            .iter()
            .map(|d| PackedDense::new(&d.kernel, &d.bias, d.fan_in, d.fan_out))
            .collect();
        Some(mlp)
    }

    /// Writes the weights back into `network`'s encoder, keeping each parameter's id.
    pub fn write_back(&self, network: &mut SiameseNetwork) {
        let Encoder::Mlp(mlp) = &mut network.encoder else {
            return;
        };
        for (layer, dense) in mlp.layers.iter_mut().zip(&self.layers) {
            let device = layer.weight.val().device();
            let kernel = Tensor::<2>::from_data(
                TensorData::new(dense.kernel.clone(), [dense.fan_in, dense.fan_out]),
                &device,
            );
            layer.weight = Param::initialized(layer.weight.id, trainable(kernel));
            if let Some(bias) = &mut layer.bias {
                let b = Tensor::<1>::from_data(
                    TensorData::new(dense.bias.clone(), [dense.fan_out]),
                    &device,
                );
                *bias = Param::initialized(bias.id, trainable(b));
            }
        }
    }

    /// Features per input row.
    pub fn input_dim(&self) -> usize {
        self.layers[0].fan_in
    }

    /// Embedding size.
    pub fn output_dim(&self) -> usize {
        self.layers[self.layers.len() - 1].fan_out
    }

    fn widest(&self) -> usize {
        self.layers.iter().map(|l| l.fan_out).max().unwrap_or(0)
    }

    fn activated(&self, l: usize) -> bool {
        self.relu && (l + 1 < self.layers.len() || self.final_activation)
    }

    /// `out = act(x·W + b)` for one layer on `rows` rows, bias and activation in one pass;
    /// returns whether every pre-activation `x·W` (+ `b`) was finite, which holds whenever the
    /// input rows are finite and the products do not overflow (see `packed`: a non-finite
    /// input value makes its whole row non-finite).
    fn dense_forward(&self, l: usize, x: &[f32], rows: usize, out: &mut [f32]) -> bool {
        let d = &self.layers[l];
        let out = &mut out[..rows * d.fan_out];
        if let Some(packed) = &self.packed {
            return packed[l].forward(x, rows, out, self.activated(l));
        }
        matmul(
            out,
            (rows, d.fan_out, d.fan_in),
            x,
            (d.fan_in, 1),
            &d.kernel,
            (d.fan_out, 1),
        );
        let finite = crate::simd::all_finite(out);
        bias_act(out, &d.bias, self.activated(l));
        finite
    }

    /// Embeds `rows` rows of `x` into `out` (`[rows, output_dim]`), single-threaded, using two
    /// scratch buffers of at least `rows × widest layer` values. Returns whether the first
    /// layer's pre-activations were all finite: `false` whenever `x` holds a NaN or ±∞.
    fn embed_block(
        &self,
        x: &[f32],
        rows: usize,
        s0: &mut [f32],
        s1: &mut [f32],
        out: &mut [f32],
    ) -> bool {
        let last = self.layers.len() - 1;
        let mut finite = true;
        for l in 0..=last {
            let (input, output): (&[f32], &mut [f32]) = match (l == 0, l % 2 == 0) {
                (true, _) => (x, if last == 0 { &mut *out } else { &mut *s0 }),
                (false, true) => (&*s1, if l == last { &mut *out } else { &mut *s0 }),
                (false, false) => (&*s0, if l == last { &mut *out } else { &mut *s1 }),
            };
            let layer_finite = self.dense_forward(l, input, rows, output);
            if l == 0 {
                finite = layer_finite;
            }
        }
        finite
    }

    /// Runs `f` with this thread's inference scratch: two buffers for `rows` rows of the
    /// widest layer and `extra` more values. The buffers are kept between calls (a few hundred
    /// KB per thread), so repeated `predict` calls neither allocate nor zero them.
    fn with_scratch<R>(
        &self,
        rows: usize,
        extra: usize,
        f: impl FnOnce(&mut [f32], &mut [f32], &mut [f32]) -> R,
    ) -> R {
        let sizes = [rows * self.widest(), rows * self.widest(), extra];
        with_thread_scratch(|scratch| {
            for (buf, &len) in scratch.iter_mut().zip(&sizes) {
                if buf.len() < len {
                    buf.resize(len, 0.0);
                }
            }
            let [s0, s1, s2] = scratch;
            f(&mut s0[..sizes[0]], &mut s1[..sizes[1]], &mut s2[..extra])
        })
    }

    /// Embeddings of every row of `x` (`[n, input_dim] → [n, output_dim]`), in parallel.
    /// Inputs are checked as in [`FusedMlp::pair_scores`]: a NaN or ±∞ is an error naming
    /// `what`, its row and its column.
    pub fn embed(&self, x: &Matrix, what: &str) -> Result<Matrix> {
        let (n, dim, emb) = (x.rows(), self.input_dim(), self.output_dim());
        check_rows(x, dim, what)?;
        let block = block_rows(n);
        let mut out = vec![0.0f32; n * emb];
        let embed = |(i, out): (usize, &mut [f32])| {
            let rows = out.len() / emb;
            let x = &x.as_slice()[i * block * dim..(i * block + rows) * dim];
            let finite =
                self.with_scratch(rows, 0, |s0, s1, _| self.embed_block(x, rows, s0, s1, out));
            finite || crate::simd::all_finite(x)
        };
        // One block runs on this thread: no hand-over to the pool for a single sample.
        let finite = if n <= block {
            embed((0, &mut out[..]))
        } else {
            out.par_chunks_mut(block * emb)
                .enumerate()
                .map(embed)
                .reduce(|| true, |a, b| a & b)
        };
        if !finite {
            x.check_finite(what)?;
        }
        Matrix::new(n, emb, out)
    }

    /// The head's score of each pair `(a[i], b[i])` (distances for a distance head, logits for
    /// the weighted-L1 head), embedding and scoring block by block in parallel. Inputs are
    /// checked for NaN and ±∞ without a pass of their own: such a value makes every
    /// first-layer pre-activation of its row non-finite, and only a block where that happens
    /// is scanned (it may also be overflow or non-finite weights, which are let through as
    /// the burn path does). An error names `input a` or `input b` and the first bad row and
    /// column.
    pub fn pair_scores(&self, a: &Matrix, b: &Matrix, head: &HostHead) -> Result<Vec<f32>> {
        let (n, dim, emb) = (a.rows(), self.input_dim(), self.output_dim());
        check_pair_inputs(a, b, dim)?;
        let block = block_rows(n);
        let mut out = vec![0.0f32; n];
        let score = |(i, out): (usize, &mut [f32])| {
            let rows = out.len();
            let range = i * block * dim..(i * block + rows) * dim;
            let (xa, xb) = (&a.as_slice()[range.clone()], &b.as_slice()[range.clone()]);
            // A few pairs are stacked `[a; b]` and embedded in one pass, so the weights are
            // read once (a single pair's predict is a matrix-vector product, bound by reading
            // them); larger blocks embed each side in place.
            let stack = rows <= SMALL_BLOCK;
            let extra = 2 * rows * emb + if stack { 2 * rows * dim } else { 0 };
            let finite = self.with_scratch(2 * rows, extra, |s0, s1, e| {
                let (e, x) = e.split_at_mut(2 * rows * emb);
                let finite = if stack {
                    x[..rows * dim].copy_from_slice(xa);
                    x[rows * dim..].copy_from_slice(xb);
                    self.embed_block(x, 2 * rows, s0, s1, e)
                } else {
                    let (ea, eb) = e.split_at_mut(rows * emb);
                    let fa = self.embed_block(xa, rows, s0, s1, ea);
                    self.embed_block(xb, rows, s0, s1, eb) & fa
                };
                let (ea, eb) = e.split_at_mut(rows * emb);
                head.score_rows(ea, eb, emb, out);
                finite
            });
            if finite || crate::simd::all_finite(xa) && crate::simd::all_finite(xb) {
                Ok(())
            } else {
                Err(range.start)
            }
        };
        // One block runs on this thread: no hand-over to the pool for a few pairs.
        let finite = if n <= block {
            score((0, &mut out[..]))
        } else {
            out.par_chunks_mut(block).enumerate().try_for_each(score)
        };
        match finite {
            Ok(()) => Ok(out),
            // Blocks run in any order: name the first bad value of the whole input.
            Err(_) => {
                a.check_finite("input a")?;
                b.check_finite("input b")?;
                Err(SiameseError::Runtime(
                    "a block held a non-finite value".into(),
                ))
            }
        }
    }
}

/// `a` and `b` are pairs of rows of `dim` features each (shape error on `inputs` otherwise).
fn check_pair_inputs(a: &Matrix, b: &Matrix, dim: usize) -> Result<()> {
    let n = a.rows();
    if a.shape() != [n, dim] || b.shape() != [n, dim] {
        return Err(SiameseError::shape(
            "inputs",
            format!("two [{n}, {dim}] matrices"),
            format!("{:?} and {:?}", a.shape(), b.shape()),
        ));
    }
    Ok(())
}

/// `x` has rows of `dim` features (shape error on `what` otherwise).
fn check_rows(x: &Matrix, dim: usize, what: &str) -> Result<()> {
    if x.cols() != dim {
        return Err(SiameseError::shape(
            what,
            format!("{dim} features per row"),
            format!("{} features", x.cols()),
        ));
    }
    Ok(())
}

/// A host encoder for inference: the fused MLP, or a convolutional encoder ([`conv`]).
#[derive(Debug, Clone, PartialEq)]
pub enum HostEncoder {
    /// An MLP encoder.
    Mlp(FusedMlp),
    /// A convolutional encoder.
    Conv(FusedConv),
}

impl HostEncoder {
    /// The host copy of `network`'s encoder for inference, when one of the host paths
    /// covers it (see [`FusedMlp::for_inference`] and [`FusedConv::for_inference`]).
    pub fn for_inference(network: &SiameseNetwork) -> Option<Self> {
        match FusedMlp::for_inference(network) {
            Some(mlp) => Some(Self::Mlp(mlp)),
            None => FusedConv::for_inference(network).map(Self::Conv),
        }
    }

    /// The head's score of each pair `(a[i], b[i])`; NaN or ±∞ inputs are errors naming
    /// `input a` or `input b`, the row and the column.
    pub fn pair_scores(&self, a: &Matrix, b: &Matrix, head: &HostHead) -> Result<Vec<f32>> {
        match self {
            Self::Mlp(m) => m.pair_scores(a, b, head),
            Self::Conv(c) => c.pair_scores(a, b, head),
        }
    }

    /// Embeddings of every row of `x`; NaN or ±∞ inputs are errors naming `what`.
    pub fn embed(&self, x: &Matrix, what: &str) -> Result<Matrix> {
        match self {
            Self::Mlp(m) => m.embed(x, what),
            Self::Conv(c) => c.embed(x, what),
        }
    }
}

/// Runs `f` with this thread's three inference scratch buffers, kept between calls so that
/// repeated `predict` calls neither allocate nor zero them (shared by the MLP and conv host
/// encoders; `f` must not call back into another user of the scratch).
fn with_thread_scratch<R>(f: impl FnOnce(&mut [Vec<f32>; 3]) -> R) -> R {
    thread_local! {
        static SCRATCH: std::cell::RefCell<[Vec<f32>; 3]> = Default::default();
    }
    SCRATCH.with(|scratch| f(&mut scratch.borrow_mut()))
}

/// Blocks of at most this many pairs are embedded as one stacked `[a; b]` pass.
const SMALL_BLOCK: usize = 16;

/// Rows per parallel block: enough blocks to keep every thread busy, at most 256 rows (the
/// activations of a block stay in L2), at least 16.
fn block_rows(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads().max(1))
        .clamp(16, 256)
        .min(n.max(1))
}

/// The head on the host: a distance, or the weighted-L1 logit `wᵀ|eₐ − e_b| + b`.
#[derive(Debug, Clone, PartialEq)]
pub enum HostHead {
    /// A distance layer.
    Distance(Distance),
    /// The weighted-L1 head's weights and bias.
    WeightedL1 {
        /// One weight per embedding dimension.
        weight: Vec<f32>,
        /// The bias.
        bias: f32,
    },
}

impl HostHead {
    /// The head of `network`, read to the host.
    pub fn from_network(network: &SiameseNetwork) -> Option<Self> {
        match &network.weighted_l1 {
            None => Some(Self::Distance(network.distance())),
            Some(layer) => {
                let weight = read(layer.weight.val())?;
                let bias = read(layer.bias.as_ref()?.val().reshape([1, 1]))?;
                Some(Self::WeightedL1 {
                    weight,
                    bias: bias[0],
                })
            }
        }
    }

    /// Scores `out.len()` pairs of embeddings, `ea`/`eb: [out.len(), dim]`.
    pub fn score_rows(&self, ea: &[f32], eb: &[f32], dim: usize, out: &mut [f32]) {
        let rows = ea.chunks_exact(dim).zip(eb.chunks_exact(dim));
        for (o, (a, b)) in out.iter_mut().zip(rows) {
            *o = self.score(a, b);
        }
    }

    /// The score of one pair of embeddings (the same rounding as [`HostHead::score_rows`]).
    pub fn score(&self, ea: &[f32], eb: &[f32]) -> f32 {
        match self {
            Self::Distance(Distance::Euclidean) => {
                let mut s = 0.0;
                squared_distance(ea, eb, &mut s);
                s.clamp_min_nan(EPSILON).sqrt()
            }
            Self::Distance(d) => d.between(ea, eb),
            Self::WeightedL1 { weight, bias } => {
                ea.iter()
                    .zip(eb)
                    .zip(weight)
                    .map(|((x, y), w)| w * (x - y).abs())
                    .sum::<f32>()
                    + bias
            }
        }
    }
}

/// Optimizer state of the fused path, kept by the model between `fit` calls: per parameter
/// value a first slot (RMSprop's square average, Adam's first moment, SGD's velocity) and a
/// second (Adam's second moment), `[kernel, bias]` per layer, and the step count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OptimizerState {
    first: Vec<[Vec<f32>; 2]>,
    second: Vec<[Vec<f32>; 2]>,
    steps: i32,
    kind: Option<&'static str>,
}

/// [`OptimizerState`] as plain data, for checkpoints.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimizerStateParts {
    /// First moments (or RMSprop's square average), `[kernel, bias]` per layer.
    pub first: Vec<[Vec<f32>; 2]>,
    /// Adam's second moments, `[kernel, bias]` per layer.
    pub second: Vec<[Vec<f32>; 2]>,
    /// Steps taken.
    pub steps: i32,
    /// The optimizer's name (`FusedOptimizer::name`).
    pub kind: Option<String>,
}

impl OptimizerState {
    /// The state as plain data.
    pub fn to_parts(&self) -> OptimizerStateParts {
        OptimizerStateParts {
            first: self.first.clone(),
            second: self.second.clone(),
            steps: self.steps,
            kind: self.kind.map(str::to_string),
        }
    }

    /// The state from plain data; an unknown optimizer name is an error.
    pub fn from_parts(parts: OptimizerStateParts) -> Result<Self> {
        let kind = match parts.kind.as_deref() {
            None => None,
            Some(k) => Some(
                FusedOptimizer::NAMES
                    .iter()
                    .copied()
                    .find(|n| *n == k)
                    .ok_or_else(|| {
                        SiameseError::invalid("optimizer state", format!("unknown optimizer `{k}`"))
                    })?,
            ),
        };
        Ok(Self {
            first: parts.first,
            second: parts.second,
            steps: parts.steps,
            kind,
        })
    }
}

/// The optimizer of a fused training run, with the exact formulas of the burn path
/// ([`crate::optim`]): Keras RMSprop, burn's Adam, burn's SGD without dampening.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FusedOptimizer {
    /// Keras RMSprop (`ε` inside the square root).
    RmsProp {
        /// Learning rate.
        lr: f32,
        /// Decay of the square average.
        rho: f32,
        /// Added under the square root; at least 1e-30 (see `rmsprop`'s subnormal flush).
        epsilon: f32,
    },
    /// burn's Adam (bias-corrected, `ε` outside the square root).
    Adam {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta_1: f32,
        /// Second-moment decay.
        beta_2: f32,
        /// Numerical-stability term.
        epsilon: f32,
    },
    /// burn's SGD with optional (Nesterov) momentum, no dampening.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum (0: plain SGD).
        momentum: f32,
        /// Nesterov momentum.
        nesterov: bool,
    },
}

impl FusedOptimizer {
    /// The fused form of a configured optimizer, when there is one.
    pub fn from_config(config: &crate::optim::OptimizerConfig) -> Option<Self> {
        use crate::optim::OptimizerConfig as C;
        Some(match *config {
            // ε ≥ 1e-30 keeps the subnormal flush of the square average exact.
            C::Rmsprop { lr, rho, epsilon } if epsilon >= 1e-30 => Self::RmsProp {
                lr: lr as f32,
                rho,
                epsilon,
            },
            C::Rmsprop { .. } => return None,
            C::Adam {
                lr,
                beta_1,
                beta_2,
                epsilon,
            } => Self::Adam {
                lr: lr as f32,
                beta_1,
                beta_2,
                epsilon,
            },
            C::Sgd {
                lr,
                momentum,
                nesterov,
            } => Self::Sgd {
                lr: lr as f32,
                momentum: momentum as f32,
                nesterov,
            },
        })
    }

    /// The names [`Self::name`] gives.
    pub const NAMES: [&'static str; 3] = ["rmsprop", "adam", "sgd"];

    fn name(self) -> &'static str {
        match self {
            Self::RmsProp { .. } => "rmsprop",
            Self::Adam { .. } => "adam",
            Self::Sgd { .. } => "sgd",
        }
    }

    /// Updates one span of a parameter from its summed gradient, at step `t` (from 1).
    fn update(self, w: &mut [f32], first: &mut [f32], second: &mut [f32], g: &[f32], t: i32) {
        match self {
            Self::RmsProp { lr, rho, epsilon } => rmsprop(w, first, g, lr, rho, epsilon),
            Self::Adam {
                lr,
                beta_1,
                beta_2,
                epsilon,
            } => {
                // At step t (from 1), as burn computes them, in f32.
                let bias2 = (1.0 - beta_2.powi(t)).sqrt();
                let step = AdamStep {
                    lr,
                    beta_1,
                    beta_2,
                    factor: bias2 / (1.0 - beta_1.powi(t)),
                    eps: epsilon * bias2,
                };
                adam(w, first, second, g, step)
            }
            Self::Sgd {
                lr,
                momentum,
                nesterov,
            } => sgd(w, first, g, lr, momentum, nesterov),
        }
    }
}

/// Hyper-parameters of one fused training run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusedHyper {
    /// The optimizer.
    pub optimizer: FusedOptimizer,
    /// Contrastive margin.
    pub margin: f32,
}

/// What one fused step reports: the batch's mean loss and each pair's distance.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutput {
    /// Mean contrastive loss of the batch.
    pub loss: f32,
    /// Distance of every pair of the batch.
    pub distances: Vec<f32>,
}

/// Per-thread weight gradients, `[kernel, bias]` per layer.
type Grads = Vec<[Vec<f32>; 2]>;

/// Trains an MLP Siamese network with the Euclidean distance and the contrastive loss, with
/// fused kernels (see the module docs) and any of the crate's optimizers.
#[derive(Debug)]
pub struct FusedTrainer {
    mlp: FusedMlp,
    state: OptimizerState,
    hyper: FusedHyper,
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
}

impl FusedTrainer {
    /// A trainer for `network` (None when the fused path cannot compute it), resuming the
    /// optimizer from `state` when its shapes match.
    pub fn new(
        network: &SiameseNetwork,
        state: Option<OptimizerState>,
        hyper: FusedHyper,
    ) -> Option<Self> {
        if network.weighted_l1.is_some() || network.distance() != Distance::Euclidean {
            return None;
        }
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
        let kind = Some(hyper.optimizer.name());
        let fresh = OptimizerState {
            first: zeros(&mlp),
            second: zeros(&mlp),
            steps: 0,
            kind,
        };
        // Resume only a state of the same optimizer over the same shapes.
        let same_shapes = |a: &Grads, b: &Grads| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(a, b)| a[0].len() == b[0].len() && a[1].len() == b[1].len())
        };
        let state = state
            .filter(|s| s.kind == kind && same_shapes(&s.first, &fresh.first))
            .unwrap_or(fresh);
        let threads = rayon::current_num_threads().max(1);
        let grads = (0..threads).map(|_| zeros(&mlp)).collect();
        Some(Self {
            acts: vec![Vec::new(); mlp.layers.len()],
            masks: vec![Vec::new(); mlp.layers.len()],
            mlp,
            state,
            hyper,
            dropout,
            x: Vec::new(),
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

    /// One optimizer step on a batch of `labels.len()` pairs. The inputs are stacked
    /// `[2·pairs, input_dim]`, branch A then branch B: `fill(r, row)` writes stacked row `r`
    /// (pair `r`'s A input for `r < pairs`, pair `r − pairs`'s B input otherwise). Each
    /// thread fills its own rows, so gathering a shuffled batch runs in parallel too.
    pub fn step(
        &mut self,
        labels: &[f32],
        fill: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Result<StepOutput> {
        let pairs = labels.len();
        let rows = 2 * pairs;
        let dim = self.mlp.input_dim();
        if pairs == 0 {
            return Err(SiameseError::Empty(
                "a fused training batch with no pairs".into(),
            ));
        }
        self.x.resize(rows * dim, 0.0);
        let layers = self.mlp.layers.len();
        for (l, d) in self.mlp.layers.iter().enumerate() {
            self.acts[l].resize(rows * d.fan_out, 0.0);
        }
        // Dropout masks are drawn layer by layer over all rows, as the burn path draws them.
        if let Some(dropout) = &self.dropout {
            for l in 0..layers - 1 {
                let len = rows * self.mlp.layers[l].fan_out;
                self.masks[l] = dropout.mask(len);
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
        let (margin, scale) = (self.hyper.margin, 2.0 / pairs as f32);
        let e = &self.acts[layers - 1];
        let g = &mut self.grad[0];
        // Gradient buffers are laid out per thread chunk: `[chunk rows, widest]` blocks.
        let at = |r: usize| (r / chunk) * chunk * widest + (r % chunk) * emb;
        let mut distances = Vec::with_capacity(pairs);
        let mut loss = 0.0f64;
        for (i, &y) in labels.iter().enumerate() {
            let (ea, eb) = (
                &e[i * emb..(i + 1) * emb],
                &e[(pairs + i) * emb..(pairs + i + 1) * emb],
            );
            let s: f32 = ea.iter().zip(eb).map(|(a, b)| (a - b) * (a - b)).sum();
            let d = s.clamp_min_nan(EPSILON).sqrt();
            let hinge = (margin - d).max(0.0);
            loss += (y * d * d + (1.0 - y) * hinge * hinge) as f64;
            distances.push(d);
            // ∂L/∂d, then ∂d/∂s = 1/(2d) where s > ε (0 where the clamp holds), ∂s/∂eₐ = 2(eₐ − e_b).
            let dd = scale * (y * d - (1.0 - y) * hinge);
            let k = if s > EPSILON { dd / d } else { 0.0 };
            let (ia, ib) = (at(i), at(pairs + i));
            for j in 0..emb {
                let v = k * (ea[j] - eb[j]);
                g[ia + j] = v;
                g[ib + j] = -v;
            }
        }
        let loss = (loss / pairs as f64) as f32;

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

        // Sum the threads' gradients into the first thread's and apply the optimizer, in
        // parallel over spans of parameters (square roots and divisions are not cheap).
        const SPAN: usize = 8192;
        let used = rows.div_ceil(chunk);
        let (first, rest) = self.grads.split_at_mut(1);
        let others = &rest[..used - 1];
        let mut spans = Vec::new();
        let state = &mut self.state;
        let slots = state.first.iter_mut().zip(state.second.iter_mut());
        for (l, ((layer, (first_slot, second_slot)), grads)) in self
            .mlp
            .layers
            .iter_mut()
            .zip(slots)
            .zip(first[0].iter_mut())
            .enumerate()
        {
            let ([s1k, s1b], [s2k, s2b], [gk, gb]) = (first_slot, second_slot, grads);
            let params = [
                (&mut layer.kernel, s1k, s2k, gk),
                (&mut layer.bias, s1b, s2b, gb),
            ];
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
        let (optimizer, t) = (self.hyper.optimizer, state.steps);
        spans
            .into_par_iter()
            .for_each(|(l, p, start, w, s1, s2, g)| {
                for other in others {
                    column_sums(g, &other[l][p][start..start + g.len()], false);
                }
                optimizer.update(w, s1, s2, g, t);
            });
        Ok(StepOutput { loss, distances })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{PairData, PairsRef};
    use crate::encoder::{EncoderConfig, MlpEncoder, MlpEncoderConfig, dense_from_values};
    use crate::loss::LossConfig;
    use crate::optim::OptimizerConfig;
    use crate::siamese::{Head, SiameseConfig};
    use crate::train::{self, FitOptions, History};
    use burn::module::Module;

    const HYPER: FusedHyper = FusedHyper {
        optimizer: FusedOptimizer::RmsProp {
            lr: 0.001,
            rho: 0.9,
            epsilon: 1e-7,
        },
        margin: 1.0,
    };

    fn data(n: usize, dim: usize, seed: u64) -> (Matrix, Matrix, Vec<f32>) {
        let (a, b, mut y) = crate::synthetic::random_pairs(n, dim, seed);
        y[1] = 0.3; // a graded label exercises both terms of the loss at once
        (a, b, y)
    }

    fn options(epochs: usize, batch: usize) -> FitOptions {
        FitOptions {
            verbose: false,
            ..FitOptions::new(epochs, batch)
        }
    }

    fn network(config: &SiameseConfig) -> SiameseNetwork {
        config.init(&Device::flex().autodiff(), 5).unwrap()
    }

    fn weights(network: &SiameseNetwork) -> Vec<f32> {
        let mlp = FusedMlp::from_network(network).unwrap();
        mlp.layers
            .iter()
            .flat_map(|d| d.kernel.iter().chain(&d.bias).copied())
            .collect()
    }

    /// Plain hooks: no callbacks, no resume, host validation.
    fn hooks(config: &crate::config::ModelConfig) -> train::Hooks<'_> {
        train::Hooks {
            config,
            callbacks: Vec::new(),
            resume: None,
            host: true,
        }
    }

    /// A model config around `network` (the default loss; the optimizer is not read).
    fn model_config(network: &SiameseConfig) -> crate::config::ModelConfig {
        crate::config::ModelConfig {
            network: network.clone(),
            loss: LossConfig::default(),
            optimizer: crate::optim::OptimizerConfig::rmsprop(),
            seed: 0,
        }
    }

    fn burn_fit(
        optimizer: &OptimizerConfig,
        config: &SiameseConfig,
        pairs: PairData<'_>,
        o: &FitOptions,
    ) -> (Vec<f32>, History) {
        let lr = optimizer.lr();
        let mut optimizer = optimizer.init().unwrap();
        let mc = model_config(config);
        let out = train::fit(network(config), &mut optimizer, lr, pairs, o, hooks(&mc)).unwrap();
        (weights(&out.network), out.history)
    }

    fn fused_fit(
        optimizer: &OptimizerConfig,
        config: &SiameseConfig,
        pairs: PairData<'_>,
        o: &FitOptions,
    ) -> (Vec<f32>, History) {
        let net = network(config);
        let hyper = FusedHyper {
            optimizer: FusedOptimizer::from_config(optimizer).unwrap(),
            margin: 1.0,
        };
        let mut trainer = FusedTrainer::new(&net, None, hyper).unwrap();
        let mc = model_config(config);
        let out = train::fit_fused(net, &mut trainer, pairs, o, hooks(&mc)).unwrap();
        (weights(&out.network), out.history)
    }

    fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "{what}[{i}]: fused {g}, burn {w}"
            );
        }
    }

    /// Fused weights and epoch losses within 2e-5 (relative) of burn's.
    fn assert_same_training(got: (&[f32], &History), want: (&[f32], &History), what: &str) {
        assert_close(got.0, want.0, 2e-5, &format!("{what}: weights"));
        let loss = format!("{what}: loss");
        assert_close(&got.1.loss(), &want.1.loss(), 2e-5, &loss);
    }

    fn mlp_config(
        dim: usize,
        hidden: &[usize],
        act: Activation,
        last: bool,
        drop: f64,
    ) -> SiameseConfig {
        SiameseConfig {
            encoder: EncoderConfig::Mlp(MlpEncoderConfig {
                input_dim: dim,
                hidden: hidden.to_vec(),
                activation: act,
                final_activation: last,
                dropout: drop,
            }),
            distance: Distance::Euclidean,
            head: Head::Distance,
        }
    }

    /// The fused step is the burn autodiff step: same weights and losses after several epochs
    /// of RMSprop, for ReLU and linear layers, dropout, uneven widths and a partial last batch,
    /// with one thread and with a thread count that splits the rows unevenly.
    #[test]
    fn fused_training_matches_burn_autodiff() {
        let (a, b, y) = data(30, 12, 1);
        let pairs = PairData::Dense(PairsRef {
            a: &a,
            b: &b,
            labels: &y,
        });
        let configs = [
            mlp_config(12, &[128, 128, 128], Activation::Relu, true, 0.0),
            mlp_config(12, &[16, 8], Activation::Relu, false, 0.0),
            mlp_config(12, &[9, 16, 5], Activation::Linear, false, 0.0),
            mlp_config(12, &[16, 16, 8], Activation::Relu, true, 0.25),
        ];
        for (c, config) in configs.iter().enumerate() {
            let (want_w, want_h) =
                burn_fit(&OptimizerConfig::rmsprop(), config, pairs, &options(4, 7));
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let (got_w, got_h) = pool.install(|| {
                    fused_fit(&OptimizerConfig::rmsprop(), config, pairs, &options(4, 7))
                });
                let what = format!("config {c}, {threads} threads");
                assert_same_training((&got_w, &got_h), (&want_w, &want_h), &what);
                let acc = |h: &History| h.epochs.iter().map(|e| e.accuracy).collect::<Vec<_>>();
                assert_eq!(acc(&got_h), acc(&want_h), "{what}: accuracy");
            }
        }
    }

    /// Every fused optimizer update equals burn's optimizer (the crate's own Keras RMSprop,
    /// burn's Adam and SGD) on the same gradients, over two steps.
    #[test]
    fn fused_optimizers_match_burn_optimizers() {
        use crate::optim::tests::{G1, G2, W0, run};
        for config in [
            OptimizerConfig::rmsprop(),
            OptimizerConfig::adam(),
            OptimizerConfig::sgd(0.1, 0.0),
            OptimizerConfig::sgd(0.1, 0.9),
            OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
            },
        ] {
            let optimizer = FusedOptimizer::from_config(&config).unwrap();
            let (mut w, mut first, mut second) = (W0, [0.0; 5], [0.0; 5]);
            for (t, g) in [G1, G2].iter().enumerate() {
                optimizer.update(&mut w, &mut first, &mut second, g, t as i32 + 1);
            }
            assert_close(
                &w,
                &run(&config, &W0, &[&G1, &G2]),
                1e-6,
                &format!("{config:?}"),
            );
        }
    }

    /// Whole training runs with SGD (plain, momentum, Nesterov) match burn step for step.
    /// Adam is checked on its losses only: it turns any gradient above ~1e-8 into a step of
    /// about lr, so a parameter whose gradient is exactly 0 on one path and rounding noise on
    /// the other (a first-layer bias of a linear Siamese network, whose branches cancel; a
    /// ReLU unit sitting at 0) moves by a fraction of lr on one path only.
    #[test]
    fn fused_adam_and_sgd_training_match_burn() {
        let (a, b, y) = data(30, 10, 6);
        let pairs = PairData::Dense(PairsRef {
            a: &a,
            b: &b,
            labels: &y,
        });
        let config = mlp_config(10, &[16, 8], Activation::Relu, true, 0.0);
        for optimizer in [
            OptimizerConfig::sgd(0.05, 0.0),
            OptimizerConfig::sgd(0.05, 0.9),
            OptimizerConfig::Sgd {
                lr: 0.05,
                momentum: 0.9,
                nesterov: true,
            },
            OptimizerConfig::adam(),
        ] {
            let (want_w, want_h) = burn_fit(&optimizer, &config, pairs, &options(5, 7));
            let (got_w, got_h) = fused_fit(&optimizer, &config, pairs, &options(5, 7));
            let what = format!("{optimizer:?}");
            if matches!(optimizer, OptimizerConfig::Adam { .. }) {
                assert_close(&got_h.loss(), &want_h.loss(), 1e-3, &what);
            } else {
                assert_same_training((&got_w, &got_h), (&want_w, &want_h), &what);
            }
        }
        // Two `fit` calls of 2 and 3 epochs through the model equal one of 5 (same seed
        // streams aside): the optimizer state, Adam's step count included, carries over.
        let mut whole = crate::config::ModelConfig::reference(10);
        whole.network = config.clone();
        whole.optimizer = OptimizerConfig::adam();
        let run = |splits: &[usize]| {
            let mut model = crate::model::Siamese::new(whole.clone(), &Device::flex()).unwrap();
            let o = FitOptions {
                shuffle: false,
                ..options(1, 7)
            };
            for &epochs in splits {
                model
                    .fit(
                        &a,
                        &b,
                        &y,
                        &FitOptions {
                            epochs,
                            ..o.clone()
                        },
                    )
                    .unwrap();
            }
            model.predict(&a, &b).unwrap()
        };
        assert_eq!(run(&[2, 3]), run(&[5]));
    }

    /// Augmented batches and index pairs go through the same gathering and random streams as
    /// on the burn path.
    #[test]
    fn fused_training_matches_burn_with_augmentation_and_index_pairs() {
        use crate::data::augment::AugmentConfig;
        use crate::data::pairs::IndexPair;
        use crate::train::Augment;
        let (samples, _, _) = data(12, 16, 3);
        let pairs: Vec<IndexPair> = (0..30)
            .map(|k| IndexPair {
                i: k % 12,
                j: (k * 5 + 1) % 12,
                label: (k % 3 == 0) as u8 as f32,
            })
            .collect();
        let indexed = PairData::Indexed {
            samples: &samples,
            pairs: &pairs,
        };
        let augmented = FitOptions {
            augment: Some(Augment {
                config: AugmentConfig {
                    rotation: 10.0,
                    shift: 0.1,
                    scale: 0.1,
                    shear: 5.0,
                    fill: 0.0,
                },
                width: 4,
                height: 4,
            }),
            ..options(3, 8)
        };
        let config = mlp_config(16, &[16, 8], Activation::Relu, true, 0.0);
        for o in [options(3, 8), augmented] {
            let (want_w, want_h) = burn_fit(&OptimizerConfig::rmsprop(), &config, indexed, &o);
            let (got_w, got_h) = fused_fit(&OptimizerConfig::rmsprop(), &config, indexed, &o);
            let what = format!("augment: {}", o.augment.is_some());
            assert_same_training((&got_w, &got_h), (&want_w, &want_h), &what);
        }
    }

    /// Keras 3.15.1 (TensorFlow backend) on the same network, weights and data:
    /// `tools/keras_fit_reference.py` (`fit(epochs=3, batch_size=4, shuffle=False)`, then
    /// `predict`).
    #[test]
    #[allow(clippy::excessive_precision)] // literal values as Keras printed them
    fn fused_training_matches_keras_fit() {
        const KERAS_LOSSES: [f32; 3] = [0.4737679958343506, 0.4614700376987457, 0.4537491798400879];
        const KERAS_DISTANCES: [f32; 10] = [
            0.05299609526991844,
            0.0966232568025589,
            0.04048197716474533,
            0.048376768827438354,
            0.09616806358098984,
            0.04643992334604263,
            0.0435548834502697,
            0.09528180211782455,
            0.05314478650689125,
            0.03855844587087631,
        ];
        let pattern = |n: usize, scale: f32, phase: f32| -> Vec<f32> {
            (0..n)
                .map(|i| scale * (0.7 * i as f32 + phase).sin())
                .collect()
        };
        let (dim, hidden, n) = (6, [5, 5, 4], 10);
        let device = Device::flex().autodiff();
        let mut fan_in = dim;
        let layers = hidden
            .iter()
            .enumerate()
            .map(|(i, &h)| {
                let layer = dense_from_values(
                    fan_in,
                    h,
                    pattern(fan_in * h, 0.6, i as f32),
                    pattern(h, 0.1, i as f32 + 0.5),
                    &device,
                );
                fan_in = h;
                layer
            })
            .collect();
        let encoder = MlpEncoder::from_layers(layers, Activation::Relu, true);
        let net = SiameseNetwork::new(Encoder::Mlp(encoder), Distance::Euclidean);
        let square = |v: Vec<f32>| v.into_iter().map(|x| x * x).collect();
        let a = Matrix::new(n, dim, square(pattern(n * dim, 1.0, 0.0))).unwrap();
        let b = Matrix::new(n, dim, square(pattern(n * dim, 1.0, 1.3))).unwrap();
        let y: Vec<f32> = (0..n).map(|i| (i % 2) as f32).collect();
        let o = FitOptions {
            shuffle: false,
            ..options(3, 4)
        };
        let mut trainer = FusedTrainer::new(&net, None, HYPER).unwrap();
        let pairs = PairData::Dense(PairsRef {
            a: &a,
            b: &b,
            labels: &y,
        });
        let mc = crate::config::ModelConfig::reference(2);
        let out = train::fit_fused(net, &mut trainer, pairs, &o, hooks(&mc)).unwrap();
        let (net, h) = (out.network, out.history);
        assert_close(&h.loss(), &KERAS_LOSSES, 1e-5, "epoch loss");
        let d = crate::infer::distances(&net, pairs, false).unwrap();
        assert_close(&d, &KERAS_DISTANCES, 1e-5, "distances");
    }

    /// The head's scores of `(a[i], b[i])` through burn's forward pass, on flex.
    pub(super) fn burn_scores(net: &SiameseNetwork, a: &Matrix, b: &Matrix) -> Vec<f32> {
        let device = Device::flex();
        net.forward_scores(
            crate::data::to_tensor(a, &device),
            crate::data::to_tensor(b, &device),
        )
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
    }

    /// Fused inference gives burn's scores for every head and distance, dense or indexed.
    #[test]
    fn fused_scores_match_burn_forward() {
        let (a, b, _) = data(70, 9, 2);
        for (distance, head, hidden) in [
            (Distance::Euclidean, Head::Distance, &[12, 7][..]),
            (Distance::Euclidean, Head::Distance, &[5][..]),
            (Distance::Euclidean, Head::Distance, &[6, 9, 4, 3][..]),
            (Distance::Manhattan, Head::Distance, &[12, 7][..]),
            (Distance::Cosine, Head::Distance, &[12, 7][..]),
            (Distance::Euclidean, Head::WeightedL1, &[12, 7][..]),
        ] {
            let config = SiameseConfig {
                distance,
                head,
                ..mlp_config(9, hidden, Activation::Relu, false, 0.1)
            };
            let net = network(&config).valid();
            let device = Device::flex();
            let want = burn_scores(&net, &a, &b);
            let head = HostHead::from_network(&net).unwrap();
            let want_emb = net
                .embed(crate::data::to_tensor(&a, &device))
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            // Through gemm (the trainer's copy) and through the packed inference kernel.
            for mlp in [FusedMlp::from_network(&net), FusedMlp::for_inference(&net)] {
                let mlp = mlp.unwrap();
                let got = mlp.pair_scores(&a, &b, &head).unwrap();
                // A few pairs take the stacked `[a; b]` pass.
                let few = mlp
                    .pair_scores(&a.slice_rows(0, 5), &b.slice_rows(0, 5), &head)
                    .unwrap();
                assert_close(&few, &want[..5], 1e-5, "five pairs");
                assert_close(&got, &want, 1e-5, &format!("{distance:?} {head:?}"));
                let emb = mlp.embed(&a, "input").unwrap();
                assert_close(emb.as_slice(), &want_emb, 1e-5, "embeddings");
            }
        }
    }

    /// Flushing subnormal averages leaves every weight exactly where Keras's formula puts it.
    #[test]
    fn rmsprop_flush_moves_weights_exactly_as_the_plain_formula() {
        let (lr, rho, epsilon) = (0.001f32, 0.9f32, 1e-7f32);
        for v0 in [0.0, 1e-39, 1e-37, 3e-30, 1e-12, 1e-3] {
            for g in [0.0, 1e-21, -1e-20, 3e-19, 1e-5, -0.1] {
                let (mut w, mut v) = ([0.25f32, 0.0], [v0, v0]);
                rmsprop(&mut w, &mut v, &[g, g], lr, rho, epsilon);
                let plain_v = v0 * rho + g * g * (1.0 - rho);
                let plain = |w: f32| w - g / (plain_v + epsilon).sqrt() * lr;
                assert_eq!(w, [plain(0.25), plain(0.0)], "v = {v0}, g = {g}");
                assert!(v[0] == 0.0 || v[0].is_normal(), "v = {}", v[0]);
                assert!((v[0] - plain_v).abs() < f32::MIN_POSITIVE, "v = {}", v[0]);
            }
        }
    }

    /// A diverged network (NaN weights) stops with the loss check's error, as on the burn
    /// path: the ReLU must pass NaN on, not turn it into 0.
    #[test]
    fn nan_weights_are_reported_not_hidden() {
        let (a, b, y) = data(16, 3, 4);
        let device = Device::flex().autodiff();
        let mut kernel = vec![0.5; 3 * 4];
        kernel[5] = f32::NAN;
        let layers = vec![
            dense_from_values(3, 4, kernel, vec![0.0; 4], &device),
            dense_from_values(4, 2, vec![0.25; 8], vec![0.0; 2], &device),
        ];
        let encoder = MlpEncoder::from_layers(layers, Activation::Relu, true);
        let net = SiameseNetwork::new(Encoder::Mlp(encoder), Distance::Euclidean);
        let pairs = PairData::Dense(PairsRef {
            a: &a,
            b: &b,
            labels: &y,
        });
        let mut trainer = FusedTrainer::new(&net, None, HYPER).unwrap();
        let mc = crate::config::ModelConfig::reference(2);
        let err = train::fit_fused(net, &mut trainer, pairs, &options(1, 8), hooks(&mc))
            .unwrap_err()
            .to_string();
        assert!(err.contains("training loss became NaN"), "{err}");
    }

    /// A NaN or ±∞ in an input is named (side, row, column) without a scan of its own, in
    /// any block and in the stacked few-pair pass, by `pair_scores` and by `embed`;
    /// non-finite weights are let through, as on the burn path, and give NaN scores instead
    /// of an input error.
    #[test]
    fn non_finite_inputs_are_named_and_non_finite_weights_let_through() {
        let (a, b, _) = data(700, 9, 5);
        let config = mlp_config(9, &[12, 7], Activation::Relu, false, 0.0);
        let net = network(&config).valid();
        let head = HostHead::from_network(&net).unwrap();
        for mlp in [FusedMlp::from_network(&net), FusedMlp::for_inference(&net)] {
            let mlp = mlp.unwrap();
            for (side, row, col, bad) in [
                ("a", 0, 0, f32::NAN),
                ("b", 650, 8, f32::INFINITY),
                ("a", 300, 4, f32::NEG_INFINITY),
                ("b", 2, 3, f32::NAN),
            ] {
                for pairs in [700, 3] {
                    if row >= pairs {
                        continue;
                    }
                    let (mut a, mut b) = (a.slice_rows(0, pairs), b.slice_rows(0, pairs));
                    let m = if side == "a" { &mut a } else { &mut b };
                    let mut values = m.as_slice().to_vec();
                    values[row * 9 + col] = bad;
                    *m = Matrix::new(pairs, 9, values).unwrap();
                    let err = mlp.pair_scores(&a, &b, &head).unwrap_err().to_string();
                    let want = format!("row {row}, column {col}");
                    assert!(
                        err.contains(&format!("input {side}")) && err.contains(&want),
                        "{err}"
                    );
                }
            }
        }
        // NaN weights in a later layer, then in the first (whose flag then fires on finite
        // inputs, which the rescan lets through).
        for layer in [1, 0] {
            let mut nan_net = net.clone();
            if let Encoder::Mlp(mlp) = &mut nan_net.encoder {
                let w = mlp.layers[layer].weight.val();
                let nan = Tensor::<2>::full(w.dims(), f32::NAN, &w.device());
                mlp.layers[layer].weight = Param::initialized(mlp.layers[layer].weight.id, nan);
            }
            for mlp in [
                FusedMlp::from_network(&nan_net),
                FusedMlp::for_inference(&nan_net),
            ] {
                let mlp = mlp.unwrap();
                let scores = mlp.pair_scores(&a, &b, &head).unwrap();
                assert!(scores.iter().all(|s| s.is_nan()), "layer {layer}");
                let emb = mlp.embed(&a, "samples").unwrap();
                assert!(emb.as_slice().iter().all(|v| v.is_nan()), "layer {layer}");
            }
        }
    }

    #[test]
    fn only_supported_networks_take_the_fused_path() {
        let tanh = mlp_config(4, &[3], Activation::Tanh, true, 0.0);
        assert!(FusedMlp::from_network(&network(&tanh)).is_none());
        let manhattan = SiameseConfig {
            distance: Distance::Manhattan,
            ..mlp_config(4, &[3], Activation::Relu, true, 0.0)
        };
        // Inference handles any distance; training only the Euclidean contrastive case.
        assert!(FusedMlp::from_network(&network(&manhattan)).is_some());
        assert!(FusedTrainer::new(&network(&manhattan), None, HYPER).is_none());
        let conv = SiameseConfig {
            encoder: EncoderConfig::Conv(
                crate::encoder::conv::ConvEncoderConfig::preset("koch-cpu", 52, 52).unwrap(),
            ),
            ..mlp_config(4, &[3], Activation::Relu, true, 0.0)
        };
        assert!(FusedMlp::from_network(&network(&conv)).is_none());
    }
}
