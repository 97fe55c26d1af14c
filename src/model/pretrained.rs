//! [`Siamese::from_pretrained`]: a sentence-transformers model directory as the shared twin.

use std::path::Path;

use burn::tensor::Device;

use super::Siamese;
use crate::config::ModelConfig;
use crate::data::prepare::{Preprocessing, TextPreprocessing};
use crate::distance::Distance;
use crate::encoder::bert::load_pretrained;
use crate::encoder::{Encoder, EncoderConfig};
use crate::error::Result;
use crate::loss::{LossConfig, LossKind};
use crate::optim::OptimizerConfig;
use crate::siamese::{Head, SiameseConfig, SiameseNetwork};

/// How a pretrained encoder is compared and trained ([`Siamese::from_pretrained_with`]); the
/// default is Sentence-BERT's STS recipe: cosine distance, cosine-similarity regression,
/// Adam with lr 2e-5.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainedSetup {
    /// How embeddings are compared.
    pub distance: Distance,
    /// The training loss.
    pub loss: LossConfig,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Seed of the dropout masks.
    pub seed: u64,
    /// Dropout when fine-tuning; default: the directory's `hidden_dropout_prob`.
    pub dropout: Option<f64>,
}

impl Default for PretrainedSetup {
    fn default() -> Self {
        Self {
            distance: Distance::Cosine,
            loss: LossConfig {
                kind: LossKind::CosineMse,
                ..LossConfig::default()
            },
            optimizer: OptimizerConfig::Adam {
                lr: 2e-5,
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 1e-6,
            },
            seed: 0,
            dropout: None,
        }
    }
}

impl Siamese {
    /// A Siamese network whose shared encoder is the BERT-family sentence encoder in `dir`, a
    /// sentence-transformers (or Hugging Face) model directory read as it is (see
    /// [`crate::encoder::bert::pretrained`]): its weights, tokenizer, pooling, normalisation
    /// and `max_seq_length`, with the default [`PretrainedSetup`] (cosine distance,
    /// Sentence-BERT's STS fine-tuning recipe).
    ///
    /// Sentences become rows with [`Self::encode_sentences`], so the model embeds and
    /// compares sentences zero-shot, fine-tunes with [`Self::fit`], and saves and loads like
    /// any other model ([`Self::load`] also reads such a directory directly).
    ///
    /// # Errors
    /// As [`load_pretrained`]: a missing file, an unsupported architecture or pooling, or
    /// weights that do not match `config.json`, each named.
    pub fn from_pretrained(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Self::from_pretrained_with(dir, device, PretrainedSetup::default())
    }

    /// [`Self::from_pretrained`] with another distance, loss, optimizer, seed or dropout.
    pub fn from_pretrained_with(
        dir: impl AsRef<Path>,
        device: &Device,
        setup: PretrainedSetup,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let autodiff = device.clone().autodiff();
        let mut loaded = load_pretrained(dir, &autodiff)?;
        if let Some(p) = setup.dropout {
            loaded.config.dropout = p;
        }
        loaded
            .encoder
            .set_dropout(loaded.config.dropout, setup.seed);
        let config = ModelConfig {
            network: SiameseConfig {
                encoder: EncoderConfig::Bert(loaded.config.clone()),
                distance: setup.distance,
                head: Head::Distance,
            },
            loss: setup.loss,
            optimizer: setup.optimizer,
            seed: setup.seed,
        };
        config.validate()?;
        let network = SiameseNetwork::new(Encoder::Bert(loaded.encoder), setup.distance);
        let mut model = Self::with_network(config, network, device)?;
        let vocab_size = loaded.tokenizer.vocab_size();
        model.set_preprocessing(
            Preprocessing {
                source: None,
                image: None,
                text: Some(TextPreprocessing {
                    max_len: loaded.config.max_len,
                    vocab_size,
                    score_range: (0.0, 1.0),
                    label_threshold: None,
                    special_tokens: true,
                }),
            },
            Some(loaded.tokenizer),
        )?;
        model
            .extra_mut()
            .insert("pretrained".into(), dir.display().to_string().into());
        Ok(model)
    }
}
