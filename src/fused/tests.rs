//! Tests of the fused path against burn's autodiff, burn's optimizers, Keras and burn's
//! forward pass.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use super::{
    FusedHyper, FusedMlp, FusedOptimizer, FusedTrainer, HostBatch, HostHead, OptimizerState,
    OptimizerStateParts,
};
use crate::data::Matrix;
use crate::data::{PairData, PairsRef};
use crate::distance::Distance;
use crate::encoder::{
    Activation, Encoder, EncoderConfig, MlpEncoder, MlpEncoderConfig, dense_from_values,
};
use crate::loss::LossConfig;
use crate::optim::OptimizerConfig;
use crate::siamese::{Head, SiameseConfig, SiameseNetwork};
use crate::train::{self, FitOptions, History};

const HYPER: FusedHyper = FusedHyper {
    optimizer: FusedOptimizer::RmsProp {
        lr: 0.001,
        rho: 0.9,
        epsilon: 1e-7,
    },
    loss: crate::loss::LossKind::Contrastive,
    margin: 1.0,
    miner: None,
};

fn data(n: usize, dim: usize, seed: u64) -> (Matrix, Matrix, Vec<f32>) {
    let (a, b, mut y) = crate::synthetic::random_pairs(n, dim, seed);
    y[1] = 0.3; // a graded label exercises both terms of the loss at once
    (a, b, y)
}

fn options(epochs: usize, batch: usize) -> FitOptions {
    FitOptions {
        verbose: false,
        ..FitOptions::new(epochs, batch)
    }
}

fn network(config: &SiameseConfig) -> SiameseNetwork {
    config.init(&Device::flex().autodiff(), 5).unwrap()
}

fn weights(network: &SiameseNetwork) -> Vec<f32> {
    let mlp = FusedMlp::from_network(network).unwrap();
    mlp.layers
        .iter()
        .flat_map(|d| d.kernel.iter().chain(&d.bias).copied())
        .collect()
}

/// Plain hooks: no callbacks, no resume, host validation.
fn hooks(config: &crate::config::ModelConfig) -> train::Hooks<'_> {
    train::Hooks {
        config,
        callbacks: Vec::new(),
        resume: None,
        host: true,
    }
}

/// A model config around `network` (the default loss; the optimizer is not read).
fn model_config(network: &SiameseConfig) -> crate::config::ModelConfig {
    crate::config::ModelConfig {
        network: network.clone(),
        loss: LossConfig::default(),
        optimizer: crate::optim::OptimizerConfig::rmsprop(),
        seed: 0,
    }
}

fn burn_fit(
    optimizer: &OptimizerConfig,
    config: &SiameseConfig,
    pairs: PairData<'_>,
    o: &FitOptions,
) -> (Vec<f32>, History) {
    let lr = optimizer.lr();
    let mut optimizer = optimizer.init().unwrap();
    let mc = model_config(config);
    let out = train::fit(network(config), &mut optimizer, lr, pairs, o, hooks(&mc)).unwrap();
    (weights(&out.network), out.history)
}

fn fused_fit(
    optimizer: &OptimizerConfig,
    config: &SiameseConfig,
    pairs: PairData<'_>,
    o: &FitOptions,
) -> (Vec<f32>, History) {
    let net = network(config);
    let hyper = FusedHyper {
        optimizer: FusedOptimizer::from_config(optimizer).unwrap(),
        loss: crate::loss::LossKind::Contrastive,
        margin: 1.0,
        miner: None,
    };
    let trainer = FusedTrainer::new(&net, None, hyper).unwrap();
    let mc = model_config(config);
    let out = train::fit_fused(net, &mut trainer.into(), pairs, o, hooks(&mc)).unwrap();
    (weights(&out.network), out.history)
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: fused {g}, burn {w}"
        );
    }
}

/// Fused weights and epoch losses within 2e-5 (relative) of burn's.
fn assert_same_training(got: (&[f32], &History), want: (&[f32], &History), what: &str) {
    assert_close(got.0, want.0, 2e-5, &format!("{what}: weights"));
    let loss = format!("{what}: loss");
    assert_close(&got.1.loss(), &want.1.loss(), 2e-5, &loss);
}

fn mlp_config(
    dim: usize,
    hidden: &[usize],
    act: Activation,
    last: bool,
    drop: f64,
) -> SiameseConfig {
    SiameseConfig {
        encoder: EncoderConfig::Mlp(MlpEncoderConfig {
            input_dim: dim,
            hidden: hidden.to_vec(),
            activation: act,
            final_activation: last,
            dropout: drop,
        }),
        distance: Distance::Euclidean,
        head: Head::Distance,
    }
}

/// The fused step is the burn autodiff step: same weights and losses after several epochs
/// of RMSprop, for ReLU and linear layers, dropout, uneven widths and a partial last batch,
/// with one thread and with a thread count that splits the rows unevenly.
#[test]
fn fused_training_matches_burn_autodiff() {
    let (a, b, y) = data(30, 12, 1);
    let pairs = PairData::Dense(PairsRef {
        a: &a,
        b: &b,
        labels: &y,
    });
    let configs = [
        mlp_config(12, &[128, 128, 128], Activation::Relu, true, 0.0),
        mlp_config(12, &[16, 8], Activation::Relu, false, 0.0),
        mlp_config(12, &[9, 16, 5], Activation::Linear, false, 0.0),
        mlp_config(12, &[16, 16, 8], Activation::Relu, true, 0.25),
    ];
    for (c, config) in configs.iter().enumerate() {
        let (want_w, want_h) = burn_fit(&OptimizerConfig::rmsprop(), config, pairs, &options(4, 7));
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let (got_w, got_h) = pool
                .install(|| fused_fit(&OptimizerConfig::rmsprop(), config, pairs, &options(4, 7)));
            let what = format!("config {c}, {threads} threads");
            assert_same_training((&got_w, &got_h), (&want_w, &want_h), &what);
            let acc = |h: &History| h.epochs.iter().map(|e| e.accuracy).collect::<Vec<_>>();
            assert_eq!(acc(&got_h), acc(&want_h), "{what}: accuracy");
        }
    }
}

/// Every fused optimizer update equals burn's optimizer (the crate's own Keras RMSprop,
/// burn's Adam and SGD) on the same gradients, over two steps.
#[test]
fn fused_optimizers_match_burn_optimizers() {
    use crate::optim::tests::{G1, G2, W0, run};
    for config in [
        OptimizerConfig::rmsprop(),
        OptimizerConfig::adam(),
        OptimizerConfig::sgd(0.1, 0.0),
        OptimizerConfig::sgd(0.1, 0.9),
        OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
        },
    ] {
        let optimizer = FusedOptimizer::from_config(&config).unwrap();
        let (mut w, mut first, mut second) = (W0, [0.0; 5], [0.0; 5]);
        for (t, g) in [G1, G2].iter().enumerate() {
            optimizer.update(&mut w, &mut first, &mut second, g, t as i32 + 1);
        }
        assert_close(
            &w,
            &run(&config, &W0, &[&G1, &G2]),
            1e-6,
            &format!("{config:?}"),
        );
    }
}

/// Whole training runs with SGD (plain, momentum, Nesterov) match burn step for step.
/// Adam is checked on its losses only: it turns any gradient above ~1e-8 into a step of
/// about lr, so a parameter whose gradient is exactly 0 on one path and rounding noise on
/// the other (a first-layer bias of a linear Siamese network, whose branches cancel; a
/// ReLU unit sitting at 0) moves by a fraction of lr on one path only.
#[test]
fn fused_adam_and_sgd_training_match_burn() {
    let (a, b, y) = data(30, 10, 6);
    let pairs = PairData::Dense(PairsRef {
        a: &a,
        b: &b,
        labels: &y,
    });
    let config = mlp_config(10, &[16, 8], Activation::Relu, true, 0.0);
    for optimizer in [
        OptimizerConfig::sgd(0.05, 0.0),
        OptimizerConfig::sgd(0.05, 0.9),
        OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
        },
        OptimizerConfig::adam(),
    ] {
        let (want_w, want_h) = burn_fit(&optimizer, &config, pairs, &options(5, 7));
        let (got_w, got_h) = fused_fit(&optimizer, &config, pairs, &options(5, 7));
        let what = format!("{optimizer:?}");
        if matches!(optimizer, OptimizerConfig::Adam { .. }) {
            assert_close(&got_h.loss(), &want_h.loss(), 1e-3, &what);
        } else {
            assert_same_training((&got_w, &got_h), (&want_w, &want_h), &what);
        }
    }
    // Two `fit` calls of 2 and 3 epochs through the model equal one of 5 (same seed
    // streams aside): the optimizer state, Adam's step count included, carries over.
    let mut whole = crate::config::ModelConfig::reference(10);
    whole.network = config.clone();
    whole.optimizer = OptimizerConfig::adam();
    let run = |splits: &[usize]| {
        let mut model = crate::model::Siamese::new(whole.clone(), &Device::flex()).unwrap();
        let o = FitOptions {
            shuffle: false,
            ..options(1, 7)
        };
        for &epochs in splits {
            model
                .fit(
                    &a,
                    &b,
                    &y,
                    &FitOptions {
                        epochs,
                        ..o.clone()
                    },
                )
                .unwrap();
        }
        model.predict(&a, &b).unwrap()
    };
    assert_eq!(run(&[2, 3]), run(&[5]));
}

/// Augmented batches and index pairs go through the same gathering and random streams as
/// on the burn path.
#[test]
fn fused_training_matches_burn_with_augmentation_and_index_pairs() {
    use crate::data::augment::AugmentConfig;
    use crate::data::pairs::IndexPair;
    use crate::train::Augment;
    let (samples, _, _) = data(12, 16, 3);
    let pairs: Vec<IndexPair> = (0..30)
        .map(|k| IndexPair {
            i: k % 12,
            j: (k * 5 + 1) % 12,
            label: (k % 3 == 0) as u8 as f32,
        })
        .collect();
    let indexed = PairData::Indexed {
        samples: &samples,
        pairs: &pairs,
    };
    let augmented = FitOptions {
        augment: Some(Augment {
            config: AugmentConfig {
                rotation: 10.0,
                shift: 0.1,
                scale: 0.1,
                shear: 5.0,
                fill: 0.0,
                ..AugmentConfig::default()
            },
            width: 4,
            height: 4,
        }),
        ..options(3, 8)
    };
    let config = mlp_config(16, &[16, 8], Activation::Relu, true, 0.0);
    for o in [options(3, 8), augmented] {
        let (want_w, want_h) = burn_fit(&OptimizerConfig::rmsprop(), &config, indexed, &o);
        let (got_w, got_h) = fused_fit(&OptimizerConfig::rmsprop(), &config, indexed, &o);
        let what = format!("augment: {}", o.augment.is_some());
        assert_same_training((&got_w, &got_h), (&want_w, &want_h), &what);
    }
}

/// Keras 3.15.1 (TensorFlow backend) on the same network, weights and data:
/// `tools/keras_fit_reference.py` (`fit(epochs=3, batch_size=4, shuffle=False)`, then
/// `predict`).
#[test]
#[allow(clippy::excessive_precision)] // literal values as Keras printed them
fn fused_training_matches_keras_fit() {
    const KERAS_LOSSES: [f32; 3] = [0.4737679958343506, 0.4614700376987457, 0.4537491798400879];
    const KERAS_DISTANCES: [f32; 10] = [
        0.05299609526991844,
        0.0966232568025589,
        0.04048197716474533,
        0.048376768827438354,
        0.09616806358098984,
        0.04643992334604263,
        0.0435548834502697,
        0.09528180211782455,
        0.05314478650689125,
        0.03855844587087631,
    ];
    let pattern = |n: usize, scale: f32, phase: f32| -> Vec<f32> {
        (0..n)
            .map(|i| scale * (0.7 * i as f32 + phase).sin())
            .collect()
    };
    let (dim, hidden, n) = (6, [5, 5, 4], 10);
    let device = Device::flex().autodiff();
    let mut fan_in = dim;
    let layers = hidden
        .iter()
        .enumerate()
        .map(|(i, &h)| {
            let layer = dense_from_values(
                fan_in,
                h,
                pattern(fan_in * h, 0.6, i as f32),
                pattern(h, 0.1, i as f32 + 0.5),
                &device,
            );
            fan_in = h;
            layer
        })
        .collect();
    let encoder = MlpEncoder::from_layers(layers, Activation::Relu, true);
    let net = SiameseNetwork::new(Encoder::Mlp(encoder), Distance::Euclidean);
    let square = |v: Vec<f32>| v.into_iter().map(|x| x * x).collect();
    let a = Matrix::new(n, dim, square(pattern(n * dim, 1.0, 0.0))).unwrap();
    let b = Matrix::new(n, dim, square(pattern(n * dim, 1.0, 1.3))).unwrap();
    let y: Vec<f32> = (0..n).map(|i| (i % 2) as f32).collect();
    let o = FitOptions {
        shuffle: false,
        ..options(3, 4)
    };
    let trainer = FusedTrainer::new(&net, None, HYPER).unwrap();
    let pairs = PairData::Dense(PairsRef {
        a: &a,
        b: &b,
        labels: &y,
    });
    let mc = crate::config::ModelConfig::reference(2);
    let out = train::fit_fused(net, &mut trainer.into(), pairs, &o, hooks(&mc)).unwrap();
    let (net, h) = (out.network, out.history);
    assert_close(&h.loss(), &KERAS_LOSSES, 1e-5, "epoch loss");
    let d = crate::infer::distances(&net, pairs, false).unwrap();
    assert_close(&d, &KERAS_DISTANCES, 1e-5, "distances");
}

/// The head's scores of `(a[i], b[i])` through burn's forward pass, on flex.
pub(super) fn burn_scores(net: &SiameseNetwork, a: &Matrix, b: &Matrix) -> Vec<f32> {
    let device = Device::flex();
    net.forward_scores(
        crate::data::to_tensor(a, &device),
        crate::data::to_tensor(b, &device),
    )
    .into_data()
    .try_to_vec::<f32>()
    .unwrap()
}

/// Fused inference gives burn's scores for every head and distance, dense or indexed.
#[test]
fn fused_scores_match_burn_forward() {
    let (a, b, _) = data(70, 9, 2);
    for (distance, head, hidden) in [
        (Distance::Euclidean, Head::Distance, &[12, 7][..]),
        (Distance::Euclidean, Head::Distance, &[5][..]),
        (Distance::Euclidean, Head::Distance, &[6, 9, 4, 3][..]),
        (Distance::Manhattan, Head::Distance, &[12, 7][..]),
        (Distance::Cosine, Head::Distance, &[12, 7][..]),
        (Distance::Euclidean, Head::WeightedL1, &[12, 7][..]),
    ] {
        let config = SiameseConfig {
            distance,
            head,
            ..mlp_config(9, hidden, Activation::Relu, false, 0.1)
        };
        let net = network(&config).valid();
        let device = Device::flex();
        let want = burn_scores(&net, &a, &b);
        let head = HostHead::from_network(&net).unwrap();
        let want_emb = net
            .embed(crate::data::to_tensor(&a, &device))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        // Through gemm (the trainer's copy) and through the packed inference kernel.
        for mlp in [FusedMlp::from_network(&net), FusedMlp::for_inference(&net)] {
            let mlp = mlp.unwrap();
            let got = mlp.pair_scores(&a, &b, &head).unwrap();
            // A few pairs take the stacked `[a; b]` pass.
            let few = mlp
                .pair_scores(&a.slice_rows(0, 5), &b.slice_rows(0, 5), &head)
                .unwrap();
            assert_close(&few, &want[..5], 1e-5, "five pairs");
            assert_close(&got, &want, 1e-5, &format!("{distance:?} {head:?}"));
            let emb = mlp.embed(&a, "input").unwrap();
            assert_close(emb.as_slice(), &want_emb, 1e-5, "embeddings");
        }
    }
}

/// A diverged network (NaN weights) stops with the loss check's error, as on the burn
/// path: the ReLU must pass NaN on, not turn it into 0.
#[test]
fn nan_weights_are_reported_not_hidden() {
    let (a, b, y) = data(16, 3, 4);
    let device = Device::flex().autodiff();
    let mut kernel = vec![0.5; 3 * 4];
    kernel[5] = f32::NAN;
    let layers = vec![
        dense_from_values(3, 4, kernel, vec![0.0; 4], &device),
        dense_from_values(4, 2, vec![0.25; 8], vec![0.0; 2], &device),
    ];
    let encoder = MlpEncoder::from_layers(layers, Activation::Relu, true);
    let net = SiameseNetwork::new(Encoder::Mlp(encoder), Distance::Euclidean);
    let pairs = PairData::Dense(PairsRef {
        a: &a,
        b: &b,
        labels: &y,
    });
    let trainer = FusedTrainer::new(&net, None, HYPER).unwrap();
    let mc = crate::config::ModelConfig::reference(2);
    let err = train::fit_fused(net, &mut trainer.into(), pairs, &options(1, 8), hooks(&mc))
        .unwrap_err()
        .to_string();
    assert!(err.contains("training loss became NaN"), "{err}");
}

/// A NaN or ±∞ in an input is named (side, row, column) without a scan of its own, in
/// any block and in the stacked few-pair pass, by `pair_scores` and by `embed`;
/// non-finite weights are let through, as on the burn path, and give NaN scores instead
/// of an input error.
#[test]
fn non_finite_inputs_are_named_and_non_finite_weights_let_through() {
    let (a, b, _) = data(700, 9, 5);
    let config = mlp_config(9, &[12, 7], Activation::Relu, false, 0.0);
    let net = network(&config).valid();
    let head = HostHead::from_network(&net).unwrap();
    for mlp in [FusedMlp::from_network(&net), FusedMlp::for_inference(&net)] {
        let mlp = mlp.unwrap();
        for (side, row, col, bad) in [
            ("a", 0, 0, f32::NAN),
            ("b", 650, 8, f32::INFINITY),
            ("a", 300, 4, f32::NEG_INFINITY),
            ("b", 2, 3, f32::NAN),
        ] {
            for pairs in [700, 3] {
                if row >= pairs {
                    continue;
                }
                let (mut a, mut b) = (a.slice_rows(0, pairs), b.slice_rows(0, pairs));
                let m = if side == "a" { &mut a } else { &mut b };
                let mut values = m.as_slice().to_vec();
                values[row * 9 + col] = bad;
                *m = Matrix::new(pairs, 9, values).unwrap();
                let err = mlp.pair_scores(&a, &b, &head).unwrap_err().to_string();
                let want = format!("row {row}, column {col}");
                assert!(
                    err.contains(&format!("input {side}")) && err.contains(&want),
                    "{err}"
                );
            }
        }
    }
    // NaN weights in a later layer, then in the first (whose flag then fires on finite
    // inputs, which the rescan lets through).
    for layer in [1, 0] {
        let mut nan_net = net.clone();
        if let Encoder::Mlp(mlp) = &mut nan_net.encoder {
            let w = mlp.layers[layer].weight.val();
            let nan = Tensor::<2>::full(w.dims(), f32::NAN, &w.device());
            mlp.layers[layer].weight = Param::initialized(mlp.layers[layer].weight.id, nan);
        }
        for mlp in [
            FusedMlp::from_network(&nan_net),
            FusedMlp::for_inference(&nan_net),
        ] {
            let mlp = mlp.unwrap();
            let scores = mlp.pair_scores(&a, &b, &head).unwrap();
            assert!(scores.iter().all(|s| s.is_nan()), "layer {layer}");
            let emb = mlp.embed(&a, "samples").unwrap();
            assert!(emb.as_slice().iter().all(|v| v.is_nan()), "layer {layer}");
        }
    }
}

#[test]
fn only_supported_networks_take_the_fused_path() {
    let tanh = mlp_config(4, &[3], Activation::Tanh, true, 0.0);
    assert!(FusedMlp::from_network(&network(&tanh)).is_none());
    let manhattan = SiameseConfig {
        distance: Distance::Manhattan,
        ..mlp_config(4, &[3], Activation::Relu, true, 0.0)
    };
    // Inference handles any head; training any distance head (the weighted-L1 head's
    // training keeps burn's path on MLPs).
    assert!(FusedMlp::from_network(&network(&manhattan)).is_some());
    assert!(FusedTrainer::new(&network(&manhattan), None, HYPER).is_some());
    let weighted = SiameseConfig {
        head: Head::WeightedL1,
        ..manhattan.clone()
    };
    let bce = FusedHyper {
        loss: crate::loss::LossKind::BinaryCrossEntropy,
        ..HYPER
    };
    assert!(FusedTrainer::new(&network(&weighted), None, bce).is_none());
    // A loss the head does not take (cosine-mse needs the cosine distance).
    let cosine_mse = FusedHyper {
        loss: crate::loss::LossKind::CosineMse,
        ..HYPER
    };
    assert!(FusedTrainer::new(&network(&manhattan), None, cosine_mse).is_none());
    let conv = SiameseConfig {
        encoder: EncoderConfig::Conv(
            crate::encoder::conv::ConvEncoderConfig::preset("koch-cpu", 52, 52).unwrap(),
        ),
        ..mlp_config(4, &[3], Activation::Relu, true, 0.0)
    };
    assert!(FusedMlp::from_network(&network(&conv)).is_none());
}

/// The MLP trainer with every distance and each distance-head loss (triplets from index
/// pairs) trains as burn's path does.
#[test]
fn every_distance_and_loss_trains_as_burn_does() {
    use crate::loss::LossKind::*;
    let (samples, _, _) = data(16, 6, 4);
    let pairs: Vec<crate::data::pairs::IndexPair> = (0..24)
        .map(|i| crate::data::pairs::IndexPair {
            i: i % 16,
            j: (i * 5 + 3) % 16,
            label: (i % 2) as f32,
        })
        .collect();
    let data = PairData::Indexed {
        samples: &samples,
        pairs: &pairs,
    };
    for (distance, kind, margin) in [
        (Distance::Manhattan, Contrastive, 2.0),
        (Distance::Cosine, Contrastive, 0.5),
        (Distance::Cosine, CosineMse, 1.0),
        (Distance::Manhattan, ExpMse, 1.0),
        (Distance::Euclidean, Triplet, 0.5),
        (Distance::Cosine, Triplet, 0.2),
        (Distance::Cosine, Cosent, 1.0),
    ] {
        let config = SiameseConfig {
            distance,
            ..mlp_config(6, &[8, 5], Activation::Relu, false, 0.1)
        };
        let optimizer = OptimizerConfig::sgd(0.05, 0.9);
        let mc = crate::config::ModelConfig {
            loss: LossConfig {
                kind,
                margin,
                miner: None,
            },
            optimizer: optimizer.clone(),
            ..model_config(&config)
        };
        let o = options(2, 8);
        let mut burn_opt = optimizer.init().unwrap();
        let burn = train::fit(network(&config), &mut burn_opt, 0.05, data, &o, hooks(&mc));
        let burn = burn.unwrap();
        let hyper = FusedHyper {
            optimizer: FusedOptimizer::from_config(&optimizer).unwrap(),
            loss: kind,
            margin,
            miner: None,
        };
        let net = network(&config);
        let trainer = FusedTrainer::new(&net, None, hyper).expect("covered");
        let host = train::fit_fused(net, &mut trainer.into(), data, &o, hooks(&mc)).unwrap();
        let what = format!("{distance:?} {kind:?}");
        assert_same_training(
            (&weights(&host.network), &host.history),
            (&weights(&burn.network), &burn.history),
            &what,
        );
        assert_ne!(weights(&host.network), weights(&network(&config)), "{what}");
    }
}

/// An optimizer state saved after a few steps (`to_parts`, JSON, `from_parts`) resumes
/// training exactly as the original does: bit-identical weights, for every optimizer.
#[test]
fn optimizer_state_round_trips_and_resumes_bit_identically() {
    let (dim, pairs) = (10, 20);
    let (a, b, y) = data(pairs, dim, 7);
    let net = network(&mlp_config(dim, &[16, 8], Activation::Relu, true, 0.0));
    let fill = |r: usize, row: &mut [f32]| {
        let (m, i) = if r < pairs { (&a, r) } else { (&b, r - pairs) };
        row.copy_from_slice(&m.as_slice()[i * dim..(i + 1) * dim]);
    };
    let bits = |mlp: &FusedMlp| -> Vec<u32> {
        mlp.layers
            .iter()
            .flat_map(|d| d.kernel.iter().chain(&d.bias).map(|v| v.to_bits()))
            .collect()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for config in [
        OptimizerConfig::rmsprop(),
        OptimizerConfig::adam(),
        OptimizerConfig::sgd(0.05, 0.9),
    ] {
        let hyper = FusedHyper {
            optimizer: FusedOptimizer::from_config(&config).unwrap(),
            loss: crate::loss::LossKind::Contrastive,
            margin: 1.0,
            miner: None,
        };
        let train = |net: &SiameseNetwork, state: Option<OptimizerState>| {
            let mut trainer = FusedTrainer::new(net, state, hyper).unwrap();
            for _ in 0..3 {
                trainer.step(HostBatch::Pairs(&y), &fill).unwrap();
            }
            trainer
        };
        let trainer = pool.install(|| train(&net, None));
        let mut trained = net.clone();
        trainer.mlp().write_back(&mut trained);
        let state = trainer.into_state();
        let parts = state.to_parts();
        let json = serde_json::to_string(&parts).unwrap();
        let parsed: OptimizerStateParts = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, parts, "{config:?}: through JSON");
        let restored = OptimizerState::from_parts(parsed).unwrap();
        assert_eq!(restored, state, "{config:?}");
        let resume = |state| pool.install(|| bits(train(&trained, state).mlp()));
        let want = resume(Some(state));
        assert_eq!(resume(Some(restored)), want, "{config:?}: resumed");
        // The state is used: a fresh optimizer ends elsewhere.
        assert_ne!(resume(None), want, "{config:?}: fresh");
    }
}
