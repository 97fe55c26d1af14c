//! The built encoder: its modules, their Keras initialisation, and the forward pass.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::{ConvEncoderConfig, ConvLayerConfig as L, LayerShape, Padding};
use super::im2col::conv_as_matmul;
use crate::encoder::{SeededDropout, glorot_dense};
use crate::error::Result;

impl ConvEncoderConfig {
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
pub(super) fn glorot_conv(
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
    // A zero initializer draws nothing from burn's global random stream (the weights are
    // replaced below), so building a conv encoder never shifts another model's seeded draws
    // (text encoders seed that stream under a lock).
    let mut conv = Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(padding)
        .with_initializer(burn::nn::Initializer::Zeros)
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
