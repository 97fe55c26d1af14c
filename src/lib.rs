//! # siamese
//!
//! Siamese networks in Rust on [burn]: twin encoders with shared weights that learn whether two
//! inputs are "the same".
//!
//! The reference system is the classic Keras functional-API Siamese network, reproduced
//! exactly: a base network `Dense(128, relu) ×3` applied to both inputs with the same weights,
//! a Euclidean distance layer, the contrastive loss with margin 1 (label 1 = similar) and
//! RMSprop with Keras defaults.
//!
//! ```
//! use siamese::prelude::*;
//!
//! let (a, b, labels) = siamese::synthetic::random_pairs(100, 100, 0);
//! let mut model = Siamese::reference(100, 0).unwrap();
//! let options = FitOptions { verbose: false, ..FitOptions::new(20, 32) };
//! let history = model.fit(&a, &b, &labels, &options).unwrap();
//! assert!(history.loss().last().unwrap() < &history.loss()[0]);
//! let distances = model.predict(&a.slice_rows(0, 1), &b.slice_rows(0, 1)).unwrap();
//! assert_eq!(distances.len(), 1);
//! ```
//!
//! This crate is the library core: it reads no environment variable, changes no process-wide
//! setting and prints nothing unless asked (`FitOptions::verbose`, a [`train::Callback`]).
//! The `siamese` command line lives in the `siamese-app` crate of the same workspace.
//!
//! Modules, in the order data flows through them (each imports only modules before it):
//! [`error`], [`atomic`], [`simd`] (leaves) → [`data`] (matrices, pair containers, loaders,
//! pair building, preprocessing) → [`encoder`], [`distance`], [`siamese`] (the network),
//! [`loss`], [`optim`] → [`config`] ([`config::ModelConfig`]) → [`eval`] (metrics,
//! calibration) → [`fused`] (host kernels) → [`infer`] (scores, distances, evaluation) →
//! [`train`] (the epoch loop, callbacks, resumable state) → [`io`] (model directories,
//! checkpoints) → [`gallery`] (enrolment storage and search) → [`model`] (the Keras-like
//! [`model::Siamese`]) → [`report`]. For MLP encoders on the CPU, [`fused`] computes the same training step and forward pass without burn's graph, and it
//! runs the inference of the common convolutional encoders too (much faster;
//! `Siamese::set_fused(false)` turns it off).

#![warn(missing_docs)]

pub mod atomic;
pub mod config;
pub mod data;
pub mod device;
pub mod distance;
pub mod encoder;
pub mod error;
pub mod eval;
pub mod fused;
pub mod gallery;
pub mod infer;
pub mod io;
pub mod loss;
pub mod model;
pub mod optim;
pub mod report;
pub mod siamese;
pub mod simd;
pub mod synthetic;
pub mod train;

pub use burn;
pub use image;

/// The types most programs need.
pub mod prelude {
    pub use crate::config::ModelConfig;
    pub use crate::data::Matrix;
    pub use crate::data::{PairData, Pairs, PairsRef};
    pub use crate::distance::Distance;
    pub use crate::encoder::{Activation, EncoderConfig, MlpEncoderConfig};
    pub use crate::error::{Result, SiameseError};
    pub use crate::loss::{ContrastiveLoss, LossConfig};
    pub use crate::model::Siamese;
    pub use crate::optim::OptimizerConfig;
    pub use crate::siamese::{Head, SiameseConfig};
    pub use crate::train::{Callback, FitOptions, History, Validation};
    pub use burn::tensor::Device;
}
