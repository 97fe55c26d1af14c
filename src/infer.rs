//! Inference without gradients: the head's scores, distances and loss/accuracy of pairs, on
//! the host path of [`crate::fused`] where it covers the network (and the caller allows it),
//! else through burn in batches of [`INFERENCE_BATCH`].

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{PairData, into_tensor, labels_tensor, read_tensor};
use crate::error::{Result, SiameseError};
use crate::fused::{HostEncoder, HostHead};
use crate::loss::LossConfig;
use crate::siamese::SiameseNetwork;

/// Loss and accuracy of a model on labelled pairs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f32,
    /// Fraction of pairs whose prediction (`d < threshold` ⇒ similar) matches the label.
    pub accuracy: f32,
    /// Equal error rate of the distances (`None` unless both labels occur).
    pub eer: Option<f32>,
}

/// Number of pairs per forward pass when predicting or evaluating.
pub const INFERENCE_BATCH: usize = 1024;

/// The head's scores (`[n, 1]`, see [`SiameseNetwork::forward_scores`]) of every pair, on the
/// network's device, without gradients. An indexed store is embedded once; its pairs are then
/// scored from the cached embeddings.
pub fn scores(network: &SiameseNetwork, data: PairData<'_>, host: bool) -> Result<Tensor<2>> {
    let network = network.valid();
    let device = network_device(&network);
    let n = data.len();
    if n == 0 {
        return Err(SiameseError::Empty("no pairs to score".into()));
    }
    if let Some(s) = host.then(|| fused_scores(&network, data)).flatten() {
        return Ok(Tensor::from_data(TensorData::new(s?, [n, 1]), &device));
    }
    let mut parts = Vec::with_capacity(n.div_ceil(INFERENCE_BATCH));
    match data {
        PairData::Dense(p) => {
            for start in (0..n).step_by(INFERENCE_BATCH) {
                let end = (start + INFERENCE_BATCH).min(n);
                parts.push(network.forward_scores(
                    into_tensor(p.a.slice_rows(start, end), &device),
                    into_tensor(p.b.slice_rows(start, end), &device),
                ));
            }
        }
        PairData::Indexed { samples, pairs } => {
            let m = samples.rows();
            let mut emb = Vec::with_capacity(m.div_ceil(INFERENCE_BATCH));
            for start in (0..m).step_by(INFERENCE_BATCH) {
                let end = (start + INFERENCE_BATCH).min(m);
                emb.push(network.embed(into_tensor(samples.slice_rows(start, end), &device)));
            }
            let emb = Tensor::cat(emb, 0);
            let index = |ids: Vec<i64>| {
                let len = ids.len();
                Tensor::<1, Int>::from_data(TensorData::new(ids, [len]), &device)
            };
            for chunk in pairs.chunks(INFERENCE_BATCH) {
                let ea = emb
                    .clone()
                    .select(0, index(chunk.iter().map(|p| p.i as i64).collect()));
                let eb = emb
                    .clone()
                    .select(0, index(chunk.iter().map(|p| p.j as i64).collect()));
                parts.push(network.scores_from_embeddings(ea, eb));
            }
        }
    }
    Ok(Tensor::cat(parts, 0))
}

/// The head's scores computed by the fused MLP path, when it applies (see [`crate::fused`]).
/// Dense inputs are checked for NaN and ±∞ block by block.
fn fused_scores(network: &SiameseNetwork, data: PairData<'_>) -> Option<Result<Vec<f32>>> {
    let encoder = HostEncoder::for_inference(network)?;
    let head = HostHead::from_network(network)?;
    Some(fused_pair_scores(&encoder, &head, data))
}

/// The head's scores of every pair from host weights (see [`crate::fused`]).
pub fn fused_pair_scores(
    encoder: &HostEncoder,
    head: &HostHead,
    data: PairData<'_>,
) -> Result<Vec<f32>> {
    match data {
        PairData::Dense(p) => encoder.pair_scores(p.a, p.b, head),
        PairData::Indexed { samples, pairs } => {
            let emb = encoder.embed(samples, "samples")?;
            Ok(pairs
                .par_iter()
                .map(|p| head.score(emb.row(p.i), emb.row(p.j)))
                .collect())
        }
    }
}

/// Distances from host scores of the network's head: the scores themselves for a distance
/// head, `σ(−z)` (burn's sigmoid) for the weighted-L1 head's logits.
pub fn distances_from_scores(network: &SiameseNetwork, scores: Vec<f32>) -> Result<Vec<f32>> {
    if network.weighted_l1.is_none() {
        return Ok(scores);
    }
    let n = scores.len();
    let device = network_device(&network.valid());
    let s = Tensor::from_data(TensorData::new(scores, [n, 1]), &device);
    read_tensor(network.distance_from_scores(s))
}

/// Distances of every pair (`d < threshold` ⇒ similar), without gradients; on the host path
/// when `host` is true and it covers the network.
pub fn distances(network: &SiameseNetwork, data: PairData<'_>, host: bool) -> Result<Vec<f32>> {
    read_tensor(network.distance_from_scores(scores(network, data, host)?))
}

/// Loss and accuracy on labelled pairs, without gradients.
pub fn evaluate(
    network: &SiameseNetwork,
    loss: &LossConfig,
    data: PairData<'_>,
    threshold: f32,
    host: bool,
) -> Result<Evaluation> {
    let s = scores(network, data, host)?;
    let device = s.device();
    let labels = data.labels();
    let y = labels_tensor(&labels, &device);
    let l: f32 = loss.forward(s.clone(), y).into_scalar();
    let d = read_tensor(network.distance_from_scores(s))?;
    Ok(Evaluation {
        loss: l,
        accuracy: crate::data::pair_accuracy(&d, &labels, threshold),
        eer: crate::eval::roc(&d, &labels)
            .ok()
            .map(|r| r.eer().rate as f32),
    })
}

/// The device the network's parameters live on.
pub fn network_device(network: &SiameseNetwork) -> Device {
    network
        .devices()
        .into_iter()
        .next()
        .unwrap_or_else(Device::flex)
}
