//! The training loop behind `fit`: shuffling, batching, callbacks, history, resumable state.
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

use serde::{Deserialize, Serialize};

use crate::data::pairs::IndexPair;
use crate::data::{Matrix, PairData, Pairs};
use crate::error::{Result, SiameseError};

mod average;
mod burn_step;
mod callbacks;
mod classes;
mod epochs;
mod fused_step;
mod schedule;
mod state;
mod triplets;

pub use average::{WeightAverage, average_networks};
pub use callbacks::{
    Callback, Control, EarlyStopping, EpochContext, KeepBest, Monitor, PrintEpochs,
    one_shot_monitor,
};
pub use epochs::{FitOutcome, Hooks, fit, fit_fused};
pub use schedule::{LrDecay, LrSchedule};
pub use state::{OptimizerSnapshot, TrainState};

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

impl From<crate::data::prepare::PairSet> for Validation {
    /// A prepared part as `fit`'s validation data.
    fn from(part: crate::data::prepare::PairSet) -> Self {
        match part {
            crate::data::prepare::PairSet::Dense(p) => Self::Data(p),
            crate::data::prepare::PairSet::Indexed { samples, pairs } => Self::Indexed {
                samples: samples.samples,
                pairs,
            },
        }
    }
}

/// Options of [`fit`], mirroring Keras's `Model.fit`.
///
/// ```
/// use siamese::train::FitOptions;
/// let o = FitOptions::new(20, 32);
/// assert!(!o.verbose && o.shuffle);
/// ```
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
    /// Print one Keras-like line per epoch to stdout (default: quiet; the command line adds a
    /// progress bar through a [`Callback`]).
    pub verbose: bool,
    /// Random affine augmentation of both images of every training pair (image inputs).
    pub augment: Option<Augment>,
    /// The learning-rate schedule (default: constant).
    pub schedule: LrSchedule,
    /// Class-balanced `P × K` batches of samples instead of pairs, for a loss with a miner
    /// (see [`crate::loss::mining`]); `batch_size` is then the sampler's. The training data
    /// must be index pairs into one sample store whose rows the sampler's labels describe.
    pub sampler: Option<crate::data::sampler::PerClassSampler>,
    /// Average the weights over the later steps (SWA's uniform mean or an EMA, see
    /// [`WeightAverage`]); validation, callbacks and the returned network then see the
    /// average. `None` (the default): the weights as trained.
    pub average: Option<WeightAverage>,
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
            verbose: false,
            augment: None,
            schedule: LrSchedule::default(),
            sampler: None,
            average: None,
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
        self.schedule.validate()?;
        if let Some(a) = &self.average {
            a.validate()?;
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
    /// The learning rate of the epoch's last step (`None` in histories written before it was
    /// recorded).
    #[serde(default)]
    pub lr: Option<f64>,
    /// Validation equal error rate after the epoch (a fraction).
    #[serde(default)]
    pub val_eer: Option<f32>,
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

    /// The history as CSV: `epoch,loss,accuracy,val_loss,val_accuracy,seconds,lr,val_eer`.
    pub fn to_csv(&self) -> String {
        let mut out =
            String::from("epoch,loss,accuracy,val_loss,val_accuracy,seconds,lr,val_eer\n");
        let opt = |v: Option<f32>| v.map(|v| v.to_string()).unwrap_or_default();
        for e in &self.epochs {
            out.push_str(&format!(
                "{},{},{},{},{},{:.3},{},{}\n",
                e.epoch,
                e.loss,
                e.accuracy,
                opt(e.val_loss),
                opt(e.val_accuracy),
                e.seconds,
                e.lr.map(|v| v.to_string()).unwrap_or_default(),
                opt(e.val_eer)
            ));
        }
        out
    }
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
    if let Some(e) = log.val_eer {
        line.push_str(&format!(" - val_eer: {e:.4}"));
    }
    line
}
