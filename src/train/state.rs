//! [`TrainState`]: where a training run stands after a whole epoch — the epoch, the history,
//! the item order and random streams, and the optimizer's moments — so that a run resumed
//! from it continues exactly as an uninterrupted one would (on one thread, bit for bit).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::ModuleOptimizer;
use burn::tensor::Tensor;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{FitOptions, History};
use crate::error::{Result, SiameseError};
use crate::fused::OptimizerStateParts;
use crate::siamese::SiameseNetwork;

/// The optimizer's state in a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "path")]
pub enum OptimizerSnapshot {
    /// The fused MLP path's moments and step count.
    Fused(OptimizerStateParts),
    /// burn's optimizer record (burnpack bytes) and the parameter ids it is keyed by, in the
    /// order the network's parameters are visited.
    Burn {
        /// `ModuleOptimizer::to_record`, as bytes.
        record: Vec<u8>,
        /// Parameter ids in visiting order.
        param_ids: Vec<u64>,
    },
}

/// Collects parameter ids in visiting order.
struct Ids(Vec<u64>);

impl ModuleVisitor for Ids {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.id.val());
    }
}

/// Gives parameters the ids of a checkpoint, in visiting order.
struct SetIds<'a>(std::slice::Iter<'a, u64>);

impl ModuleMapper for SetIds<'_> {
    fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if let Some(&id) = self.0.next() {
            param.id = ParamId::from(id);
        }
        param
    }
}

/// Parameter ids of `network` in visiting order.
pub(crate) fn param_ids(network: &SiameseNetwork) -> Vec<u64> {
    let mut ids = Ids(Vec::new());
    network.visit(&mut ids);
    ids.0
}

impl OptimizerSnapshot {
    /// burn's optimizer state for `network`.
    pub(crate) fn of_burn(optimizer: &ModuleOptimizer, network: &SiameseNetwork) -> Result<Self> {
        let record = optimizer
            .to_record()
            .into_bytes()
            .map_err(|e| SiameseError::Runtime(format!("cannot serialise the optimizer: {e:?}")))?;
        Ok(Self::Burn {
            record: record.to_vec(),
            param_ids: param_ids(network),
        })
    }

    /// Restores burn's optimizer state: `network` takes the parameter ids the record is keyed
    /// by, and `optimizer` the record.
    pub(crate) fn restore_burn(
        record: &[u8],
        ids: &[u64],
        optimizer: ModuleOptimizer,
        network: SiameseNetwork,
    ) -> Result<(ModuleOptimizer, SiameseNetwork)> {
        let have = param_ids(&network).len();
        if have != ids.len() {
            return Err(SiameseError::invalid(
                "checkpoint",
                format!(
                    "the optimizer state covers {} parameters, the model has {have}",
                    ids.len()
                ),
            ));
        }
        let network = network.map(&mut SetIds(ids.iter()));
        let bytes = burn::tensor::Bytes::from_bytes_vec(record.to_vec());
        let record = burn::optim::OptimizerRecord::from_bytes(bytes).map_err(|e| {
            SiameseError::invalid("checkpoint", format!("unreadable optimizer state: {e:?}"))
        })?;
        Ok((optimizer.load_record(record), network))
    }
}

/// Where a training run stands after a whole epoch (see the module docs). Saved in a
/// checkpoint directory by `io::Checkpoint` and continued with [`super::Hooks::resume`]
/// (or `Siamese::fit_with`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// The run's seed (`FitOptions::seed`); a resume must use the same.
    pub seed: u64,
    /// Every completed epoch's metrics.
    pub history: History,
    /// The order of the training items after the last epoch's shuffle.
    pub order: Vec<usize>,
    /// Position of the shuffling stream (a decimal `u128`).
    shuffle_pos: String,
    /// Position of the augmentation stream (a decimal `u128`).
    augment_pos: String,
    /// The optimizer's state, in a checkpoint.
    #[serde(skip)]
    pub optimizer: Option<OptimizerSnapshot>,
}

impl TrainState {
    pub(super) fn new(
        seed: u64,
        history: History,
        order: Vec<usize>,
        shuffle: &ChaCha8Rng,
        augment: &ChaCha8Rng,
    ) -> Self {
        Self {
            epoch: 0,
            seed,
            history,
            order,
            shuffle_pos: shuffle.get_word_pos().to_string(),
            augment_pos: augment.get_word_pos().to_string(),
            optimizer: None,
        }
    }

    fn pos(s: &str, what: &str) -> Result<u128> {
        s.parse().map_err(|_| {
            SiameseError::invalid("checkpoint", format!("{what} is `{s}`, not a position"))
        })
    }

    pub(super) fn shuffle_word_pos(&self) -> Result<u128> {
        Self::pos(&self.shuffle_pos, "shuffle_pos")
    }

    pub(super) fn augment_word_pos(&self) -> Result<u128> {
        Self::pos(&self.augment_pos, "augment_pos")
    }

    /// Checks that a run with `options` over `items` training items can continue this state.
    pub(super) fn check_resumable(&self, options: &FitOptions, items: usize) -> Result<()> {
        if self.seed != options.seed {
            return Err(SiameseError::config(
                "seed",
                format!(
                    "the checkpoint's run used seed {}, this one {}; resume with the same seed",
                    self.seed, options.seed
                ),
            ));
        }
        if self.order.len() != items {
            return Err(SiameseError::invalid(
                "checkpoint",
                format!(
                    "the checkpoint's run had {} training items, this data has {items}; resume on \
                     the same data",
                    self.order.len()
                ),
            ));
        }
        if self.epoch >= options.epochs {
            return Err(SiameseError::config(
                "epochs",
                format!(
                    "the checkpoint already holds {} epochs; ask for more to continue",
                    self.epoch
                ),
            ));
        }
        Ok(())
    }
}
