//! Serialisable configurations: what a saved model directory records about its model.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::loss::ContrastiveLoss;
use crate::optim::OptimizerConfig;
use crate::siamese::SiameseConfig;

/// Everything needed to rebuild and keep training a model: architecture, loss, optimizer and
/// the seed its weights were drawn from. Stored as `config.json` in a model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The network's architecture.
    pub network: SiameseConfig,
    /// The training loss.
    #[serde(default)]
    pub loss: ContrastiveLoss,
    /// The optimizer.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Seed for weight initialisation.
    #[serde(default)]
    pub seed: u64,
}

impl ModelConfig {
    /// The reference system: `input_dim → Dense(128, relu) ×3`, Euclidean distance, contrastive
    /// loss with margin 1, Keras RMSprop.
    pub fn reference(input_dim: usize) -> Self {
        Self {
            network: SiameseConfig::reference(input_dim),
            loss: ContrastiveLoss::default(),
            optimizer: OptimizerConfig::rmsprop(),
            seed: 0,
        }
    }

    /// Checks every part, naming the offending field.
    pub fn validate(&self) -> Result<()> {
        self.network.validate()?;
        self.loss.validate()?;
        self.optimizer.validate()
    }
}
