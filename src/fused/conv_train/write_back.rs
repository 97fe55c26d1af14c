//! Writing a [`ConvTrainer`]'s host weights back into the burn modules.

use burn::module::{Param, RunningState};
use burn::tensor::{Tensor, TensorData};

use super::{ConvTrainer, Layout, Weights};
use crate::encoder::Encoder;
use crate::encoder::conv::ConvModule;
use crate::fused::mlp::trainable;
use crate::siamese::SiameseNetwork;

/// Values of one `[h, w, c]`-ordered image in burn's `[c, h, w]` order, `n` values each.
fn hwc_to_chw(src: &[f32], [h, w, c]: [usize; 3], n: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; src.len()];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let ours = ((y * w + x) * c + ch) * n;
                let theirs = ((ch * h + y) * w + x) * n;
                out[theirs..theirs + n].copy_from_slice(&src[ours..ours + n]);
            }
        }
    }
    out
}

impl Weights {
    /// A kernel-shaped array (the kernel or its gradient) in burn's layout and shape.
    pub(super) fn to_burn(&self, values: &[f32]) -> Vec<f32> {
        match self.layout {
            Layout::Conv { c_in, k } => {
                let f = self.fan_out;
                let mut burn_w = vec![0.0f32; values.len()];
                for o in 0..f {
                    for ci in 0..c_in {
                        for i in 0..k {
                            for j in 0..k {
                                burn_w[o * c_in * k * k + (ci * k + i) * k + j] =
                                    values[((i * k + j) * c_in + ci) * f + o];
                            }
                        }
                    }
                }
                burn_w
            }
            Layout::Dense { chw: Some(hwc) } => hwc_to_chw(values, hwc, self.fan_out),
            Layout::Norm { chw: Some(hwc) } => hwc_to_chw(values, hwc, 1),
            _ => values.to_vec(),
        }
    }

    /// A bias-shaped array in burn's order.
    pub(super) fn bias_to_burn(&self, values: &[f32]) -> Vec<f32> {
        match self.layout {
            Layout::Norm { chw: Some(hwc) } => hwc_to_chw(values, hwc, 1),
            _ => values.to_vec(),
        }
    }
}

fn tensor1(values: Vec<f32>, device: &burn::tensor::Device) -> Tensor<1> {
    let n = values.len();
    Tensor::<1>::from_data(TensorData::new(values, [n]), device)
}

impl ConvTrainer {
    /// Writes the current weights (and batch-norm running statistics) into `network`'s burn
    /// modules (same parameter ids).
    pub fn write_back(&self, network: &mut SiameseNetwork) {
        let Encoder::Conv(encoder) = &mut network.encoder else {
            return;
        };
        let mut weights = self.weights.iter();
        let mut norms = self.norms.iter();
        for module in &mut encoder.modules {
            let (bias, host) = match module {
                ConvModule::Conv(m) => {
                    let Some(host) = weights.next() else { return };
                    let Layout::Conv { c_in, k } = host.layout else {
                        return;
                    };
                    let f = host.fan_out;
                    let device = m.weight.val().device();
                    let t = Tensor::<4>::from_data(
                        TensorData::new(host.to_burn(&host.kernel), [f, c_in, k, k]),
                        &device,
                    );
                    m.weight = Param::initialized(m.weight.id, trainable(t));
                    (m.bias.as_mut(), host)
                }
                ConvModule::Dense(m) => {
                    let Some(host) = weights.next() else { return };
                    let device = m.weight.val().device();
                    let t = Tensor::<2>::from_data(
                        TensorData::new(host.to_burn(&host.kernel), [host.fan_in, host.fan_out]),
                        &device,
                    );
                    m.weight = Param::initialized(m.weight.id, trainable(t));
                    (m.bias.as_mut(), host)
                }
                ConvModule::Norm(m) => {
                    let (Some(host), Some(state)) = (weights.next(), norms.next()) else {
                        return;
                    };
                    let device = m.gamma.val().device();
                    let gamma = tensor1(host.to_burn(&host.kernel), &device);
                    let beta = tensor1(host.bias_to_burn(&host.bias), &device);
                    m.gamma = Param::initialized(m.gamma.id, trainable(gamma));
                    m.beta = Param::initialized(m.beta.id, trainable(beta));
                    let running = |v: &[f32]| tensor1(host.bias_to_burn(v), &device);
                    m.running_mean = RunningState::new(running(&state.mean));
                    m.running_var = RunningState::new(running(&state.var));
                    continue;
                }
                _ => continue,
            };
            if let Some(bias) = bias {
                let device = bias.val().device();
                let t = tensor1(host.bias.clone(), &device);
                *bias = Param::initialized(bias.id, trainable(t));
            }
        }
        if let (Some(h), Some(layer)) = (self.head, network.weighted_l1.as_mut()) {
            let host = &self.weights[h];
            let device = layer.weight.val().device();
            let t = Tensor::<2>::from_data(
                TensorData::new(host.kernel.clone(), [host.fan_in, 1]),
                &device,
            );
            layer.weight = Param::initialized(layer.weight.id, trainable(t));
            if let Some(bias) = layer.bias.as_mut() {
                *bias = Param::initialized(bias.id, trainable(tensor1(host.bias.clone(), &device)));
            }
        }
    }
}
