//! The conv trainer against burn's autodiff: the same losses, distances and weights after
//! optimizer steps, layer by layer kind, both paddings, dropout masks, each optimizer.

use burn::module::{Module, Param, RunningState};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

use super::ConvTrainer;
use crate::config::ModelConfig;
use crate::data::pairs::IndexPair;
use crate::data::{Matrix, PairData, PairsRef};
use crate::distance::Distance;
use crate::encoder::conv::{ConvEncoderConfig, ConvLayerConfig as L, ConvModule, Padding};
use crate::encoder::{Activation, Encoder, EncoderConfig};
use crate::fused::{FusedHyper, HostBatch, HostTrainer};
use crate::loss::{LossConfig, LossKind, TripletLoss};
use crate::optim::OptimizerConfig;
use crate::siamese::{Head, SiameseConfig, SiameseNetwork};
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

/// Every parameter of the network and batch-norm running statistic, in module order.
fn weights(network: &SiameseNetwork) -> Vec<f32> {
    let mut network = network.clone();
    // burn's running statistics hold the last update per thread until synchronised.
    if let Encoder::Conv(encoder) = &mut network.encoder {
        for m in &mut encoder.modules {
            if let ConvModule::Norm(bn) = m {
                bn.running_mean = RunningState::new(bn.running_mean.value_sync());
                bn.running_var = RunningState::new(bn.running_var.value_sync());
            }
        }
    }
    network.into_record_values().into_iter().flatten().collect()
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

/// `net_config`'s network from seed 3 with non-trivial batch-norm parameters and running
/// statistics (a fresh layer's are the identity).
fn init(net_config: &SiameseConfig) -> SiameseNetwork {
    let mut net = net_config.init(&Device::flex().autodiff(), 3).unwrap();
    let Encoder::Conv(encoder) = &mut net.encoder else {
        return net;
    };
    let device = Device::flex().autodiff();
    let vector = |n: usize, f: &dyn Fn(usize) -> f32| -> Tensor<1> {
        Tensor::<1>::from_data(TensorData::new((0..n).map(f).collect(), [n]), &device)
    };
    for m in &mut encoder.modules {
        if let ConvModule::Norm(bn) = m {
            let n = bn.gamma.val().dims()[0];
            bn.gamma = Param::from_tensor(vector(n, &|i| 0.8 + 0.1 * (i % 5) as f32));
            bn.beta = Param::from_tensor(vector(n, &|i| 0.1 - 0.05 * (i % 4) as f32));
            bn.running_mean = RunningState::new(vector(n, &|i| 0.05 * (i % 3) as f32 - 0.05));
            bn.running_var = RunningState::new(vector(n, &|i| 0.5 + 0.25 * (i % 3) as f32));
        }
    }
    net
}

/// Samples and index pairs over them (each sample in similar and dissimilar pairs, so
/// that triplets form).
fn indexed(dim: usize, pairs: usize) -> (Matrix, Vec<IndexPair>) {
    let n = 16;
    let samples = Matrix::new(n, dim, values(n * dim, 1)).unwrap();
    let list = (0..pairs)
        .map(|i| IndexPair {
            i: i % n,
            j: (i * 5 + 3) % n,
            label: (i % 2) as f32,
        })
        .collect();
    (samples, list)
}

fn hyper(optimizer: &OptimizerConfig, loss: LossConfig) -> FusedHyper {
    FusedHyper::from_config(optimizer, &loss).unwrap()
}

/// Trains `epochs` epochs on burn's path and on the conv trainer from the same weights and
/// dropout streams; returns both histories' losses and final weights.
fn both(
    net_config: &SiameseConfig,
    loss: LossConfig,
    optimizer: OptimizerConfig,
    pairs: usize,
    epochs: usize,
) -> (Run, Run) {
    // Index pairs for triplets; otherwise dense pairs (their batches share no sample, so
    // no near-ties where two float orders of the same sums part ways).
    let dim = net_config.encoder.input_dim();
    let (samples, list) = indexed(dim, pairs);
    let (a, b) = (
        Matrix::new(pairs, dim, values(pairs * dim, 1)).unwrap(),
        Matrix::new(pairs, dim, values(pairs * dim, 2)).unwrap(),
    );
    let y: Vec<f32> = (0..pairs).map(|i| (i % 2) as f32).collect();
    let data = if loss.is_triplet() {
        PairData::Indexed {
            samples: &samples,
            pairs: &list,
        }
    } else {
        PairData::Dense(PairsRef {
            a: &a,
            b: &b,
            labels: &y,
        })
    };
    let model = ModelConfig {
        network: net_config.clone(),
        loss,
        optimizer: optimizer.clone(),
        seed: 3,
    };
    let options = FitOptions {
        seed: 9,
        ..FitOptions::new(epochs, 8)
    };
    let (burn, host) = fit_both(net_config, &model, data, &options);
    (
        (burn.history.loss(), weights(&burn.network)),
        (host.history.loss(), weights(&host.network)),
    )
}

/// Trains on burn's path and on the host trainer (conv or MLP) from the same initial
/// weights and dropout streams (two independent networks from seed 3).
fn fit_both(
    net_config: &SiameseConfig,
    model: &ModelConfig,
    data: PairData<'_>,
    options: &FitOptions,
) -> (train::FitOutcome, train::FitOutcome) {
    let hooks = || train::Hooks {
        config: model,
        callbacks: Vec::new(),
        resume: None,
        host: false,
    };
    let optimizer = &model.optimizer;
    let mut burn_opt = optimizer.init().unwrap();
    let burn = train::fit(
        init(net_config),
        &mut burn_opt,
        optimizer.lr(),
        data,
        options,
        hooks(),
    )
    .unwrap();
    let net = init(net_config);
    let mut trainer = HostTrainer::new(&net, None, hyper(optimizer, model.loss)).expect("covered");
    let host = train::fit_fused(net, &mut trainer, data, options, hooks()).unwrap();
    (burn, host)
}

/// Every gradient of one batch's loss, by burn's autodiff and by the conv trainer, in
/// module order (burn's layouts), with both losses.
fn gradients(net_config: &SiameseConfig, loss: LossConfig) -> [(f32, Vec<Vec<f32>>); 2] {
    let dim = net_config.encoder.input_dim();
    let n = 6;
    let triplet = loss.is_triplet();
    let rows = if triplet { 3 * n } else { 2 * n };
    let x = values(rows * dim, 5);
    let labels: Vec<f32> = (0..n).map(|i| ((i + 1) % 2) as f32).collect();
    let device = Device::flex().autodiff();
    let net = init(net_config);
    let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [rows, dim]), &device);
    let l = if triplet {
        let emb = net.embed(t);
        let d = net.distance();
        let a = emb.clone().narrow(0, 0, n);
        let d_ap = d.forward(a.clone(), emb.clone().narrow(0, n, n));
        let d_an = d.forward(a, emb.narrow(0, 2 * n, n));
        TripletLoss::new(loss.margin).forward(d_ap, d_an)
    } else {
        let s = net.forward_scores(t.clone().narrow(0, 0, n), t.narrow(0, n, n));
        let y = Tensor::<2>::from_data(TensorData::new(labels.clone(), [n, 1]), &device);
        loss.forward(s, y)
    };
    let burn_loss = l.clone().into_scalar();
    let grads = GradientsParams::from_grads(l.backward(), &net);
    struct Collect<'g>(&'g GradientsParams, Vec<Vec<f32>>);
    impl burn::module::ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                self.1
                    .push(g.into_data().convert::<f32>().try_to_vec().unwrap());
            }
        }
    }
    let mut burn = Collect(&grads, Vec::new());
    net.visit(&mut burn);

    let net = init(net_config);
    let opt = OptimizerConfig::rmsprop();
    let mut trainer = ConvTrainer::new(&net, None, hyper(&opt, loss)).expect("covered");
    let batch = if triplet {
        HostBatch::Triplets(n)
    } else {
        HostBatch::Pairs(&labels)
    };
    let out = trainer
        .gradients(batch, &|r, row| {
            row.copy_from_slice(&x[r * dim..(r + 1) * dim])
        })
        .unwrap();
    let mut host = Vec::new();
    for (l, w) in trainer.weights.iter().enumerate() {
        let sum = |p: usize| -> Vec<f32> {
            let mut acc = vec![0.0f32; trainer.grads[0][l][p].len()];
            for g in &trainer.grads[..trainer.used(batch.rows())] {
                for (a, v) in acc.iter_mut().zip(&g[l][p]) {
                    *a += v;
                }
            }
            acc
        };
        host.push(w.to_burn(&sum(0)));
        host.push(w.bias_to_burn(&sum(1)));
    }
    [(burn_loss, burn.1), (out.loss, host)]
}

fn check_gradients(net_config: SiameseConfig, loss: LossConfig, what: &str) {
    let [(burn_loss, burn), (host_loss, host)] = gradients(&net_config, loss);
    assert_close(&[host_loss], &[burn_loss], 1e-5, &format!("{what}: loss"));
    assert_eq!(host.len(), burn.len(), "{what}: parameter tensors");
    // A bias just before a batch norm has a zero gradient (the norm removes any shift), so
    // burn's is float noise there: tolerances are relative to the largest gradient of the
    // tensor, and at least to a hundredth of the largest gradient of all.
    let largest = burn.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (h, b)) in host.iter().zip(&burn).enumerate() {
        let scale = b.iter().fold(largest * 1e-2, |m, v| m.max(v.abs()));
        for (j, (g, w)) in h.iter().zip(b).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * scale,
                "{what}: gradient {i}[{j}]: {g} vs {w} (scale {scale})"
            );
        }
        assert_eq!(h.len(), b.len(), "{what}: gradient {i} length");
    }
    assert!(largest > 0.0, "{what}: no gradient");
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
    check_loss(net_config, LossConfig::default(), optimizer, what);
}

fn check_loss(net_config: SiameseConfig, loss: LossConfig, optimizer: OptimizerConfig, what: &str) {
    let ((burn_loss, burn_w), (host_loss, host_w)) = both(&net_config, loss, optimizer, 24, 2);
    assert_close(&host_loss, &burn_loss, 1e-4, &format!("{what}: losses"));
    assert_close(&host_w, &burn_w, 1e-4, &format!("{what}: weights"));
    // The steps did move the weights.
    let fresh = weights(&init(&net_config));
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

/// Eight channels take the pooling passes' vector path: overlapping windows (their input
/// gradients add up), a max-pooling after a convolution without ReLU and one after a ReLU
/// convolution (its ReLU folded into the pooling's backward).
#[test]
fn eight_channel_pooling_with_overlapping_windows_matches_burn() {
    let layers = vec![
        conv(8, 3, 1, Padding::Same, false),
        L::MaxPool2d {
            size: 3,
            stride: Some(2),
        },
        conv(16, 3, 1, Padding::Same, true),
        L::MaxPool2d {
            size: 2,
            stride: None,
        },
        L::Flatten,
        L::Dense {
            units: 4,
            activation: Activation::Linear,
        },
    ];
    check(
        config(13, 11, 1, layers),
        OptimizerConfig::rmsprop(),
        "eight channels",
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
fn uncovered_models_keep_the_burn_path() {
    let hyper = hyper(&OptimizerConfig::rmsprop(), LossConfig::default());
    let sigmoid_conv = config(
        8,
        8,
        1,
        vec![
            L::Conv2d {
                filters: 2,
                kernel: 3,
                stride: 1,
                padding: Padding::Valid,
                activation: Activation::Sigmoid,
            },
            L::Flatten,
        ],
    );
    let net = sigmoid_conv.init(&Device::flex().autodiff(), 1).unwrap();
    assert!(ConvTrainer::new(&net, None, hyper).is_none());
    // Binary cross-entropy needs the weighted-L1 head's logits.
    let flat = config(
        8,
        8,
        1,
        vec![conv(2, 3, 1, Padding::Valid, true), L::Flatten],
    );
    let net = flat.init(&Device::flex().autodiff(), 1).unwrap();
    let bce = self::hyper(
        &OptimizerConfig::rmsprop(),
        LossConfig::binary_cross_entropy(),
    );
    assert!(ConvTrainer::new(&net, None, bce).is_none());
    assert!(ConvTrainer::new(&net, None, hyper).is_some());
}

/// A small network with every layer kind: both paddings, a stride, batch norm on maps and
/// on features (after a flatten and after a dense layer), dropout, and an L2 norm.
fn every_layer(distance: Distance, head: Head) -> SiameseConfig {
    let layers = vec![
        conv(4, 3, 1, Padding::Valid, true),
        L::BatchNorm,
        L::MaxPool2d {
            size: 2,
            stride: None,
        },
        conv(5, 3, 1, Padding::Same, true),
        L::BatchNorm,
        conv(5, 2, 2, Padding::Valid, false),
        L::Dropout { rate: 0.2 },
        L::Flatten,
        L::BatchNorm,
        L::Dense {
            units: 7,
            activation: Activation::Relu,
        },
        L::BatchNorm,
        L::Dense {
            units: 5,
            activation: Activation::Linear,
        },
    ];
    SiameseConfig {
        distance,
        head,
        ..config(11, 12, 2, layers)
    }
}

fn with_l2(mut c: SiameseConfig) -> SiameseConfig {
    if let EncoderConfig::Conv(e) = &mut c.encoder {
        e.layers.push(L::L2Normalize);
    }
    c
}

fn loss(kind: LossKind, margin: f32) -> LossConfig {
    LossConfig {
        kind,
        margin,
        miner: None,
    }
}

#[test]
fn every_gradient_matches_burn_for_each_distance_and_loss() {
    use Distance::*;
    let cases = [
        (Euclidean, loss(LossKind::Contrastive, 1.0)),
        (Manhattan, loss(LossKind::Contrastive, 3.0)),
        (Cosine, loss(LossKind::Contrastive, 0.5)),
        (Cosine, loss(LossKind::CosineMse, 1.0)),
        (Manhattan, loss(LossKind::ExpMse, 1.0)),
        (Euclidean, loss(LossKind::Triplet, 0.5)),
        (Cosine, loss(LossKind::Triplet, 0.3)),
    ];
    for (distance, l) in cases {
        let what = format!("{distance:?} {:?}", l.kind);
        check_gradients(every_layer(distance, Head::Distance), l, &what);
    }
    check_gradients(
        with_l2(every_layer(Euclidean, Head::Distance)),
        LossConfig::default(),
        "l2",
    );
    check_gradients(
        every_layer(Euclidean, Head::WeightedL1),
        LossConfig::binary_cross_entropy(),
        "weighted-l1",
    );
    // Batch norm on the input itself, then right after a batch norm.
    let first = vec![
        L::BatchNorm,
        conv(3, 3, 1, Padding::Valid, false),
        L::BatchNorm,
        L::Flatten,
        L::Dense {
            units: 4,
            activation: Activation::Linear,
        },
    ];
    check_gradients(config(7, 6, 2, first), LossConfig::default(), "norm first");
}

#[test]
fn every_gradient_of_the_presets_matches_burn() {
    for (preset, width, height) in [
        ("faces", 46, 56),
        ("koch-cpu", 52, 52),
        ("signatures", 64, 32),
    ] {
        let encoder = ConvEncoderConfig::preset(preset, width, height).unwrap();
        let c = SiameseConfig {
            encoder: EncoderConfig::Conv(encoder),
            ..SiameseConfig::reference(4)
        };
        check_gradients(c, LossConfig::default(), preset);
    }
}

#[test]
fn batch_norm_heads_and_losses_train_as_burn_does() {
    check_loss(
        every_layer(Distance::Euclidean, Head::Distance),
        LossConfig::default(),
        OptimizerConfig::rmsprop(),
        "batch norm",
    );
    check_loss(
        every_layer(Distance::Manhattan, Head::WeightedL1),
        LossConfig::binary_cross_entropy(),
        // Not Adam: the last dense layer's bias has a zero gradient under the weighted-L1
        // head (|eₐ − e_b| ignores a shift), burn's is float noise, and Adam turns noise
        // into steps of ±lr.
        OptimizerConfig::sgd(0.05, 0.9),
        "weighted-l1",
    );
    check_loss(
        with_l2(every_layer(Distance::Euclidean, Head::Distance)),
        LossConfig::triplet(0.5),
        OptimizerConfig::sgd(0.05, 0.9),
        "triplet",
    );
    check_loss(
        every_layer(Distance::Cosine, Head::Distance),
        loss(LossKind::CosineMse, 1.0),
        OptimizerConfig::rmsprop(),
        "cosine-mse",
    );
}

#[test]
fn the_koch_cpu_and_signatures_presets_train_as_burn_does() {
    for (preset, width, height) in [("koch-cpu", 52, 52), ("signatures", 64, 32)] {
        let encoder = ConvEncoderConfig::preset(preset, width, height).unwrap();
        let c = SiameseConfig {
            encoder: EncoderConfig::Conv(encoder),
            ..SiameseConfig::reference(4)
        };
        // SGD with a small rate: RMSprop's and Adam's first steps are nearly sign(g), so a
        // weight whose gradient is float noise moves by ±lr on one path and not the other,
        // and a batch norm over a nearly dead ReLU channel (tiny variance) amplifies float
        // differences at large rates; the small networks above cover every optimizer.
        check(c, OptimizerConfig::sgd(0.01, 0.5), preset);
    }
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
    // Also batch norm (its running statistics among the weights) with triplets.
    let cases = [
        (c, LossConfig::default()),
        (
            every_layer(Distance::Euclidean, Head::Distance),
            LossConfig::triplet(0.5),
        ),
    ];
    for (c, loss) in cases {
        let run = || pool.install(|| both(&c, loss, OptimizerConfig::adam(), 20, 2).1);
        let (first, second) = (run(), run());
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&first.0), bits(&second.0), "{:?}: losses", loss.kind);
        assert_eq!(bits(&first.1), bits(&second.1), "{:?}: weights", loss.kind);
    }
}

/// Class-balanced batches with each miner, and a warm-up + cosine learning-rate schedule:
/// the same epoch losses and weights on burn's path (the miner's factors on its distances)
/// and on the host trainers (conv and MLP), from the same sampler draws.
#[test]
fn mined_batches_and_schedules_train_as_burn_does() {
    use crate::data::sampler::PerClassSampler;
    use crate::loss::Miner;
    use crate::train::{LrDecay, LrSchedule};
    let conv_net = config(
        10,
        12,
        1,
        vec![
            conv(4, 3, 1, Padding::Valid, true),
            L::MaxPool2d {
                size: 2,
                stride: None,
            },
            L::Flatten,
            L::Dense {
                units: 6,
                activation: Activation::Linear,
            },
        ],
    );
    let mlp_net = SiameseConfig::reference(120);
    let n = 24;
    let samples = Matrix::new(n, 120, values(n * 120, 7)).unwrap();
    let labels: Vec<usize> = (0..n).map(|i| i % 4).collect();
    let list: Vec<IndexPair> = (0..n - 1)
        .map(|i| IndexPair {
            i,
            j: i + 1,
            label: 0.0,
        })
        .collect();
    let data = PairData::Indexed {
        samples: &samples,
        pairs: &list,
    };
    let options = FitOptions {
        seed: 5,
        sampler: Some(PerClassSampler::new(&labels, 2, 3).unwrap()),
        schedule: LrSchedule {
            decay: LrDecay::Cosine { min_factor: 0.1 },
            warmup_epochs: 1.0,
        },
        ..FitOptions::new(3, 999)
    };
    let optimizer = OptimizerConfig::sgd(0.05, 0.9);
    for (net_config, miner, margin) in [
        (&conv_net, Miner::BatchHard, 0.5),
        (&conv_net, Miner::BatchAll, 0.5),
        (&conv_net, Miner::SemiHard, 0.3),
        (&conv_net, Miner::HardNegative, 1.0),
        (&mlp_net, Miner::BatchHard, 0.5),
        (&mlp_net, Miner::HardNegative, 1.0),
    ] {
        let kind = if std::ptr::eq(net_config, &conv_net) {
            "conv"
        } else {
            "mlp"
        };
        let what = format!("{miner:?} on {kind}");
        let loss = if miner.is_triplet() {
            LossConfig::triplet(margin)
        } else {
            LossConfig::contrastive(margin)
        }
        .with_miner(miner);
        let model = ModelConfig {
            network: net_config.clone(),
            loss,
            optimizer: optimizer.clone(),
            seed: 3,
        };
        let (burn, host) = fit_both(net_config, &model, data, &options);
        // 24 samples in batches of 2 × 3: 4 steps per epoch; the rates end below the base.
        let lrs: Vec<f64> = host.history.epochs.iter().filter_map(|e| e.lr).collect();
        assert_eq!(lrs.len(), 3, "{what}");
        assert!(lrs[2] < lrs[1] && lrs[1] <= 0.05 + 1e-9, "{what}: {lrs:?}");
        let burn_lrs: Vec<f64> = burn.history.epochs.iter().filter_map(|e| e.lr).collect();
        assert_close(
            &burn_lrs.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            &lrs.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            1e-6,
            &format!("{what}: rates"),
        );
        let (bl, hl) = (burn.history.loss(), host.history.loss());
        assert!(hl.iter().all(|&l| l > 0.0), "{what}: {hl:?}");
        assert_close(&hl, &bl, 1e-4, &format!("{what}: losses"));
        let (bw, hw) = (weights(&burn.network), weights(&host.network));
        assert_close(&hw, &bw, 1e-4, &format!("{what}: weights"));
        let fresh = weights(&init(net_config));
        assert!(
            fresh.iter().zip(&hw).any(|(a, b)| (a - b).abs() > 1e-5),
            "{what}: no training happened"
        );
    }
}
