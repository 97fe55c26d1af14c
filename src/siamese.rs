//! The Siamese network: one shared encoder applied to both inputs, then a distance layer.
//!
//! ```text
//! a: [batch, input_dim] ─┐
//!                        ├─ encoder (ONE instance, shared weights) ─→ e_a, e_b: [batch, emb]
//! b: [batch, input_dim] ─┘
//! d = distance(e_a, e_b): [batch, 1]
//! ```
//!
//! Both branches run through the same parameters, so the gradients from branch A and branch B
//! accumulate into the same tensors, exactly as with a Keras functional model that calls one
//! base network twice. For speed, the two inputs are stacked and encoded in one pass
//! (`[2·batch, input_dim]`), which is the same computation.
//!
//! ```
//! use siamese::siamese::SiameseConfig;
//! use siamese::burn::tensor::{Device, Tensor};
//!
//! let device = Device::flex();
//! let net = SiameseConfig::reference(100).init(&device, 0).unwrap();
//! let a = Tensor::<2>::ones([8, 100], &device);
//! let b = Tensor::<2>::zeros([8, 100], &device);
//! assert_eq!(net.forward(a, b).dims(), [8, 1]);
//! ```

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::distance::Distance;
use crate::encoder::{Encoder, EncoderConfig, MlpEncoderConfig, glorot_dense};
use crate::error::Result;

/// Architecture of a Siamese network: the shared encoder and the distance that compares
/// embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiameseConfig {
    /// The base network applied to both inputs.
    pub encoder: EncoderConfig,
    /// How embeddings are compared.
    #[serde(default)]
    pub distance: Distance,
    /// What turns two embeddings into the model's output.
    #[serde(default)]
    pub head: Head,
}

/// The head on top of the two embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Head {
    /// The distance itself (`distance`): trained with the contrastive loss.
    #[default]
    Distance,
    /// Koch et al. (2015): `p = σ(wᵀ|e_a − e_b| + b)`, the probability of "same", trained with
    /// binary cross-entropy; the model's distance is `d = 1 − p`.
    WeightedL1,
}

impl SiameseConfig {
    /// The reference network: `input_dim → Dense(128, relu) ×3`, Euclidean distance.
    pub fn reference(input_dim: usize) -> Self {
        Self {
            encoder: EncoderConfig::Mlp(MlpEncoderConfig::reference(input_dim)),
            distance: Distance::Euclidean,
            head: Head::Distance,
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        self.encoder.validate()
    }

    /// Builds the network on `device`, initialising weights from `seed`.
    pub fn init(&self, device: &Device, seed: u64) -> Result<SiameseNetwork> {
        let weighted_l1 = match self.head {
            Head::Distance => None,
            Head::WeightedL1 => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4EAD);
                Some(glorot_dense(self.encoder.output_dim(), 1, &mut rng, device))
            }
        };
        Ok(SiameseNetwork {
            encoder: self.encoder.init(device, seed)?,
            weighted_l1,
            distance: self.distance,
        })
    }
}

/// A Siamese network (burn module) built by [`SiameseConfig::init`].
#[derive(Module, Debug)]
pub struct SiameseNetwork {
    /// The one encoder shared by both branches.
    pub encoder: Encoder,
    /// The weighted-L1 head's `|e_a − e_b| → logit` layer, when that head is used.
    pub weighted_l1: Option<Linear>,
    #[module(skip)]
    distance: Distance,
}

impl SiameseNetwork {
    /// A network from an already built encoder and a distance (distance head).
    pub fn new(encoder: Encoder, distance: Distance) -> Self {
        Self {
            encoder,
            weighted_l1: None,
            distance,
        }
    }

    /// Embeds a batch: `[batch, input_dim] → [batch, emb]`.
    pub fn embed(&self, x: Tensor<2>) -> Tensor<2> {
        self.encoder.forward(x)
    }

    /// Embeddings of both branches, `(encoder(a), encoder(b))`, computed by the one shared
    /// encoder in a single pass over `[a; b]`.
    pub fn forward_embeddings(&self, a: Tensor<2>, b: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let n = a.dims()[0];
        let both = self.embed(Tensor::cat(vec![a, b], 0));
        (both.clone().narrow(0, 0, n), both.narrow(0, n, n))
    }

    /// The head's raw output from two batches of embeddings, `[batch, 1]`: the distance for
    /// the distance head, the logit of "same" for the weighted-L1 head. Losses take these.
    pub fn scores_from_embeddings(&self, ea: Tensor<2>, eb: Tensor<2>) -> Tensor<2> {
        match &self.weighted_l1 {
            None => self.distance.forward(ea, eb),
            Some(layer) => layer.forward((ea - eb).abs()),
        }
    }

    /// Turns scores into distances: the identity for the distance head, `d = 1 − σ(z) = σ(−z)`
    /// for the weighted-L1 head (so `d < 0.5` ⇔ `p(same) > 0.5`).
    pub fn distance_from_scores(&self, scores: Tensor<2>) -> Tensor<2> {
        match &self.weighted_l1 {
            None => scores,
            Some(_) => burn::tensor::activation::sigmoid(scores.neg()),
        }
    }

    /// The head's raw output for pairs: `[batch, input_dim]² → [batch, 1]`.
    pub fn forward_scores(&self, a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
        let (ea, eb) = self.forward_embeddings(a, b);
        self.scores_from_embeddings(ea, eb)
    }

    /// Distances between matching rows of `a` and `b`: `[batch, input_dim]² → [batch, 1]`.
    pub fn forward(&self, a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
        self.distance_from_scores(self.forward_scores(a, b))
    }

    /// The distance layer.
    pub fn distance(&self) -> Distance {
        self.distance
    }
}
