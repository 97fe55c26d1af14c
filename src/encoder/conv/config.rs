//! The configuration of a convolutional encoder: the layer list, the named presets, and the
//! shape checks that validate it.

use serde::{Deserialize, Serialize};

use crate::encoder::Activation;
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
    pub(super) fn features(self) -> usize {
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

pub(super) fn conv(filters: usize, kernel: usize) -> ConvLayerConfig {
    L::Conv2d {
        filters,
        kernel,
        stride: 1,
        padding: Padding::Valid,
        activation: Activation::Relu,
    }
}

pub(super) fn pool(size: usize) -> ConvLayerConfig {
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
}
