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
//!
//! The code is split by concern: `config` holds the layer list, the presets and the shape
//! checks, `layers` the built modules, their initialisation and the forward pass, and
//! `im2col` the first layer's convolution as one matrix product.

mod config;
mod im2col;
mod layers;

#[cfg(test)]
mod tests;

pub use config::{ConvEncoderConfig, ConvLayerConfig, LayerShape, Padding};
pub use layers::{ConvEncoder, ConvModule};
