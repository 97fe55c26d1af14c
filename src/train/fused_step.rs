//! Fused MLP steps (see [`crate::fused`]): the batch is gathered straight into the trainer's
//! stacked input buffer.

use super::epochs::{AugmentFn, Stepper};
use super::state::OptimizerSnapshot;
use crate::data::PairData;
use crate::error::Result;
use crate::fused::HostTrainer;
use crate::siamese::SiameseNetwork;

/// Fused MLP steps: the batch is gathered straight into the trainer's stacked input buffer.
pub(super) struct FusedStepper<'t> {
    pub(super) network: SiameseNetwork,
    pub(super) trainer: &'t mut HostTrainer,
    pub(super) batch_losses: Vec<f32>,
    pub(super) distances: Vec<f32>,
    pub(super) labels: Vec<f32>,
}

impl Stepper for FusedStepper<'_> {
    fn items(&self, train: PairData<'_>) -> usize {
        train.len()
    }

    fn step(
        &mut self,
        train: PairData<'_>,
        _start: usize,
        idx: &[usize],
        augment: Option<&mut AugmentFn<'_>>,
    ) -> Result<()> {
        let size = idx.len();
        let labels: Vec<f32> = idx.iter().map(|&k| train.label(k)).collect();
        let out = match augment {
            None => self.trainer.step(&labels, &|r, row| {
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
                self.trainer.step(&labels, &|r, row| {
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
