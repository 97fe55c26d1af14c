//! An MLP encoder's weights on the host ([`FusedMlp`]): read from and written back to the burn
//! module, one dense layer's forward pass (through `gemm`, or the packed inference kernel of
//! `packed`), and the parallel inference passes (`embed`, `pair_scores`) built on it.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::host::{
    HostHead, SMALL_BLOCK, block_rows, check_pair_inputs, check_rows, with_thread_scratch,
};
use super::packed::PackedDense;
use crate::data::Matrix;
use crate::encoder::{Activation, Encoder};
use crate::error::{Result, SiameseError};
use crate::siamese::SiameseNetwork;
use crate::simd::multiversion;

/// One dense layer's weights on the host: `kernel` is `[fan_in, fan_out]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Dense {
    pub(super) fan_in: usize,
    pub(super) fan_out: usize,
    pub(super) kernel: Vec<f32>,
    pub(super) bias: Vec<f32>,
}

/// An MLP encoder's weights on the host, with the activation pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedMlp {
    pub(super) layers: Vec<Dense>,
    relu: bool,
    final_activation: bool,
    /// The layers packed for inference ([`FusedMlp::for_inference`]), when the CPU has
    /// AVX-512; never set on a trainer's copy, whose weights change every step.
    packed: Option<Vec<PackedDense>>,
}

/// `dst[m×n] = lhs[m×k] · rhs[k×n]`, overwriting `dst` (row-major, row stride `n`); `lhs` and
/// `rhs` are read through (row stride, column stride), so transposes cost nothing.
pub(super) fn matmul(
    dst: &mut [f32],
    shape: (usize, usize, usize),
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) {
    matmul_acc(dst, shape, lhs, lhs_strides, rhs, rhs_strides, false);
}

/// [`matmul`], adding the product to `dst` when `accumulate`.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_acc(
    dst: &mut [f32],
    shape: (usize, usize, usize),
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
    accumulate: bool,
) {
    let none = gemm::Parallelism::None;
    matmul_with(
        dst,
        shape,
        lhs,
        lhs_strides,
        rhs,
        rhs_strides,
        accumulate,
        none,
    );
}

/// gemm's split of one product between `threads` threads (1: none).
pub(super) fn parallelism(threads: usize) -> gemm::Parallelism {
    if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// [`matmul_acc`] split between threads by gemm as `parallelism` says.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_with(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    accumulate: bool,
    parallelism: gemm::Parallelism,
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
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

multiversion! {
    /// `z ← act(z + b)` row by row (`z: [rows, b.len()]`), ReLU when `relu`.
    pub(super) fn bias_act(z: &mut [f32], bias: &[f32], relu: bool) {
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

/// A parameter tensor as `Param::from_tensor` makes one: tracked on an autodiff device.
pub(super) fn trainable<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    if t.device().is_autodiff() {
        t.require_grad()
    } else {
        t
    }
}

pub(super) fn read(t: Tensor<2>) -> Option<Vec<f32>> {
    crate::data::read_tensor(t).ok()
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

    pub(super) fn widest(&self) -> usize {
        self.layers.iter().map(|l| l.fan_out).max().unwrap_or(0)
    }

    pub(super) fn activated(&self, l: usize) -> bool {
        self.relu && (l + 1 < self.layers.len() || self.final_activation)
    }

    /// `out = act(x·W + b)` for one layer on `rows` rows, bias and activation in one pass;
    /// returns whether every pre-activation `x·W` (+ `b`) was finite, which holds whenever the
    /// input rows are finite and the products do not overflow (see `packed`: a non-finite
    /// input value makes its whole row non-finite).
    pub(super) fn dense_forward(&self, l: usize, x: &[f32], rows: usize, out: &mut [f32]) -> bool {
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
