//! One burn autodiff step per batch (every model, every device).

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand_chacha::ChaCha8Rng;

use super::classes::{ClassSource, pair_labels};
use super::epochs::{AugmentFn, Stepper};
use super::state::OptimizerSnapshot;
use super::triplets::TripletSource;
use crate::data::{PairData, into_tensor, labels_tensor, read_tensor};
use crate::error::Result;
use crate::loss::mining::mine;
use crate::loss::{LossConfig, LossKind, TripletLoss, multiple_negatives_ranking};
use crate::siamese::SiameseNetwork;

/// burn autodiff steps. Batch losses and distances stay on the device (detached) until the
/// epoch ends, so a step costs no extra sync and almost no extra ops.
pub(super) struct BurnStepper<'o, 'd> {
    pub(super) network: SiameseNetwork,
    pub(super) optimizer: &'o mut ModuleOptimizer,
    pub(super) lr: f64,
    /// The configured learning rate, which a schedule scales into `lr`.
    pub(super) base_lr: f64,
    pub(super) loss: &'o LossConfig,
    pub(super) device: Device,
    pub(super) triplets: Option<TripletSource<'d>>,
    pub(super) epoch_triplets: Option<Vec<[usize; 3]>>,
    pub(super) classes: Option<ClassSource<'d>>,
    pub(super) epoch_classes: Option<Vec<usize>>,
    pub(super) batch_losses: Vec<Tensor<1>>,
    pub(super) distances: Vec<Tensor<2>>,
    pub(super) labels: Vec<f32>,
}

impl Stepper for BurnStepper<'_, '_> {
    fn items(&self, train: PairData<'_>) -> usize {
        // The sampler's samples, or one triplet per similar pair that can form one.
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
        self.lr = self.base_lr * factor;
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn step(
        &mut self,
        train: PairData<'_>,
        start: usize,
        idx: &[usize],
        mut augment: Option<&mut AugmentFn<'_>>,
    ) -> Result<()> {
        let size = idx.len();
        if self.classes.is_some() {
            return self.mined_step(start, size, augment);
        }
        let network = &self.network;
        let device = &self.device;
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
                Some(TripletLoss::new(self.loss.margin).forward(d_ap, d_an))
            }
            _ => {
                let (mut a, mut b, labels) = train.gather(idx);
                if let Some(augment) = &mut augment {
                    augment(&mut a)?;
                    augment(&mut b)?;
                }
                let a = into_tensor(a, device);
                let b = into_tensor(b, device);
                if self.loss.kind == LossKind::MultipleNegativesRanking {
                    // Both sides in one pass through the shared encoder.
                    let emb = network.embed(Tensor::cat(vec![a, b], 0));
                    let (ea, eb) = (emb.clone().narrow(0, 0, size), emb.narrow(0, size, size));
                    let d = network.distance().forward(ea.clone(), eb.clone());
                    self.distances.push(d.detach());
                    let l = multiple_negatives_ranking(ea, eb, &labels);
                    self.labels.extend(labels);
                    l
                } else {
                    let y = labels_tensor(&labels, device);
                    self.labels.extend(labels);
                    let s = network.forward_scores(a, b);
                    self.distances
                        .push(network.distance_from_scores(s.clone().detach()));
                    Some(self.loss.forward(s, y))
                }
            }
        };
        // A ranking batch without a similar pair has nothing to rank: no step.
        let Some(l) = l else { return Ok(()) };
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

impl BurnStepper<'_, '_> {
    /// A step on the sampler's class-labelled batch `start..start + size` of the epoch: the
    /// distance of every pair `(i, j)`, `i < j`, through burn; the miner's loss and
    /// `∂L/∂d(i, j)` on the host (see [`crate::loss::mining`]); then the backward pass of
    /// `Σ ∂L/∂d(i, j) · d(i, j)` with those factors held constant, whose gradients are the
    /// loss's (the mining's selection is piecewise constant in the distances).
    fn mined_step(
        &mut self,
        start: usize,
        size: usize,
        augment: Option<&mut AugmentFn<'_>>,
    ) -> Result<()> {
        let (Some(source), Some(all)) = (&self.classes, &self.epoch_classes) else {
            unreachable!("a mined step has its epoch's classes");
        };
        let miner = self
            .loss
            .miner
            .expect("a sampler runs with a miner (checked by fit)");
        let batch = &all[start..start + size];
        let labels = source.labels(batch);
        let mut rows = source.gather(batch);
        if let Some(augment) = augment {
            augment(&mut rows)?;
        }
        let device = &self.device;
        let emb = self.network.embed(into_tensor(rows, device));
        let n = size;
        let (mut ii, mut jj) = (Vec::new(), Vec::new());
        for i in 0..n {
            for j in i + 1..n {
                ii.push(i as i64);
                jj.push(j as i64);
            }
        }
        let pairs = ii.len();
        let index =
            |ids: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(ids, [pairs]), device);
        let ea = emb.clone().select(0, index(ii.clone()));
        let eb = emb.select(0, index(jj.clone()));
        let d = self.network.distance().forward(ea, eb);
        let values = read_tensor(d.clone().detach())?;
        let mut full = vec![0.0f32; n * n];
        for (k, (&i, &j)) in ii.iter().zip(&jj).enumerate() {
            let (i, j) = (i as usize, j as usize);
            (full[i * n + j], full[j * n + i]) = (values[k], values[k]);
        }
        let mined = mine(&full, &labels, miner, self.loss.margin)?;
        let factors: Vec<f32> = ii
            .iter()
            .zip(&jj)
            .map(|(&i, &j)| mined.grads[i as usize * n + j as usize])
            .collect();
        let surrogate = (d.clone() * labels_tensor(&factors, device)).sum();
        self.distances.push(d.detach());
        self.labels.extend(pair_labels(&labels));
        self.batch_losses.push(Tensor::from_data(
            TensorData::new(vec![mined.loss], [1]),
            device,
        ));
        let grads = GradientsParams::from_grads(surrogate.backward(), &self.network);
        self.network = self.optimizer.step(self.lr, self.network.clone(), grads);
        Ok(())
    }
}
