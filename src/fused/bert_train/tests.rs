//! The BERT trainer against burn's autodiff: the same loss and every parameter's gradient
//! for each pooling, normalisation, activation and loss; the same weights after epochs of
//! Adam; with dropout, gradients that match finite differences of the loss at fixed masks.

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

use super::{BertTrainer, pass, write};
use crate::config::ModelConfig;
use crate::data::{Matrix, PairData, PairsRef};
use crate::distance::Distance;
use crate::encoder::bert::{BertActivation, BertEncoderConfig, BertPooling};
use crate::encoder::{Encoder, EncoderConfig};
use crate::fused::{FusedHyper, HostBatch, HostTrainer};
use crate::loss::{LossConfig, LossKind};
use crate::optim::OptimizerConfig;
use crate::siamese::{SiameseConfig, SiameseNetwork};
use crate::train::{self, FitOptions};

const VOCAB: usize = 40;
const WIDTH: usize = 9;

fn config(
    pooling: BertPooling,
    normalize: bool,
    activation: BertActivation,
    distance: Distance,
) -> SiameseConfig {
    SiameseConfig {
        encoder: EncoderConfig::Bert(BertEncoderConfig {
            pooling,
            normalize,
            activation,
            ..BertEncoderConfig::tiny(VOCAB, WIDTH)
        }),
        distance,
        ..SiameseConfig::reference(4)
    }
}

/// Rows of ids + 1 (0 = padding) of different lengths from a xorshift stream, with a
/// padding id inside one sentence and one row filling the width.
fn rows(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s >> 33
    };
    let mut out = vec![0.0f32; n * WIDTH];
    for (r, row) in out.chunks_exact_mut(WIDTH).enumerate() {
        let len = if r == 1 {
            WIDTH
        } else {
            2 + (next() as usize) % (WIDTH - 2)
        };
        for v in row[..len].iter_mut() {
            *v = 1.0 + (next() % VOCAB as u64) as f32;
        }
        if r == 2 && len > 3 {
            row[1] = 0.0;
        }
    }
    out
}

fn hyper(optimizer: &OptimizerConfig, loss: LossConfig) -> FusedHyper {
    FusedHyper::from_config(optimizer, &loss).unwrap()
}

/// Every float parameter in module order.
fn values(network: &SiameseNetwork) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(
                param
                    .val()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec()
                    .unwrap(),
            );
        }
    }
    let mut c = Collect(Vec::new());
    network.visit(&mut c);
    c.0
}

fn loss_config(distance: Distance) -> LossConfig {
    match distance {
        Distance::Cosine => LossConfig {
            kind: LossKind::CosineMse,
            ..LossConfig::default()
        },
        _ => LossConfig::default(),
    }
}

/// The loss and every gradient of one batch of pairs, by burn's autodiff and by the host
/// trainer, in module order.
fn gradients(net_config: &SiameseConfig, loss: LossConfig) -> [(f32, Vec<Vec<f32>>); 2] {
    let n = 6;
    let x = rows(2 * n, 5);
    let labels: Vec<f32> = (0..n).map(|i| 0.2 + 0.15 * i as f32).collect();
    let labels: Vec<f32> = if loss.kind != LossKind::Contrastive {
        labels
    } else {
        (0..n).map(|i| (i % 2) as f32).collect()
    };
    let device = Device::flex().autodiff();
    let net = net_config.init(&device, 3).unwrap();
    let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [2 * n, WIDTH]), &device);
    let s = net.forward_scores(t.clone().narrow(0, 0, n), t.narrow(0, n, n));
    let y = Tensor::<2>::from_data(TensorData::new(labels.clone(), [n, 1]), &device);
    let l = loss.forward(s, y);
    let burn_loss = l.clone().into_scalar();
    let grads = GradientsParams::from_grads(l.backward(), &net);
    struct Collect<'g>(&'g GradientsParams, Vec<Vec<f32>>);
    impl burn::module::ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = self
                .0
                .get::<D>(param.id)
                .map(|g| g.into_data().convert::<f32>().try_to_vec().unwrap());
            let len = param.val().shape().num_elements();
            self.1.push(g.unwrap_or_else(|| vec![0.0; len]));
        }
    }
    let mut burn = Collect(&grads, Vec::new());
    net.visit(&mut burn);

    let mut net = net_config.init(&device, 3).unwrap();
    let opt = OptimizerConfig::adam();
    let mut trainer = BertTrainer::new(&net, None, hyper(&opt, loss)).expect("covered");
    let out = trainer
        .gradients(HostBatch::Pairs(&labels), &|r, row| {
            row.copy_from_slice(&x[r * WIDTH..(r + 1) * WIDTH])
        })
        .unwrap();
    let Encoder::Bert(encoder) = &mut net.encoder else {
        unreachable!()
    };
    write(&trainer.gradients_as_weights(), encoder);
    let mut host = values(&net);
    // The token-type table's rows after the first are not used: no gradient.
    let h = trainer.output_dim();
    host[2][h..].fill(0.0);
    [(burn_loss, burn.1), (out.loss, host)]
}

fn check_gradients(net_config: SiameseConfig, loss: LossConfig, what: &str) {
    let [(burn_loss, burn), (host_loss, host)] = gradients(&net_config, loss);
    assert!(
        (host_loss - burn_loss).abs() <= 1e-5 * burn_loss.abs().max(1e-3),
        "{what}: loss {host_loss} vs {burn_loss}"
    );
    assert_eq!(host.len(), burn.len(), "{what}: parameter tensors");
    let largest = burn.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(largest > 0.0, "{what}: no gradient");
    for (i, (h, b)) in host.iter().zip(&burn).enumerate() {
        assert_eq!(h.len(), b.len(), "{what}: gradient {i} length");
        let scale = b.iter().fold(largest * 1e-2, |m, v| m.max(v.abs()));
        for (j, (g, w)) in h.iter().zip(b).enumerate() {
            assert!(
                (g - w).abs() <= 2e-4 * scale,
                "{what}: gradient {i}[{j}]: {g} vs {w} (scale {scale})"
            );
        }
    }
}

#[test]
fn gradients_equal_burns_for_each_pooling_and_loss() {
    use BertActivation::{Gelu, GeluTanh};
    use BertPooling::{Cls, Max, Mean};
    let cases = [
        (
            Mean,
            true,
            Gelu,
            Distance::Cosine,
            "mean, normalised, cosine-MSE",
        ),
        (
            Mean,
            false,
            GeluTanh,
            Distance::Euclidean,
            "mean, tanh GELU, contrastive",
        ),
        (Cls, false, Gelu, Distance::Cosine, "CLS, cosine-MSE"),
        (
            Max,
            true,
            Gelu,
            Distance::Euclidean,
            "max, normalised, contrastive",
        ),
    ];
    for (pooling, normalize, activation, distance, what) in cases {
        let loss = loss_config(distance);
        check_gradients(config(pooling, normalize, activation, distance), loss, what);
    }
    let cosent = LossConfig {
        kind: LossKind::Cosent,
        ..LossConfig::default()
    };
    let net_config = config(Mean, true, Gelu, Distance::Cosine);
    check_gradients(net_config, cosent, "mean, normalised, CoSENT");
}

#[test]
fn adam_epochs_equal_burns() {
    let net_config = config(
        BertPooling::Mean,
        true,
        BertActivation::Gelu,
        Distance::Cosine,
    );
    let pairs = 20;
    let a = Matrix::new(pairs, WIDTH, rows(pairs, 1)).unwrap();
    let b = Matrix::new(pairs, WIDTH, rows(pairs, 2)).unwrap();
    let y: Vec<f32> = (0..pairs).map(|i| (i % 5) as f32 / 4.0).collect();
    let data = PairData::Dense(PairsRef {
        a: &a,
        b: &b,
        labels: &y,
    });
    let optimizer = OptimizerConfig::Adam {
        lr: 1e-2,
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
    };
    let model = ModelConfig {
        network: net_config.clone(),
        loss: loss_config(Distance::Cosine),
        optimizer: optimizer.clone(),
        seed: 3,
    };
    let options = FitOptions {
        seed: 9,
        ..FitOptions::new(2, 8)
    };
    let hooks = || train::Hooks {
        config: &model,
        callbacks: Vec::new(),
        resume: None,
        host: false,
    };
    let device = Device::flex().autodiff();
    let init = || net_config.init(&device, 3).unwrap();
    let start = values(&init());
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
    let mut trainer = HostTrainer::new(&init(), None, hyper(&optimizer, model.loss)).unwrap();
    assert!(matches!(trainer, HostTrainer::Bert(_)));
    let host = train::fit_fused(init(), &mut trainer, data, &options, hooks()).unwrap();
    let (lb, lh) = (burn.history.loss(), host.history.loss());
    for (h, b) in lh.iter().zip(&lb) {
        assert!(
            (h - b).abs() <= 1e-4 * b.abs().max(1e-3),
            "losses {lh:?} vs {lb:?}"
        );
    }
    let (wb, wh) = (values(&burn.network), values(&host.network));
    let mut moved = 0.0f32;
    for (i, ((h, b), s)) in wh.iter().zip(&wb).zip(&start).enumerate() {
        for (j, ((g, w), s)) in h.iter().zip(b).zip(s).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(0.1),
                "weight {i}[{j}]: {g} vs {w}"
            );
            moved = moved.max((w - s).abs());
        }
    }
    assert!(moved > 1e-3, "the steps did not move the weights");
}

/// The loss of the batch the trainer last saw, at its current weights and the same masks.
fn loss_again(trainer: &mut BertTrainer, labels: &[f32]) -> f32 {
    pass::forward(&trainer.bert, &trainer.masks, &mut trainer.cache, 1);
    let h = trainer.output_dim();
    let mut gemb = vec![0.0; labels.len() * 2 * h];
    let (loss, _) = trainer.loss.backward(
        &trainer.cache.emb,
        h,
        HostBatch::Pairs(labels),
        None,
        &mut gemb,
        None,
    );
    loss
}

/// A parameter's name, its analytic gradient and where the weight is.
type Probe = (&'static str, f32, fn(&mut BertTrainer) -> &mut f32);

#[test]
fn dropout_gradients_match_finite_differences() {
    let mut net_config = config(
        BertPooling::Mean,
        true,
        BertActivation::Gelu,
        Distance::Cosine,
    );
    if let EncoderConfig::Bert(c) = &mut net_config.encoder {
        c.dropout = 0.2;
    }
    let net = net_config.init(&Device::flex().autodiff(), 3).unwrap();
    let loss = loss_config(Distance::Cosine);
    let mut trainer = BertTrainer::new(&net, None, hyper(&OptimizerConfig::adam(), loss)).unwrap();
    let n = 6;
    let x = rows(2 * n, 7);
    let labels: Vec<f32> = (0..n).map(|i| 0.1 + 0.15 * i as f32).collect();
    trainer
        .gradients(HostBatch::Pairs(&labels), &|r, row| {
            row.copy_from_slice(&x[r * WIDTH..(r + 1) * WIDTH])
        })
        .unwrap();
    assert!(trainer.masks.emb.contains(&0.0), "dropout drew no zero");
    let g = trainer.gradients_as_weights();
    // Parameters of each kind: (gradient, a handle to the weight).
    let probes: [Probe; 6] = [
        ("word", g.word[3 * g.h + 2], |t| {
            &mut t.bert.word[3 * t.bert.h + 2]
        }),
        ("qkv", g.layers[0].qkv[5], |t| &mut t.bert.layers[0].qkv[5]),
        ("qkv key", g.layers[1].qkv[g.h + 1], |t| {
            &mut t.bert.layers[1].qkv[t.bert.h + 1]
        }),
        ("w1", g.layers[0].w1[7], |t| &mut t.bert.layers[0].w1[7]),
        ("norm2 γ", g.layers[1].norm2[0][4], |t| {
            &mut t.bert.layers[1].norm2[0][4]
        }),
        ("embedding β", g.norm[1][0], |t| &mut t.bert.norm[1][0]),
    ];
    for (what, grad, at) in probes {
        let eps = 1e-2f32;
        let w0 = *at(&mut trainer);
        *at(&mut trainer) = w0 + eps;
        let up = loss_again(&mut trainer, &labels);
        *at(&mut trainer) = w0 - eps;
        let down = loss_again(&mut trainer, &labels);
        *at(&mut trainer) = w0;
        let numeric = (up - down) / (2.0 * eps);
        assert!(
            (numeric - grad).abs() <= 0.02 * grad.abs() + 2e-4,
            "{what}: analytic {grad} vs finite difference {numeric}"
        );
    }
}

#[test]
fn bad_token_ids_are_named() {
    let net_config = config(
        BertPooling::Mean,
        true,
        BertActivation::Gelu,
        Distance::Cosine,
    );
    let net = net_config.init(&Device::flex().autodiff(), 3).unwrap();
    let loss = loss_config(Distance::Cosine);
    let mut trainer = BertTrainer::new(&net, None, hyper(&OptimizerConfig::adam(), loss)).unwrap();
    let err = trainer
        .step(HostBatch::Pairs(&[0.5]), &|r, row| {
            row.fill(0.0);
            row[0] = 2.0;
            row[1] = if r == 1 { (VOCAB + 5) as f32 } else { 3.0 };
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("training batch") && err.contains("row 1"),
        "{err}"
    );
}
