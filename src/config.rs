//! [`ModelConfig`]: what a saved model directory records about its model (architecture, loss,
//! optimizer, seed).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::loss::LossConfig;
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
    pub loss: LossConfig,
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
            loss: LossConfig::default(),
            optimizer: OptimizerConfig::rmsprop(),
            seed: 0,
        }
    }

    /// Checks every part, naming the offending field.
    pub fn validate(&self) -> Result<()> {
        use crate::loss::LossKind;
        use crate::siamese::Head;
        self.network.validate()?;
        self.loss.validate()?;
        match (self.network.head, self.loss.kind) {
            (Head::Distance, LossKind::BinaryCrossEntropy) => {
                return Err(crate::error::SiameseError::config(
                    "loss.type",
                    "binary-cross-entropy needs the weighted-l1 head (model.head = \"weighted-l1\")",
                ));
            }
            (_, LossKind::CosineMse)
                if self.network.distance != crate::distance::Distance::Cosine =>
            {
                return Err(crate::error::SiameseError::config(
                    "loss.type",
                    "cosine-mse regresses the cosine similarity: use model.distance = \"cosine\"",
                ));
            }
            (Head::WeightedL1, LossKind::CosineMse | LossKind::ExpMse | LossKind::Cosent) => {
                return Err(crate::error::SiameseError::config(
                    "model.head",
                    "cosine-mse, exp-mse and cosent train the distance head (model.head = \"distance\")",
                ));
            }
            (Head::WeightedL1, LossKind::MultipleNegativesRanking) => {
                return Err(crate::error::SiameseError::config(
                    "model.head",
                    "multiple-negatives-ranking ranks the embeddings' cosine similarities: use \
                     the distance head (model.head = \"distance\")",
                ));
            }
            (Head::WeightedL1, LossKind::Contrastive | LossKind::Triplet) => {
                return Err(crate::error::SiameseError::config(
                    "model.head",
                    "the weighted-l1 head is trained with loss.type = \"binary-cross-entropy\"",
                ));
            }
            _ => {}
        }
        self.optimizer.validate()
    }
}
