//! One burn autodiff step per batch (every model, every device).

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

use super::epochs::{AugmentFn, Stepper};
use super::state::OptimizerSnapshot;
use super::triplets::TripletSource;
use crate::data::{PairData, into_tensor, labels_tensor, read_tensor};
use crate::error::Result;
use crate::loss::{LossConfig, TripletLoss};
use crate::siamese::SiameseNetwork;

/// burn autodiff steps. Batch losses and distances stay on the device (detached) until the
/// epoch ends, so a step costs no extra sync and almost no extra ops.
pub(super) struct BurnStepper<'o, 'd> {
    pub(super) network: SiameseNetwork,
    pub(super) optimizer: &'o mut ModuleOptimizer,
    pub(super) lr: f64,
    pub(super) loss: &'o LossConfig,
    pub(super) device: Device,
    pub(super) triplets: Option<TripletSource<'d>>,
    pub(super) epoch_triplets: Option<Vec<[usize; 3]>>,
    pub(super) batch_losses: Vec<Tensor<1>>,
    pub(super) distances: Vec<Tensor<2>>,
    pub(super) labels: Vec<f32>,
}

impl Stepper for BurnStepper<'_, '_> {
    fn items(&self, train: PairData<'_>) -> usize {
        // One triplet per similar pair that can form one.
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
        mut augment: Option<&mut AugmentFn<'_>>,
    ) -> Result<()> {
        let network = &self.network;
        let device = &self.device;
        let size = idx.len();
        // Each batch is gathered on the host into fresh contiguous tensors: measured faster
        // on flex than gathering or slicing device-resident copies.
        let l = match (&self.triplets, &self.epoch_triplets) {
            (Some(source), Some(all)) => {
                let mut rows = source.gather(&all[start..start + size]);
                if let Some(augment) = &mut augment {
                    for m in &mut rows {
                        augment(m)?;
                    }
                }
                let [a, p, ng] = rows.map(|m| into_tensor(m, device));
                let emb = network.embed(Tensor::cat(vec![a, p, ng], 0));
                let distance = network.distance();
                let ea = emb.clone().narrow(0, 0, size);
                let d_ap = distance.forward(ea.clone(), emb.clone().narrow(0, size, size));
                let d_an = distance.forward(ea, emb.narrow(0, 2 * size, size));
                self.distances
                    .push(Tensor::cat(vec![d_ap.clone(), d_an.clone()], 0).detach());
                self.labels.extend(std::iter::repeat_n(1.0, size));
                self.labels.extend(std::iter::repeat_n(0.0, size));
                TripletLoss::new(self.loss.margin).forward(d_ap, d_an)
            }
            _ => {
                let (mut a, mut b, labels) = train.gather(idx);
                if let Some(augment) = &mut augment {
                    augment(&mut a)?;
                    augment(&mut b)?;
                }
                let a = into_tensor(a, device);
                let b = into_tensor(b, device);
                let y = labels_tensor(&labels, device);
                self.labels.extend(labels);
                let s = network.forward_scores(a, b);
                self.distances
                    .push(network.distance_from_scores(s.clone().detach()));
                self.loss.forward(s, y)
            }
        };
        self.batch_losses.push(l.clone().detach());
        let grads = GradientsParams::from_grads(l.backward(), &self.network);
        self.network = self.optimizer.step(self.lr, self.network.clone(), grads);
        Ok(())
    }

    fn end_epoch(&mut self) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let losses = read_tensor(Tensor::cat(std::mem::take(&mut self.batch_losses), 0))?;
        let distances = read_tensor(Tensor::cat(std::mem::take(&mut self.distances), 0))?;
        Ok((losses, distances, std::mem::take(&mut self.labels)))
    }

    fn network(&mut self) -> &SiameseNetwork {
        &self.network
    }

    fn reseed(&mut self, seed: u64) {
        self.network.encoder.reseed(seed);
    }

    fn optimizer_snapshot(&self) -> Result<OptimizerSnapshot> {
        OptimizerSnapshot::of_burn(self.optimizer, &self.network)
    }
}
