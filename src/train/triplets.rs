//! Triplets `(anchor, positive, negative)` for the triplet loss, drawn from index pairs.

use rand_chacha::ChaCha8Rng;

use crate::data::{Matrix, PairData};
use crate::error::{Result, SiameseError};

/// Triplets for the triplet loss, formed from index pairs: a similar pair `(a, p)` and a
/// dissimilar pair `(a, n)` that share the sample `a` give the triplet `(a, p, n)`.
///
/// Each epoch draws one triplet per similar pair that can form one: the anchor is whichever
/// end of the pair has dissimilar partners (a random end when both do) and the negative a
/// random one of its dissimilar partners. With class-labelled samples this is the usual
/// random-negative sampling; with a pair list (signatures) the negatives are the forgeries
/// the list pairs with each genuine signature.
pub(super) struct TripletSource<'a> {
    samples: &'a Matrix,
    /// Similar pairs `(i, j)` with at least one end that has a dissimilar partner.
    positives: Vec<(usize, usize)>,
    /// Dissimilar partners of each sample.
    negatives: Vec<Vec<usize>>,
}

impl<'a> TripletSource<'a> {
    pub(super) fn new(data: PairData<'a>) -> Result<Self> {
        let PairData::Indexed { samples, pairs } = data else {
            return Err(SiameseError::config(
                "loss.type",
                "the triplet loss needs index pairs into one sample store (an image folder, \
                 MNIST or a pair list), not dense pairs",
            ));
        };
        let mut negatives = vec![Vec::new(); samples.rows()];
        for p in pairs.iter().filter(|p| p.label < 0.5) {
            negatives[p.i].push(p.j);
            negatives[p.j].push(p.i);
        }
        for list in &mut negatives {
            list.sort_unstable();
            list.dedup();
        }
        let positives: Vec<(usize, usize)> = pairs
            .iter()
            .filter(|p| p.label >= 0.5)
            .filter(|p| !negatives[p.i].is_empty() || !negatives[p.j].is_empty())
            .map(|p| (p.i, p.j))
            .collect();
        if positives.is_empty() {
            return Err(SiameseError::Empty(
                "the triplet loss found no similar pair sharing a sample with a dissimilar pair"
                    .into(),
            ));
        }
        Ok(Self {
            samples,
            positives,
            negatives,
        })
    }

    pub(super) fn len(&self) -> usize {
        self.positives.len()
    }

    /// One `(anchor, positive, negative)` per similar pair, in `order`.
    pub(super) fn draw(&self, order: &[usize], rng: &mut ChaCha8Rng) -> Vec<[usize; 3]> {
        use rand::RngExt;
        order
            .iter()
            .map(|&k| {
                let (i, j) = self.positives[k];
                let swap = match (self.negatives[i].is_empty(), self.negatives[j].is_empty()) {
                    (false, true) => false,
                    (true, false) => true,
                    _ => rng.random_bool(0.5),
                };
                let (a, p) = if swap { (j, i) } else { (i, j) };
                let neg = &self.negatives[a];
                [a, p, neg[rng.random_range(0..neg.len())]]
            })
            .collect()
    }

    /// Sample `i`'s input row.
    pub(super) fn sample(&self, i: usize) -> &[f32] {
        self.samples.row(i)
    }

    /// Rows of the anchors, positives and negatives of `batch`.
    pub(super) fn gather(&self, batch: &[[usize; 3]]) -> [Matrix; 3] {
        [0, 1, 2].map(|r| {
            let idx: Vec<usize> = batch.iter().map(|t| t[r]).collect();
            self.samples.select_rows(&idx)
        })
    }
}
