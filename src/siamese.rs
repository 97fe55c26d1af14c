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
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::distance::Distance;
use crate::encoder::{Encoder, EncoderConfig, MlpEncoderConfig};
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
}

impl SiameseConfig {
    /// The reference network: `input_dim → Dense(128, relu) ×3`, Euclidean distance.
    pub fn reference(input_dim: usize) -> Self {
        Self {
            encoder: EncoderConfig::Mlp(MlpEncoderConfig::reference(input_dim)),
            distance: Distance::Euclidean,
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        self.encoder.validate()
    }

    /// Builds the network on `device`, initialising weights from `seed`.
    pub fn init(&self, device: &Device, seed: u64) -> Result<SiameseNetwork> {
        Ok(SiameseNetwork {
            encoder: self.encoder.init(device, seed)?,
            distance: self.distance,
        })
    }
}

/// A Siamese network (burn module) built by [`SiameseConfig::init`].
#[derive(Module, Debug)]
pub struct SiameseNetwork {
    /// The one encoder shared by both branches.
    pub encoder: Encoder,
    #[module(skip)]
    distance: Distance,
}

impl SiameseNetwork {
    /// A network from an already built encoder and a distance.
    pub fn new(encoder: Encoder, distance: Distance) -> Self {
        Self { encoder, distance }
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

    /// Distances between matching rows of `a` and `b`: `[batch, input_dim]² → [batch, 1]`.
    pub fn forward(&self, a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
        let (ea, eb) = self.forward_embeddings(a, b);
        self.distance.forward(ea, eb)
    }

    /// The distance layer.
    pub fn distance(&self) -> Distance {
        self.distance
    }
}
