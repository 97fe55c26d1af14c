//! Tests of the convolutional encoder: presets, shape checks, initialisation, the forward pass
//! and the im2col first layer against burn's convolution.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::conv;
use super::im2col::conv_as_matmul;
use super::layers::glorot_conv;
use super::{ConvEncoderConfig, ConvLayerConfig as L, ConvModule, LayerShape, Padding};
use crate::encoder::Activation;

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
