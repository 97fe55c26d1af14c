//! The conv trainer against burn's autodiff: the same losses, distances and weights after
//! optimizer steps, layer by layer kind, both paddings, dropout masks, each optimizer.

use burn::module::Module;
use burn::tensor::Device;

use super::ConvTrainer;
use crate::config::ModelConfig;
use crate::data::{Matrix, PairData, PairsRef};
use crate::distance::Distance;
use crate::encoder::conv::{ConvEncoderConfig, ConvLayerConfig as L, Padding};
use crate::encoder::{Activation, EncoderConfig};
use crate::fused::{FusedHyper, FusedOptimizer, HostTrainer};
use crate::loss::LossConfig;
use crate::optim::OptimizerConfig;
use crate::siamese::{SiameseConfig, SiameseNetwork};
use crate::train::{self, FitOptions};

fn conv(filters: usize, kernel: usize, stride: usize, padding: Padding, relu: bool) -> L {
    L::Conv2d {
        filters,
        kernel,
        stride,
        padding,
        activation: if relu {
            Activation::Relu
        } else {
            Activation::Linear
        },
    }
}

fn config(width: usize, height: usize, channels: usize, layers: Vec<L>) -> SiameseConfig {
    SiameseConfig {
        encoder: EncoderConfig::Conv(ConvEncoderConfig {
            width,
            height,
            channels,
            layers,
        }),
        distance: Distance::Euclidean,
        ..SiameseConfig::reference(4)
    }
}

/// Values in `[0, 1)` from a xorshift stream.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// Every parameter of the network, in module order.
fn weights(network: &SiameseNetwork) -> Vec<f32> {
    network
        .clone()
        .into_record_values()
        .into_iter()
        .flatten()
        .collect()
}

trait RecordValues {
    fn into_record_values(self) -> Vec<Vec<f32>>;
}

impl RecordValues for SiameseNetwork {
    fn into_record_values(self) -> Vec<Vec<f32>> {
        struct Collect(Vec<Vec<f32>>);
        impl burn::module::ModuleVisitor for Collect {
            fn visit_float<const D: usize>(
                &mut self,
                param: &burn::module::Param<burn::tensor::Tensor<D>>,
            ) {
                self.0.push(
                    param
                        .val()
                        .into_data()
                        .convert::<f32>()
                        .try_to_vec::<f32>()
                        .unwrap(),
                );
            }
        }
        let mut c = Collect(Vec::new());
        self.visit(&mut c);
        c.0
    }
}

/// A run's epoch losses and final weights.
type Run = (Vec<f32>, Vec<f32>);

/// Trains `epochs` epochs on burn's path and on the conv trainer from the same weights and
/// dropout streams; returns both histories' losses and final weights.
fn both(
    net_config: &SiameseConfig,
    optimizer: OptimizerConfig,
    pairs: usize,
    epochs: usize,
) -> (Run, Run) {
    let dim = net_config.encoder.input_dim();
    let (a, b) = (
        Matrix::new(pairs, dim, values(pairs * dim, 1)).unwrap(),
        Matrix::new(pairs, dim, values(pairs * dim, 2)).unwrap(),
    );
    let y: Vec<f32> = (0..pairs).map(|i| (i % 2) as f32).collect();
    let data = PairData::Dense(PairsRef {
        a: &a,
        b: &b,
        labels: &y,
    });
    let model = ModelConfig {
        network: net_config.clone(),
        loss: LossConfig::default(),
        optimizer: optimizer.clone(),
        seed: 3,
    };
    let options = FitOptions {
        seed: 9,
        ..FitOptions::new(epochs, 8)
    };
    let hooks = || train::Hooks {
        config: &model,
        callbacks: Vec::new(),
        resume: None,
        host: false,
    };
    // Two independent networks from the same seed (their dropout streams are their own).
    let init = || net_config.init(&Device::flex().autodiff(), 3).unwrap();
    let mut burn_opt = optimizer.init().unwrap();
    let burn = train::fit(
        init(),
        &mut burn_opt,
        optimizer.lr(),
        data,
        &options,
        hooks(),
    )
    .unwrap();
    let net = init();
    let hyper = FusedHyper {
        optimizer: FusedOptimizer::from_config(&optimizer).unwrap(),
        margin: 1.0,
    };
    let mut trainer = HostTrainer::Conv(ConvTrainer::new(&net, None, hyper).expect("covered"));
    let host = train::fit_fused(net, &mut trainer, data, &options, hooks()).unwrap();
    (
        (burn.history.loss(), weights(&burn.network)),
        (host.history.loss(), weights(&host.network)),
    )
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * scale,
            "{what}[{i}]: {g} vs {w} (scale {scale})"
        );
    }
}

fn check(net_config: SiameseConfig, optimizer: OptimizerConfig, what: &str) {
    let ((burn_loss, burn_w), (host_loss, host_w)) = both(&net_config, optimizer, 24, 2);
    assert_close(&host_loss, &burn_loss, 1e-4, &format!("{what}: losses"));
    assert_close(&host_w, &burn_w, 1e-4, &format!("{what}: weights"));
    // The steps did move the weights.
    let fresh = weights(&net_config.init(&Device::flex().autodiff(), 3).unwrap());
    assert!(
        fresh.iter().zip(&host_w).any(|(a, b)| (a - b).abs() > 1e-5),
        "{what}: no training happened"
    );
}

#[test]
fn valid_convs_pooling_and_dense_match_burn() {
    let layers = vec![
        conv(4, 3, 1, Padding::Valid, true),
        L::MaxPool2d {
            size: 2,
            stride: None,
        },
        conv(6, 3, 1, Padding::Valid, true),
        L::Flatten,
        L::Dense {
            units: 5,
            activation: Activation::Linear,
        },
    ];
    check(
        config(10, 12, 1, layers),
        OptimizerConfig::rmsprop(),
        "valid",
    );
}

#[test]
fn strides_same_padding_channels_dropout_and_l2_match_burn() {
    let layers = vec![
        conv(4, 3, 2, Padding::Valid, false),
        conv(5, 2, 1, Padding::Same, true),
        L::Dropout { rate: 0.3 },
        L::MaxPool2d {
            size: 2,
            stride: Some(1),
        },
        L::Flatten,
        L::Dropout { rate: 0.2 },
        L::Dense {
            units: 6,
            activation: Activation::Tanh,
        },
        L::Dense {
            units: 4,
            activation: Activation::Sigmoid,
        },
        L::L2Normalize,
    ];
    check(config(9, 7, 2, layers), OptimizerConfig::adam(), "same");
}

#[test]
fn the_faces_preset_matches_burn_with_sgd() {
    let encoder = ConvEncoderConfig::preset("faces", 46, 56).unwrap();
    let c = SiameseConfig {
        encoder: EncoderConfig::Conv(encoder),
        distance: Distance::Euclidean,
        ..SiameseConfig::reference(4)
    };
    check(c, OptimizerConfig::sgd(0.05, 0.9), "faces");
}

#[test]
fn uncovered_encoders_keep_the_burn_path() {
    let hyper = FusedHyper {
        optimizer: FusedOptimizer::from_config(&OptimizerConfig::rmsprop()).unwrap(),
        margin: 1.0,
    };
    let with_bn = config(
        8,
        8,
        1,
        vec![
            conv(2, 3, 1, Padding::Valid, true),
            L::BatchNorm,
            L::Flatten,
        ],
    );
    let net = with_bn.init(&Device::flex().autodiff(), 1).unwrap();
    assert!(ConvTrainer::new(&net, None, hyper).is_none());
    let manhattan = SiameseConfig {
        distance: Distance::Manhattan,
        ..config(
            8,
            8,
            1,
            vec![conv(2, 3, 1, Padding::Valid, true), L::Flatten],
        )
    };
    let net = manhattan.init(&Device::flex().autodiff(), 1).unwrap();
    assert!(ConvTrainer::new(&net, None, hyper).is_none());
}

#[test]
fn a_seeded_run_on_one_thread_is_bit_identical() {
    let layers = vec![
        conv(4, 3, 1, Padding::Valid, true),
        L::MaxPool2d {
            size: 2,
            stride: None,
        },
        L::Flatten,
        L::Dropout { rate: 0.25 },
        L::Dense {
            units: 5,
            activation: Activation::Linear,
        },
    ];
    let c = config(10, 12, 1, layers);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let run = || pool.install(|| both(&c, OptimizerConfig::adam(), 20, 2).1);
    let (first, second) = (run(), run());
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&first.0), bits(&second.0), "losses");
    assert_eq!(bits(&first.1), bits(&second.1), "weights");
}
