//! Online mining inside a class-labelled batch: every pair's distance `d(i, j)` of the batch
//! (the `P × K` batches of [`crate::data::sampler::PerClassSampler`]) is computed, a
//! [`Miner`] picks the pairs or triplets that carry information, and the loss averages over
//! them — the miners of pytorch-metric-learning and of the papers that introduced them.
//!
//! With labels `yᵢ`, margin `m`, the positives `P(a) = {p ≠ a : y_p = y_a}` and the
//! negatives `N(a) = {n : y_n ≠ y_a}` of an anchor `a`:
//!
//! ```text
//! batch-hard     L = mean_{a ∈ A} max(0, m + max_{p ∈ P(a)} d(a, p) − min_{n ∈ N(a)} d(a, n))
//!                (Hermans et al. 2017; A: the anchors with a positive and a negative)
//! batch-all      L = Σ_{a, p ∈ P(a), n ∈ N(a)} max(0, m + d(a, p) − d(a, n)) / #{terms > 0}
//!                (Hermans et al. 2017, "BA≠0"; 0 when no term is positive)
//! semi-hard      for every ordered positive pair (a, p): n = argmin {d(a, n) : n ∈ N(a),
//!                d(a, n) > d(a, p)}, or argmax_{n ∈ N(a)} d(a, n) when no negative is farther
//!                than p;  L = mean_{(a, p)} max(0, m + d(a, p) − d(a, n))
//!                (Schroff et al. 2015, FaceNet; TensorFlow Addons' triplet_semihard_loss)
//! hard-negative  L = Σ_{i<j, yᵢ = yⱼ} d² / #positive pairs
//!                  + Σ_{i<j, yᵢ ≠ yⱼ, d < m} (m − d)² / #{negative pairs with d < m}
//!                (the contrastive loss over all pairs of the batch, each part averaged over
//!                the pairs that contribute: the negatives inside the margin, the hard ones;
//!                pytorch-metric-learning's ContrastiveLoss with its AvgNonZeroReducer)
//! ```
//!
//! Ties pick the lowest index. The selection is piecewise constant in the distances, so
//! `∂L/∂d(i, j)` is the derivative of the selected terms: [`mine`] returns it for every
//! pair, and both training paths push it through the distance and the encoder.
//!
//! ```
//! use siamese::loss::mining::{Miner, mine};
//!
//! // Two classes, two samples each, on a line at 0, 1 (class 0) and 1.5, 4 (class 1).
//! let x = [0.0f32, 1.0, 1.5, 4.0];
//! let d: Vec<f32> = (0..16).map(|k| (x[k / 4] - x[k % 4]).abs()).collect();
//! let mined = mine(&d, &[0, 0, 1, 1], Miner::BatchHard, 1.0).unwrap();
//! // Anchor 0: 1 + 1 − 1.5 = 0.5; anchor 1: 1 + 1 − 0.5 = 1.5; anchor 2: 1 + 2.5 − 0.5 = 3;
//! // anchor 3: 1 + 2.5 − 3 = 0.5.
//! assert!((mined.loss - 5.5 / 4.0).abs() < 1e-6);
//! ```

use serde::{Deserialize, Serialize};

use super::LossKind;
use crate::error::{Result, SiameseError};

/// Which pairs or triplets of a class-labelled batch the loss uses (see the module's
/// formulas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Miner {
    /// The hardest positive and the hardest negative of every anchor (triplet loss).
    BatchHard,
    /// Every valid triplet, averaged over those with a positive loss (triplet loss).
    BatchAll,
    /// The closest negative farther than the positive, per positive pair (triplet loss).
    SemiHard,
    /// Every positive pair and the negative pairs inside the margin (contrastive loss).
    HardNegative,
}

impl Miner {
    /// Names, for messages.
    pub const NAMES: [&'static str; 4] = ["batch-hard", "batch-all", "semi-hard", "hard-negative"];

    /// The miner's name in configs.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Whether the miner forms triplets (the triplet loss) rather than pairs (contrastive).
    pub fn is_triplet(self) -> bool {
        !matches!(self, Self::HardNegative)
    }

    /// Whether the miner goes with the loss `kind`: the triplet miners with the triplet loss,
    /// hard-negative with the contrastive loss.
    pub fn fits(self, kind: LossKind) -> bool {
        match kind {
            LossKind::Triplet => self.is_triplet(),
            LossKind::Contrastive => !self.is_triplet(),
            _ => false,
        }
    }
}

/// A mined batch: the loss and `∂L/∂d(i, j)` for every pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Mined {
    /// The batch's loss.
    pub loss: f32,
    /// `∂L/∂d(i, j)` at `[i·n + j]` for `i < j` (the rest 0): the derivative with respect to
    /// the pair's one distance, both orders of the pair summed.
    pub grads: Vec<f32>,
    /// Terms the loss averaged over (anchors, triplets, positive pairs or pairs).
    pub terms: usize,
}

/// The `miner`'s loss over a batch's distances `d` (`[n, n]`, row-major, symmetric) with
/// class `labels` (`n`) and `margin` (see the module's formulas).
///
/// # Errors
/// When `d` is not `n × n` for `n = labels.len()`.
pub fn mine(d: &[f32], labels: &[usize], miner: Miner, margin: f32) -> Result<Mined> {
    let n = labels.len();
    if d.len() != n * n {
        return Err(SiameseError::invalid(
            "mined batch",
            format!("{} distances for {n} samples; expected {n} × {n}", d.len()),
        ));
    }
    let mut grads = vec![0.0f32; n * n];
    let mut add = |i: usize, j: usize, g: f32| {
        let (i, j) = if i < j { (i, j) } else { (j, i) };
        grads[i * n + j] += g;
    };
    let at = |i: usize, j: usize| d[i * n + j];
    let same = |i: usize, j: usize| labels[i] == labels[j];
    let (mut total, mut terms) = (0.0f64, 0usize);
    match miner {
        Miner::BatchHard => {
            // (anchor, hardest positive, hardest negative, hinge) of every active anchor.
            let mut picked = Vec::new();
            for a in 0..n {
                let mut pos: Option<usize> = None;
                let mut neg: Option<usize> = None;
                for j in (0..n).filter(|&j| j != a) {
                    if same(a, j) {
                        if pos.is_none_or(|p| at(a, j) > at(a, p)) {
                            pos = Some(j);
                        }
                    } else if neg.is_none_or(|q| at(a, j) < at(a, q)) {
                        neg = Some(j);
                    }
                }
                if let (Some(p), Some(q)) = (pos, neg) {
                    terms += 1;
                    let hinge = margin + at(a, p) - at(a, q);
                    picked.push((a, p, q, hinge));
                }
            }
            for &(a, p, q, hinge) in &picked {
                if hinge > 0.0 {
                    total += hinge as f64;
                    add(a, p, 1.0 / terms as f32);
                    add(a, q, -1.0 / terms as f32);
                }
            }
        }
        Miner::BatchAll => {
            let mut active = Vec::new();
            for a in 0..n {
                for p in (0..n).filter(|&p| p != a && same(a, p)) {
                    for q in (0..n).filter(|&q| !same(a, q)) {
                        let hinge = margin + at(a, p) - at(a, q);
                        if hinge > 0.0 {
                            total += hinge as f64;
                            active.push((a, p, q));
                        }
                    }
                }
            }
            terms = active.len();
            for (a, p, q) in active {
                add(a, p, 1.0 / terms as f32);
                add(a, q, -1.0 / terms as f32);
            }
        }
        Miner::SemiHard => {
            let mut picked = Vec::new();
            for a in 0..n {
                for p in (0..n).filter(|&p| p != a && same(a, p)) {
                    let dp = at(a, p);
                    let mut outside: Option<usize> = None;
                    let mut farthest: Option<usize> = None;
                    for q in (0..n).filter(|&q| !same(a, q)) {
                        if at(a, q) > dp && outside.is_none_or(|o| at(a, q) < at(a, o)) {
                            outside = Some(q);
                        }
                        if farthest.is_none_or(|f| at(a, q) > at(a, f)) {
                            farthest = Some(q);
                        }
                    }
                    if let Some(q) = outside.or(farthest) {
                        picked.push((a, p, q, margin + dp - at(a, q)));
                    }
                }
            }
            terms = picked.len();
            for (a, p, q, hinge) in picked {
                if hinge > 0.0 {
                    total += hinge as f64;
                    add(a, p, 1.0 / terms as f32);
                    add(a, q, -1.0 / terms as f32);
                }
            }
        }
        Miner::HardNegative => {
            let (mut pos, mut neg) = (Vec::new(), Vec::new());
            for i in 0..n {
                for j in i + 1..n {
                    if same(i, j) {
                        pos.push((i, j));
                    } else if at(i, j) < margin {
                        neg.push((i, j));
                    }
                }
            }
            terms = pos.len() + neg.len();
            let (np, nn) = (pos.len().max(1) as f32, neg.len().max(1) as f32);
            for (i, j) in pos {
                let v = at(i, j);
                total += (v * v / np) as f64;
                add(i, j, 2.0 * v / np);
            }
            for (i, j) in neg {
                let h = margin - at(i, j);
                total += (h * h / nn) as f64;
                add(i, j, -2.0 * h / nn);
            }
            return Ok(Mined {
                loss: total as f32,
                grads,
                terms,
            });
        }
    }
    let loss = if terms == 0 {
        0.0
    } else {
        (total / terms as f64) as f32
    };
    Ok(Mined { loss, grads, terms })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distances of points on a line.
    fn line(x: &[f32]) -> Vec<f32> {
        let n = x.len();
        (0..n * n).map(|k| (x[k / n] - x[k % n]).abs()).collect()
    }

    /// The loss with the distance of pair `(i, j)` (both orders) moved by `h`.
    fn moved(d: &[f32], n: usize, i: usize, j: usize, h: f32) -> Vec<f32> {
        let mut d = d.to_vec();
        d[i * n + j] += h;
        d[j * n + i] += h;
        d
    }

    // No two distances within 0.02 of each other, nor a difference of two within 0.02 of a
    // margin (1, 0.5, 0.3), nor a distance within 0.02 of 1: the finite differences stay on
    // one side of every selection and hinge.
    const X: [f32; 7] = [0.53, 0.33, 0.58, 0.35, 3.36, 2.46, 3.93];
    const Y: [usize; 7] = [0, 0, 1, 1, 2, 2, 0];

    #[test]
    fn reference_values_by_hand() {
        // Classes 0: {0, 1}, 1: {2, 3} on a line at 0, 1, 1.5, 4 (see the doctest).
        let d = line(&[0.0, 1.0, 1.5, 4.0]);
        let y = [0, 0, 1, 1];
        let all = mine(&d, &y, Miner::BatchAll, 1.0).unwrap();
        // Triplets (a, p, n) with 1 + d(a, p) − d(a, n) > 0: (0,1,2) 0.5, (0,1,3) −2 no,
        // (1,0,2) 1.5, (1,0,3) −1 no, (2,3,0) 2, (2,3,1) 3, (3,2,0) −0.5 no, (3,2,1) 0.5.
        assert_eq!(all.terms, 5);
        assert!((all.loss - 7.5 / 5.0).abs() < 1e-6);
        let semi = mine(&d, &y, Miner::SemiHard, 1.0).unwrap();
        // (0,1): negatives 1.5, 4 farther than 1 → 1.5: 0.5; (1,0): 0.5, 3 farther than 1 → 3:
        // −1 → 0; (2,3): d 2.5, negatives 1.5, 0.5 none farther → farthest 1.5: 2;
        // (3,2): 4, 3 farther than 2.5 → 3: 0.5. Mean over 4 positive pairs.
        assert_eq!(semi.terms, 4);
        assert!((semi.loss - 3.0 / 4.0).abs() < 1e-6);
        let hard = mine(&d, &y, Miner::HardNegative, 1.0).unwrap();
        // Positives (0,1) 1, (2,3) 2.5: (1 + 6.25)/2; negatives inside the margin: (1,2) 0.5:
        // 0.25/1.
        assert!((hard.loss - (7.25 / 2.0 + 0.25)).abs() < 1e-6);
        assert_eq!(hard.terms, 3);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let n = X.len();
        let d = line(&X);
        for miner in [
            Miner::BatchHard,
            Miner::BatchAll,
            Miner::SemiHard,
            Miner::HardNegative,
        ] {
            let mined = mine(&d, &Y, miner, 1.0).unwrap();
            assert!(mined.loss > 0.0, "{miner:?}");
            let h = 1e-3;
            for i in 0..n {
                for j in i + 1..n {
                    let up = mine(&moved(&d, n, i, j, h), &Y, miner, 1.0).unwrap().loss;
                    let down = mine(&moved(&d, n, i, j, -h), &Y, miner, 1.0).unwrap().loss;
                    let numeric = (up - down) / (2.0 * h);
                    let g = mined.grads[i * n + j];
                    assert!(
                        (numeric - g).abs() < 2e-3,
                        "{miner:?} pair ({i}, {j}): numeric {numeric}, analytic {g}"
                    );
                    assert_eq!(mined.grads[j * n + i], 0.0);
                }
            }
        }
    }

    #[test]
    fn a_batch_of_one_class_has_no_triplets() {
        let d = line(&[0.0, 1.0, 2.0]);
        for miner in [Miner::BatchHard, Miner::BatchAll, Miner::SemiHard] {
            let mined = mine(&d, &[4, 4, 4], miner, 0.5).unwrap();
            assert_eq!((mined.loss, mined.terms), (0.0, 0), "{miner:?}");
            assert!(mined.grads.iter().all(|&g| g == 0.0));
        }
        let err = mine(&d, &[0, 1], Miner::BatchAll, 1.0).unwrap_err();
        assert!(
            err.to_string().contains("9 distances for 2 samples"),
            "{err}"
        );
    }
}
