//! Host-trainer steps (see [`crate::fused`]): the batch is gathered straight into the
//! trainer's stacked input buffer.

use rand_chacha::ChaCha8Rng;

use super::epochs::{AugmentFn, Stepper};
use super::state::OptimizerSnapshot;
use super::triplets::TripletSource;
use crate::data::PairData;
use crate::error::Result;
use crate::fused::{HostBatch, HostTrainer};
use crate::siamese::SiameseNetwork;

/// Host-trainer steps: the batch is gathered straight into the trainer's stacked input
/// buffer (pairs, or triplets for the triplet loss, drawn as the burn path draws them).
pub(super) struct FusedStepper<'t, 'd> {
    pub(super) network: SiameseNetwork,
    pub(super) trainer: &'t mut HostTrainer,
    pub(super) triplets: Option<TripletSource<'d>>,
    pub(super) epoch_triplets: Option<Vec<[usize; 3]>>,
    pub(super) batch_losses: Vec<f32>,
    pub(super) distances: Vec<f32>,
    pub(super) labels: Vec<f32>,
}

impl Stepper for FusedStepper<'_, '_> {
    fn items(&self, train: PairData<'_>) -> usize {
        self.triplets.as_ref().map_or(train.len(), |t| t.len())
    }

    fn begin_epoch(&mut self, order: &[usize], rng: &mut ChaCha8Rng) {
        self.epoch_triplets = self.triplets.as_ref().map(|t| t.draw(order, rng));
    }

    fn step(
        &mut self,
        train: PairData<'_>,
        start: usize,
        idx: &[usize],
        augment: Option<&mut AugmentFn<'_>>,
    ) -> Result<()> {
        let size = idx.len();
        if let (Some(source), Some(all)) = (&self.triplets, &self.epoch_triplets) {
            // Rows [anchors; positives; negatives].
            let batch = &all[start..start + size];
            let out = match augment {
                None => self.trainer.step(HostBatch::Triplets(size), &|r, row| {
                    row.copy_from_slice(source.sample(batch[r % size][r / size]));
                })?,
                Some(augment) => {
                    let mut rows = source.gather(batch);
                    for m in &mut rows {
                        augment(m)?;
                    }
                    self.trainer.step(HostBatch::Triplets(size), &|r, row| {
                        row.copy_from_slice(rows[r / size].row(r % size));
                    })?
                }
            };
            self.batch_losses.push(out.loss);
            self.distances.extend(out.distances);
            self.labels.extend(std::iter::repeat_n(1.0, size));
            self.labels.extend(std::iter::repeat_n(0.0, size));
            return Ok(());
        }
        let labels: Vec<f32> = idx.iter().map(|&k| train.label(k)).collect();
        let batch = HostBatch::Pairs(&labels);
        let out = match augment {
            None => self.trainer.step(batch, &|r, row| {
                let (k, branch) = if r < size {
                    (idx[r], 0)
                } else {
                    (idx[r - size], 1)
                };
                row.copy_from_slice(train.input(k, branch));
            })?,
            Some(augment) => {
                let (mut a, mut b, _) = train.gather(idx);
                augment(&mut a)?;
                augment(&mut b)?;
                self.trainer.step(batch, &|r, row| {
                    row.copy_from_slice(if r < size { a.row(r) } else { b.row(r - size) });
                })?
            }
        };
        self.batch_losses.push(out.loss);
        self.distances.extend(out.distances);
        self.labels.extend(labels);
        Ok(())
    }

    fn end_epoch(&mut self) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        Ok((
            std::mem::take(&mut self.batch_losses),
            std::mem::take(&mut self.distances),
            std::mem::take(&mut self.labels),
        ))
    }

    fn network(&mut self) -> &SiameseNetwork {
        self.trainer.write_back(&mut self.network);
        &self.network
    }

    fn reseed(&mut self, seed: u64) {
        self.network.encoder.reseed(seed);
        self.trainer.reseed(seed);
    }

    fn optimizer_snapshot(&self) -> Result<OptimizerSnapshot> {
        Ok(OptimizerSnapshot::Fused(self.trainer.state().to_parts()))
    }
}
