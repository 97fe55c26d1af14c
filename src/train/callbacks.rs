//! Callbacks of `fit` (Keras's `keras.callbacks`): [`PrintEpochs`], [`KeepBest`] (keep the
//! weights of the best epoch by a validation metric), [`EarlyStopping`]; `io::Checkpoint`
//! writes a resumable checkpoint directory after every epoch.
//!
//! ```
//! use siamese::prelude::*;
//! use siamese::train::{EarlyStopping, KeepBest, Monitor};
//!
//! let (a, b, y) = siamese::synthetic::random_pairs(64, 10, 0);
//! let mut model = Siamese::reference(10, 0).unwrap();
//! let options = FitOptions { validation: Validation::Split(0.25), ..FitOptions::new(6, 16) };
//! let mut best = KeepBest::new(Monitor::ValLoss);
//! let mut stop = EarlyStopping::new(Monitor::ValLoss, 2);
//! let pairs = PairsRef { a: &a, b: &b, labels: &y };
//! let history = model.fit_with(pairs.into(), &options, vec![&mut best, &mut stop]).unwrap();
//! assert!(history.epochs.len() <= 6);
//! assert!(best.best().is_some());
//! ```

use super::{EpochLog, History, TrainState};
use crate::config::ModelConfig;
use crate::data::PairData;
use crate::error::{Result, SiameseError};
use crate::siamese::SiameseNetwork;

/// Whether training goes on after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Run the next epoch.
    Continue,
    /// Stop after this epoch.
    Stop,
}

/// What a callback sees at the end of an epoch.
pub struct EpochContext<'a> {
    pub(super) network: &'a SiameseNetwork,
    pub(super) config: &'a ModelConfig,
    pub(super) validation: Option<PairData<'a>>,
    pub(super) history: &'a History,
    pub(super) host: bool,
    pub(super) snapshot: &'a dyn Fn() -> Result<TrainState>,
}

impl std::fmt::Debug for EpochContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochContext")
            .field("epochs", &self.history.epochs.len())
            .finish_non_exhaustive()
    }
}

impl EpochContext<'_> {
    /// The network as trained so far.
    pub fn network(&self) -> &SiameseNetwork {
        self.network
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        self.config
    }

    /// Every epoch so far, this one included.
    pub fn history(&self) -> &History {
        self.history
    }

    /// The validation pairs, when the run has them.
    pub fn validation(&self) -> Option<PairData<'_>> {
        self.validation
    }

    /// Distances of the validation pairs under the current weights (`None` without
    /// validation data).
    pub fn validation_distances(&self) -> Result<Option<Vec<f32>>> {
        match self.validation {
            Some(v) => Ok(Some(crate::infer::distances(self.network, v, self.host)?)),
            None => Ok(None),
        }
    }

    /// Distances of any pairs under the current weights (e.g. a monitor's own trials).
    ///
    /// # Errors
    /// When the pairs do not fit the model's input.
    pub fn distances(&self, pairs: PairData<'_>) -> Result<Vec<f32>> {
        crate::infer::distances(self.network, pairs, self.host)
    }

    /// The whole training state after this epoch, optimizer included (what `io::Checkpoint`
    /// saves).
    pub fn snapshot(&self) -> Result<TrainState> {
        (self.snapshot)()
    }
}

/// Called by `fit` during training. Every method has a default that does nothing.
pub trait Callback: Send {
    /// Before the first epoch to run (`first` is 1, or the next epoch of a resumed run).
    fn on_train_begin(&mut self, _first: usize, _epochs: usize, _steps: usize) -> Result<()> {
        Ok(())
    }
    /// After step `step` (from 1) of `steps` in `epoch`.
    fn on_batch_end(&mut self, _epoch: usize, _step: usize, _steps: usize) {}
    /// After each epoch's validation; [`Control::Stop`] ends training after it.
    fn on_epoch_end(&mut self, _log: &EpochLog, _ctx: &mut EpochContext<'_>) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// After the last epoch; weights returned here replace the trained ones (e.g. the best).
    fn on_train_end(&mut self, _history: &History) -> Result<Option<SiameseNetwork>> {
        Ok(None)
    }
}

/// Prints one Keras-like line per epoch to stdout (what `FitOptions::verbose` does).
#[derive(Debug, Clone, Copy, Default)]
pub struct PrintEpochs {
    epochs: usize,
    steps: usize,
}

impl Callback for PrintEpochs {
    fn on_train_begin(&mut self, _first: usize, epochs: usize, steps: usize) -> Result<()> {
        self.epochs = epochs;
        self.steps = steps;
        Ok(())
    }

    fn on_epoch_end(&mut self, log: &EpochLog, _ctx: &mut EpochContext<'_>) -> Result<Control> {
        println!("{}", super::epoch_line(log, self.epochs, self.steps));
        Ok(Control::Continue)
    }
}

/// A score of the validation distances (higher is better).
pub type ScoreFn = Box<dyn FnMut(&[f32]) -> Result<f64> + Send>;

/// A score computed from the epoch's context (higher is better): e.g. one-shot accuracy on
/// validation samples, which needs the network rather than the validation pairs
/// (`eval::one_shot_monitor`).
pub type ContextScoreFn = Box<dyn FnMut(&EpochContext<'_>) -> Result<f64> + Send>;

/// A validation quantity to watch.
pub enum Monitor {
    /// Validation loss (lower is better).
    ValLoss,
    /// Validation pair accuracy (higher is better).
    ValAccuracy,
    /// Validation equal error rate (lower is better): the verification metric.
    ValEer,
    /// A score of the validation distances, higher is better: e.g. the Spearman correlation
    /// of similarities with gold scores (the STS protocol).
    Score {
        /// Name used in messages.
        name: String,
        /// The score from the validation distances.
        score: ScoreFn,
    },
    /// A score from the epoch's context, higher is better.
    Context {
        /// Name used in messages and the history.
        name: String,
        /// The score.
        score: ContextScoreFn,
    },
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl Monitor {
    /// The quantity's name.
    pub fn name(&self) -> String {
        match self {
            Self::ValLoss => "val_loss".into(),
            Self::ValAccuracy => "val_accuracy".into(),
            Self::ValEer => "val_eer".into(),
            Self::Score { name, .. } | Self::Context { name, .. } => name.clone(),
        }
    }

    /// The value after an epoch, oriented so that higher is better.
    fn value(&mut self, log: &EpochLog, ctx: &EpochContext<'_>) -> Result<f64> {
        let missing = || {
            SiameseError::config(
                "validation",
                "this callback watches a validation metric; give validation data",
            )
        };
        match self {
            Self::ValLoss => log.val_loss.map(|l| -(l as f64)).ok_or_else(missing),
            Self::ValAccuracy => log.val_accuracy.map(|a| a as f64).ok_or_else(missing),
            Self::ValEer => log.val_eer.map(|e| -(e as f64)).ok_or_else(missing),
            Self::Score { score, .. } => {
                let d = ctx.validation_distances()?.ok_or_else(missing)?;
                score(&d)
            }
            Self::Context { score, .. } => score(ctx),
        }
    }
}

/// Keeps the weights of the epoch with the best monitored value and puts them in place when
/// training ends (Keras's `ModelCheckpoint(save_best_only)` + `restore_best_weights`).
#[derive(Debug)]
pub struct KeepBest {
    monitor: Monitor,
    best: Option<(usize, f64, SiameseNetwork)>,
    values: Vec<f64>,
}

impl KeepBest {
    /// Watches `monitor`.
    pub fn new(monitor: Monitor) -> Self {
        Self {
            monitor,
            best: None,
            values: Vec::new(),
        }
    }

    /// `(epoch, value)` of the best epoch so far; the value is oriented so that higher is
    /// better (a loss is negated).
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best.as_ref().map(|(e, v, _)| (*e, *v))
    }

    /// The monitored value of every epoch of this call, oriented as in [`Self::best`].
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The quantity watched.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }
}

impl Callback for KeepBest {
    fn on_epoch_end(&mut self, log: &EpochLog, ctx: &mut EpochContext<'_>) -> Result<Control> {
        let v = self.monitor.value(log, ctx)?;
        self.values.push(v);
        if self.best.as_ref().is_none_or(|b| v > b.1) {
            self.best = Some((log.epoch, v, ctx.network().clone()));
        }
        Ok(Control::Continue)
    }

    fn on_train_end(&mut self, _history: &History) -> Result<Option<SiameseNetwork>> {
        Ok(self.best.as_ref().map(|b| b.2.clone()))
    }
}

/// Stops training when the monitored value has not improved by more than `min_delta` for
/// `patience` epochs (Keras's `EarlyStopping`); with `restore_best`, the best epoch's weights
/// are put back.
#[derive(Debug)]
pub struct EarlyStopping {
    monitor: Monitor,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Put the best epoch's weights back at the end.
    pub restore_best: bool,
    best: Option<(usize, f64, Option<SiameseNetwork>)>,
    wait: usize,
    stopped_at: Option<usize>,
}

impl EarlyStopping {
    /// Watches `monitor` with the given `patience`, `min_delta` 0, no restoring.
    pub fn new(monitor: Monitor, patience: usize) -> Self {
        Self {
            monitor,
            patience,
            min_delta: 0.0,
            restore_best: false,
            best: None,
            wait: 0,
            stopped_at: None,
        }
    }

    /// The epoch after which training stopped, if it did.
    pub fn stopped_at(&self) -> Option<usize> {
        self.stopped_at
    }

    /// The quantity watched.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }
}

impl Callback for EarlyStopping {
    fn on_epoch_end(&mut self, log: &EpochLog, ctx: &mut EpochContext<'_>) -> Result<Control> {
        let v = self.monitor.value(log, ctx)?;
        let improved = self.best.as_ref().is_none_or(|b| v - b.1 > self.min_delta);
        if improved {
            let weights = self.restore_best.then(|| ctx.network().clone());
            self.best = Some((log.epoch, v, weights));
            self.wait = 0;
            return Ok(Control::Continue);
        }
        self.wait += 1;
        if self.wait >= self.patience {
            self.stopped_at = Some(log.epoch);
            return Ok(Control::Stop);
        }
        Ok(Control::Continue)
    }

    fn on_train_end(&mut self, _history: &History) -> Result<Option<SiameseNetwork>> {
        Ok(self.best.as_mut().and_then(|b| b.2.take()))
    }
}

/// A [`Monitor`] for [`KeepBest`] / [`EarlyStopping`]: N-way one-shot
/// accuracy on held-out labelled samples (e.g. the validation characters of Omniglot), the
/// metric a one-shot model is judged by, instead of the pair EER that only approximates it.
///
/// The trials are drawn once (seeded, [`one_shot_trials_within`](crate::eval::one_shot_trials_within); within the classes' parent
/// folders when `within_group`), so every epoch is scored on the same trials; each epoch
/// embeds every sample once and scores the trials' pairs with the model's own head. Its name
/// in the history and messages is `val_one_shot`.
///
/// # Errors
/// When the samples cannot make `ways`-way trials (too few classes with two samples, in any
/// group when `within_group`).
///
/// ```
/// use siamese::data::images::LabelledSamples;
/// use siamese::data::Matrix;
/// // 6 classes × 3 samples of 4 features.
/// let labels: Vec<usize> = (0..18).map(|i| i / 3).collect();
/// let rows: Vec<f32> = labels.iter().flat_map(|&c| [c as f32, 0.0, 1.0, 0.5]).collect();
/// let samples = LabelledSamples {
///     samples: Matrix::new(18, 4, rows).unwrap(),
///     labels,
///     class_names: (0..6).map(|c| format!("class{c}")).collect(),
///     paths: Vec::new(),
///     image_size: None,
/// };
/// let monitor = siamese::train::one_shot_monitor(samples.clone(), false, 5, 100, 0).unwrap();
/// assert_eq!(format!("{monitor:?}"), "val_one_shot");
/// // Ten ways from six classes is refused.
/// assert!(siamese::train::one_shot_monitor(samples, false, 10, 100, 0).is_err());
/// ```
pub fn one_shot_monitor(
    samples: crate::data::images::LabelledSamples,
    within_group: bool,
    ways: usize,
    trials: usize,
    seed: u64,
) -> Result<Monitor> {
    let groups = within_group.then(|| crate::data::split::parent_groups(&samples.class_names).0);
    let trials = crate::eval::one_shot_trials_within(
        &samples.labels,
        groups.as_deref(),
        ways,
        trials,
        seed,
    )?;
    let pairs = crate::eval::trial_pairs(&trials);
    let rows = samples.samples;
    Ok(Monitor::Context {
        name: "val_one_shot".into(),
        score: Box::new(move |ctx| {
            let d = ctx.distances(crate::data::PairData::Indexed {
                samples: &rows,
                pairs: &pairs,
            })?;
            Ok(crate::eval::one_shot_accuracy_of(&trials, &d))
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Matrix;
    use crate::data::images::LabelledSamples;
    use crate::prelude::*;
    use rand::{RngExt, SeedableRng};

    /// 8 classes × 4 samples of 10 features: a random centre per class plus noise of `spread`.
    fn clusters(spread: f32) -> LabelledSamples {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let centres: Vec<Vec<f32>> = (0..8)
            .map(|_| (0..10).map(|_| rng.random::<f32>() * 4.0).collect())
            .collect();
        let labels: Vec<usize> = (0..32).map(|i| i / 4).collect();
        let rows: Vec<f32> = labels
            .iter()
            .flat_map(|&c| {
                centres[c]
                    .iter()
                    .map(|&v| v + spread * (rng.random::<f32>() - 0.5))
                    .collect::<Vec<_>>()
            })
            .collect();
        LabelledSamples {
            samples: Matrix::new(32, 10, rows).unwrap(),
            labels,
            class_names: (0..8).map(|c| format!("c{c}")).collect(),
            paths: Vec::new(),
            image_size: None,
        }
    }

    /// The best one-shot value a KeepBest saw over 2 epochs of the reference model.
    fn best_one_shot(samples: LabelledSamples) -> f64 {
        let (a, b, y) = crate::synthetic::random_pairs(64, 10, 0);
        let mut model = Siamese::reference(10, 0).unwrap();
        let mut best = KeepBest::new(one_shot_monitor(samples, false, 5, 300, 1).unwrap());
        let pairs = PairsRef {
            a: &a,
            b: &b,
            labels: &y,
        };
        let options = FitOptions::new(2, 16);
        model
            .fit_with(pairs.into(), &options, vec![&mut best])
            .unwrap();
        assert_eq!(best.monitor().name(), "val_one_shot");
        best.best().unwrap().1
    }

    #[test]
    fn one_shot_monitor_scores_the_trials_with_the_current_network() {
        // Tight clusters keep their nearest neighbours through any ReLU network of this
        // size: near-perfect 5-way accuracy. The same rows with their labels shuffled
        // across classes leave only chance (1/5).
        let tight = best_one_shot(clusters(0.05));
        assert!(tight > 0.9, "tight clusters: {tight}");
        let mut shuffled = clusters(0.05);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        use rand::seq::SliceRandom;
        shuffled.labels.shuffle(&mut rng);
        let chance = best_one_shot(shuffled);
        assert!(chance < 0.5, "shuffled labels: {chance}");
    }
}
