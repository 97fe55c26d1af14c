//! The heads and losses of the host trainers, on a batch's embeddings: the loss, each
//! pair's distance and `∂L/∂e` for every embedding row (and the weighted-L1 head's
//! gradients), as burn's autodiff computes them for [`crate::siamese::SiameseNetwork`] and
//! [`crate::loss::LossConfig`].
//!
//! A batch is stacked as the burn path stacks it: pairs as `[a₀ … aₙ₋₁; b₀ … bₙ₋₁]`,
//! triplets as `[anchors; positives; negatives]`. With `d` the network's distance and `n`
//! the pairs (triplets) of the batch:
//!
//! ```text
//! contrastive:  L = mean(y·d² + (1 − y)·max(0, m − d)²)     ∂L/∂d = (2/n)·(y·d − (1 − y)·max(0, m − d))
//! cosine-mse:   L = mean((1 − d − y)²)                      ∂L/∂d = −(2/n)·(1 − d − y)
//! exp-mse:      L = mean((e^−d − y)²)                       ∂L/∂d = −(2/n)·(e^−d − y)·e^−d
//! CoSENT:       L = log(1 + Σ_{yᵢ > yⱼ} e^{λ(dᵢ − dⱼ)})      (the whole batch; crate::loss::cosent_with_gradients)
//! triplet:      L = mean(max(0, d(a, p) − d(a, n) + m))     ∂L/∂d(a, p) = −∂L/∂d(a, n) = 1/n where active
//! weighted-L1:  z = wᵀ|eₐ − e_b| + b,  L = mean(max(z, 0) − z·y + log(1 + e^−|z|)),  d = σ(−z)
//!               ∂L/∂z = (σ(z) − y)/n,  ∂L/∂w = Σ ∂L/∂z·|eₐ − e_b|,  ∂L/∂eₐ = −∂L/∂e_b = ∂L/∂z·w ⊙ sign(eₐ − e_b)
//! ```
//!
//! and the distances' gradients (`P = max(‖a‖·‖b‖, ε)`):
//!
//! ```text
//! euclidean:  ∂d/∂a = (a − b)/d   (0 where Σ(a − b)² ≤ ε)
//! manhattan:  ∂d/∂a = sign(a − b)
//! cosine:     ∂d/∂a = −b/P + (a·b)/P²·‖b‖·a/‖a‖   (the second term 0 where the clamp holds)
//! ```
//!
//! `∂d/∂b` is the same with `a` and `b` swapped.
//!
//! A class-labelled batch (rows: its samples) takes the loss of its miner over every pair's
//! distance ([`crate::loss::mining`]), which gives `∂L/∂d(i, j)` for each pair.

use super::host::weighted_l1_logit;
use crate::distance::{ClampMinNan, Distance, EPSILON};
use crate::loss::LossKind;
use crate::loss::mining::{Miner, mine};
use crate::siamese::SiameseNetwork;

/// The rows of a host training batch.
#[derive(Debug, Clone, Copy)]
pub enum HostBatch<'a> {
    /// Pairs with these labels (1 = similar): rows `[a; b]`.
    Pairs(&'a [f32]),
    /// This many triplets: rows `[anchors; positives; negatives]`.
    Triplets(usize),
    /// Samples with these classes, for a miner: one row each.
    Classes(&'a [usize]),
}

impl HostBatch<'_> {
    /// Stacked input rows.
    pub fn rows(&self) -> usize {
        match self {
            Self::Pairs(labels) => 2 * labels.len(),
            Self::Triplets(n) => 3 * n,
            Self::Classes(labels) => labels.len(),
        }
    }

    /// Pairs, triplets or samples.
    pub fn len(&self) -> usize {
        match self {
            Self::Pairs(labels) => labels.len(),
            Self::Triplets(n) => *n,
            Self::Classes(labels) => labels.len(),
        }
    }

    /// Whether the batch has no pairs or triplets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A network's head and loss on the host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct HostLoss {
    kind: LossKind,
    distance: Distance,
    margin: f32,
    /// Whether the network has the weighted-L1 head (its weights are the trainer's).
    weighted_l1: bool,
    /// The miner of class-labelled batches, if the loss has one.
    miner: Option<Miner>,
}

/// The weighted-L1 head's weights `w` (`[emb]`) and bias, or their gradients.
pub(super) type HeadParams<'a> = [&'a [f32]; 2];

impl HostLoss {
    /// The loss `kind` on `network`'s head, when the combination is one the model config
    /// accepts (see [`crate::config::ModelConfig::validate`]).
    pub(super) fn new(
        network: &SiameseNetwork,
        kind: LossKind,
        margin: f32,
        miner: Option<Miner>,
    ) -> Option<Self> {
        let weighted_l1 = network.weighted_l1.is_some();
        let valid = match kind {
            LossKind::BinaryCrossEntropy => weighted_l1,
            LossKind::CosineMse => !weighted_l1 && network.distance() == Distance::Cosine,
            // The in-batch ranking loss trains through burn.
            LossKind::MultipleNegativesRanking => false,
            _ => !weighted_l1,
        };
        let miner_fits = miner.is_none_or(|m| m.fits(kind));
        (valid && miner_fits).then_some(Self {
            kind,
            distance: network.distance(),
            margin,
            weighted_l1,
            miner,
        })
    }

    /// Whether the loss takes this batch's layout: class-labelled samples with a miner,
    /// else triplets for the triplet loss and pairs for every other.
    pub(super) fn takes(&self, batch: HostBatch<'_>) -> bool {
        match batch {
            HostBatch::Classes(_) => self.miner.is_some(),
            HostBatch::Triplets(_) => self.miner.is_none() && self.kind == LossKind::Triplet,
            HostBatch::Pairs(_) => self.miner.is_none() && self.kind != LossKind::Triplet,
        }
    }

    /// Whether the head has weights of its own (the weighted-L1 head).
    pub(super) fn has_head(&self) -> bool {
        self.weighted_l1
    }

    /// The batch's mean loss and distances (each pair's; for triplets `d(a, p)` then
    /// `d(a, n)`; for class-labelled samples every pair `(i, j)`, `i < j`, row by row), writing `∂L/∂e` into `gemb` (`[rows, emb]`, overwritten) and the head's
    /// gradients into `ghead` (overwritten) when it has weights `head`.
    pub(super) fn backward(
        &self,
        e: &[f32],
        emb: usize,
        batch: HostBatch<'_>,
        head: Option<HeadParams<'_>>,
        gemb: &mut [f32],
        ghead: Option<[&mut [f32]; 2]>,
    ) -> (f32, Vec<f32>) {
        let n = batch.len();
        let row = |r: usize| &e[r * emb..(r + 1) * emb];
        gemb[..batch.rows() * emb].fill(0.0);
        let mut loss = 0.0f64;
        let mut distances = Vec::with_capacity(n);
        match batch {
            HostBatch::Pairs(labels) => {
                if let (Some([w, b]), Some([gw, gb])) = (head, ghead) {
                    gw.fill(0.0);
                    gb.fill(0.0);
                    for (i, &y) in labels.iter().enumerate() {
                        let (ea, eb) = (row(i), row(n + i));
                        let z = weighted_l1_logit(ea, eb, w, b[0]);
                        let softplus = (-z.abs()).exp().ln_1p();
                        loss += (z.clamp_min_nan(0.0) - z * y + softplus) as f64;
                        distances.push(sigmoid(-z));
                        let gz = (sigmoid(z) - y) / n as f32;
                        gb[0] += gz;
                        for j in 0..emb {
                            let diff = ea[j] - eb[j];
                            gw[j] += gz * diff.abs();
                            let v = gz * w[j] * sign(diff);
                            gemb[i * emb + j] = v;
                            gemb[(n + i) * emb + j] = -v;
                        }
                    }
                } else if self.kind == LossKind::Cosent {
                    // A loss of the whole batch: every distance first.
                    distances.extend((0..n).map(|i| self.distance.between(row(i), row(n + i))));
                    let (l, dd) = crate::loss::cosent_with_gradients(&distances, labels);
                    for (i, (&d, &dd)) in distances.iter().zip(&dd).enumerate() {
                        let (ea, eb) = (row(i), row(n + i));
                        let (ga, gb) = split_rows(gemb, emb, i, n + i);
                        self.distance_backward(ea, eb, d, dd, ga, gb);
                    }
                    return (l, distances);
                } else {
                    for (i, &y) in labels.iter().enumerate() {
                        let (ea, eb) = (row(i), row(n + i));
                        let d = self.distance.between(ea, eb);
                        let (l, dd) = self.pair_loss(d, y, n);
                        loss += l as f64;
                        distances.push(d);
                        let (ga, gb) = split_rows(gemb, emb, i, n + i);
                        self.distance_backward(ea, eb, d, dd, ga, gb);
                    }
                }
            }
            HostBatch::Triplets(_) => {
                let mut d_an = Vec::with_capacity(n);
                for i in 0..n {
                    let (a, p, ng) = (row(i), row(n + i), row(2 * n + i));
                    let (dp, dn) = (self.distance.between(a, p), self.distance.between(a, ng));
                    let hinge = dp - dn + self.margin;
                    loss += hinge.clamp_min_nan(0.0) as f64;
                    distances.push(dp);
                    d_an.push(dn);
                    let dd = if hinge > 0.0 { 1.0 / n as f32 } else { 0.0 };
                    let (ga, gp) = split_rows(gemb, emb, i, n + i);
                    self.distance_backward(a, p, dp, dd, ga, gp);
                    let (ga, gn) = split_rows(gemb, emb, i, 2 * n + i);
                    self.distance_backward(a, ng, dn, -dd, ga, gn);
                }
                distances.extend(d_an);
            }
            HostBatch::Classes(labels) => {
                let miner = self.miner.expect("checked by takes()");
                let mut d = vec![0.0f32; n * n];
                for i in 0..n {
                    for j in i + 1..n {
                        let v = self.distance.between(row(i), row(j));
                        (d[i * n + j], d[j * n + i]) = (v, v);
                        distances.push(v);
                    }
                }
                let mined = mine(&d, labels, miner, self.margin).expect("n × n distances");
                for i in 0..n {
                    for j in i + 1..n {
                        let g = mined.grads[i * n + j];
                        if g != 0.0 {
                            let (gi, gj) = split_rows(gemb, emb, i, j);
                            self.distance_backward(row(i), row(j), d[i * n + j], g, gi, gj);
                        }
                    }
                }
                return (mined.loss, distances);
            }
        }
        ((loss / n as f64) as f32, distances)
    }

    /// One pair's loss and `∂L/∂d` (the mean over `n` pairs included).
    fn pair_loss(&self, d: f32, y: f32, n: usize) -> (f32, f32) {
        let scale = 2.0 / n as f32;
        match self.kind {
            LossKind::CosineMse => {
                let r = 1.0 - d - y;
                (r * r, -scale * r)
            }
            LossKind::ExpMse => {
                let s = (-d).exp();
                let r = s - y;
                (r * r, -scale * r * s)
            }
            // Contrastive (a triplet model's pairs are scored with it too).
            _ => {
                let hinge = (self.margin - d).max(0.0);
                (
                    y * d * d + (1.0 - y) * hinge * hinge,
                    scale * (y * d - (1.0 - y) * hinge),
                )
            }
        }
    }

    /// Adds `dd·∂d/∂a` to `ga` and `dd·∂d/∂b` to `gb` for `d = distance(a, b)`.
    fn distance_backward(
        &self,
        a: &[f32],
        b: &[f32],
        d: f32,
        dd: f32,
        ga: &mut [f32],
        gb: &mut [f32],
    ) {
        match self.distance {
            Distance::Euclidean => {
                let s = d * d;
                // d = √max(s, ε): constant (zero gradient) where the clamp holds.
                if s > EPSILON && dd != 0.0 {
                    let k = dd / d;
                    for j in 0..a.len() {
                        let v = k * (a[j] - b[j]);
                        ga[j] += v;
                        gb[j] -= v;
                    }
                }
            }
            Distance::Manhattan => {
                for j in 0..a.len() {
                    let v = dd * sign(a[j] - b[j]);
                    ga[j] += v;
                    gb[j] -= v;
                }
            }
            Distance::Cosine => {
                let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
                let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
                let raw = na * nb;
                let p = raw.clamp_min_nan(EPSILON);
                // d = 1 − dot/P: ∂d/∂dot = −1/P, ∂d/∂P = dot/P² (where P = ‖a‖·‖b‖).
                let gdot = -dd / p;
                let gp = if raw > EPSILON {
                    dd * dot / (p * p)
                } else {
                    0.0
                };
                let (ka, kb) = (gp * nb / na, gp * na / nb);
                for j in 0..a.len() {
                    ga[j] += gdot * b[j] + ka * a[j];
                    gb[j] += gdot * a[j] + kb * b[j];
                }
            }
        }
    }
}

/// Two distinct rows of `g` (`[rows, emb]`), mutably.
fn split_rows(g: &mut [f32], emb: usize, i: usize, j: usize) -> (&mut [f32], &mut [f32]) {
    debug_assert!(i < j);
    let (lo, hi) = g.split_at_mut(j * emb);
    (&mut lo[i * emb..(i + 1) * emb], &mut hi[..emb])
}

/// `sign(x)` as burn's `abs` backward uses it (0 at 0).
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}
