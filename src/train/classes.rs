//! Class-labelled batches for a loss with a miner (see [`crate::loss::mining`]): the `P × K`
//! samples of [`PerClassSampler`] from one sample store.

use rand_chacha::ChaCha8Rng;

use crate::data::sampler::PerClassSampler;
use crate::data::{Matrix, PairData};
use crate::error::{Result, SiameseError};

/// The samples and sampler of a mined run.
pub(super) struct ClassSource<'a> {
    samples: &'a Matrix,
    sampler: &'a PerClassSampler,
}

impl<'a> ClassSource<'a> {
    /// The sampler's batches over `data`'s sample store, whose rows its labels describe.
    pub(super) fn new(data: PairData<'a>, sampler: &'a PerClassSampler) -> Result<Self> {
        let PairData::Indexed { samples, .. } = data else {
            return Err(SiameseError::config(
                "sampler",
                "class-balanced batches need index pairs into one sample store (an image \
                 folder, MNIST or a pair list), not dense pairs",
            ));
        };
        if sampler.labels().len() != samples.rows() {
            return Err(SiameseError::invalid(
                "sampler labels",
                format!(
                    "{} labels for {} training samples; expected one label per sample",
                    sampler.labels().len(),
                    samples.rows()
                ),
            ));
        }
        Ok(Self { samples, sampler })
    }

    /// Samples per epoch: the sampler's batches × its batch size.
    pub(super) fn len(&self) -> usize {
        self.sampler.batches_per_epoch() * self.sampler.batch_size()
    }

    /// One epoch's samples, batch after batch.
    pub(super) fn draw(&self, rng: &mut ChaCha8Rng) -> Vec<usize> {
        self.sampler.epoch(rng)
    }

    /// Sample `i`'s input row.
    pub(super) fn sample(&self, i: usize) -> &[f32] {
        self.samples.row(i)
    }

    /// The classes of samples `idx`.
    pub(super) fn labels(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter().map(|&i| self.sampler.labels()[i]).collect()
    }

    /// The rows of samples `idx`.
    pub(super) fn gather(&self, idx: &[usize]) -> Matrix {
        self.samples.select_rows(idx)
    }
}

/// The label (1 = same class) of every pair `(i, j)`, `i < j`, row by row: the order in
/// which the mined steps report their distances.
pub(super) fn pair_labels(labels: &[usize]) -> impl Iterator<Item = f32> + '_ {
    let n = labels.len();
    (0..n).flat_map(move |i| (i + 1..n).map(move |j| f32::from(u8::from(labels[i] == labels[j]))))
}
