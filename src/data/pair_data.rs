//! Pair containers: borrowed and owned dense pairs, and [`PairData`], which also covers index
//! pairs into one sample store.

use super::Matrix;
use super::pairs::IndexPair;
use crate::error::{Result, SiameseError};

/// Pairs with labels, borrowed: `a[i]` and `b[i]` form pair `i`, `labels[i]` is 1 when similar.
#[derive(Debug, Clone, Copy)]
pub struct PairsRef<'a> {
    /// First input of each pair, `[n, input_dim]`.
    pub a: &'a Matrix,
    /// Second input of each pair, `[n, input_dim]`.
    pub b: &'a Matrix,
    /// One label per pair in `[0, 1]`.
    pub labels: &'a [f32],
}

impl PairsRef<'_> {
    /// Number of pairs (rows of `a`; `labels` may be empty when only predicting).
    pub fn len(&self) -> usize {
        self.a.rows()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Owned pairs with labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Pairs {
    /// First input of each pair.
    pub a: Matrix,
    /// Second input of each pair.
    pub b: Matrix,
    /// One label per pair in `[0, 1]`.
    pub labels: Vec<f32>,
}

impl Pairs {
    /// Borrows the pairs.
    pub fn as_ref(&self) -> PairsRef<'_> {
        PairsRef {
            a: &self.a,
            b: &self.b,
            labels: &self.labels,
        }
    }

    /// The pairs at `indices`, in order.
    pub fn select(&self, indices: &[usize]) -> Self {
        Self {
            a: self.a.select_rows(indices),
            b: self.b.select_rows(indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// Pairs for training or evaluation: dense rows, or index pairs into one sample store (no
/// pixel is held twice; the store's embeddings are computed once when evaluating).
#[derive(Debug, Clone, Copy)]
pub enum PairData<'a> {
    /// `a[i]`, `b[i]`, `labels[i]`.
    Dense(PairsRef<'a>),
    /// `samples[pairs[k].i]`, `samples[pairs[k].j]`, `pairs[k].label`.
    Indexed {
        /// The sample store, one sample per row.
        samples: &'a Matrix,
        /// Pairs of row indices with their labels.
        pairs: &'a [IndexPair],
    },
}

impl<'a> From<PairsRef<'a>> for PairData<'a> {
    fn from(p: PairsRef<'a>) -> Self {
        Self::Dense(p)
    }
}

impl PairData<'_> {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        match self {
            Self::Dense(p) => p.len(),
            Self::Indexed { pairs, .. } => pairs.len(),
        }
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Label of pair `k`.
    pub fn label(&self, k: usize) -> f32 {
        match self {
            Self::Dense(p) => p.labels[k],
            Self::Indexed { pairs, .. } => pairs[k].label,
        }
    }

    /// All labels, in order.
    pub fn labels(&self) -> Vec<f32> {
        (0..self.len()).map(|k| self.label(k)).collect()
    }

    /// Features per sample.
    pub fn cols(&self) -> usize {
        match self {
            Self::Dense(p) => p.a.cols(),
            Self::Indexed { samples, .. } => samples.cols(),
        }
    }

    /// Dense copies of the pairs at positions `idx`: `(a, b, labels)`.
    pub fn gather(&self, idx: &[usize]) -> (Matrix, Matrix, Vec<f32>) {
        let labels = idx.iter().map(|&k| self.label(k)).collect();
        match self {
            Self::Dense(p) => (p.a.select_rows(idx), p.b.select_rows(idx), labels),
            Self::Indexed { samples, pairs } => {
                let i: Vec<usize> = idx.iter().map(|&k| pairs[k].i).collect();
                let j: Vec<usize> = idx.iter().map(|&k| pairs[k].j).collect();
                (samples.select_rows(&i), samples.select_rows(&j), labels)
            }
        }
    }

    /// Input `branch` (0 = A, 1 = B) of pair `k`.
    pub fn input(&self, k: usize, branch: usize) -> &[f32] {
        match (self, branch) {
            (Self::Dense(p), 0) => p.a.row(k),
            (Self::Dense(p), _) => p.b.row(k),
            (Self::Indexed { samples, pairs }, 0) => samples.row(pairs[k].i),
            (Self::Indexed { samples, pairs }, _) => samples.row(pairs[k].j),
        }
    }

    /// Checks shapes, labels, indices and finiteness for a model of `input_dim` features.
    pub fn check(&self, input_dim: usize) -> Result<()> {
        match self {
            Self::Dense(p) => super::check_pairs(p.a, p.b, Some(p.labels), input_dim),
            Self::Indexed { samples, pairs } => {
                super::check_width(samples, input_dim, "samples")?;
                if pairs.is_empty() {
                    return Err(SiameseError::Empty("no pairs were given".into()));
                }
                if let Some(k) = pairs
                    .iter()
                    .position(|p| p.i >= samples.rows() || p.j >= samples.rows())
                {
                    return Err(SiameseError::invalid(
                        "pairs",
                        format!("pair {k} points past the {} samples", samples.rows()),
                    ));
                }
                let labels: Vec<f32> = pairs.iter().map(|p| p.label).collect();
                super::check_labels("pairs", &labels)?;
                samples.check_finite("samples")
            }
        }
    }
}
