//! The reference system end to end: weight sharing, gradients, learning, determinism,
//! save/load, bad input.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use siamese::encoder::{Encoder, MlpEncoder, dense_from_values};
use siamese::prelude::*;
use siamese::siamese::SiameseNetwork;
use siamese::synthetic::{ClassTask, random_pairs};

fn quiet(epochs: usize, batch: usize) -> FitOptions {
    FitOptions {
        verbose: false,
        ..FitOptions::new(epochs, batch)
    }
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn update_through_branch_a_changes_branch_b_identically() {
    let device = Device::flex().autodiff();
    let net = SiameseConfig::reference(6).init(&device, 3).unwrap();
    let z = Tensor::<2>::from_data(
        TensorData::new((0..12).map(|v| v as f32 / 12.0).collect::<Vec<_>>(), [2, 6]),
        &device,
    );
    let (ea0, eb0) = net
        .valid()
        .forward_embeddings(z.clone().inner(), z.clone().inner());
    let (ea0, eb0) = (values(ea0), values(eb0));
    assert_eq!(ea0, eb0);

    // One RMSprop step on a loss that only sees branch A's embedding.
    let x = Tensor::<2>::ones([4, 6], &device);
    let (ea, _eb) = net.forward_embeddings(x, Tensor::zeros([4, 6], &device));
    let grads = GradientsParams::from_grads(ea.sum().backward(), &net);
    let mut optim = OptimizerConfig::rmsprop().init().unwrap();
    let net = optim.step(0.01, net, grads);

    let (ea1, eb1) = net.valid().forward_embeddings(z.clone().inner(), z.inner());
    let (ea1, eb1) = (values(ea1), values(eb1));
    assert_ne!(ea1, ea0, "the step changed branch A");
    assert_eq!(ea1, eb1, "branch B sees exactly the same weights");
}

/// A tiny tanh network with explicit weights, so finite differences can perturb them.
fn tiny(w1: &[f32], b1: &[f32], w2: &[f32], b2: &[f32], device: &Device) -> SiameseNetwork {
    let layers = vec![
        dense_from_values(3, 4, w1.to_vec(), b1.to_vec(), device),
        dense_from_values(4, 2, w2.to_vec(), b2.to_vec(), device),
    ];
    SiameseNetwork::new(
        Encoder::Mlp(MlpEncoder::from_layers(layers, Activation::Tanh, true)),
        Distance::Euclidean,
    )
}

#[test]
fn whole_model_gradient_matches_finite_differences() {
    let device = Device::flex().autodiff();
    let w1: Vec<f32> = (0..12)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0)
        .collect();
    let b1 = vec![0.1, -0.2, 0.05, 0.0];
    let w2: Vec<f32> = (0..8).map(|i| ((i * 5 % 7) as f32 - 3.0) / 5.0).collect();
    let b2 = vec![0.0, 0.3];
    let a = [[0.2f32, -0.5, 0.9], [1.0, 0.3, -0.2], [0.0, 0.4, 0.4]];
    let b = [[-0.3f32, 0.1, 0.6], [0.9, 0.2, -0.1], [0.8, -0.6, 0.1]];
    let y = [[1.0f32], [0.0], [0.0]];
    let loss = ContrastiveLoss::new(1.0);
    let eval = |w1: &[f32], w2: &[f32]| -> f64 {
        let dev = Device::flex();
        let net = tiny(w1, &b1, w2, &b2, &dev);
        let d = net.forward(Tensor::from_floats(a, &dev), Tensor::from_floats(b, &dev));
        let l: f32 = loss.forward(d, Tensor::from_floats(y, &dev)).into_scalar();
        l as f64
    };
    let net = tiny(&w1, &b1, &w2, &b2, &device);
    let d = net.forward(
        Tensor::from_floats(a, &device),
        Tensor::from_floats(b, &device),
    );
    let grads = loss.forward(d, Tensor::from_floats(y, &device)).backward();
    let Encoder::Mlp(mlp) = &net.encoder else {
        unreachable!("tiny() builds an MLP")
    };
    let g1 = mlp.layers[0]
        .weight
        .val()
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let g2 = mlp.layers[1]
        .weight
        .val()
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let h = 1e-2f32;
    for (k, g) in g1.iter().enumerate() {
        let (mut p, mut m) = (w1.clone(), w1.clone());
        p[k] += h;
        m[k] -= h;
        let fd = (eval(&p, &w2) - eval(&m, &w2)) / (2.0 * h as f64);
        assert!(
            (*g as f64 - fd).abs() < 2e-3,
            "layer 0 weight {k}: autodiff {g}, fd {fd}"
        );
    }
    for (k, g) in g2.iter().enumerate() {
        let (mut p, mut m) = (w2.clone(), w2.clone());
        p[k] += h;
        m[k] -= h;
        let fd = (eval(&w1, &p) - eval(&w1, &m)) / (2.0 * h as f64);
        assert!(
            (*g as f64 - fd).abs() < 2e-3,
            "layer 1 weight {k}: autodiff {g}, fd {fd}"
        );
    }
    // The gradients are not all zero, so the check above is not vacuous.
    assert!(g1.iter().chain(&g2).any(|g| g.abs() > 1e-3));
}

#[test]
fn learns_hidden_classes_on_held_out_pairs() {
    let task = ClassTask::new(10, 100, 0.5, 11);
    let (a, b, y) = task.pairs(2000, 1);
    let (ta, tb, ty) = task.pairs(1000, 2);
    let mut model = Siamese::reference(100, 5).unwrap();
    let before = model.evaluate(&ta, &tb, &ty, 0.5).unwrap();
    assert!(
        (0.4..=0.6).contains(&before.accuracy),
        "untrained accuracy {}",
        before.accuracy
    );
    let history = model.fit(&a, &b, &y, &quiet(20, 32)).unwrap();
    let after = model.evaluate(&ta, &tb, &ty, 0.5).unwrap();
    assert!(
        after.accuracy >= 0.99,
        "held-out accuracy {} (history {:?})",
        after.accuracy,
        history.loss()
    );
    assert!(after.loss < before.loss / 5.0);
}

#[test]
fn same_seed_same_training() {
    let (a, b, y) = random_pairs(100, 20, 4);
    let run = || {
        let mut model = Siamese::new(
            ModelConfig {
                seed: 9,
                network: SiameseConfig {
                    encoder: EncoderConfig::Mlp(MlpEncoderConfig {
                        dropout: 0.2,
                        ..MlpEncoderConfig::reference(20)
                    }),
                    distance: Distance::Euclidean,
                    head: Head::Distance,
                },
                ..ModelConfig::reference(20)
            },
            &Device::flex(),
        )
        .unwrap();
        let h = model
            .fit(
                &a,
                &b,
                &y,
                &FitOptions {
                    seed: 3,
                    ..quiet(3, 16)
                },
            )
            .unwrap();
        (h.loss(), model.predict(&a, &b).unwrap())
    };
    assert_eq!(run(), run());
}

#[test]
fn validation_split_and_data_are_reported() {
    let task = ClassTask::new(4, 10, 0.3, 1);
    let (a, b, y) = task.pairs(200, 1);
    let mut model = Siamese::reference(10, 0).unwrap();
    let h = model
        .fit(
            &a,
            &b,
            &y,
            &FitOptions {
                validation: Validation::Split(0.25),
                ..quiet(2, 32)
            },
        )
        .unwrap();
    assert_eq!(h.val_loss().len(), 2);
    let (va, vb, vy) = task.pairs(50, 2);
    let val = Pairs {
        a: va,
        b: vb,
        labels: vy,
    };
    let h = model
        .fit(
            &a,
            &b,
            &y,
            &FitOptions {
                validation: Validation::Data(val),
                ..quiet(1, 32)
            },
        )
        .unwrap();
    assert!(h.epochs[0].val_accuracy.is_some());
    let csv = h.to_csv();
    assert!(csv.starts_with("epoch,loss,accuracy,val_loss,val_accuracy,seconds,lr,val_eer\n1,"));
}

#[test]
fn save_load_predict_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, y) = random_pairs(40, 100, 1);
    let mut model = Siamese::reference(100, 2).unwrap();
    model.fit(&a, &b, &y, &quiet(2, 16)).unwrap();
    let path = dir.path().join("model");
    model.save(&path).unwrap();
    // Saving again over an existing model replaces it.
    model.save(&path).unwrap();
    let loaded = Siamese::load(&path, &Device::flex()).unwrap();
    assert_eq!(loaded.config(), model.config());
    let before = model.predict(&a, &b).unwrap();
    let after = loaded.predict(&a, &b).unwrap();
    assert_eq!(
        before.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        after.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("model")],
        "no temporary directories left"
    );
}

#[test]
fn corrupt_or_mismatched_model_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model");
    Siamese::reference(100, 0).unwrap().save(&path).unwrap();
    let weights = path.join("model.safetensors");
    let config = path.join("config.json");
    let good_weights = std::fs::read(&weights).unwrap();
    let good_config = std::fs::read_to_string(&config).unwrap();

    std::fs::write(&weights, b"not a safetensors file").unwrap();
    let err = Siamese::load(&path, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    std::fs::write(&weights, &good_weights[..good_weights.len() / 2]).unwrap();
    let err = Siamese::load(&path, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    // Weights of a 100-input model under a config that says 50 inputs.
    std::fs::write(&weights, &good_weights).unwrap();
    std::fs::write(
        &config,
        good_config.replace("\"input_dim\": 100", "\"input_dim\": 50"),
    )
    .unwrap();
    let err = Siamese::load(&path, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("[50, 128]"),
        "{err}"
    );

    // A config with an extra layer: the weights lack its tensors.
    std::fs::write(
        &config,
        good_config.replace("128,\n", "128,\n        64,\n"),
    )
    .unwrap();
    let err = Siamese::load(&path, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    std::fs::write(&config, "{ not json").unwrap();
    let err = Siamese::load(&path, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json"), "{err}");

    std::fs::write(&config, good_config.replace("\"seed\"", "\"sed\"")).unwrap();
    let err = Siamese::load(&path, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json") && err.contains("sed"), "{err}");

    let err = Siamese::load(dir.path().join("missing"), &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn bad_inputs_are_clear_errors() {
    let mut model = Siamese::reference(10, 0).unwrap();
    let a = Matrix::zeros(4, 10);
    let err = model
        .fit(&a, &Matrix::zeros(3, 10), &[1.0; 4], &quiet(1, 2))
        .unwrap_err();
    assert!(err.to_string().contains("input b"), "{err}");
    let err = model
        .fit(&a, &a, &[1.0, 0.0, 2.0, 1.0], &quiet(1, 2))
        .unwrap_err();
    assert!(err.to_string().contains("label 2 is 2"), "{err}");
    let err = model
        .predict(&Matrix::zeros(2, 7), &Matrix::zeros(2, 7))
        .unwrap_err();
    assert!(err.to_string().contains("10 features"), "{err}");
    let err = model.fit(&a, &a, &[1.0; 4], &quiet(0, 2)).unwrap_err();
    assert!(err.to_string().contains("epochs"), "{err}");
    let mut nan = vec![0.0; 40];
    nan[13] = f32::INFINITY;
    let bad = Matrix::new(4, 10, nan).unwrap();
    let err = model.predict(&a, &bad).unwrap_err();
    assert!(
        err.to_string().contains("input b") && err.to_string().contains("row 1, column 3"),
        "{err}"
    );
}

#[test]
fn summary_is_keras_like() {
    let s = Siamese::reference(100, 0).unwrap().summary();
    assert!(s.contains("Total params: 45,952"), "{s}");
    assert!(s.contains("(None, 128)") && s.contains("(None, 1)"), "{s}");
    assert_eq!(s.matches("Dense, relu").count(), 3, "{s}");
}

#[test]
fn reference_network_params_count() {
    let net = SiameseConfig::reference(100)
        .init(&Device::flex(), 0)
        .unwrap();
    assert_eq!(net.num_params(), 45_952);
}

#[test]
fn weighted_l1_head_with_bce_learns() {
    let task = ClassTask::new(10, 20, 0.5, 3);
    let (a, b, y) = task.pairs(2000, 1);
    let (ta, tb, ty) = task.pairs(500, 2);
    let config = ModelConfig {
        network: SiameseConfig {
            head: Head::WeightedL1,
            ..SiameseConfig::reference(20)
        },
        loss: LossConfig::binary_cross_entropy(),
        ..ModelConfig::reference(20)
    };
    let mut model = Siamese::new(config, &Device::flex()).unwrap();
    let h = model.fit(&a, &b, &y, &quiet(10, 32)).unwrap();
    assert!(h.loss()[9] < h.loss()[0] / 4.0, "{:?}", h.loss());
    let d = model.predict(&ta, &tb).unwrap();
    // d = 1 − p(same) lies in (0, 1); d < 0.5 means "same".
    assert!(d.iter().all(|&v| (0.0..=1.0).contains(&v)));
    // Training accuracy reaches 1.0 here; held-out pairs of fresh samples score lower (the
    // head overfits this small task), but far above chance.
    let e = model.evaluate(&ta, &tb, &ty, 0.5).unwrap();
    assert!(e.accuracy >= 0.9, "held-out accuracy {}", e.accuracy);
}

#[test]
fn head_and_loss_must_match() {
    let mut c = ModelConfig::reference(4);
    c.loss = LossConfig::binary_cross_entropy();
    let err = Siamese::new(c, &Device::flex()).unwrap_err().to_string();
    assert!(
        err.contains("loss.type") && err.contains("weighted-l1"),
        "{err}"
    );
    let mut c = ModelConfig::reference(4);
    c.network.head = Head::WeightedL1;
    let err = Siamese::new(c, &Device::flex()).unwrap_err().to_string();
    assert!(err.contains("model.head"), "{err}");
}

#[test]
fn index_pairs_train_exactly_like_dense_pairs() {
    use siamese::data::pairs::{IndexPair, materialize};
    let task = ClassTask::new(3, 12, 0.3, 5);
    let (samples, _, _) = task.pairs(30, 1);
    let pairs: Vec<IndexPair> = (0..60)
        .map(|k| IndexPair {
            i: k % 30,
            j: (k * 7 + 3) % 30,
            label: (k % 2) as f32,
        })
        .collect();
    let dense = materialize(&samples, &pairs);
    let run = |data: PairData<'_>| {
        let mut model = Siamese::reference(12, 4).unwrap();
        let h = model.fit_pairs(data, &quiet(3, 8)).unwrap();
        (h.loss(), model.predict_pairs(data).unwrap())
    };
    let indexed = run(PairData::Indexed {
        samples: &samples,
        pairs: &pairs,
    });
    let dense = run(PairData::Dense(dense.as_ref()));
    assert_eq!(indexed, dense);
    let bad = [IndexPair {
        i: 0,
        j: 30,
        label: 1.0,
    }];
    let mut model = Siamese::reference(12, 4).unwrap();
    let err = model
        .fit_pairs(
            PairData::Indexed {
                samples: &samples,
                pairs: &bad,
            },
            &quiet(1, 8),
        )
        .unwrap_err();
    assert!(err.to_string().contains("pair 0"), "{err}");
}

#[test]
fn triplet_loss_trains_from_index_pairs() {
    use siamese::data::pairs::random_pairs as index_pairs;
    let task = ClassTask::new(8, 20, 0.5, 21);
    let (samples, classes) = task.samples(400, 1);
    let pairs = index_pairs(&classes, 3000, 0.5, 2).unwrap();
    let config = ModelConfig {
        loss: LossConfig::triplet(1.0),
        ..ModelConfig::reference(20)
    };
    let mut model = Siamese::new(config, &Device::flex()).unwrap();
    let data = PairData::Indexed {
        samples: &samples,
        pairs: &pairs,
    };
    let h = model.fit_pairs(data, &quiet(8, 32)).unwrap();
    let loss = h.loss();
    assert!(loss[7] < loss[0] / 3.0, "{loss:?}");
    // Held-out pairs of fresh samples: a triplet-trained embedding ranks same-class pairs
    // closer than different-class ones.
    let (ta, tb, ty) = task.pairs(600, 9);
    let d = model.predict(&ta, &tb).unwrap();
    let auc = siamese::eval::roc(&d, &ty).unwrap().auc();
    assert!(auc > 0.97, "held-out AUC {auc}");
    // Dense pairs carry no sample identity, so no triplet can be formed.
    let (a, b, y) = task.pairs(50, 3);
    let err = model.fit(&a, &b, &y, &quiet(1, 8)).unwrap_err().to_string();
    assert!(
        err.contains("loss.type") && err.contains("triplet"),
        "{err}"
    );
}

#[test]
fn augmentation_is_seeded() {
    use siamese::data::augment::AugmentConfig;
    use siamese::train::Augment;
    let task = ClassTask::new(3, 64, 0.3, 5);
    let (a, b, y) = task.pairs(64, 1);
    let augment = Augment {
        config: AugmentConfig {
            rotation: 10.0,
            shift: 0.1,
            scale: 0.1,
            shear: 5.0,
            fill: 0.0,
            ..AugmentConfig::default()
        },
        width: 8,
        height: 8,
    };
    let run = |augment: Option<Augment>| {
        let mut model = Siamese::reference(64, 4).unwrap();
        model
            .fit(
                &a,
                &b,
                &y,
                &FitOptions {
                    augment,
                    ..quiet(2, 16)
                },
            )
            .unwrap()
            .loss()
    };
    let with = run(Some(augment.clone()));
    assert_eq!(with, run(Some(augment)));
    assert_ne!(with, run(None));
}

#[test]
fn conv_encoder_learns_on_small_images() {
    use siamese::encoder::conv::{ConvEncoderConfig, ConvLayerConfig, Padding};
    let task = ClassTask::new(5, 64, 0.3, 9);
    let (a, b, y) = task.pairs(1000, 1);
    let (ta, tb, ty) = task.pairs(300, 2);
    let encoder = ConvEncoderConfig {
        width: 8,
        height: 8,
        channels: 1,
        layers: vec![
            ConvLayerConfig::Conv2d {
                filters: 8,
                kernel: 3,
                stride: 1,
                padding: Padding::Same,
                activation: Activation::Relu,
            },
            ConvLayerConfig::MaxPool2d {
                size: 2,
                stride: None,
            },
            ConvLayerConfig::Flatten,
            ConvLayerConfig::Dropout { rate: 0.1 },
            ConvLayerConfig::Dense {
                units: 32,
                activation: Activation::Linear,
            },
        ],
    };
    let config = ModelConfig {
        network: SiameseConfig {
            encoder: EncoderConfig::Conv(encoder),
            distance: Distance::Euclidean,
            head: Head::Distance,
        },
        ..ModelConfig::reference(64)
    };
    let mut model = Siamese::new(config, &Device::flex()).unwrap();
    assert!(
        model.summary().contains("Conv2D 8@3×3"),
        "{}",
        model.summary()
    );
    let h = model.fit(&a, &b, &y, &quiet(8, 32)).unwrap();
    let e = model.evaluate(&ta, &tb, &ty, 0.5).unwrap();
    let d = model.predict(&ta, &tb).unwrap();
    assert!(
        e.accuracy >= 0.9,
        "held-out accuracy {} history {:?} d {:?}",
        e.accuracy,
        h.epochs,
        &d[..6]
    );
}
