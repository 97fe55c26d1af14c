//! Losses for pairs of embeddings.
//!
//! The reference is the contrastive loss of Hadsell, Chopra & LeCun (2006) with the Keras
//! convention **label 1 = similar, 0 = dissimilar**:
//!
//! ```text
//! L = mean( y·d² + (1 − y)·max(0, margin − d)² )        d, y: [batch, 1]
//! ```
//!
//! Similar pairs are pulled together (`d² → 0`); dissimilar pairs are pushed until they are at
//! least `margin` apart, after which they cost nothing.
//!
//! ```
//! use siamese::loss::ContrastiveLoss;
//! use siamese::burn::tensor::{Device, Tensor};
//!
//! let device = Device::flex();
//! let d = Tensor::<2>::from_floats([[0.5], [0.25]], &device);
//! let y = Tensor::<2>::from_floats([[1.0], [0.0]], &device);
//! let loss: f32 = ContrastiveLoss::new(1.0).forward(d, y).into_scalar();
//! assert!((loss - (0.25 + 0.5625) / 2.0).abs() < 1e-7);
//! ```

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SiameseError};

pub mod mining;

pub use mining::Miner;

/// Contrastive loss with a margin (default 1). Label 1 = similar, 0 = dissimilar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContrastiveLoss {
    /// Distance beyond which dissimilar pairs cost nothing.
    pub margin: f32,
}

impl Default for ContrastiveLoss {
    fn default() -> Self {
        Self { margin: 1.0 }
    }
}

impl ContrastiveLoss {
    /// A contrastive loss with the given margin.
    pub fn new(margin: f32) -> Self {
        Self { margin }
    }

    /// `mean(y·d² + (1 − y)·max(0, margin − d)²)` for `d, y: [batch, 1]`; returns shape `[1]`.
    ///
    /// Labels are not checked here (that would force a device sync per batch); use
    /// [`crate::data::check_labels`] on the host data once, as `fit` does.
    pub fn forward(&self, distance: Tensor<2>, labels: Tensor<2>) -> Tensor<1> {
        let positive = labels.clone() * distance.clone().square();
        let hinge = distance.neg().add_scalar(self.margin).clamp_min(0.0);
        let negative = labels.neg().add_scalar(1.0) * hinge.square();
        (positive + negative).mean()
    }

    /// Checks the margin.
    pub fn validate(&self) -> Result<()> {
        if self.margin > 0.0 && self.margin.is_finite() {
            Ok(())
        } else {
            Err(SiameseError::config(
                "loss.margin",
                format!("must be a positive number, got {}", self.margin),
            ))
        }
    }
}

/// Binary cross-entropy on logits `z` (Koch et al.'s head, `p = σ(z)` = P(similar)):
///
/// ```text
/// L = mean( max(z, 0) − z·y + log(1 + e^−|z|) )      (= −y·log p − (1 − y)·log(1 − p))
/// ```
pub fn binary_cross_entropy_with_logits(logits: Tensor<2>, labels: Tensor<2>) -> Tensor<1> {
    let softplus = logits.clone().abs().neg().exp().add_scalar(1.0).log();
    (logits.clone().clamp_min(0.0) - logits * labels + softplus).mean()
}

/// Triplet margin loss (Schroff et al. 2015, in PyTorch's `TripletMarginLoss` form, with
/// plain — not squared — distances):
///
/// ```text
/// L = mean( max(0, d(a, p) − d(a, n) + margin) )        d(a, p), d(a, n): [batch, 1]
/// ```
///
/// An anchor `a` must end up closer to its positive `p` (same class) than to its negative `n`
/// by at least `margin`. The distances come from the network's distance layer.
///
/// ```
/// use siamese::loss::TripletLoss;
/// use siamese::burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let d_ap = Tensor::<2>::from_floats([[0.2], [0.9]], &device);
/// let d_an = Tensor::<2>::from_floats([[1.5], [0.4]], &device);
/// // max(0, 0.2 − 1.5 + 1) = 0 and max(0, 0.9 − 0.4 + 1) = 1.5
/// let loss: f32 = TripletLoss::new(1.0).forward(d_ap, d_an).into_scalar();
/// assert!((loss - 0.75).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TripletLoss {
    /// How much closer the positive must be than the negative.
    pub margin: f32,
}

impl TripletLoss {
    /// A triplet loss with the given margin.
    pub fn new(margin: f32) -> Self {
        Self { margin }
    }

    /// `mean(max(0, d_ap − d_an + margin))` for `d_ap, d_an: [batch, 1]`; returns shape `[1]`.
    pub fn forward(&self, d_ap: Tensor<2>, d_an: Tensor<2>) -> Tensor<1> {
        (d_ap - d_an).add_scalar(self.margin).clamp_min(0.0).mean()
    }
}

/// Which loss trains the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Contrastive loss on the distance (the reference).
    #[default]
    Contrastive,
    /// Binary cross-entropy on the logits of the weighted-L1 head (Koch et al. 2015).
    BinaryCrossEntropy,
    /// Triplet margin loss on (anchor, positive, negative) triplets formed from the training
    /// pairs (see [`crate::train`]); pairs are still scored by the distance.
    Triplet,
    /// Regression of the cosine similarity `s = 1 − d` (cosine distance) on graded labels:
    /// `mean((s − y)²)` (Sentence-BERT's STS objective, labels = gold score scaled to [0, 1]).
    CosineMse,
    /// Regression of `s = exp(−d)` on graded labels, `mean((s − y)²)`: the Manhattan-LSTM
    /// similarity `exp(−‖h₁ − h₂‖₁)` of Mueller & Thyagarajan (2016) with the Manhattan
    /// distance.
    ExpMse,
    /// In-batch multiple-negatives ranking (Henderson et al. 2017; sentence-transformers'
    /// `MultipleNegativesRankingLoss`) for pairs without scores: every similar pair
    /// `(aᵢ, bᵢ)` of a batch is a query `aᵢ` whose answer is `bᵢ` among all the batch's
    /// `b`s, `L = mean over similar i of −log softmax_j(s·cos(aᵢ, bⱼ))ᵢ` with scale
    /// `s` = [`MNRL_SCALE`]; dissimilar pairs only add their `b` as one more wrong answer.
    /// Validation and test pairs are scored with the contrastive loss at the margin (as for
    /// the triplet loss).
    MultipleNegativesRanking,
    /// CoSENT (Su 2022; sentence-transformers' `CoSENTLoss`), a ranking loss over the pairs
    /// of a batch with graded labels: every two pairs with gold `yᵢ > yⱼ` should be ordered
    /// `sᵢ > sⱼ` by the similarity `s = −d` (for the cosine distance, the cosine similarity
    /// up to a constant, which the loss ignores),
    /// `L = log(1 + Σ_{yᵢ > yⱼ} e^{λ(sⱼ − sᵢ)})` with `λ` = [`COSENT_SCALE`] (see [`cosent`]).
    /// Only the order of the scores matters, which is what Spearman's correlation measures.
    Cosent,
}

/// The similarity scale of [`LossKind::MultipleNegativesRanking`] (sentence-transformers'
/// default, 20).
pub const MNRL_SCALE: f32 = 20.0;

/// The scale `λ` of [`LossKind::Cosent`] (sentence-transformers' default, 20).
pub const COSENT_SCALE: f32 = 20.0;

/// The CoSENT loss of a batch of pairs from their distances `d` and graded labels `y`
/// (`[batch, 1]` each; see [`LossKind::Cosent`]), as `log Σ eᶻ` over `z ∈ {0} ∪ {λ(dᵢ − dⱼ) :
/// yᵢ > yⱼ}` shifted by its maximum; `[1]`.
///
/// ```
/// use siamese::burn::tensor::{Device, Tensor};
/// use siamese::loss::{COSENT_SCALE, cosent};
/// let device = Device::flex();
/// // Pair 0 (gold 0.9) is closer than pair 1 (gold 0.1) by 0.5: log(1 + e^{20·(0.2 − 0.7)}).
/// let d = Tensor::<2>::from_floats([[0.2], [0.7]], &device);
/// let y = Tensor::<2>::from_floats([[0.9], [0.1]], &device);
/// let l: f32 = cosent(d, y).into_scalar();
/// assert!((l - (-10.0f32).exp().ln_1p()).abs() < 1e-7);
/// ```
pub fn cosent(d: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
    let [n, _] = d.dims();
    let device = d.device();
    let z = (d.clone().reshape([n, 1]).expand([n, n]) - d.reshape([1, n]).expand([n, n]))
        * COSENT_SCALE;
    let ordered = y
        .clone()
        .reshape([n, 1])
        .expand([n, n])
        .greater(y.reshape([1, n]).expand([n, n]))
        .float();
    // Terms of unordered pairs pushed to e^−∞ = 0; the 1 inside the log as e⁰.
    let z = (z + (ordered - 1.0) * 1e30).reshape([1, n * n]);
    let all = Tensor::cat(vec![Tensor::<2>::zeros([1, 1], &device), z], 1);
    let top = all.clone().max_dim(1).detach();
    (all - top.clone())
        .exp()
        .sum_dim(1)
        .log()
        .add(top)
        .reshape([1])
}

/// [`cosent`] on the host: the loss and `∂L/∂dₖ` for every pair,
/// `∂L/∂dₖ = λ·(Σ_{yₖ > yⱼ} e^{zₖⱼ} − Σ_{yᵢ > yₖ} e^{zᵢₖ}) / (1 + Σ e^z)`.
///
/// ```
/// use siamese::loss::cosent_with_gradients;
/// let (l, g) = cosent_with_gradients(&[0.2, 0.7], &[0.9, 0.1]);
/// let w = (-10.0f32).exp() / (1.0 + (-10.0f32).exp());
/// assert!((l - (-10.0f32).exp().ln_1p()).abs() < 1e-7);
/// assert!((g[0] - 20.0 * w).abs() < 1e-7 && (g[1] + 20.0 * w).abs() < 1e-7);
/// ```
pub fn cosent_with_gradients(d: &[f32], y: &[f32]) -> (f32, Vec<f32>) {
    let n = d.len().min(y.len());
    let lambda = COSENT_SCALE as f64;
    let z = |i: usize, j: usize| lambda * (d[i] as f64 - d[j] as f64);
    let pairs = || {
        (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .filter(|&(i, j)| y[i] > y[j])
    };
    let top = pairs().map(|(i, j)| z(i, j)).fold(0.0f64, f64::max);
    let total = (-top).exp() + pairs().map(|(i, j)| (z(i, j) - top).exp()).sum::<f64>();
    let mut grads = vec![0.0f32; n];
    for (i, j) in pairs() {
        let w = (z(i, j) - top).exp() / total * lambda;
        grads[i] += w as f32;
        grads[j] -= w as f32;
    }
    ((top + total.ln()) as f32, grads)
}

/// The multiple-negatives ranking loss of a batch from the embeddings of its pairs' two
/// sides `a, b: [batch, D]` and their labels (1 = similar; see
/// [`LossKind::MultipleNegativesRanking`]); `None` when the batch has no similar pair.
///
/// ```
/// use siamese::burn::tensor::{Device, Tensor};
/// use siamese::loss::multiple_negatives_ranking;
/// let device = Device::flex();
/// let a = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
/// let b = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
/// // Each row: −log(e²⁰ / (e²⁰ + e⁰)) ≈ 2.06e-9.
/// let l: f32 = multiple_negatives_ranking(a, b, &[1.0, 1.0]).unwrap().into_scalar();
/// assert!(l < 1e-6);
/// ```
pub fn multiple_negatives_ranking(a: Tensor<2>, b: Tensor<2>, labels: &[f32]) -> Option<Tensor<1>> {
    let unit = |t: Tensor<2>| {
        let norm = t.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
        t.div(norm)
    };
    let [n, _] = a.dims();
    let queries: Vec<i64> = (0..n as i64)
        .filter(|&i| labels[i as usize] >= 0.5)
        .collect();
    if queries.is_empty() {
        return None;
    }
    let q = queries.len();
    // The queries' rows of `a`, and each query's answer: the same index among the `b`s.
    let index = Tensor::<1, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(queries, [q]),
        &a.device(),
    );
    let a = unit(a).select(0, index.clone());
    let logits = a.matmul(unit(b).transpose()) * MNRL_SCALE;
    let log_probs = burn::tensor::activation::log_softmax(logits, 1);
    Some(log_probs.gather(1, index.reshape([q, 1])).neg().mean())
}

impl LossKind {
    /// The similarity a model trained with this loss predicts from its distance `d`:
    /// `1 − d` (cosine-mse, CoSENT), `exp(−d)` (exp-mse), and `−d` otherwise (a ranking
    /// only).
    pub fn similarity(&self, d: f32) -> f64 {
        match self {
            Self::CosineMse | Self::Cosent => 1.0 - d as f64,
            Self::ExpMse => (-(d as f64)).exp(),
            _ => -(d as f64),
        }
    }
}

/// The loss of a model config: `type` (default `contrastive`) and the contrastive `margin`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// Which loss.
    #[serde(default, rename = "type")]
    pub kind: LossKind,
    /// Margin of the contrastive or triplet loss.
    #[serde(default = "default_margin")]
    pub margin: f32,
    /// Online mining inside class-labelled batches (see [`mining`]): `batch-hard`,
    /// `batch-all` or `semi-hard` with the triplet loss, `hard-negative` with the contrastive
    /// loss. Training then takes `P × K` batches of samples with their classes
    /// ([`crate::train::FitOptions::sampler`]) instead of pairs or drawn triplets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miner: Option<Miner>,
}

fn default_margin() -> f32 {
    1.0
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            kind: LossKind::Contrastive,
            margin: 1.0,
            miner: None,
        }
    }
}

impl LossConfig {
    /// The contrastive loss with `margin`.
    pub fn contrastive(margin: f32) -> Self {
        Self {
            kind: LossKind::Contrastive,
            margin,
            miner: None,
        }
    }

    /// Binary cross-entropy (for the weighted-L1 head).
    pub fn binary_cross_entropy() -> Self {
        Self {
            kind: LossKind::BinaryCrossEntropy,
            margin: 1.0,
            miner: None,
        }
    }

    /// Checks the margin, and that the miner suits the loss.
    pub fn validate(&self) -> Result<()> {
        ContrastiveLoss::new(self.margin).validate()?;
        match (self.miner, self.kind) {
            (None, _) => Ok(()),
            (Some(m), kind) if m.fits(kind) => Ok(()),
            (Some(m), kind) => Err(SiameseError::config(
                "loss.miner",
                format!(
                    "the {} miner does not go with loss.type = \"{}\": batch-hard, batch-all \
                     and semi-hard mine triplets for \"triplet\", hard-negative mines pairs \
                     for \"contrastive\"",
                    m.name(),
                    serde_json::to_value(kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ),
            )),
        }
    }

    /// The triplet loss with `margin`.
    pub fn triplet(margin: f32) -> Self {
        Self {
            kind: LossKind::Triplet,
            margin,
            miner: None,
        }
    }

    /// This loss with online mining by `miner` (see [`mining`]).
    ///
    /// ```
    /// use siamese::loss::{LossConfig, Miner};
    /// let loss = LossConfig::triplet(0.2).with_miner(Miner::BatchHard);
    /// assert!(loss.validate().is_ok() && !loss.is_triplet());
    /// assert!(LossConfig::contrastive(1.0).with_miner(Miner::BatchAll).validate().is_err());
    /// ```
    pub fn with_miner(self, miner: Miner) -> Self {
        Self {
            miner: Some(miner),
            ..self
        }
    }

    /// Whether training takes drawn triplets (the triplet loss without a miner) rather than
    /// pairs.
    pub fn is_triplet(&self) -> bool {
        self.kind == LossKind::Triplet && self.miner.is_none()
    }

    /// The loss of a batch of **pairs** from the network's scores (distances for the
    /// contrastive loss, logits for binary cross-entropy) and labels, both `[batch, 1]`.
    ///
    /// A triplet-trained model has no pair loss of its own: its pairs are scored with the
    /// contrastive loss at the same margin, so validation and test losses stay comparable
    /// across epochs (training itself uses [`TripletLoss`]).
    pub fn forward(&self, scores: Tensor<2>, labels: Tensor<2>) -> Tensor<1> {
        match self.kind {
            LossKind::Contrastive | LossKind::Triplet | LossKind::MultipleNegativesRanking => {
                ContrastiveLoss::new(self.margin).forward(scores, labels)
            }
            LossKind::BinaryCrossEntropy => binary_cross_entropy_with_logits(scores, labels),
            LossKind::CosineMse => (scores.neg().add_scalar(1.0) - labels).square().mean(),
            LossKind::ExpMse => (scores.neg().exp() - labels).square().mean(),
            LossKind::Cosent => cosent(scores, labels),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// CoSENT through burn's autodiff equals the host form and its gradients, with ties in
    /// the labels (no term) and terms far below the largest.
    #[test]
    fn cosent_on_the_host_equals_burns() {
        let device = Device::flex().autodiff();
        let d = [0.3f32, 0.9, 0.1, 0.5, 0.45, 1.2, 0.05];
        let y = [0.8f32, 0.2, 0.8, 0.5, 0.0, 0.1, 1.0];
        let n = d.len();
        let dt = Tensor::<1>::from_floats(d.as_slice(), &device)
            .reshape([n, 1])
            .require_grad();
        let yt = Tensor::<1>::from_floats(y.as_slice(), &device).reshape([n, 1]);
        let l = cosent(dt.clone(), yt);
        let burn_loss: f32 = l.clone().into_scalar();
        let grads = l.backward();
        let g: Vec<f32> = dt.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
        let (host_loss, host) = cosent_with_gradients(&d, &y);
        assert!(
            (host_loss - burn_loss).abs() < 1e-5,
            "{host_loss} vs {burn_loss}"
        );
        for (h, b) in host.iter().zip(&g) {
            assert!((h - b).abs() < 1e-4 * b.abs().max(1.0), "{host:?} vs {g:?}");
        }
        // The loss falls as the distances follow the gold order.
        let ordered: Vec<f32> = y.iter().map(|v| 1.0 - v).collect();
        assert!(cosent_with_gradients(&ordered, &y).0 < 0.1 * host_loss);
    }

    fn loss(margin: f32, d: &[f32], y: &[f32]) -> f32 {
        let device = Device::flex();
        let n = d.len();
        let d = Tensor::<1>::from_floats(d, &device).reshape([n, 1]);
        let y = Tensor::<1>::from_floats(y, &device).reshape([n, 1]);
        ContrastiveLoss::new(margin).forward(d, y).into_scalar()
    }

    /// Hand-computed: unit `a₁ = (1, 0)`, `a₂ = (0, 1)` (given at other lengths), `b₁ =
    /// (1, 0)`, `b₂ = (0.6, 0.8)`; logits `20·cos`: row 1 `[20, 12]`, row 2 `[0, 16]`, so
    /// `−log softmax` is `ln(1 + e⁻⁸)` and `ln(1 + e⁻¹⁶)`; a dissimilar pair is no query.
    #[test]
    fn multiple_negatives_ranking_by_hand() {
        let device = Device::flex();
        let a = Tensor::<2>::from_floats([[3.0, 0.0], [0.0, 0.5]], &device);
        let b = Tensor::<2>::from_floats([[2.0, 0.0], [0.6, 0.8]], &device);
        let (r1, r2) = ((-8.0f64).exp().ln_1p(), (-16.0f64).exp().ln_1p());
        let both: f32 = multiple_negatives_ranking(a.clone(), b.clone(), &[1.0, 1.0])
            .unwrap()
            .into_scalar();
        assert!((both as f64 - (r1 + r2) / 2.0).abs() < 1e-6, "{both}");
        let first: f32 = multiple_negatives_ranking(a.clone(), b.clone(), &[1.0, 0.0])
            .unwrap()
            .into_scalar();
        assert!((first as f64 - r1).abs() < 1e-6, "{first}");
        assert!(multiple_negatives_ranking(a, b, &[0.0, 0.0]).is_none());
    }

    #[test]
    fn hand_computed_cases() {
        // Similar pair: d².
        assert!((loss(1.0, &[0.3], &[1.0]) - 0.09).abs() < 1e-7);
        // Dissimilar, d < margin: (1 − 0.3)² = 0.49.
        assert!((loss(1.0, &[0.3], &[0.0]) - 0.49).abs() < 1e-7);
        // Dissimilar, d > margin: nothing.
        assert_eq!(loss(1.0, &[1.7], &[0.0]), 0.0);
        // Similar, d > margin: still d² = 2.89.
        assert!((loss(1.0, &[1.7], &[1.0]) - 2.89).abs() < 1e-6);
        // d = 0: similar costs 0, dissimilar costs margin².
        assert_eq!(loss(1.0, &[0.0], &[1.0]), 0.0);
        assert!((loss(2.0, &[0.0], &[0.0]) - 4.0).abs() < 1e-7);
        // Mixed batch: mean of 0.09, 0.49, 0, 2.89.
        let mixed = loss(1.0, &[0.3, 0.3, 1.7, 1.7], &[1.0, 0.0, 0.0, 1.0]);
        assert!((mixed - (0.09 + 0.49 + 0.0 + 2.89) / 4.0).abs() < 1e-6);
        // Soft label 0.5 mixes the two terms: 0.5·0.09 + 0.5·0.49.
        assert!((loss(1.0, &[0.3], &[0.5]) - 0.29).abs() < 1e-6);
    }

    #[test]
    fn bce_with_logits_matches_the_formula() {
        let device = Device::flex();
        let z = [-2.0f32, 0.0, 3.0, 0.5];
        let y = [0.0f32, 1.0, 1.0, 0.0];
        let got: f32 = binary_cross_entropy_with_logits(
            Tensor::<1>::from_floats(z, &device).reshape([4, 1]),
            Tensor::<1>::from_floats(y, &device).reshape([4, 1]),
        )
        .into_scalar();
        let want: f64 = z
            .iter()
            .zip(&y)
            .map(|(&z, &y)| {
                let p = 1.0 / (1.0 + (-(z as f64)).exp());
                -(y as f64) * p.ln() - (1.0 - y as f64) * (1.0 - p).ln()
            })
            .sum::<f64>()
            / 4.0;
        assert!((got as f64 - want).abs() < 1e-6, "{got} vs {want}");
        // Large logits stay finite.
        let big: f32 = binary_cross_entropy_with_logits(
            Tensor::<1>::from_floats([100.0f32, -100.0], &device).reshape([2, 1]),
            Tensor::<1>::from_floats([0.0f32, 1.0], &device).reshape([2, 1]),
        )
        .into_scalar();
        assert!((big - 100.0).abs() < 1e-3, "{big}");
    }

    #[test]
    fn triplet_loss_matches_pytorch() {
        // torch.nn.TripletMarginLoss(margin=1.0)(a, p, n) = 0.17157292 (torch 2.15.0): by
        // hand, d(a,p) = 5, d(a,n) = 5.6569 → hinge 0.3431; d(a,p) = 1, d(a,n) = 3 → 0.
        let device = Device::flex();
        let t = |v: [[f32; 2]; 2]| Tensor::<2>::from_floats(v, &device);
        let a = t([[0.0, 0.0], [1.0, 1.0]]);
        let p = t([[3.0, 4.0], [1.0, 2.0]]);
        let n = t([[4.0, 4.0], [1.0, 4.0]]);
        let d = crate::distance::Distance::Euclidean;
        let got: f32 = TripletLoss::new(1.0)
            .forward(d.forward(a.clone(), p), d.forward(a, n))
            .into_scalar();
        assert!((got - 0.171_572_92).abs() < 1e-5, "{got}");
    }

    #[test]
    fn regression_losses_match_their_formulas() {
        let device = Device::flex();
        let col = |v: [f32; 3]| Tensor::<1>::from_floats(v, &device).reshape([3, 1]);
        let (d, y) = ([0.2f32, 1.0, 0.5], [0.9f32, 0.1, 0.4]);
        // Each loss is the mean squared error of its similarity s(d) against the labels.
        for (kind, s) in [
            (LossKind::CosineMse, (|d: f32| 1.0 - d) as fn(f32) -> f32),
            (LossKind::ExpMse, |d: f32| (-d).exp()),
        ] {
            let got: f32 = LossConfig {
                kind,
                margin: 1.0,
                miner: None,
            }
            .forward(col(d), col(y))
            .into_scalar();
            let want: f32 = d
                .iter()
                .zip(&y)
                .map(|(&d, y)| (s(d) - y).powi(2))
                .sum::<f32>()
                / 3.0;
            assert!((got - want).abs() < 1e-6, "{kind:?}: {got} vs {want}");
        }
        assert!((LossKind::ExpMse.similarity(0.0) - 1.0).abs() < 1e-12);
        assert!((LossKind::CosineMse.similarity(0.25) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn margin_must_be_positive() {
        assert!(ContrastiveLoss::new(0.0).validate().is_err());
        assert!(ContrastiveLoss::new(1.0).validate().is_ok());
    }
}
