//! The `[train]` section of a run config: epochs and batches, augmentation, schedule,
//! sampler, the epoch choice (`keep_best`, `early_stopping`, `one_shot`) and their monitors.

use serde::{Deserialize, Serialize};
use siamese::error::{Result, SiameseError};

use super::default_true;

/// The `[train]` section of a run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Passes over the training pairs.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Pairs per step.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Shuffle every epoch.
    #[serde(default = "default_true")]
    pub shuffle: bool,
    /// Seed for weights, splits, pairs, shuffling and dropout.
    #[serde(default)]
    pub seed: u64,
    /// Distance under which a pair counts as similar in the accuracy metric during training
    /// (and the decision threshold when there is no validation part to calibrate on).
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// Random affine augmentation of training images (image sources), e.g.
    /// `augment = { rotation = 10, shift = 0.05, scale = 0.1, shear = 5 }`.
    #[serde(default)]
    pub augment: Option<siamese::data::augment::AugmentConfig>,
    /// Named augmentation ranges for one use instead of `augment`: `faces`, `signatures` or
    /// `characters` (see `siamese::data::augment::AugmentConfig::preset`).
    #[serde(default)]
    pub augment_preset: Option<String>,
    /// What the decision threshold maximises on the validation pairs after training:
    /// `accuracy`, `f1`, `eer`, or `far=0.01` (largest threshold with FAR ≤ 1%).
    #[serde(default = "default_calibrate")]
    pub calibrate: String,
    /// A directory for a resumable checkpoint after every epoch (`siamese train --resume`).
    #[serde(default)]
    pub checkpoint: Option<std::path::PathBuf>,
    /// The learning-rate schedule, e.g. `schedule = { warmup_epochs = 2, decay = { type =
    /// "cosine", min_factor = 0.01 } }` or `{ warmup_epochs = 0.4, decay = { type = "linear" }
    /// }` (default: constant).
    #[serde(default)]
    pub schedule: siamese::train::LrSchedule,
    /// Class-balanced batches of `classes × per_class` training samples, for a loss with a
    /// miner (`[model.loss] miner = "batch-hard"`); `batch_size` is then ignored.
    #[serde(default)]
    pub sampler: Option<SamplerSection>,
    /// Average the weights over the later steps: `average = { start_epochs = 1, every_steps =
    /// 10 }` (SWA's uniform mean) or with `decay = 0.999` (an exponential moving average);
    /// validation, the epoch choice and the saved model then use the average (see
    /// `siamese::train::WeightAverage`).
    #[serde(default)]
    pub average: Option<siamese::train::WeightAverage>,
    /// Keep the weights of the epoch with the best validation metric: `val_eer`,
    /// `val_loss`, `val_accuracy` or `val_one_shot` (see `one_shot`; text sources keep the
    /// best validation Spearman without it).
    #[serde(default)]
    pub keep_best: Option<MonitorName>,
    /// Stop when a validation metric has not improved for `patience` epochs, e.g.
    /// `early_stopping = { monitor = "val_eer", patience = 10 }`.
    #[serde(default)]
    pub early_stopping: Option<EarlyStoppingSection>,
    /// The trials of the `val_one_shot` monitor, e.g. `one_shot = { ways = 10, trials = 400,
    /// within_group = false }` (these are the defaults).
    #[serde(default)]
    pub one_shot: OneShotSection,
}

/// `[train] one_shot`: N-way one-shot trials on the validation samples
/// (`siamese::train::one_shot_monitor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OneShotSection {
    /// Classes per trial.
    pub ways: usize,
    /// Trials, drawn once and scored after every epoch.
    pub trials: usize,
    /// Draw each trial's classes from one parent folder (Omniglot: one alphabet).
    pub within_group: bool,
}

impl Default for OneShotSection {
    fn default() -> Self {
        Self {
            ways: 10,
            trials: 400,
            within_group: false,
        }
    }
}

/// A validation metric a callback watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorName {
    /// Validation equal error rate (lower is better).
    ValEer,
    /// Validation loss (lower is better).
    ValLoss,
    /// Validation pair accuracy (higher is better).
    ValAccuracy,
    /// N-way one-shot accuracy on the validation samples (higher is better; `[train]
    /// one_shot` sets the trials).
    ValOneShot,
}

impl MonitorName {
    /// The library's monitor; `val_one_shot` draws its trials from `validation`, the
    /// validation part's class-labelled samples.
    ///
    /// # Errors
    /// `val_one_shot` without class-labelled validation samples, or with too few classes.
    pub fn monitor(
        self,
        one_shot: &OneShotSection,
        validation: Option<&siamese::data::images::LabelledSamples>,
        seed: u64,
    ) -> Result<siamese::train::Monitor> {
        use siamese::train::Monitor;
        Ok(match self {
            Self::ValEer => Monitor::ValEer,
            Self::ValLoss => Monitor::ValLoss,
            Self::ValAccuracy => Monitor::ValAccuracy,
            Self::ValOneShot => {
                let samples = validation.ok_or_else(|| {
                    SiameseError::config(
                        "train.keep_best",
                        "val_one_shot needs class-labelled validation samples (an image or \
                         MNIST source with validation_fraction > 0)",
                    )
                })?;
                siamese::train::one_shot_monitor(
                    samples.clone(),
                    one_shot.within_group,
                    one_shot.ways,
                    one_shot.trials,
                    seed,
                )
                .map_err(|e| SiameseError::config("train.one_shot", e.to_string()))?
            }
        })
    }
}

/// `[train] early_stopping`: Keras's `EarlyStopping`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingSection {
    /// The metric watched.
    pub monitor: MonitorName,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    #[serde(default)]
    pub min_delta: f64,
}

/// `[train.sampler]`: `P × K` batches (see `siamese::data::sampler::PerClassSampler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerSection {
    /// Classes per batch (`P`).
    pub classes: usize,
    /// Samples of each class per batch (`K`).
    pub per_class: usize,
}

fn default_calibrate() -> String {
    "accuracy".into()
}

fn default_epochs() -> usize {
    20
}
fn default_batch() -> usize {
    128
}
fn default_threshold() -> f32 {
    0.5
}

impl TrainSection {
    /// The augmentation ranges: `augment`, or the ranges of `augment_preset` (not both).
    pub fn augment_config(&self) -> Result<Option<siamese::data::augment::AugmentConfig>> {
        match (&self.augment, &self.augment_preset) {
            (Some(_), Some(_)) => Err(SiameseError::config(
                "train.augment_preset",
                "give either augment (the ranges) or augment_preset (named ranges), not both",
            )),
            (Some(a), None) => Ok(Some(a.clone())),
            (None, Some(name)) => siamese::data::augment::AugmentConfig::preset(name)
                .map(Some)
                .map_err(|e| SiameseError::config("train.augment_preset", e.to_string())),
            (None, None) => Ok(None),
        }
    }
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: default_epochs(),
            batch_size: default_batch(),
            shuffle: true,
            seed: 0,
            threshold: default_threshold(),
            augment: None,
            augment_preset: None,
            calibrate: default_calibrate(),
            checkpoint: None,
            schedule: siamese::train::LrSchedule::default(),
            sampler: None,
            average: None,
            keep_best: None,
            early_stopping: None,
            one_shot: OneShotSection::default(),
        }
    }
}
