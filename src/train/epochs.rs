//! The epoch loop shared by both backends (burn autodiff, the fused MLP path): shuffling,
//! batching, metrics, validation, callbacks, and the state a resumed run continues from.

use std::time::Instant;

use burn::optim::ModuleOptimizer;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::average::Averager;
use super::burn_step::BurnStepper;
use super::callbacks::{Callback, Control, EpochContext};
use super::classes::ClassSource;
use super::fused_step::FusedStepper;
use super::state::{OptimizerSnapshot, TrainState};
use super::triplets::TripletSource;
use super::{EpochLog, FitOptions, History, Validation, epoch_line};
use crate::config::ModelConfig;
use crate::data::augment::augment_rows;
use crate::data::{Matrix, PairData, Pairs};
use crate::error::{Result, SiameseError};
use crate::fused::HostTrainer;
use crate::infer::{evaluate, network_device};
use crate::siamese::SiameseNetwork;

/// What a `fit` call runs with beyond its [`FitOptions`]: callbacks, a state to resume from,
/// and whether validation may use the host path of [`crate::fused`].
pub struct Hooks<'c> {
    /// The model's configuration (recorded by checkpoints).
    pub config: &'c ModelConfig,
    /// Called after every batch and epoch, in order.
    pub callbacks: Vec<&'c mut dyn Callback>,
    /// Continue this run (from [`TrainState::epoch`] + 1) instead of starting at epoch 1.
    pub resume: Option<TrainState>,
    /// Let validation run on the host path where it covers the network.
    pub host: bool,
}

impl std::fmt::Debug for Hooks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("callbacks", &self.callbacks.len())
            .field("resume", &self.resume.as_ref().map(|s| s.epoch))
            .field("host", &self.host)
            .finish()
    }
}

/// What a `fit` call returns.
#[derive(Debug)]
pub struct FitOutcome {
    /// The trained network (or the weights a callback chose, e.g. [`super::KeepBest`]).
    pub network: SiameseNetwork,
    /// One entry per epoch of the run (a resumed run's earlier epochs included).
    pub history: History,
    /// Where the run stands: continue it with [`Hooks::resume`].
    pub state: TrainState,
}

/// Trains `network` on `train` with burn's `optimizer`, Keras-style. Inputs must already be
/// checked (see [`crate::data::check_pairs`]).
pub fn fit(
    network: SiameseNetwork,
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    train: PairData<'_>,
    options: &FitOptions,
    hooks: Hooks<'_>,
) -> Result<FitOutcome> {
    let loss = &hooks.config.loss;
    let split = prepare(options, train)?;
    let (train, val) = train_and_validation(&split, options, train);
    let triplets = triplet_source(hooks.config, &network, train)?;
    let classes = class_source(hooks.config, options, &network, train)?;
    let device = network_device(&network);
    let mut stepper = BurnStepper {
        network,
        optimizer,
        lr,
        base_lr: lr,
        loss,
        device,
        triplets,
        epoch_triplets: None,
        classes,
        epoch_classes: None,
        batch_losses: Vec::new(),
        distances: Vec::new(),
        labels: Vec::new(),
    };
    let (history, state, best) = run_epochs(&mut stepper, train, val, options, hooks)?;
    Ok(FitOutcome {
        network: best.unwrap_or(stepper.network),
        history,
        state,
    })
}

/// Trains an MLP network with the fused CPU path (see [`crate::fused`]): the same loop,
/// shuffling, batches, metrics and history as [`fit`], with `trainer`'s kernels for each step.
/// The trained weights are written back into the returned network.
pub fn fit_fused(
    network: SiameseNetwork,
    trainer: &mut HostTrainer,
    train: PairData<'_>,
    options: &FitOptions,
    hooks: Hooks<'_>,
) -> Result<FitOutcome> {
    let split = prepare(options, train)?;
    let (train, val) = train_and_validation(&split, options, train);
    let triplets = triplet_source(hooks.config, &network, train)?;
    let classes = class_source(hooks.config, options, &network, train)?;
    let base_lr = trainer.lr() as f64;
    let mut stepper = FusedStepper {
        network,
        trainer,
        base_lr,
        triplets,
        epoch_triplets: None,
        classes,
        epoch_classes: None,
        batch_losses: Vec::new(),
        distances: Vec::new(),
        labels: Vec::new(),
    };
    // The loop runs on a rayon worker, so each parallel phase of a step wakes at most the
    // other workers instead of handing the whole step over from outside the pool and back.
    let (history, state, best) =
        rayon::scope(|_| run_epochs(&mut stepper, train, val, options, hooks))?;
    let FusedStepper {
        mut network,
        trainer,
        ..
    } = stepper;
    trainer.write_back(&mut network);
    Ok(FitOutcome {
        network: best.unwrap_or(network),
        history,
        state,
    })
}

/// The triplets of a triplet-loss run (None for every other loss).
fn triplet_source<'d>(
    config: &ModelConfig,
    network: &SiameseNetwork,
    train: PairData<'d>,
) -> Result<Option<TripletSource<'d>>> {
    if !config.loss.is_triplet() {
        return Ok(None);
    }
    if network.weighted_l1.is_some() {
        return Err(SiameseError::config(
            "loss.type",
            "the triplet loss trains a distance head, not the weighted-l1 head",
        ));
    }
    TripletSource::new(train).map(Some)
}

/// The class-labelled batches of a run whose loss has a miner (None for every other).
fn class_source<'d>(
    config: &ModelConfig,
    options: &'d FitOptions,
    network: &SiameseNetwork,
    train: PairData<'d>,
) -> Result<Option<ClassSource<'d>>> {
    match (config.loss.miner, &options.sampler) {
        (None, None) => Ok(None),
        (Some(m), None) => Err(SiameseError::config(
            "sampler",
            format!(
                "loss.miner = \"{}\" mines class-labelled batches: give a P × K sampler \
                 (FitOptions::sampler; in a run config [train.sampler] classes and per_class)",
                m.name()
            ),
        )),
        (None, Some(_)) => Err(SiameseError::config(
            "sampler",
            "class-balanced batches train a loss with a miner: set loss.miner (batch-hard, \
             batch-all, semi-hard or hard-negative)",
        )),
        (Some(_), Some(sampler)) => {
            if network.weighted_l1.is_some() {
                return Err(SiameseError::config(
                    "loss.miner",
                    "mining trains a distance head, not the weighted-l1 head",
                ));
            }
            ClassSource::new(train, sampler).map(Some)
        }
    }
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
pub(super) type AugmentFn<'f> = dyn FnMut(&mut Matrix) -> Result<()> + 'f;

/// One training backend under the shared epoch loop: burn autodiff, or the fused MLP path.
pub(super) trait Stepper {
    /// Items per epoch (pairs, or triplets formed from them).
    fn items(&self, train: PairData<'_>) -> usize;
    /// Prepares an epoch whose items come in `order`.
    fn begin_epoch(&mut self, _order: &[usize], _rng: &mut ChaCha8Rng) {}
    /// Sets the learning rate to the configured one times `factor` (a schedule's step).
    fn set_lr_factor(&mut self, factor: f64);
    /// The learning rate now.
    fn lr(&self) -> f64;
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
    /// The optimizer's state so far, for a checkpoint.
    fn optimizer_snapshot(&self) -> Result<OptimizerSnapshot>;
}

/// The dropout seed of `epoch` (from 1): the run's seed for epoch 1, a derived one after, so
/// that every epoch's masks depend only on `(seed, epoch)` and a resumed run draws the same.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    if epoch <= 1 {
        seed
    } else {
        seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// The epoch loop: returns the history, the state after the last epoch, and replacement
/// weights chosen by a callback (if any).
fn run_epochs(
    stepper: &mut impl Stepper,
    train: PairData<'_>,
    val: Option<PairData<'_>>,
    options: &FitOptions,
    mut hooks: Hooks<'_>,
) -> Result<(History, TrainState, Option<SiameseNetwork>)> {
    let n = stepper.items(train);
    // A sampler's batches are its own size.
    let batch_size = options
        .sampler
        .as_ref()
        .map_or(options.batch_size, |s| s.batch_size());
    let steps = n.div_ceil(batch_size);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut augment_rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0xA06_3E47);
    let mut order: Vec<usize> = (0..n).collect();
    let mut history = History::default();
    let mut first = 1;
    let mut averager = options.average.map(Averager::new);
    if let Some(a) = &averager
        && a.config().first_epoch(steps, options.epochs).is_none()
    {
        return Err(SiameseError::config(
            "average.start_epochs",
            format!(
                "averaging starts after {} epochs of {steps} steps, but the run has {} epochs: \
                 no snapshot would be taken",
                a.config().start(options.epochs),
                options.epochs
            ),
        ));
    }
    if averager.is_some() && hooks.resume.is_some() {
        return Err(SiameseError::config(
            "average",
            "resuming a run with weight averaging is not supported (the running average is \
             not part of a checkpoint): train it again from the start",
        ));
    }
    if let Some(state) = hooks.resume.take() {
        state.check_resumable(options, n)?;
        rng.set_word_pos(state.shuffle_word_pos()?);
        augment_rng.set_word_pos(state.augment_word_pos()?);
        order = state.order.clone();
        history = state.history.clone();
        first = state.epoch + 1;
    }
    let loss = &hooks.config.loss;
    for cb in hooks.callbacks.iter_mut() {
        cb.on_train_begin(first, options.epochs, steps)?;
    }
    // The resumable state after `epoch` epochs, made only when asked for (a checkpoint) and
    // at the end, not every epoch.
    let seed = options.seed;
    let state_after = |epoch: usize,
                       history: &History,
                       order: &[usize],
                       rng: &ChaCha8Rng,
                       augment_rng: &ChaCha8Rng| {
        let mut s = TrainState::new(seed, history.clone(), order.to_vec(), rng, augment_rng);
        s.epoch = epoch;
        s
    };
    let mut done = first - 1;
    // The average after the latest epoch run (snapshots are taken only within epochs, so it
    // is also what the run returns).
    let mut averaged = None;
    for epoch in first..=options.epochs {
        let started = Instant::now();
        stepper.reseed(epoch_seed(options.seed, epoch));
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
            if !options.schedule.is_constant() {
                let f = options
                    .schedule
                    .factor(epoch - 1, step, steps, options.epochs);
                stepper.set_lr_factor(f);
            }
            let start = step * batch_size;
            let size = batch_size.min(n - start);
            let augment = options
                .augment
                .is_some()
                .then_some(&mut augment as &mut AugmentFn<'_>);
            stepper.step(train, start, &order[start..start + size], augment)?;
            if let Some(a) = &mut averager
                && a.config()
                    .takes((epoch - 1) * steps + step + 1, steps, options.epochs)
            {
                a.add(stepper.network())?;
            }
            for cb in hooks.callbacks.iter_mut() {
                cb.on_batch_end(epoch, step + 1, steps);
            }
        }
        let (batch_losses, distances, labels_seen) = stepper.end_epoch()?;
        let epoch_loss = batch_losses
            .iter()
            .enumerate()
            .map(|(step, &l)| l as f64 * batch_size.min(n - step * batch_size) as f64)
            .sum::<f64>() as f32
            / n as f32;
        let epoch_acc = crate::data::pair_accuracy(&distances, &labels_seen, options.threshold);
        if !epoch_loss.is_finite() {
            return Err(SiameseError::Runtime(format!(
                "training loss became {epoch_loss} in epoch {epoch}; lower the learning rate or \
                 check the inputs' scale"
            )));
        }
        // What validation and the callbacks see: the running average once it has begun.
        averaged = averager
            .as_ref()
            .and_then(|a| a.averaged(stepper.network()));
        let val_eval = match val {
            Some(v) => Some(evaluate(
                match &averaged {
                    Some(n) => n,
                    None => stepper.network(),
                },
                loss,
                v,
                options.threshold,
                hooks.host,
            )?),
            None => None,
        };
        let log = EpochLog {
            epoch,
            loss: epoch_loss,
            accuracy: epoch_acc,
            val_loss: val_eval.map(|v| v.loss),
            val_accuracy: val_eval.map(|v| v.accuracy),
            seconds: started.elapsed().as_secs_f64(),
            lr: Some(stepper.lr()),
            val_eer: val_eval.and_then(|v| v.eer),
        };
        if options.verbose {
            println!("{}", epoch_line(&log, options.epochs, steps));
        }
        history.epochs.push(log.clone());
        done = epoch;
        let mut stop = false;
        if !hooks.callbacks.is_empty() {
            let network = match &averaged {
                Some(n) => n.clone(),
                None => stepper_network(stepper),
            };
            let stepper = &*stepper;
            let snapshot = || -> Result<TrainState> {
                let mut s = state_after(epoch, &history, &order, &rng, &augment_rng);
                s.optimizer = Some(stepper.optimizer_snapshot()?);
                Ok(s)
            };
            let mut ctx = EpochContext {
                network: &network,
                config: hooks.config,
                validation: val,
                history: &history,
                host: hooks.host,
                snapshot: &snapshot,
            };
            for cb in hooks.callbacks.iter_mut() {
                if cb.on_epoch_end(&log, &mut ctx)? == Control::Stop {
                    stop = true;
                }
            }
        }
        if stop {
            break;
        }
    }
    // Without a callback's choice, the run returns the average (when one was taken).
    let mut best = averaged;
    for cb in hooks.callbacks.iter_mut() {
        if let Some(network) = cb.on_train_end(&history)? {
            best = Some(network);
        }
    }
    let state = state_after(done, &history, &order, &rng, &augment_rng);
    Ok((history, state, best))
}

/// A copy of the network as trained so far (cheap: burn tensors are reference-counted).
fn stepper_network(stepper: &mut impl Stepper) -> SiameseNetwork {
    stepper.network().clone()
}
