//! Host-trainer steps (see [`crate::fused`]): the batch is gathered straight into the
//! trainer's stacked input buffer.

use rand_chacha::ChaCha8Rng;

use super::classes::{ClassSource, pair_labels};
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
    /// The configured learning rate, which a schedule scales.
    pub(super) base_lr: f64,
    pub(super) triplets: Option<TripletSource<'d>>,
    pub(super) epoch_triplets: Option<Vec<[usize; 3]>>,
    pub(super) classes: Option<ClassSource<'d>>,
    pub(super) epoch_classes: Option<Vec<usize>>,
    pub(super) batch_losses: Vec<f32>,
    pub(super) distances: Vec<f32>,
    pub(super) labels: Vec<f32>,
}

impl Stepper for FusedStepper<'_, '_> {
    fn items(&self, train: PairData<'_>) -> usize {
        match (&self.classes, &self.triplets) {
            (Some(c), _) => c.len(),
            (None, Some(t)) => t.len(),
            (None, None) => train.len(),
        }
    }

    fn begin_epoch(&mut self, order: &[usize], rng: &mut ChaCha8Rng) {
        self.epoch_triplets = self.triplets.as_ref().map(|t| t.draw(order, rng));
        self.epoch_classes = self.classes.as_ref().map(|c| c.draw(rng));
    }

    fn set_lr_factor(&mut self, factor: f64) {
        self.trainer.set_lr((self.base_lr * factor) as f32);
    }

    fn lr(&self) -> f64 {
        self.trainer.lr() as f64
    }

    fn step(
        &mut self,
        train: PairData<'_>,
        start: usize,
        idx: &[usize],
        augment: Option<&mut AugmentFn<'_>>,
    ) -> Result<()> {
        let size = idx.len();
        if let (Some(source), Some(all)) = (&self.classes, &self.epoch_classes) {
            // One row per sample, with its class for the miner.
            let batch = &all[start..start + size];
            let labels = source.labels(batch);
            let out = match augment {
                None => self.trainer.step(HostBatch::Classes(&labels), &|r, row| {
                    row.copy_from_slice(source.sample(batch[r]));
                })?,
                Some(augment) => {
                    let mut rows = source.gather(batch);
                    augment(&mut rows)?;
                    self.trainer.step(HostBatch::Classes(&labels), &|r, row| {
                        row.copy_from_slice(rows.row(r));
                    })?
                }
            };
            self.batch_losses.push(out.loss);
            self.distances.extend(out.distances);
            self.labels.extend(pair_labels(&labels));
            return Ok(());
        }
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
