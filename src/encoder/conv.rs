//! Convolutional encoders for images: `Conv2d`, `MaxPool2d`, `BatchNorm`, `Dropout`,
//! `Flatten`, `Dense`, built from a layer list or a named preset.
//!
//! Inputs are rows of `channels·height·width` values (row-major images, as the image loaders
//! produce), reshaped to `[batch, channels, height, width]`. Shapes follow Keras:
//!
//! ```text
//! Conv2d(f, k, stride s, "valid"):  [c, h, w] → [f, (h − k)/s + 1, (w − k)/s + 1]
//! Conv2d(f, k, stride 1, "same"):   [c, h, w] → [f, h, w]
//! MaxPool2d(p, stride s):           [c, h, w] → [c, (h − p)/s + 1, (w − p)/s + 1]
//! Flatten:                          [c, h, w] → [c·h·w]
//! Dense(u):                         [n]       → [u]
//! ```
//!
//! Kernels are Glorot-uniform with `fan_in = k²·c_in`, `fan_out = k²·c_out` and zero biases,
//! as `keras.layers.Conv2D`.
//!
//! ```
//! use siamese::burn::tensor::{Device, Tensor};
//! use siamese::encoder::conv::ConvEncoderConfig;
//!
//! let config = ConvEncoderConfig::preset("faces", 46, 56).unwrap();
//! let device = Device::flex();
//! let encoder = config.init(&device, 0).unwrap();
//! let x = Tensor::<2>::zeros([2, 46 * 56], &device);
//! assert_eq!(encoder.forward(x).dims(), [2, config.output_dim().unwrap()]);
//! ```

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Activation, SeededDropout, glorot_dense};
use crate::error::{Result, SiameseError};

/// Padding of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    /// No padding: the output shrinks by `k − 1`.
    #[default]
    Valid,
    /// Zero padding that keeps height and width (stride 1 only).
    Same,
}

fn one() -> usize {
    1
}

fn relu() -> Activation {
    Activation::Relu
}

/// One layer of a convolutional encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConvLayerConfig {
    /// 2-D convolution with `filters` square `kernel × kernel` filters, then an activation.
    Conv2d {
        /// Output channels.
        filters: usize,
        /// Kernel side.
        kernel: usize,
        /// Stride.
        #[serde(default = "one")]
        stride: usize,
        /// `valid` or `same`.
        #[serde(default)]
        padding: Padding,
        /// Activation after the convolution.
        #[serde(default = "relu")]
        activation: Activation,
    },
    /// Max pooling over `size × size` windows.
    MaxPool2d {
        /// Window side.
        size: usize,
        /// Stride (default: `size`).
        #[serde(default)]
        stride: Option<usize>,
    },
    /// Batch normalisation over channels (or features after `flatten`).
    BatchNorm,
    /// Dropout with the given rate (training only).
    Dropout {
        /// Fraction of values zeroed.
        rate: f64,
    },
    /// `[c, h, w] → [c·h·w]`.
    Flatten,
    /// Dense layer with an activation.
    Dense {
        /// Output features.
        units: usize,
        /// Activation after the layer.
        #[serde(default = "relu")]
        activation: Activation,
    },
    /// Scales each flat vector to unit length, `x / max(‖x‖₂, 1e-12)`: embeddings on the unit
    /// sphere, so Euclidean distances lie in [0, 2] whatever the scale of the layers below
    /// (FaceNet-style; it keeps a margin-1 contrastive loss well conditioned).
    L2Normalize,
}

/// The shape after a layer: `[channels, height, width]` or flat features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerShape {
    /// A stack of feature maps.
    Spatial([usize; 3]),
    /// A flat feature vector.
    Flat(usize),
}

impl LayerShape {
    /// Channels of feature maps, or features of a flat vector: what the next layer's
    /// parameters are sized by.
    fn features(self) -> usize {
        match self {
            Self::Spatial([c, _, _]) => c,
            Self::Flat(n) => n,
        }
    }

    fn describe(self) -> String {
        match self {
            Self::Spatial([c, h, w]) => format!("(None, {c}, {h}, {w})"),
            Self::Flat(n) => format!("(None, {n})"),
        }
    }
}

/// Configuration of a convolutional encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvEncoderConfig {
    /// Input image width.
    pub width: usize,
    /// Input image height.
    pub height: usize,
    /// Input channels (1 for grayscale).
    #[serde(default = "one")]
    pub channels: usize,
    /// The layers, in order; the last output must be flat.
    pub layers: Vec<ConvLayerConfig>,
}

use ConvLayerConfig as L;

fn conv(filters: usize, kernel: usize) -> ConvLayerConfig {
    L::Conv2d {
        filters,
        kernel,
        stride: 1,
        padding: Padding::Valid,
        activation: Activation::Relu,
    }
}

fn pool(size: usize) -> ConvLayerConfig {
    L::MaxPool2d { size, stride: None }
}

impl ConvEncoderConfig {
    /// Names of the presets, for messages.
    pub const PRESETS: [&'static str; 4] = ["koch2015", "koch-cpu", "faces", "signatures"];

    /// A named preset for `width × height` inputs:
    ///
    /// - `koch2015`: Koch et al. (2015), for 105×105 characters (a GPU model): conv 64@10 →
    ///   pool → conv 128@7 → pool → conv 128@4 → pool → conv 256@4 → flatten → dense 4096
    ///   sigmoid.
    /// - `koch-cpu`: the same shape of network, CPU-sized (for about 52×52 inputs): conv 16@5 →
    ///   pool → conv 32@5 → pool → conv 32@3 → pool → conv 64@3 → flatten → dense 256 sigmoid.
    /// - `faces`: for AT&T-sized faces (e.g. 46×56): conv 16@5 → pool → conv 32@3 → pool →
    ///   conv 64@3 → pool → flatten → dropout 0.2 → dense 128 (linear).
    /// - `signatures`: SigNet-like, downscaled (e.g. 128×64): conv 16@7 → batch norm → pool →
    ///   conv 32@5 → batch norm → pool → dropout 0.3 → conv 64@3 → pool → dropout 0.3 →
    ///   flatten → dense 128 (linear) → L2 normalisation.
    pub fn preset(name: &str, width: usize, height: usize) -> Result<Self> {
        let layers = match name {
            "koch2015" => vec![
                conv(64, 10),
                pool(2),
                conv(128, 7),
                pool(2),
                conv(128, 4),
                pool(2),
                conv(256, 4),
                L::Flatten,
                L::Dense {
                    units: 4096,
                    activation: Activation::Sigmoid,
                },
            ],
            "koch-cpu" => vec![
                conv(16, 5),
                pool(2),
                conv(32, 5),
                pool(2),
                conv(32, 3),
                pool(2),
                conv(64, 3),
                L::Flatten,
                L::Dense {
                    units: 256,
                    activation: Activation::Sigmoid,
                },
            ],
            "faces" => vec![
                conv(16, 5),
                pool(2),
                conv(32, 3),
                pool(2),
                conv(64, 3),
                pool(2),
                L::Flatten,
                L::Dropout { rate: 0.2 },
                L::Dense {
                    units: 128,
                    activation: Activation::Linear,
                },
            ],
            "signatures" => vec![
                conv(16, 7),
                L::BatchNorm,
                pool(2),
                conv(32, 5),
                L::BatchNorm,
                pool(2),
                L::Dropout { rate: 0.3 },
                conv(64, 3),
                pool(2),
                L::Dropout { rate: 0.3 },
                L::Flatten,
                L::Dense {
                    units: 128,
                    activation: Activation::Linear,
                },
                L::L2Normalize,
            ],
            other => {
                return Err(SiameseError::config(
                    "encoder.preset",
                    format!(
                        "unknown preset `{other}`; expected one of {}",
                        Self::PRESETS.join(", ")
                    ),
                ));
            }
        };
        let config = Self {
            width,
            height,
            channels: 1,
            layers,
        };
        config.validate()?;
        Ok(config)
    }

    /// Features per input row: `channels · height · width`.
    pub fn input_dim(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The output shape of every layer, checking that each fits its input.
    pub fn shapes(&self) -> Result<Vec<LayerShape>> {
        if self.width == 0 || self.height == 0 || self.channels == 0 {
            return Err(SiameseError::config(
                "encoder",
                "width, height and channels must be at least 1",
            ));
        }
        let mut shape = LayerShape::Spatial([self.channels, self.height, self.width]);
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let field = format!("encoder.layers[{i}]");
            let spatial = |shape: LayerShape, what: &str| match shape {
                LayerShape::Spatial(s) => Ok(s),
                LayerShape::Flat(_) => Err(SiameseError::config(
                    field.clone(),
                    format!("{what} needs feature maps, but the input is already flat"),
                )),
            };
            shape = match *layer {
                L::Conv2d {
                    filters,
                    kernel,
                    stride,
                    padding,
                    ..
                } => {
                    let [_, h, w] = spatial(shape, "conv2d")?;
                    if filters == 0 || kernel == 0 || stride == 0 {
                        return Err(SiameseError::config(
                            field,
                            "filters, kernel and stride must be at least 1",
                        ));
                    }
                    match padding {
                        Padding::Same if stride != 1 => {
                            return Err(SiameseError::config(
                                field,
                                "`same` padding needs stride 1",
                            ));
                        }
                        Padding::Same => LayerShape::Spatial([filters, h, w]),
                        Padding::Valid => {
                            if kernel > h || kernel > w {
                                return Err(SiameseError::config(
                                    field,
                                    format!("kernel {kernel} is larger than its {h}×{w} input"),
                                ));
                            }
                            LayerShape::Spatial([
                                filters,
                                (h - kernel) / stride + 1,
                                (w - kernel) / stride + 1,
                            ])
                        }
                    }
                }
                L::MaxPool2d { size, stride } => {
                    let [c, h, w] = spatial(shape, "max_pool2d")?;
                    let s = stride.unwrap_or(size);
                    if size == 0 || s == 0 || size > h || size > w {
                        return Err(SiameseError::config(
                            field,
                            format!("pool {size} (stride {s}) does not fit its {h}×{w} input"),
                        ));
                    }
                    LayerShape::Spatial([c, (h - size) / s + 1, (w - size) / s + 1])
                }
                L::BatchNorm => shape,
                L::Dropout { rate } => {
                    if !(0.0..1.0).contains(&rate) {
                        return Err(SiameseError::config(
                            field,
                            format!("dropout rate must be in [0, 1), got {rate}"),
                        ));
                    }
                    shape
                }
                L::Flatten => {
                    let [c, h, w] = spatial(shape, "flatten")?;
                    LayerShape::Flat(c * h * w)
                }
                L::L2Normalize => match shape {
                    LayerShape::Flat(_) => shape,
                    LayerShape::Spatial(_) => {
                        return Err(SiameseError::config(
                            field,
                            "l2_normalize needs a flat input: add a `flatten` layer before it",
                        ));
                    }
                },
                L::Dense { units, .. } => match shape {
                    LayerShape::Flat(_) if units > 0 => LayerShape::Flat(units),
                    LayerShape::Flat(_) => {
                        return Err(SiameseError::config(field, "units must be at least 1"));
                    }
                    LayerShape::Spatial(_) => {
                        return Err(SiameseError::config(
                            field,
                            "dense needs a flat input: add a `flatten` layer before it",
                        ));
                    }
                },
            };
            out.push(shape);
        }
        Ok(out)
    }

    /// Checks the configuration (every layer fits, the output is flat).
    pub fn validate(&self) -> Result<()> {
        self.output_dim().map(|_| ())
    }

    /// Size of the embedding.
    pub fn output_dim(&self) -> Result<usize> {
        match self.shapes()?.last() {
            Some(LayerShape::Flat(n)) => Ok(*n),
            _ => Err(SiameseError::config(
                "encoder.layers",
                "the last layer must give a flat output: end with `flatten` or `dense`",
            )),
        }
    }

    /// Summary rows: `(name, type, output shape, parameters)`.
    pub fn layer_rows(&self) -> Vec<(String, String, String, usize)> {
        let Ok(shapes) = self.shapes() else {
            return Vec::new();
        };
        let mut inputs = vec![LayerShape::Spatial([
            self.channels,
            self.height,
            self.width,
        ])];
        inputs.extend(shapes.iter().copied());
        self.layers
            .iter()
            .zip(shapes.iter().zip(&inputs))
            .enumerate()
            .map(|(i, (layer, (out, inp)))| {
                let in_channels = inp.features();
                let (name, kind, params) = match layer {
                    L::Conv2d {
                        filters,
                        kernel,
                        activation,
                        ..
                    } => (
                        "conv2d",
                        format!("Conv2D {filters}@{kernel}×{kernel}, {}", activation.name()),
                        kernel * kernel * in_channels * filters + filters,
                    ),
                    L::MaxPool2d { size, .. } => {
                        ("max_pool2d", format!("MaxPool2D {size}×{size}"), 0)
                    }
                    L::BatchNorm => ("batch_norm", "BatchNorm".to_string(), 4 * in_channels),
                    L::Dropout { rate } => ("dropout", format!("Dropout({rate})"), 0),
                    L::Flatten => ("flatten", "Flatten".to_string(), 0),
                    L::L2Normalize => ("l2_normalize", "L2 normalise".to_string(), 0),
                    L::Dense { units, activation } => (
                        "dense",
                        format!("Dense, {}", activation.name()),
                        in_channels * units + units,
                    ),
                };
                (format!("{name}_{i}"), kind, out.describe(), params)
            })
            .collect()
    }

    /// Builds the encoder with Keras initialisation drawn from `seed`.
    pub fn init(&self, device: &Device, seed: u64) -> Result<ConvEncoder> {
        let shapes = self.shapes()?;
        self.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut modules = Vec::new();
        let mut input = LayerShape::Spatial([self.channels, self.height, self.width]);
        for (i, (layer, &out)) in self.layers.iter().zip(&shapes).enumerate() {
            let width_in = input.features();
            match *layer {
                L::Conv2d {
                    filters,
                    kernel,
                    stride,
                    padding,
                    ..
                } => {
                    modules.push(ConvModule::Conv(glorot_conv(
                        width_in, filters, kernel, stride, padding, &mut rng, device,
                    )));
                }
                L::MaxPool2d { size, stride } => modules.push(ConvModule::Pool(
                    MaxPool2dConfig::new([size, size])
                        .with_strides([stride.unwrap_or(size); 2])
                        .init(),
                )),
                L::BatchNorm => modules.push(ConvModule::Norm(
                    BatchNormConfig::new(width_in).init(device),
                )),
                L::Dropout { rate } => modules.push(ConvModule::Drop(SeededDropout::new(
                    rate,
                    seed.wrapping_add(i as u64),
                ))),
                L::Flatten | L::L2Normalize => {}
                L::Dense { units, .. } => modules.push(ConvModule::Dense(glorot_dense(
                    width_in, units, &mut rng, device,
                ))),
            }
            input = out;
        }
        Ok(ConvEncoder {
            modules,
            config: self.clone(),
        })
    }
}

/// A conv kernel `[c_out, c_in, k, k]`, Glorot-uniform with `fan = k²·c`, and zero biases.
fn glorot_conv(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: Padding,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Conv2d {
    let padding = match padding {
        Padding::Valid => PaddingConfig2d::Valid,
        Padding::Same => PaddingConfig2d::Same,
    };
    let mut conv = Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(padding)
        .init(device);
    let fan = kernel * kernel;
    let limit = (6.0 / (fan * c_in + fan * c_out) as f64).sqrt() as f32;
    let w: Vec<f32> = (0..c_out * c_in * fan)
        .map(|_| rng.random_range(-limit..limit))
        .collect();
    conv.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(w, [c_out, c_in, kernel, kernel]),
        device,
    ));
    conv.bias = Some(Param::from_tensor(Tensor::zeros([c_out], device)));
    conv
}

/// A parameterised (or stateful) step of a [`ConvEncoder`].
#[derive(Module, Debug)]
pub enum ConvModule {
    /// A convolution.
    Conv(Conv2d),
    /// Max pooling.
    Pool(MaxPool2d),
    /// Batch normalisation.
    Norm(BatchNorm),
    /// Dropout.
    Drop(SeededDropout),
    /// A dense layer.
    Dense(Linear),
}

/// A convolutional encoder built by [`ConvEncoderConfig::init`].
#[derive(Module, Debug)]
pub struct ConvEncoder {
    /// The modules of the layers that have one, in order.
    pub modules: Vec<ConvModule>,
    #[module(skip)]
    config: ConvEncoderConfig,
}

/// A valid-padding convolution as im2col + one matrix product:
/// `y[b, o, p] = Σ_k W[o, k]·cols[b, k, p] + bias[o]`, `cols = unfold(x)` of shape
/// `[batch, c·kh·kw, h'·w']`. Used for the first layer, whose input needs no gradient: burn's
/// convolution computes the weight gradient as another convolution (batch and channels
/// swapped), which for a first layer is one huge, badly shaped product; here it is the
/// matrix product's backward, `∂W = Σ_b ∂y_b·cols_bᵀ`.
fn conv_as_matmul(m: &Conv2d, x: Tensor<4>, stride: usize) -> Tensor<4> {
    let [b, _, h, w] = x.dims();
    let [out_c, in_c, kh, kw] = m.weight.dims();
    let (ho, wo) = ((h - kh) / stride + 1, (w - kw) / stride + 1);
    let cols = burn::tensor::module::unfold4d(
        x,
        [kh, kw],
        burn::tensor::ops::UnfoldOptions::new([stride, stride], [0, 0], [1, 1]),
    );
    let weight = m.weight.val().reshape([1, out_c, in_c * kh * kw]);
    let mut y = weight.matmul(cols);
    if let Some(bias) = &m.bias {
        y = y + bias.val().reshape([1, out_c, 1]);
    }
    y.reshape([b, out_c, ho, wo])
}

impl ConvEncoder {
    /// Restarts the dropout mask streams from `seed`.
    pub fn reseed(&self, seed: u64) {
        for (i, m) in self.modules.iter().enumerate() {
            if let ConvModule::Drop(d) = m {
                d.reseed(seed.wrapping_add(i as u64));
            }
        }
    }

    /// The configuration the encoder was built from.
    pub fn config(&self) -> &ConvEncoderConfig {
        &self.config
    }

    /// Maps `[batch, c·h·w]` rows to `[batch, embedding]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let c = &self.config;
        let n = x.dims()[0];
        let mut maps: Option<Tensor<4>> =
            Some(x.clone().reshape([n, c.channels, c.height, c.width]));
        let mut flat: Option<Tensor<2>> = None;
        let mut modules = self.modules.iter();
        let mut first = true;
        for layer in &c.layers {
            match layer {
                L::Conv2d {
                    activation,
                    stride,
                    padding,
                    ..
                } => {
                    if let (Some(ConvModule::Conv(m)), Some(t)) = (modules.next(), maps.take()) {
                        let y = if first && *padding == Padding::Valid && m.weight.is_require_grad()
                        {
                            conv_as_matmul(m, t, *stride)
                        } else {
                            m.forward(t)
                        };
                        maps = Some(activation.apply(y));
                    }
                    first = false;
                }
                L::MaxPool2d { .. } => {
                    if let (Some(ConvModule::Pool(m)), Some(t)) = (modules.next(), maps.take()) {
                        maps = Some(m.forward(t));
                    }
                }
                L::BatchNorm => {
                    if let Some(ConvModule::Norm(m)) = modules.next() {
                        match (maps.take(), flat.take()) {
                            (Some(t), _) => maps = Some(m.forward(t)),
                            (None, Some(t)) => flat = Some(m.forward(t)),
                            (None, None) => {}
                        }
                    }
                }
                L::Dropout { .. } => {
                    if let Some(ConvModule::Drop(m)) = modules.next() {
                        match (maps.take(), flat.take()) {
                            (Some(t), _) => maps = Some(m.forward(t)),
                            (None, Some(t)) => flat = Some(m.forward(t)),
                            (None, None) => {}
                        }
                    }
                }
                L::Flatten => {
                    if let Some(t) = maps.take() {
                        let [b, ch, h, w] = t.dims();
                        flat = Some(t.reshape([b, ch * h * w]));
                    }
                }
                L::Dense { activation, .. } => {
                    if let (Some(ConvModule::Dense(m)), Some(t)) = (modules.next(), flat.take()) {
                        flat = Some(activation.apply(m.forward(t)));
                    }
                }
                L::L2Normalize => {
                    if let Some(t) = flat.take() {
                        let norm = t.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
                        flat = Some(t / norm);
                    }
                }
            }
        }
        // A validated config always ends flat.
        flat.unwrap_or(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_normalize_gives_unit_rows() {
        let config: ConvEncoderConfig = serde_json::from_str(
            r#"{"width": 6, "height": 6, "channels": 1, "layers": [
                {"type": "conv2d", "filters": 2, "kernel": 3},
                {"type": "flatten"}, {"type": "dense", "units": 5, "activation": "linear"},
                {"type": "l2_normalize"}]}"#,
        )
        .unwrap();
        let device = Device::flex();
        let enc = config.init(&device, 1).unwrap();
        let x = Tensor::<1>::from_floats(
            (0..72)
                .map(|i| (i % 7) as f32 * 3.0)
                .collect::<Vec<_>>()
                .as_slice(),
            &device,
        )
        .reshape([2, 36]);
        let y = enc.forward(x).into_data().try_to_vec::<f32>().unwrap();
        for row in y.chunks(5) {
            let n: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-5, "{row:?}");
        }
        let bad: std::result::Result<ConvEncoderConfig, _> = serde_json::from_str(
            r#"{"width": 6, "height": 6, "channels": 1, "layers": [{"type": "l2_normalize"}]}"#,
        );
        let err = bad.unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("flatten"), "{err}");
    }

    #[test]
    fn presets_have_the_documented_shapes() {
        let koch = ConvEncoderConfig::preset("koch2015", 105, 105).unwrap();
        let shapes = koch.shapes().unwrap();
        // Koch et al. 2015, Figure 4: 64@96×96, 64@48×48, 128@42×42, 128@21×21, 128@18×18,
        // 128@9×9, 256@6×6, 9216, 4096.
        assert_eq!(shapes[0], LayerShape::Spatial([64, 96, 96]));
        assert_eq!(shapes[5], LayerShape::Spatial([128, 9, 9]));
        assert_eq!(shapes[6], LayerShape::Spatial([256, 6, 6]));
        assert_eq!(shapes[7], LayerShape::Flat(9216));
        assert_eq!(koch.output_dim().unwrap(), 4096);
        // Parameters of the paper's network (38,951,745 with its final 4096→1 layer, i.e.
        // 38,947,648 without it).
        let params: usize = koch.layer_rows().iter().map(|r| r.3).sum();
        assert_eq!(params, 38_947_648);
        for name in ["koch-cpu", "faces", "signatures"] {
            let (w, h) = match name {
                "koch-cpu" => (52, 52),
                "faces" => (46, 56),
                _ => (128, 64),
            };
            let c = ConvEncoderConfig::preset(name, w, h).unwrap();
            assert!(c.output_dim().unwrap() > 0, "{name}");
        }
        assert!(ConvEncoderConfig::preset("vgg", 10, 10).is_err());
    }

    /// The first layer's im2col + matmul convolution equals burn's convolution, forward and
    /// in its weight and bias gradients, with several channels and strides 1 and 2.
    #[test]
    fn first_layer_matmul_convolution_matches_burn() {
        let device = Device::flex().autodiff();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (c_in, c_out, kernel, stride) in [(1, 4, 5, 1), (2, 3, 3, 1), (3, 5, 3, 2)] {
            let conv = glorot_conv(
                c_in,
                c_out,
                kernel,
                stride,
                Padding::Valid,
                &mut rng,
                &device,
            );
            let x: Vec<f32> = (0..4 * c_in * 9 * 8)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let x = Tensor::<4>::from_data(TensorData::new(x, [4, c_in, 9, 8]), &device);
            let grads = |y: Tensor<4>| {
                let values = y.clone().into_data().try_to_vec::<f32>().unwrap();
                let g = (y.clone() * y).sum().backward();
                let w = conv
                    .weight
                    .grad(&g)
                    .unwrap()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap();
                let b = conv.bias.as_ref().unwrap().grad(&g).unwrap();
                (values, w, b.into_data().try_to_vec::<f32>().unwrap())
            };
            let want = grads(conv.forward(x.clone()));
            let got = grads(conv_as_matmul(&conv, x, stride));
            for (what, got, want) in [
                ("output", &got.0, &want.0),
                ("weight gradient", &got.1, &want.1),
                ("bias gradient", &got.2, &want.2),
            ] {
                assert_eq!(got.len(), want.len(), "{what}");
                for (g, w) in got.iter().zip(want) {
                    assert!(
                        (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{what}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn bad_layer_lists_are_named() {
        let c = ConvEncoderConfig {
            width: 8,
            height: 8,
            channels: 1,
            layers: vec![conv(4, 9)],
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("encoder.layers[0]")
        );
        let c = ConvEncoderConfig {
            width: 8,
            height: 8,
            channels: 1,
            layers: vec![
                conv(4, 3),
                L::Dense {
                    units: 2,
                    activation: Activation::Relu,
                },
            ],
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("encoder.layers[1]") && err.contains("flatten"),
            "{err}"
        );
        let c = ConvEncoderConfig {
            width: 8,
            height: 8,
            channels: 1,
            layers: vec![conv(4, 3)],
        };
        assert!(c.validate().unwrap_err().to_string().contains("flat"));
    }

    #[test]
    fn forward_shapes_and_params_match_the_config() {
        let device = Device::flex();
        for (name, w, h) in [
            ("faces", 46, 56),
            ("signatures", 64, 32),
            ("koch-cpu", 52, 52),
        ] {
            let c = ConvEncoderConfig::preset(name, w, h).unwrap();
            let e = c.init(&device, 1).unwrap();
            let out = e.forward(Tensor::<2>::ones([3, w * h], &device));
            assert_eq!(out.dims(), [3, c.output_dim().unwrap()], "{name}");
            let trainable: usize = c.layer_rows().iter().map(|r| r.3).sum();
            // Batch norm's running mean and variance are counted by the summary (as Keras
            // does), and are module state here too.
            assert_eq!(e.num_params(), trainable, "{name}");
        }
    }

    #[test]
    fn same_padding_keeps_size_and_init_is_glorot() {
        let device = Device::flex();
        let c = ConvEncoderConfig {
            width: 6,
            height: 5,
            channels: 1,
            layers: vec![
                L::Conv2d {
                    filters: 3,
                    kernel: 3,
                    stride: 1,
                    padding: Padding::Same,
                    activation: Activation::Linear,
                },
                L::Flatten,
            ],
        };
        assert_eq!(c.output_dim().unwrap(), 3 * 5 * 6);
        let e = c.init(&device, 0).unwrap();
        let ConvModule::Conv(conv) = &e.modules[0] else {
            panic!("first module is the conv")
        };
        let w = conv.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let limit = (6.0f32 / (9.0 + 27.0)).sqrt();
        assert!(w.iter().all(|v| v.abs() <= limit));
        let out = e.forward(Tensor::<2>::zeros([2, 30], &device));
        // Zero input, zero bias: zero output.
        assert!(
            out.into_data()
                .try_to_vec::<f32>()
                .unwrap()
                .iter()
                .all(|&v| v == 0.0)
        );
    }
}
