//! Host inference shared by the MLP and conv encoders: [`HostEncoder`] (the host path a model
//! can take), the head on the host ([`HostHead`]), the per-thread scratch buffers and block
//! sizes of the parallel passes, and the input shape checks.

use super::bert::FusedBert;
use super::conv::FusedConv;
use super::mlp::{FusedMlp, read};
use crate::data::Matrix;
use crate::distance::{ClampMinNan, Distance, EPSILON};
use crate::error::Result;
use crate::siamese::SiameseNetwork;
use crate::simd::multiversion;

/// `a` and `b` are pairs of rows of `dim` features each (shape error on `inputs` otherwise).
pub(super) fn check_pair_inputs(a: &Matrix, b: &Matrix, dim: usize) -> Result<()> {
    crate::data::check_same_shape(a, b)?;
    crate::data::check_width(a, dim, "inputs")
}

/// `x` has rows of `dim` features (shape error on `what` otherwise).
pub(super) fn check_rows(x: &Matrix, dim: usize, what: &str) -> Result<()> {
    crate::data::check_width(x, dim, what)
}

/// A host encoder for inference: the fused MLP, a convolutional encoder
/// ([`conv`](super::conv)) or a BERT encoder ([`bert`](super::bert)).
#[derive(Debug, Clone, PartialEq)]
pub enum HostEncoder {
    /// An MLP encoder.
    Mlp(FusedMlp),
    /// A convolutional encoder.
    Conv(FusedConv),
    /// A BERT-family sentence encoder.
    Bert(FusedBert),
}

impl HostEncoder {
    /// The host copy of `network`'s encoder for inference, when one of the host paths
    /// covers it (see [`FusedMlp::for_inference`], [`FusedConv::for_inference`] and
    /// [`FusedBert::for_inference`]).
    pub fn for_inference(network: &SiameseNetwork) -> Option<Self> {
        if let Some(mlp) = FusedMlp::for_inference(network) {
            return Some(Self::Mlp(mlp));
        }
        if let Some(conv) = FusedConv::for_inference(network) {
            return Some(Self::Conv(conv));
        }
        FusedBert::for_inference(network).map(Self::Bert)
    }

    /// The head's score of each pair `(a[i], b[i])`; NaN or ±∞ inputs are errors naming
    /// `input a` or `input b`, the row and the column.
    pub fn pair_scores(&self, a: &Matrix, b: &Matrix, head: &HostHead) -> Result<Vec<f32>> {
        match self {
            Self::Mlp(m) => m.pair_scores(a, b, head),
            Self::Conv(c) => c.pair_scores(a, b, head),
            Self::Bert(t) => {
                check_pair_inputs(a, b, a.cols())?;
                let (ea, eb) = (t.embed(a, "input a")?, t.embed(b, "input b")?);
                let mut out = vec![0.0f32; a.rows()];
                head.score_rows(ea.as_slice(), eb.as_slice(), t.output_dim(), &mut out);
                Ok(out)
            }
        }
    }

    /// Embeddings of every row of `x`; NaN or ±∞ inputs are errors naming `what`.
    pub fn embed(&self, x: &Matrix, what: &str) -> Result<Matrix> {
        match self {
            Self::Mlp(m) => m.embed(x, what),
            Self::Conv(c) => c.embed(x, what),
            Self::Bert(t) => t.embed(x, what),
        }
    }
}

/// Runs `f` with this thread's three inference scratch buffers, kept between calls so that
/// repeated `predict` calls neither allocate nor zero them (shared by the MLP and conv host
/// encoders; `f` must not call back into another user of the scratch).
pub(super) fn with_thread_scratch<R>(f: impl FnOnce(&mut [Vec<f32>; 3]) -> R) -> R {
    thread_local! {
        static SCRATCH: std::cell::RefCell<[Vec<f32>; 3]> = Default::default();
    }
    SCRATCH.with(|scratch| f(&mut scratch.borrow_mut()))
}

/// Blocks of at most this many pairs are embedded as one stacked `[a; b]` pass.
pub(super) const SMALL_BLOCK: usize = 16;

/// Rows per parallel block: enough blocks to keep every thread busy, at most 256 rows (the
/// activations of a block stay in L2), at least 16.
pub(super) fn block_rows(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads().max(1))
        .clamp(16, 256)
        .min(n.max(1))
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
            Self::WeightedL1 { weight, bias } => weighted_l1_logit(ea, eb, weight, *bias),
        }
    }
}

/// The weighted-L1 head's logit of "same" for one pair: `z = Σ wᵢ·|aᵢ − bᵢ| + bias`.
pub(super) fn weighted_l1_logit(ea: &[f32], eb: &[f32], weight: &[f32], bias: f32) -> f32 {
    ea.iter()
        .zip(eb)
        .zip(weight)
        .map(|((x, y), w)| w * (x - y).abs())
        .sum::<f32>()
        + bias
}
