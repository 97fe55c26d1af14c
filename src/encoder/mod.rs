//! Encoders: the "base network" that maps one input to an embedding.
//!
//! The reference encoder is a multi-layer perceptron, `input → Dense(128, relu) ×3`, built with
//! Keras initialisation: Glorot-uniform kernels, `W ~ U(−√(6/(fan_in+fan_out)), +√(6/(fan_in+fan_out)))`,
//! and zero biases. A Siamese network applies **one** encoder instance to both inputs.
//!
//! ```
//! use siamese::burn::module::Module;
//! use siamese::encoder::{EncoderConfig, MlpEncoderConfig};
//! use siamese::burn::tensor::{Device, Tensor};
//!
//! let device = Device::flex();
//! let encoder = EncoderConfig::Mlp(MlpEncoderConfig::reference(100)).init(&device, 42).unwrap();
//! let x = Tensor::<2>::zeros([4, 100], &device);
//! assert_eq!(encoder.forward(x).dims(), [4, 128]);
//! assert_eq!(encoder.num_params(), 45_952);
//! ```

use burn::module::{Module, Param};
use std::sync::{Arc, Mutex};

use burn::nn::Linear;
use burn::tensor::activation;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SiameseError};

pub mod bert;
pub mod conv;
pub mod text;

use conv::{ConvEncoder, ConvEncoderConfig};

/// Element-wise activation applied after each hidden dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(0, x)` (the reference).
    #[default]
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// Gaussian error linear unit.
    Gelu,
    /// The identity.
    Linear,
}

impl Activation {
    /// Applies the activation element-wise.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Relu => activation::relu(x),
            Self::Tanh => activation::tanh(x),
            Self::Sigmoid => activation::sigmoid(x),
            Self::Gelu => activation::gelu(x),
            Self::Linear => x,
        }
    }

    /// Name used in summaries and configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Tanh => "tanh",
            Self::Sigmoid => "sigmoid",
            Self::Gelu => "gelu",
            Self::Linear => "linear",
        }
    }
}

/// Configuration of a multi-layer perceptron encoder.
///
/// Layer `i` is `Dense(hidden[i], activation)`, followed by `Dropout(dropout)` when
/// `dropout > 0` and `i` is not the last layer (the Keras `mnist_siamese` layout). When
/// `final_activation` is false the last dense layer is linear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpEncoderConfig {
    /// Size of one input vector.
    pub input_dim: usize,
    /// Output size of each dense layer; the last one is the embedding size.
    pub hidden: Vec<usize>,
    /// Activation after each dense layer.
    #[serde(default)]
    pub activation: Activation,
    /// Whether the last dense layer has the activation too (true in the reference).
    #[serde(default = "default_true")]
    pub final_activation: bool,
    /// Dropout rate after every dense layer but the last (0 disables it).
    #[serde(default)]
    pub dropout: f64,
}

fn default_true() -> bool {
    true
}

impl MlpEncoderConfig {
    /// The reference base network: `input_dim → Dense(128, relu) ×3`.
    pub fn reference(input_dim: usize) -> Self {
        Self {
            input_dim,
            hidden: vec![128, 128, 128],
            activation: Activation::Relu,
            final_activation: true,
            dropout: 0.0,
        }
    }

    /// The Keras `mnist_siamese` base network: `784 → Dense(128, relu) + Dropout(0.1) ×2 →
    /// Dense(128, relu)`.
    pub fn mnist_siamese() -> Self {
        Self {
            input_dim: 784,
            hidden: vec![128, 128, 128],
            activation: Activation::Relu,
            final_activation: true,
            dropout: 0.1,
        }
    }

    /// Checks the configuration, naming the offending field.
    pub fn validate(&self) -> Result<()> {
        if self.input_dim == 0 {
            return Err(SiameseError::config(
                "encoder.input_dim",
                "must be at least 1",
            ));
        }
        if self.hidden.is_empty() {
            return Err(SiameseError::config(
                "encoder.hidden",
                "needs at least one layer size",
            ));
        }
        if let Some(i) = self.hidden.iter().position(|&h| h == 0) {
            return Err(SiameseError::config(
                format!("encoder.hidden[{i}]"),
                "layer sizes must be at least 1",
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(SiameseError::config(
                "encoder.dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            ));
        }
        Ok(())
    }

    /// Size of the embedding this encoder produces.
    pub fn output_dim(&self) -> usize {
        *self.hidden.last().unwrap_or(&self.input_dim)
    }

    /// Builds the encoder with Keras initialisation drawn from `seed`.
    pub fn init(&self, device: &Device, seed: u64) -> Result<MlpEncoder> {
        self.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut layers = Vec::with_capacity(self.hidden.len());
        let mut fan_in = self.input_dim;
        for &fan_out in &self.hidden {
            layers.push(glorot_dense(fan_in, fan_out, &mut rng, device));
            fan_in = fan_out;
        }
        let dropout = (self.dropout > 0.0).then(|| SeededDropout::new(self.dropout, seed));
        Ok(MlpEncoder {
            layers,
            dropout,
            activation: self.activation,
            final_activation: self.final_activation,
        })
    }
}

/// A dense layer with a Glorot-uniform kernel of shape `[fan_in, fan_out]` and a zero bias,
/// exactly as `keras.layers.Dense` initialises itself.
pub fn glorot_dense(fan_in: usize, fan_out: usize, rng: &mut impl Rng, device: &Device) -> Linear {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
    let weights: Vec<f32> = (0..fan_in * fan_out)
        .map(|_| rng.random_range(-limit..limit))
        .collect();
    dense_from_values(fan_in, fan_out, weights, vec![0.0; fan_out], device)
}

/// A dense layer from explicit kernel (`[fan_in, fan_out]`, row-major) and bias values.
pub fn dense_from_values(
    fan_in: usize,
    fan_out: usize,
    kernel: Vec<f32>,
    bias: Vec<f32>,
    device: &Device,
) -> Linear {
    let weight = Tensor::<2>::from_data(TensorData::new(kernel, [fan_in, fan_out]), device);
    let bias = Tensor::<1>::from_data(TensorData::new(bias, [fan_out]), device);
    Linear {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
    }
}

/// Draws every lazily initialised parameter of `module` now: burn initialises a parameter on
/// its first use, from the backend's global random stream, so a module built under a seeded
/// stream must be materialised before that stream moves on.
pub(crate) fn materialize<M: Module>(module: &M) {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

/// Inverted dropout (`x·m/(1−p)`, `m ~ Bernoulli(1−p)`) with its own seeded random stream.
///
/// burn's `Dropout` draws from the backend's global generator, which concurrent trainings in
/// one process share; this one draws its masks from a generator owned by the model, so a fixed
/// seed gives the same training whatever else runs. It is active only on autodiff devices
/// (training); after `valid()` it is the identity, as Keras's dropout at inference.
#[derive(Module, Debug)]
pub struct SeededDropout {
    #[module(skip)]
    prob: f64,
    #[module(skip)]
    rng: Arc<Mutex<ChaCha8Rng>>,
}

impl SeededDropout {
    /// Dropout with rate `prob`, masks drawn from `seed`.
    pub fn new(prob: f64, seed: u64) -> Self {
        Self {
            prob,
            rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0xD50F_0D50))),
        }
    }

    /// Restarts the mask stream from `seed`.
    pub fn reseed(&self, seed: u64) {
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) =
            ChaCha8Rng::seed_from_u64(seed ^ 0xD50F_0D50);
    }

    /// Applies dropout when training (autodiff device), the identity otherwise.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let device = x.device();
        if self.prob <= 0.0 || !device.is_autodiff() {
            return x;
        }
        let shape = x.shape();
        let mask = self.mask(shape.num_elements());
        x * Tensor::<D>::from_data(TensorData::new(mask, shape), &device)
    }

    /// The next `len` mask values from the stream: `1/(1−p)` where kept, 0 where dropped
    /// (row-major over the tensor being masked).
    pub fn mask(&self, len: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(len);
        self.mask_into(&mut out, len);
        out
    }

    /// [`Self::mask`] into `out` (cleared first), reusing its allocation.
    pub fn mask_into(&self, out: &mut Vec<f32>, len: usize) {
        let keep = 1.0 / (1.0 - self.prob) as f32;
        let p = self.prob as f32;
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        out.clear();
        out.extend((0..len).map(|_| if rng.random::<f32>() >= p { keep } else { 0.0 }));
    }
}

/// Multi-layer perceptron encoder built by [`MlpEncoderConfig::init`].
#[derive(Module, Debug)]
pub struct MlpEncoder {
    /// Dense layers, applied in order.
    pub layers: Vec<Linear>,
    /// Dropout after every layer but the last, when configured.
    pub dropout: Option<SeededDropout>,
    #[module(skip)]
    activation: Activation,
    #[module(skip)]
    final_activation: bool,
}

impl MlpEncoder {
    /// Restarts the dropout mask stream from `seed` (no effect without dropout).
    pub fn reseed(&self, seed: u64) {
        if let Some(d) = &self.dropout {
            d.reseed(seed);
        }
    }

    /// An encoder from explicit dense layers (see [`dense_from_values`]), no dropout.
    pub fn from_layers(
        layers: Vec<Linear>,
        activation: Activation,
        final_activation: bool,
    ) -> Self {
        Self {
            layers,
            dropout: None,
            activation,
            final_activation,
        }
    }

    /// The activation after each dense layer.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Whether the last dense layer has the activation too.
    pub fn final_activation(&self) -> bool {
        self.final_activation
    }

    /// Maps `[batch, input_dim]` to `[batch, output_dim]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last || self.final_activation {
                x = self.activation.apply(x);
            }
            if let (true, Some(dropout)) = (i < last, &self.dropout) {
                x = dropout.forward(x);
            }
        }
        x
    }
}

/// Configuration of any encoder. New encoder families are new variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EncoderConfig {
    /// A multi-layer perceptron on flat vectors.
    Mlp(MlpEncoderConfig),
    /// A convolutional network on images.
    Conv(ConvEncoderConfig),
    /// A text encoder on rows of token ids.
    Text(text::TextEncoderConfig),
    /// A BERT-family transformer on rows of token ids (pretrained sentence encoders).
    Bert(bert::BertEncoderConfig),
}

impl EncoderConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Mlp(c) => c.validate(),
            Self::Conv(c) => c.validate(),
            Self::Text(c) => c.validate(),
            Self::Bert(c) => c.validate(),
        }
    }

    /// Number of input features one sample has.
    pub fn input_dim(&self) -> usize {
        match self {
            Self::Mlp(c) => c.input_dim,
            Self::Conv(c) => c.input_dim(),
            Self::Text(c) => c.max_len,
            Self::Bert(c) => c.max_len,
        }
    }

    /// Size of the embedding.
    pub fn output_dim(&self) -> usize {
        match self {
            Self::Mlp(c) => c.output_dim(),
            Self::Conv(c) => c.output_dim().unwrap_or(0),
            Self::Text(c) => c.output_dim(),
            Self::Bert(c) => c.output_dim(),
        }
    }

    /// Builds the encoder on `device` with weights drawn from `seed`.
    pub fn init(&self, device: &Device, seed: u64) -> Result<Encoder> {
        Ok(match self {
            Self::Mlp(c) => Encoder::Mlp(c.init(device, seed)?),
            Self::Conv(c) => Encoder::Conv(c.init(device, seed)?),
            Self::Text(c) => Encoder::Text(c.init(device, seed)?),
            Self::Bert(c) => Encoder::Bert(c.init(device, seed)?),
        })
    }

    /// Rows of a Keras-style summary: `(layer name, layer type, output shape, parameters)`.
    pub fn layer_rows(&self) -> Vec<(String, String, String, usize)> {
        match self {
            Self::Mlp(c) => {
                let mut rows = Vec::new();
                let mut fan_in = c.input_dim;
                let last = c.hidden.len() - 1;
                for (i, &h) in c.hidden.iter().enumerate() {
                    let act = if i < last || c.final_activation {
                        c.activation.name()
                    } else {
                        "linear"
                    };
                    rows.push((
                        format!("dense_{i}"),
                        format!("Dense, {act}"),
                        format!("(None, {h})"),
                        fan_in * h + h,
                    ));
                    if i < last && c.dropout > 0.0 {
                        rows.push((
                            format!("dropout_{i}"),
                            format!("Dropout({})", c.dropout),
                            format!("(None, {h})"),
                            0,
                        ));
                    }
                    fan_in = h;
                }
                rows
            }
            Self::Conv(c) => c.layer_rows(),
            Self::Text(c) => c.layer_rows(),
            Self::Bert(c) => c.layer_rows(),
        }
    }
}

/// Any encoder, as a burn module.
// Built once per model and moved only with it: the size gap between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Encoder {
    /// A multi-layer perceptron.
    Mlp(MlpEncoder),
    /// A convolutional network.
    Conv(ConvEncoder),
    /// A text encoder.
    Text(text::TextEncoder),
    /// A BERT-family transformer.
    Bert(bert::BertEncoder),
}

impl Encoder {
    /// Restarts any random stream (dropout masks) from `seed`.
    pub fn reseed(&self, seed: u64) {
        match self {
            Self::Mlp(m) => m.reseed(seed),
            Self::Conv(m) => m.reseed(seed),
            Self::Text(m) => m.reseed(seed),
            Self::Bert(m) => m.reseed(seed),
        }
    }

    /// Maps a batch of inputs to embeddings `[batch, output_dim]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Mlp(m) => m.forward(x),
            Self::Conv(m) => m.forward(x),
            Self::Text(m) => m.forward(x),
            Self::Bert(m) => m.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_has_keras_parameter_count() {
        let device = Device::flex();
        let enc = MlpEncoderConfig::reference(100).init(&device, 0).unwrap();
        assert_eq!(enc.num_params(), 45_952);
        let rows = EncoderConfig::Mlp(MlpEncoderConfig::reference(100)).layer_rows();
        assert_eq!(rows.iter().map(|r| r.3).sum::<usize>(), 45_952);
    }

    #[test]
    fn glorot_limits_and_zero_bias() {
        let device = Device::flex();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let layer = glorot_dense(100, 128, &mut rng, &device);
        let w = layer.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let limit = (6.0f32 / 228.0).sqrt();
        assert!(w.iter().all(|v| v.abs() <= limit));
        // A uniform draw on [-l, l] has variance l²/3: check it is near that, not degenerate.
        let var = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        assert!(
            (var - limit * limit / 3.0).abs() < 0.1 * limit * limit / 3.0,
            "{var}"
        );
        let b = layer
            .bias
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(b.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn same_seed_same_weights() {
        let device = Device::flex();
        let a = MlpEncoderConfig::reference(10).init(&device, 7).unwrap();
        let b = MlpEncoderConfig::reference(10).init(&device, 7).unwrap();
        let c = MlpEncoderConfig::reference(10).init(&device, 8).unwrap();
        let wa = a.layers[0].weight.val().into_data();
        assert_eq!(wa, b.layers[0].weight.val().into_data());
        assert_ne!(wa, c.layers[0].weight.val().into_data());
    }

    #[test]
    fn dropout_only_while_training_and_seeded() {
        let drop = SeededDropout::new(0.25, 3);
        let plain = Tensor::<2>::ones([100, 100], &Device::flex());
        assert_eq!(drop.forward(plain.clone()).into_data(), plain.into_data());
        let train = Tensor::<2>::ones([100, 100], &Device::flex().autodiff());
        let out = drop
            .forward(train.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let zeros = out.iter().filter(|&&v| v == 0.0).count();
        assert!(
            (2200..2800).contains(&zeros),
            "{zeros} of 10000 dropped at p = 0.25"
        );
        assert!(
            out.iter()
                .all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6)
        );
        drop.reseed(9);
        let first = drop.forward(train.clone()).into_data();
        drop.reseed(9);
        assert_eq!(first, drop.forward(train).into_data());
    }

    #[test]
    fn invalid_configs_are_named() {
        let mut c = MlpEncoderConfig::reference(10);
        c.hidden = vec![];
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("encoder.hidden")
        );
        let mut c = MlpEncoderConfig::reference(10);
        c.dropout = 1.5;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("encoder.dropout")
        );
        let mut c = MlpEncoderConfig::reference(0);
        c.hidden = vec![4];
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("encoder.input_dim")
        );
    }
}
