//! Distances between stored embeddings, and the exact (brute-force) search over a gallery.
//!
//! A [`Scorer`] is a model's head held on the host: the distance `d(e_a, e_b)` its
//! `predict` would give for two inputs whose embeddings are `e_a` and `e_b`:
//!
//! | head | `d(a, b)` |
//! |---|---|
//! | Euclidean | `√max(Σᵢ(aᵢ − bᵢ)², ε)` |
//! | Manhattan | `Σᵢ|aᵢ − bᵢ|` |
//! | cosine | `1 − a·b / max(‖a‖‖b‖, ε)` |
//! | weighted L1 (Koch) | `1 − σ(Σᵢ wᵢ|aᵢ − bᵢ| + b)` |
//!
//! The sums run over 8 lanes compiled for AVX-512, AVX2 + FMA or the baseline (picked at run
//! time), so a distance can differ from [`Distance::between`] in the last bits.
//!
//! ```
//! use siamese::gallery::{ExactIndex, Scorer};
//! use siamese::prelude::*;
//!
//! let scorer = Scorer::Distance(Distance::Euclidean);
//! let mut index = ExactIndex::new(2);
//! index.insert(7, 0, &[0.0, 0.0]).unwrap();
//! index.insert(8, 1, &[3.0, 4.0]).unwrap();
//! let d = index.distances(&scorer, &[0.0, 0.0]).unwrap();
//! assert!((d[1] - 5.0).abs() < 1e-6);
//! assert_eq!(index.ids(), &[7, 8]);
//! ```

use std::collections::HashMap;

use crate::distance::Distance;
use crate::error::{Result, SiameseError};
use crate::simd::multiversion;

/// Smallest product of norms (and squared distance) used, as in [`Distance`].
const EPSILON: f32 = 1e-7;

/// A model's distance between two embeddings, on the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Scorer {
    /// A distance layer.
    Distance(Distance),
    /// Koch et al.'s head: `d = 1 − σ(wᵀ|a − b| + bias)`.
    WeightedL1 {
        /// One weight per embedding dimension.
        weight: Vec<f32>,
        /// The bias.
        bias: f32,
    },
}

multiversion! {
    /// Lane sums of `(a − b)²`, `|a − b|`, `w·|a − b|`, `a·b`, `a·a` and `b·b`, as `kind` asks
    /// (0: squared difference, 1: absolute difference, 2: weighted absolute difference,
    /// 3: dot product and both squared norms).
    fn lanes(a: &[f32], b: &[f32], w: &[f32], kind: u8, out: &mut [f32; 3]) {
        let mut s0 = [0.0f32; 8];
        let mut s1 = [0.0f32; 8];
        let mut s2 = [0.0f32; 8];
        let n = a.len() / 8 * 8;
        let (ah, at) = a.split_at(n);
        let (bh, bt) = b.split_at(n);
        match kind {
            0 => {
                for (x, y) in ah.chunks_exact(8).zip(bh.chunks_exact(8)) {
                    for l in 0..8 {
                        let d = x[l] - y[l];
                        s0[l] += d * d;
                    }
                }
                for (x, y) in at.iter().zip(bt) {
                    s0[0] += (x - y) * (x - y);
                }
            }
            1 => {
                for (x, y) in ah.chunks_exact(8).zip(bh.chunks_exact(8)) {
                    for l in 0..8 {
                        s0[l] += (x[l] - y[l]).abs();
                    }
                }
                for (x, y) in at.iter().zip(bt) {
                    s0[0] += (x - y).abs();
                }
            }
            2 => {
                let (wh, wt) = w.split_at(n);
                for ((x, y), v) in ah.chunks_exact(8).zip(bh.chunks_exact(8)).zip(wh.chunks_exact(8)) {
                    for l in 0..8 {
                        s0[l] += v[l] * (x[l] - y[l]).abs();
                    }
                }
                for ((x, y), v) in at.iter().zip(bt).zip(wt) {
                    s0[0] += v * (x - y).abs();
                }
            }
            _ => {
                for (x, y) in ah.chunks_exact(8).zip(bh.chunks_exact(8)) {
                    for l in 0..8 {
                        s0[l] += x[l] * y[l];
                        s1[l] += x[l] * x[l];
                        s2[l] += y[l] * y[l];
                    }
                }
                for (x, y) in at.iter().zip(bt) {
                    s0[0] += x * y;
                    s1[0] += x * x;
                    s2[0] += y * y;
                }
            }
        }
        out[0] = s0.iter().sum();
        out[1] = s1.iter().sum();
        out[2] = s2.iter().sum();
    }
}

impl Scorer {
    /// The embedding width this scorer needs, when it fixes one (the weighted-L1 head).
    pub fn dim(&self) -> Option<usize> {
        match self {
            Self::Distance(_) => None,
            Self::WeightedL1 { weight, .. } => Some(weight.len()),
        }
    }

    /// `d(a, b)`; `a` and `b` must have the same length (and the head's width).
    pub fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        let mut s = [0.0f32; 3];
        match self {
            Self::Distance(Distance::Euclidean) => {
                lanes(a, b, &[], 0, &mut s);
                s[0].max(EPSILON).sqrt()
            }
            Self::Distance(Distance::Manhattan) => {
                lanes(a, b, &[], 1, &mut s);
                s[0]
            }
            Self::Distance(Distance::Cosine) => {
                lanes(a, b, &[], 3, &mut s);
                1.0 - s[0] / (s[1].sqrt() * s[2].sqrt()).max(EPSILON)
            }
            Self::WeightedL1 { weight, bias } => {
                lanes(a, b, weight, 2, &mut s);
                // 1 − σ(z) = σ(−z)
                1.0 / (1.0 + (s[0] + bias).exp())
            }
        }
    }

    /// Checks that an embedding of width `dim` can be scored.
    pub fn check_dim(&self, dim: usize) -> Result<()> {
        match self.dim() {
            Some(d) if d != dim => Err(SiameseError::shape(
                "embedding",
                format!("{d} values (the weighted-L1 head's width)"),
                format!("{dim} values"),
            )),
            _ => Ok(()),
        }
    }
}

/// Every stored embedding in one flat array, searched exhaustively: exact, and fast enough
/// for galleries of a few hundred thousand samples (one pass over `n · dim` values).
#[derive(Debug, Clone)]
pub struct ExactIndex {
    dim: usize,
    values: Vec<f32>,
    ids: Vec<i64>,
    tags: Vec<u32>,
    position: HashMap<i64, usize>,
}

impl ExactIndex {
    /// An empty index of `dim`-wide embeddings.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            values: Vec::new(),
            ids: Vec::new(),
            tags: Vec::new(),
            position: HashMap::new(),
        }
    }

    /// Embedding width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Embeddings held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the index holds nothing.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The sample ids, in the order of [`Self::distances`].
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    /// The tag of each sample (the caller's group, e.g. an identity slot), in the order of
    /// [`Self::ids`].
    pub fn tags(&self) -> &[u32] {
        &self.tags
    }

    /// The embedding stored under `id`.
    pub fn get(&self, id: i64) -> Option<&[f32]> {
        let p = *self.position.get(&id)?;
        Some(&self.values[p * self.dim..(p + 1) * self.dim])
    }

    /// Adds (or replaces) the embedding of sample `id`, with a `tag` of the caller's.
    pub fn insert(&mut self, id: i64, tag: u32, embedding: &[f32]) -> Result<()> {
        if embedding.len() != self.dim {
            return Err(SiameseError::shape(
                "embedding",
                format!("{} values", self.dim),
                format!("{} values", embedding.len()),
            ));
        }
        if let Some(&p) = self.position.get(&id) {
            self.values[p * self.dim..(p + 1) * self.dim].copy_from_slice(embedding);
            self.tags[p] = tag;
            return Ok(());
        }
        self.position.insert(id, self.ids.len());
        self.ids.push(id);
        self.tags.push(tag);
        self.values.extend_from_slice(embedding);
        Ok(())
    }

    /// Removes sample `id` (the last sample takes its place); whether it was there.
    pub fn remove(&mut self, id: i64) -> bool {
        let Some(p) = self.position.remove(&id) else {
            return false;
        };
        let last = self.ids.len() - 1;
        if p != last {
            let moved = self.ids[last];
            self.ids[p] = moved;
            self.tags[p] = self.tags[last];
            self.position.insert(moved, p);
            let (head, tail) = self.values.split_at_mut(last * self.dim);
            head[p * self.dim..(p + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
        }
        self.ids.pop();
        self.tags.pop();
        self.values.truncate(last * self.dim);
        true
    }

    /// `d(query, e)` for every stored embedding `e`, in the order of [`Self::ids`].
    pub fn distances(&self, scorer: &Scorer, query: &[f32]) -> Result<Vec<f32>> {
        if query.len() != self.dim {
            return Err(SiameseError::shape(
                "query embedding",
                format!("{} values", self.dim),
                format!("{} values", query.len()),
            ));
        }
        scorer.check_dim(self.dim)?;
        if self.dim == 0 {
            return Ok(vec![scorer.distance(&[], &[]); self.len()]);
        }
        Ok(self
            .values
            .chunks_exact(self.dim)
            .map(|e| scorer.distance(query, e))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32 * 2654435761).wrapping_add(seed * 97) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn every_head_matches_the_plain_formula() {
        for n in [1, 7, 8, 13, 128] {
            let (a, b) = (pseudo(n, 1), pseudo(n, 2));
            for d in [Distance::Euclidean, Distance::Manhattan, Distance::Cosine] {
                let got = Scorer::Distance(d).distance(&a, &b);
                let want = d.between(&a, &b);
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{d:?} {n}"
                );
            }
            let weight = pseudo(n, 3);
            let z: f32 = weight
                .iter()
                .zip(a.iter().zip(&b))
                .map(|(w, (x, y))| w * (x - y).abs())
                .sum::<f32>()
                + 0.25;
            let want = 1.0 - 1.0 / (1.0 + (-z).exp());
            let got = Scorer::WeightedL1 { weight, bias: 0.25 }.distance(&a, &b);
            assert!((got - want).abs() < 1e-6, "{got} {want}");
        }
        // Known values: a 3-4-5 triangle, orthogonal vectors.
        let e = Scorer::Distance(Distance::Euclidean);
        assert!((e.distance(&[0.0, 0.0], &[3.0, 4.0]) - 5.0).abs() < 1e-6);
        let c = Scorer::Distance(Distance::Cosine);
        assert!((c.distance(&[1.0, 0.0], &[0.0, 2.0]) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn insert_remove_and_search_keep_ids_and_rows_together() {
        let mut index = ExactIndex::new(3);
        for id in 0..5 {
            index.insert(id, 0, &[id as f32; 3]).unwrap();
        }
        assert!(index.remove(1));
        assert!(!index.remove(1));
        index.insert(2, 0, &[20.0; 3]).unwrap();
        assert_eq!(index.len(), 4);
        let d = index
            .distances(&Scorer::Distance(Distance::Manhattan), &[0.0; 3])
            .unwrap();
        for (id, d) in index.ids().iter().zip(d) {
            let want = if *id == 2 { 60.0 } else { 3.0 * *id as f32 };
            assert_eq!(d, want, "sample {id}");
            assert_eq!(index.get(*id).unwrap()[0] * 3.0, want);
        }
        let err = index.insert(9, 0, &[1.0; 2]).unwrap_err().to_string();
        assert!(err.contains("expected 3 values, got 2"), "{err}");
        let err = index
            .distances(&Scorer::Distance(Distance::Euclidean), &[1.0; 4])
            .unwrap_err()
            .to_string();
        assert!(err.contains("query embedding"), "{err}");
    }
}
