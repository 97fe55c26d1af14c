//! The training loop behind `fit`: shuffling, batching, progress, history.
//!
//! Each step is one burn autodiff step on a batch of pairs:
//!
//! ```text
//! s = network.forward_scores(a_batch, b_batch)   [batch, 1]  (distances, or logits)
//! L = loss(s, y_batch)                           scalar
//! θ ← optimizer.step(lr, θ, ∂L/∂θ)
//! ```
//!
//! Each shuffled batch is gathered on the host into fresh contiguous tensors (and augmented
//! there when asked): on flex this measured faster than gathering from, or slicing,
//! device-resident copies of the training set. Batch losses and distances stay on the device
//! until the epoch ends and are read once, giving Keras's running averages (the mean over
//! batches, weighted by batch size) without a sync per step.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::augment::augment_rows;
use crate::data::pairs::IndexPair;
use crate::data::{Matrix, into_tensor, labels_tensor};
use crate::error::{Result, SiameseError};
use crate::fused::{self, FusedTrainer, HostEncoder, HostHead};
use crate::loss::{LossConfig, TripletLoss};
use crate::siamese::SiameseNetwork;

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
            Self::Dense(p) => crate::data::check_pairs(p.a, p.b, Some(p.labels), input_dim),
            Self::Indexed { samples, pairs } => {
                if samples.cols() != input_dim {
                    return Err(SiameseError::shape(
                        "samples",
                        format!("{input_dim} features per sample (the model's input_dim)"),
                        format!("{} features", samples.cols()),
                    ));
                }
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
                crate::loss::check_labels("pairs", &labels)?;
                samples.check_finite("samples")
            }
        }
    }
}

/// Where validation data comes from.
#[derive(Debug, Clone, Default)]
pub enum Validation {
    /// No validation.
    #[default]
    None,
    /// The last `fraction` of the pairs, taken before shuffling (as Keras's `validation_split`).
    Split(f32),
    /// Separate pairs (as Keras's `validation_data`).
    Data(Pairs),
    /// Separate index pairs into their own sample store.
    Indexed {
        /// The validation samples.
        samples: Matrix,
        /// Pairs of indices into `samples`.
        pairs: Vec<IndexPair>,
    },
}

impl Validation {
    /// The validation pairs, when they are given separately.
    pub fn data(&self) -> Option<PairData<'_>> {
        match self {
            Self::Data(p) => Some(PairData::Dense(p.as_ref())),
            Self::Indexed { samples, pairs } => Some(PairData::Indexed { samples, pairs }),
            Self::None | Self::Split(_) => None,
        }
    }
}

/// Options of [`fit`], mirroring Keras's `Model.fit`.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Passes over the training pairs.
    pub epochs: usize,
    /// Pairs per gradient step (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Shuffle the pairs at every epoch.
    pub shuffle: bool,
    /// Seed for shuffling and dropout.
    pub seed: u64,
    /// Validation data, if any.
    pub validation: Validation,
    /// Distance below which a pair counts as "similar" for the accuracy metric.
    pub threshold: f32,
    /// Print a progress bar and one line per epoch.
    pub verbose: bool,
    /// Random affine augmentation of both images of every training pair (image inputs).
    pub augment: Option<Augment>,
}

/// Augmentation of training images of `width × height` pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Augment {
    /// The random transform ranges.
    pub config: crate::data::augment::AugmentConfig,
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 32,
            shuffle: true,
            seed: 0,
            validation: Validation::None,
            threshold: 0.5,
            verbose: true,
            augment: None,
        }
    }
}

impl FitOptions {
    /// Options with the given epochs and batch size, the rest default.
    pub fn new(epochs: usize, batch_size: usize) -> Self {
        Self {
            epochs,
            batch_size,
            ..Self::default()
        }
    }

    /// Checks the options.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(SiameseError::config("epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(SiameseError::config("batch_size", "must be at least 1"));
        }
        if let Some(a) = &self.augment {
            a.config.validate()?;
        }
        if let Validation::Split(f) = self.validation
            && !(f > 0.0 && f < 1.0)
        {
            return Err(SiameseError::config(
                "validation_split",
                format!("must be in (0, 1), got {f}"),
            ));
        }
        Ok(())
    }
}

/// Metrics of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub loss: f32,
    /// Training pair accuracy at the threshold, over the epoch's batches.
    pub accuracy: f32,
    /// Validation loss after the epoch.
    pub val_loss: Option<f32>,
    /// Validation pair accuracy after the epoch.
    pub val_accuracy: Option<f32>,
    /// Wall time of the epoch in seconds (validation included).
    pub seconds: f64,
}

/// Per-epoch metrics returned by `fit` (Keras's `History`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One entry per epoch.
    pub epochs: Vec<EpochLog>,
}

impl History {
    /// Training loss per epoch.
    pub fn loss(&self) -> Vec<f32> {
        self.epochs.iter().map(|e| e.loss).collect()
    }

    /// Validation loss per epoch (empty without validation).
    pub fn val_loss(&self) -> Vec<f32> {
        self.epochs.iter().filter_map(|e| e.val_loss).collect()
    }

    /// The history as CSV: `epoch,loss,accuracy,val_loss,val_accuracy,seconds`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("epoch,loss,accuracy,val_loss,val_accuracy,seconds\n");
        let opt = |v: Option<f32>| v.map(|v| v.to_string()).unwrap_or_default();
        for e in &self.epochs {
            out.push_str(&format!(
                "{},{},{},{},{},{:.3}\n",
                e.epoch,
                e.loss,
                e.accuracy,
                opt(e.val_loss),
                opt(e.val_accuracy),
                e.seconds
            ));
        }
        out
    }
}

/// Loss and accuracy of a model on labelled pairs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f32,
    /// Fraction of pairs whose prediction (`d < threshold` ⇒ similar) matches the label.
    pub accuracy: f32,
}

/// Number of pairs per forward pass when predicting or evaluating.
pub const INFERENCE_BATCH: usize = 1024;

/// `[n, 1]` float tensor: 1 where the prediction `d < threshold` agrees with `y ≥ 0.5`.
fn correct(d: Tensor<2>, y: Tensor<2>, threshold: f32) -> Tensor<2> {
    let predicted_similar = d.lower_elem(threshold);
    let similar = y.greater_equal_elem(0.5);
    predicted_similar.equal(similar).float()
}

/// The head's scores (`[n, 1]`, see [`SiameseNetwork::forward_scores`]) of every pair, on the
/// network's device, without gradients. An indexed store is embedded once; its pairs are then
/// scored from the cached embeddings.
pub fn scores(network: &SiameseNetwork, data: PairData<'_>) -> Result<Tensor<2>> {
    let network = network.valid();
    let device = network_device(&network);
    let n = data.len();
    if n == 0 {
        return Err(SiameseError::Empty("no pairs to score".into()));
    }
    if let Some(s) = fused_scores(&network, data) {
        return Ok(Tensor::from_data(TensorData::new(s?, [n, 1]), &device));
    }
    let mut parts = Vec::with_capacity(n.div_ceil(INFERENCE_BATCH));
    match data {
        PairData::Dense(p) => {
            for start in (0..n).step_by(INFERENCE_BATCH) {
                let end = (start + INFERENCE_BATCH).min(n);
                parts.push(network.forward_scores(
                    into_tensor(p.a.slice_rows(start, end), &device),
                    into_tensor(p.b.slice_rows(start, end), &device),
                ));
            }
        }
        PairData::Indexed { samples, pairs } => {
            let m = samples.rows();
            let mut emb = Vec::with_capacity(m.div_ceil(INFERENCE_BATCH));
            for start in (0..m).step_by(INFERENCE_BATCH) {
                let end = (start + INFERENCE_BATCH).min(m);
                emb.push(network.embed(into_tensor(samples.slice_rows(start, end), &device)));
            }
            let emb = Tensor::cat(emb, 0);
            let index = |ids: Vec<i64>| {
                let len = ids.len();
                Tensor::<1, Int>::from_data(TensorData::new(ids, [len]), &device)
            };
            for chunk in pairs.chunks(INFERENCE_BATCH) {
                let ea = emb
                    .clone()
                    .select(0, index(chunk.iter().map(|p| p.i as i64).collect()));
                let eb = emb
                    .clone()
                    .select(0, index(chunk.iter().map(|p| p.j as i64).collect()));
                parts.push(network.scores_from_embeddings(ea, eb));
            }
        }
    }
    Ok(Tensor::cat(parts, 0))
}

/// The head's scores computed by the fused MLP path, when it applies (see [`crate::fused`]).
/// Dense inputs are checked for NaN and ±∞ block by block.
fn fused_scores(network: &SiameseNetwork, data: PairData<'_>) -> Option<Result<Vec<f32>>> {
    if !fused::enabled() {
        return None;
    }
    let encoder = HostEncoder::for_inference(network)?;
    let head = HostHead::from_network(network)?;
    Some(fused_pair_scores(&encoder, &head, data))
}

/// The head's scores of every pair from host weights (see [`crate::fused`]).
pub fn fused_pair_scores(
    encoder: &HostEncoder,
    head: &HostHead,
    data: PairData<'_>,
) -> Result<Vec<f32>> {
    match data {
        PairData::Dense(p) => encoder.pair_scores(p.a, p.b, head),
        PairData::Indexed { samples, pairs } => {
            let emb = encoder.embed(samples, "samples")?;
            Ok(pairs
                .par_iter()
                .map(|p| head.score(emb.row(p.i), emb.row(p.j)))
                .collect())
        }
    }
}

/// Distances from host scores of the network's head: the scores themselves for a distance
/// head, `σ(−z)` (burn's sigmoid) for the weighted-L1 head's logits.
pub fn distances_from_scores(network: &SiameseNetwork, scores: Vec<f32>) -> Result<Vec<f32>> {
    if network.weighted_l1.is_none() {
        return Ok(scores);
    }
    let n = scores.len();
    let device = network_device(&network.valid());
    let s = Tensor::from_data(TensorData::new(scores, [n, 1]), &device);
    read(network.distance_from_scores(s))
}

/// Distances of every pair (`d < threshold` ⇒ similar), without gradients.
pub fn distances(network: &SiameseNetwork, data: PairData<'_>) -> Result<Vec<f32>> {
    read(network.distance_from_scores(scores(network, data)?))
}

/// Loss and accuracy on labelled pairs, without gradients.
pub fn evaluate(
    network: &SiameseNetwork,
    loss: &LossConfig,
    data: PairData<'_>,
    threshold: f32,
) -> Result<Evaluation> {
    let s = scores(network, data)?;
    let device = s.device();
    let y = labels_tensor(&data.labels(), &device);
    let l: f32 = loss.forward(s.clone(), y.clone()).into_scalar();
    let d = network.distance_from_scores(s);
    let c: f32 = correct(d, y, threshold).sum().into_scalar();
    Ok(Evaluation {
        loss: l,
        accuracy: c / data.len() as f32,
    })
}

/// Reads a tensor back to the host.
fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| SiameseError::Runtime(format!("cannot read a tensor back: {e:?}")))
}

/// The device the network's parameters live on.
pub fn network_device(network: &SiameseNetwork) -> Device {
    network
        .devices()
        .into_iter()
        .next()
        .unwrap_or_else(Device::flex)
}

/// Trains `network` on `train` with `optimizer`, Keras-style. Returns the trained network and
/// the per-epoch history. Inputs must already be checked (see [`crate::data::check_pairs`]).
pub fn fit(
    network: SiameseNetwork,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    loss: &LossConfig,
    train: PairData<'_>,
    options: &FitOptions,
) -> Result<(SiameseNetwork, History)> {
    let split = prepare(options, train)?;
    let (train, val) = train_and_validation(&split, options, train);
    let triplets = if loss.is_triplet() {
        if network.weighted_l1.is_some() {
            return Err(SiameseError::config(
                "loss.type",
                "the triplet loss trains a distance head, not the weighted-l1 head",
            ));
        }
        Some(TripletSource::new(train)?)
    } else {
        None
    };
    let device = network_device(&network);
    let mut stepper = BurnStepper {
        network,
        optimizer,
        lr,
        loss,
        device,
        triplets,
        epoch_triplets: None,
        batch_losses: Vec::new(),
        distances: Vec::new(),
        labels: Vec::new(),
    };
    let history = run_epochs(&mut stepper, loss, train, val, options)?;
    Ok((stepper.network, history))
}

/// Trains an MLP network with the fused CPU path (see [`crate::fused`]): the same loop,
/// shuffling, batches, metrics and history as [`fit`], with `trainer`'s kernels for each step.
/// The trained weights are written back into the returned network.
pub fn fit_fused(
    network: SiameseNetwork,
    trainer: &mut FusedTrainer,
    loss: &LossConfig,
    train: PairData<'_>,
    options: &FitOptions,
) -> Result<(SiameseNetwork, History)> {
    let split = prepare(options, train)?;
    let (train, val) = train_and_validation(&split, options, train);
    let mut stepper = FusedStepper {
        network,
        trainer,
        batch_losses: Vec::new(),
        distances: Vec::new(),
        labels: Vec::new(),
    };
    // The loop runs on a rayon worker, so each parallel phase of a step wakes at most the
    // other workers instead of handing the whole step over from outside the pool and back.
    let history = rayon::scope(|_| run_epochs(&mut stepper, loss, train, val, options))?;
    let FusedStepper {
        mut network,
        trainer,
        ..
    } = stepper;
    trainer.mlp().write_back(&mut network);
    Ok((network, history))
}

/// Checks the options and the training pairs, and splits off the validation part when asked.
fn prepare(options: &FitOptions, train: PairData<'_>) -> Result<Option<(Pairs, Pairs)>> {
    options.validate()?;
    if train.is_empty() {
        return Err(SiameseError::Empty("no training pairs".into()));
    }
    split_validation(options, train)
}

/// Keras takes `validation_split` from the end of the pairs, before any shuffling: the owned
/// `(train, validation)` parts, when a split is asked for.
fn split_validation(options: &FitOptions, train: PairData<'_>) -> Result<Option<(Pairs, Pairs)>> {
    match (&options.validation, train) {
        (Validation::Split(_), PairData::Indexed { .. }) => Err(SiameseError::config(
            "validation_split",
            "split index pairs by sample or class before training (see data::pairs)",
        )),
        (Validation::Split(f), PairData::Dense(train)) => {
            let n = train.len();
            let n_val = ((n as f64) * (*f as f64)).round() as usize;
            if n_val == 0 || n_val >= n {
                return Err(SiameseError::config(
                    "validation_split",
                    format!("{f} of {n} pairs leaves an empty training or validation set"),
                ));
            }
            let idx: Vec<usize> = (0..n - n_val).collect();
            let vidx: Vec<usize> = (n - n_val..n).collect();
            let owned = Pairs {
                a: train.a.clone(),
                b: train.b.clone(),
                labels: train.labels.to_vec(),
            };
            Ok(Some((owned.select(&idx), owned.select(&vidx))))
        }
        _ => Ok(None),
    }
}

fn train_and_validation<'a>(
    split: &'a Option<(Pairs, Pairs)>,
    options: &'a FitOptions,
    train: PairData<'a>,
) -> (PairData<'a>, Option<PairData<'a>>) {
    match split {
        Some((t, v)) => (
            PairData::Dense(t.as_ref()),
            Some(PairData::Dense(v.as_ref())),
        ),
        None => (train, options.validation.data()),
    }
}

/// Random augmentation of gathered training rows, when the options ask for it.
type AugmentFn<'f> = dyn FnMut(&mut Matrix) -> Result<()> + 'f;

/// One training backend under the shared epoch loop: burn autodiff, or the fused MLP path.
trait Stepper {
    /// Items per epoch (pairs, or triplets formed from them).
    fn items(&self, train: PairData<'_>) -> usize;
    /// Prepares an epoch whose items come in `order`.
    fn begin_epoch(&mut self, _order: &[usize], _rng: &mut ChaCha8Rng) {}
    /// One optimizer step on the items `order[start..start + idx.len()]` = `idx`.
    fn step(
        &mut self,
        train: PairData<'_>,
        start: usize,
        idx: &[usize],
        augment: Option<&mut AugmentFn<'_>>,
    ) -> Result<()>;
    /// Restarts the network's random streams (dropout masks) from `seed`.
    fn reseed(&mut self, seed: u64);
    /// The epoch's mean loss per batch, and the distance and label of every pair scored.
    fn end_epoch(&mut self) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)>;
    /// The network as trained so far (for validation).
    fn network(&mut self) -> &SiameseNetwork;
}

/// The epoch loop shared by both backends: shuffling, batching, progress, metrics, history.
fn run_epochs(
    stepper: &mut impl Stepper,
    loss: &LossConfig,
    train: PairData<'_>,
    val: Option<PairData<'_>>,
    options: &FitOptions,
) -> Result<History> {
    let n = stepper.items(train);
    stepper.reseed(options.seed);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut augment_rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0xA06_3E47);
    let mut order: Vec<usize> = (0..n).collect();
    let steps = n.div_ceil(options.batch_size);
    let mut history = History::default();
    for epoch in 1..=options.epochs {
        let started = Instant::now();
        let bar = progress_bar(options.verbose, steps as u64, epoch, options.epochs);
        if options.shuffle {
            order.shuffle(&mut rng);
        }
        stepper.begin_epoch(&order, &mut rng);
        let mut augment = |m: &mut Matrix| -> Result<()> {
            if let Some(aug) = &options.augment {
                augment_rows(m, aug.width, aug.height, &aug.config, &mut augment_rng)?;
            }
            Ok(())
        };
        for step in 0..steps {
            let start = step * options.batch_size;
            let size = options.batch_size.min(n - start);
            let augment = options
                .augment
                .is_some()
                .then_some(&mut augment as &mut AugmentFn<'_>);
            stepper.step(train, start, &order[start..start + size], augment)?;
            bar.inc(1);
        }
        let (batch_losses, distances, labels_seen) = stepper.end_epoch()?;
        let epoch_loss = batch_losses
            .iter()
            .enumerate()
            .map(|(step, &l)| {
                l as f64 * options.batch_size.min(n - step * options.batch_size) as f64
            })
            .sum::<f64>() as f32
            / n as f32;
        let epoch_acc = distances
            .iter()
            .zip(&labels_seen)
            .filter(|&(&d, &y)| (d < options.threshold) == (y >= 0.5))
            .count() as f32
            / labels_seen.len().max(1) as f32;
        if !epoch_loss.is_finite() {
            bar.abandon();
            return Err(SiameseError::Runtime(format!(
                "training loss became {epoch_loss} in epoch {epoch}; lower the learning rate or \
                 check the inputs' scale"
            )));
        }
        let val = match val {
            Some(v) => Some(evaluate(stepper.network(), loss, v, options.threshold)?),
            None => None,
        };
        bar.finish_and_clear();
        let log = EpochLog {
            epoch,
            loss: epoch_loss,
            accuracy: epoch_acc,
            val_loss: val.map(|v| v.loss),
            val_accuracy: val.map(|v| v.accuracy),
            seconds: started.elapsed().as_secs_f64(),
        };
        if options.verbose {
            println!("{}", epoch_line(&log, options.epochs, steps));
        }
        history.epochs.push(log);
    }
    Ok(history)
}

/// burn autodiff steps. Batch losses and distances stay on the device (detached) until the
/// epoch ends, so a step costs no extra sync and almost no extra ops.
struct BurnStepper<'o, 'd> {
    network: SiameseNetwork,
    optimizer: &'o mut ModuleOptimizer,
    lr: f64,
    loss: &'o LossConfig,
    device: Device,
    triplets: Option<TripletSource<'d>>,
    epoch_triplets: Option<Vec<[usize; 3]>>,
    batch_losses: Vec<Tensor<1>>,
    distances: Vec<Tensor<2>>,
    labels: Vec<f32>,
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
        let losses = read(Tensor::cat(std::mem::take(&mut self.batch_losses), 0))?;
        let distances = read(Tensor::cat(std::mem::take(&mut self.distances), 0))?;
        Ok((losses, distances, std::mem::take(&mut self.labels)))
    }

    fn network(&mut self) -> &SiameseNetwork {
        &self.network
    }

    fn reseed(&mut self, seed: u64) {
        self.network.encoder.reseed(seed);
    }
}

/// Fused MLP steps: the batch is gathered straight into the trainer's stacked input buffer.
struct FusedStepper<'t> {
    network: SiameseNetwork,
    trainer: &'t mut FusedTrainer,
    batch_losses: Vec<f32>,
    distances: Vec<f32>,
    labels: Vec<f32>,
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
        self.trainer.mlp().write_back(&mut self.network);
        &self.network
    }

    fn reseed(&mut self, seed: u64) {
        self.network.encoder.reseed(seed);
        self.trainer.reseed(seed);
    }
}

fn progress_bar(verbose: bool, steps: u64, epoch: usize, epochs: usize) -> ProgressBar {
    if !verbose {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("Epoch {prefix} {bar:30} {pos}/{len} [{elapsed}<{eta}]")
            .expect("static template is valid"),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

/// One Keras-like line: `Epoch 3/20 - 4/4 - 0.01s - loss: 0.2412 - accuracy: 0.6100 ...`.
pub fn epoch_line(log: &EpochLog, epochs: usize, steps: usize) -> String {
    let mut line = format!(
        "Epoch {}/{} - {steps}/{steps} - {:.2}s - loss: {:.4} - accuracy: {:.4}",
        log.epoch, epochs, log.seconds, log.loss, log.accuracy
    );
    if let (Some(l), Some(a)) = (log.val_loss, log.val_accuracy) {
        line.push_str(&format!(" - val_loss: {l:.4} - val_accuracy: {a:.4}"));
    }
    line
}

/// Triplets for the triplet loss, formed from index pairs: a similar pair `(a, p)` and a
/// dissimilar pair `(a, n)` that share the sample `a` give the triplet `(a, p, n)`.
///
/// Each epoch draws one triplet per similar pair that can form one: the anchor is whichever
/// end of the pair has dissimilar partners (a random end when both do) and the negative a
/// random one of its dissimilar partners. With class-labelled samples this is the usual
/// random-negative sampling; with a pair list (signatures) the negatives are the forgeries
/// the list pairs with each genuine signature.
struct TripletSource<'a> {
    samples: &'a Matrix,
    /// Similar pairs `(i, j)` with at least one end that has a dissimilar partner.
    positives: Vec<(usize, usize)>,
    /// Dissimilar partners of each sample.
    negatives: Vec<Vec<usize>>,
}

impl<'a> TripletSource<'a> {
    fn new(data: PairData<'a>) -> Result<Self> {
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

    fn len(&self) -> usize {
        self.positives.len()
    }

    /// One `(anchor, positive, negative)` per similar pair, in `order`.
    fn draw(&self, order: &[usize], rng: &mut ChaCha8Rng) -> Vec<[usize; 3]> {
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

    /// Rows of the anchors, positives and negatives of `batch`.
    fn gather(&self, batch: &[[usize; 3]]) -> [Matrix; 3] {
        [0, 1, 2].map(|r| {
            let idx: Vec<usize> = batch.iter().map(|t| t[r]).collect();
            self.samples.select_rows(&idx)
        })
    }
}
