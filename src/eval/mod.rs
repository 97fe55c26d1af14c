//! Verification metrics on pair distances.
//!
//! Conventions: a pair is predicted **similar when `d < threshold`**; labels are 1 = similar
//! (genuine), 0 = dissimilar (impostor). In biometric terms a false accept is an impostor
//! pair predicted similar, a false reject a genuine pair predicted dissimilar:
//!
//! ```text
//! FAR = FP / (FP + TN)        FRR = FN / (TP + FN)        TPR = 1 − FRR
//! ```
//!
//! The ROC curve ranks pairs by score `−d` (as `sklearn.metrics.roc_curve(y, -d)`); the equal
//! error rate is where the interpolated ROC meets `FRR = FAR`. Thresholds are **calibrated on
//! validation pairs** ([`calibrate`]) and then applied unchanged to test pairs.

pub mod protocols;

use serde::{Deserialize, Serialize};

use crate::data::{label_is_similar as positive, predicts_similar};
use crate::error::{Result, SiameseError};

fn check(distances: &[f32], labels: &[f32]) -> Result<()> {
    if distances.len() != labels.len() {
        return Err(SiameseError::shape(
            "labels",
            format!("one label per distance ({})", distances.len()),
            format!("{} labels", labels.len()),
        ));
    }
    if distances.is_empty() {
        return Err(SiameseError::Empty("no pairs to evaluate".into()));
    }
    if let Some(i) = distances.iter().position(|d| !d.is_finite()) {
        return Err(SiameseError::invalid(
            "distances",
            format!("distance {i} is {}", distances[i]),
        ));
    }
    Ok(())
}

/// Confusion counts at a threshold (`d < threshold` ⇒ similar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Confusion {
    /// Similar pairs predicted similar.
    pub tp: usize,
    /// Dissimilar pairs predicted similar (false accepts).
    pub fp: usize,
    /// Dissimilar pairs predicted dissimilar.
    pub tn: usize,
    /// Similar pairs predicted dissimilar (false rejects).
    pub fn_: usize,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl Confusion {
    /// Counts at `threshold`.
    pub fn at(distances: &[f32], labels: &[f32], threshold: f32) -> Result<Self> {
        check(distances, labels)?;
        let mut c = Self::default();
        for (&d, &y) in distances.iter().zip(labels) {
            match (predicts_similar(d, threshold), positive(y)) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        Ok(c)
    }

    /// `(TP + TN) / n`.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }
    /// `TP / (TP + FP)` (0 when nothing is predicted similar).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    /// `TP / (TP + FN)`.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
    /// False accept rate `FP / (FP + TN)`.
    pub fn far(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }
    /// False reject rate `FN / (TP + FN)`.
    pub fn frr(&self) -> f64 {
        ratio(self.fn_, self.tp + self.fn_)
    }
}

/// A ROC curve: `fpr[k]`, `tpr[k]` when pairs with `d ≤ thresholds[k]` are accepted.
/// The first point is `(0, 0)` with threshold `−∞`; thresholds increase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roc {
    /// False positive (false accept) rates.
    pub fpr: Vec<f64>,
    /// True positive rates.
    pub tpr: Vec<f64>,
    /// Distance thresholds.
    pub thresholds: Vec<f64>,
}

/// The ROC curve of `−d` against the labels, one point per distinct distance. Errors when
/// either class is missing.
pub fn roc(distances: &[f32], labels: &[f32]) -> Result<Roc> {
    check(distances, labels)?;
    let pos = labels.iter().filter(|&&y| positive(y)).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return Err(SiameseError::invalid(
            "labels",
            format!(
                "ROC needs both similar and dissimilar pairs ({pos} similar, {neg} dissimilar)"
            ),
        ));
    }
    let mut order: Vec<usize> = (0..distances.len()).collect();
    order.sort_by(|&a, &b| distances[a].total_cmp(&distances[b]));
    let mut r = Roc {
        fpr: vec![0.0],
        tpr: vec![0.0],
        thresholds: vec![f64::NEG_INFINITY],
    };
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut k = 0;
    while k < order.len() {
        let d = distances[order[k]];
        while k < order.len() && distances[order[k]] == d {
            if positive(labels[order[k]]) {
                tp += 1;
            } else {
                fp += 1;
            }
            k += 1;
        }
        r.fpr.push(fp as f64 / neg as f64);
        r.tpr.push(tp as f64 / pos as f64);
        r.thresholds.push(d as f64);
    }
    Ok(r)
}

impl Roc {
    /// Area under the curve (trapezoidal rule).
    pub fn auc(&self) -> f64 {
        self.fpr
            .windows(2)
            .zip(self.tpr.windows(2))
            .map(|(f, t)| (f[1] - f[0]) * (t[1] + t[0]) / 2.0)
            .sum()
    }

    /// Equal error rate: where the piecewise-linear ROC crosses `TPR = 1 − FPR`, i.e.
    /// `FAR = FRR`, with the distance threshold interpolated on the same segment.
    pub fn eer(&self) -> Eer {
        for k in 1..self.fpr.len() {
            // g(x) = 1 − x − tpr(x): positive at the start, ≤ 0 once the ROC passes the line.
            let g0 = 1.0 - self.fpr[k - 1] - self.tpr[k - 1];
            let g1 = 1.0 - self.fpr[k] - self.tpr[k];
            if g1 <= 0.0 {
                let t = if g0 == g1 { 0.0 } else { g0 / (g0 - g1) };
                let rate = self.fpr[k - 1] + t * (self.fpr[k] - self.fpr[k - 1]);
                let lo = if self.thresholds[k - 1].is_finite() {
                    self.thresholds[k - 1]
                } else {
                    self.thresholds[k]
                };
                let threshold = lo + t * (self.thresholds[k] - lo);
                return Eer { rate, threshold };
            }
        }
        Eer {
            rate: 0.0,
            threshold: *self.thresholds.last().unwrap_or(&0.0),
        }
    }
}

/// Equal error rate and the distance threshold where it is reached.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Eer {
    /// The rate where FAR = FRR.
    pub rate: f64,
    /// The distance threshold there.
    pub threshold: f64,
}

/// What a calibrated threshold optimises on the validation pairs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "objective", content = "value")]
pub enum Objective {
    /// Maximise accuracy.
    Accuracy,
    /// Maximise F1 of the similar class.
    F1,
    /// The largest threshold whose false accept rate is at most the value.
    TargetFar(f64),
    /// The threshold of the equal error rate (FAR = FRR) on the validation pairs.
    Eer,
}

impl std::fmt::Display for Objective {
    /// The name [`Objective::from_str`](std::str::FromStr) reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Accuracy => f.write_str("accuracy"),
            Self::F1 => f.write_str("f1"),
            Self::Eer => f.write_str("eer"),
            Self::TargetFar(v) => write!(f, "far={v}"),
        }
    }
}

impl std::str::FromStr for Objective {
    type Err = SiameseError;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.to_ascii_lowercase();
        if s == "accuracy" {
            return Ok(Self::Accuracy);
        }
        if s == "f1" {
            return Ok(Self::F1);
        }
        if s == "eer" {
            return Ok(Self::Eer);
        }
        if let Some(v) = s.strip_prefix("far=").or_else(|| s.strip_prefix("far:")) {
            let v: f64 = v
                .parse()
                .map_err(|_| SiameseError::config("objective", format!("bad FAR target `{v}`")))?;
            if (0.0..=1.0).contains(&v) {
                return Ok(Self::TargetFar(v));
            }
        }
        Err(SiameseError::config(
            "objective",
            format!("unknown objective `{s}`; expected accuracy, f1, eer or far=0.01"),
        ))
    }
}

/// Candidate thresholds: midpoints between consecutive distinct sorted distances, plus one
/// below the smallest and one above the largest.
fn candidates(distances: &[f32]) -> Vec<f32> {
    let mut d: Vec<f32> = distances.to_vec();
    d.sort_by(f32::total_cmp);
    d.dedup();
    let mut c = Vec::with_capacity(d.len() + 1);
    c.push(d[0] - 1e-6_f32.max(d[0].abs() * 1e-6));
    for w in d.windows(2) {
        c.push(w[0] + (w[1] - w[0]) / 2.0);
    }
    c.push(d[d.len() - 1] + 1e-6_f32.max(d[d.len() - 1].abs() * 1e-6));
    c
}

/// Chooses a threshold on (validation) pairs for `objective`. Ties go to the smallest
/// threshold for accuracy/F1.
pub fn calibrate(distances: &[f32], labels: &[f32], objective: Objective) -> Result<f32> {
    check(distances, labels)?;
    if objective == Objective::Eer {
        return Ok(roc(distances, labels)?.eer().threshold as f32);
    }
    let mut best = (f64::NEG_INFINITY, 0.0f32);
    for t in candidates(distances) {
        let c = Confusion::at(distances, labels, t)?;
        let score = match objective {
            Objective::Accuracy => c.accuracy(),
            Objective::F1 => c.f1(),
            Objective::Eer => unreachable!("handled above"),
            Objective::TargetFar(max) => {
                if c.far() <= max {
                    t as f64
                } else {
                    f64::NEG_INFINITY
                }
            }
        };
        if score > best.0 {
            best = (score, t);
        }
    }
    Ok(best.1)
}

/// Pearson correlation of `x` and `y` (0 when either is constant).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len()) as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// Ranks from 1, ties sharing their average rank.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut k = 0;
    while k < order.len() {
        let mut e = k;
        while e + 1 < order.len() && x[order[e + 1]] == x[order[k]] {
            e += 1;
        }
        let avg = (k + e) as f64 / 2.0 + 1.0;
        for &i in &order[k..=e] {
            r[i] = avg;
        }
        k = e + 1;
    }
    r
}

/// Spearman rank correlation (Pearson of average ranks, as `scipy.stats.spearmanr`).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// One N-way one-shot trial: a query sample, one candidate (support) sample per class, and
/// which candidate shares the query's class.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// Index of the query sample.
    pub query: usize,
    /// Indices of the candidates, one per class.
    pub candidates: Vec<usize>,
    /// Position in `candidates` of the query's class.
    pub correct: usize,
}

/// Koch et al.'s protocol: each trial draws `ways` distinct classes, one support sample of
/// each, and a query: another sample of the first drawn class. Candidate order is shuffled.
pub fn one_shot_trials(
    labels: &[usize],
    ways: usize,
    trials: usize,
    seed: u64,
) -> Result<Vec<Trial>> {
    one_shot_trials_within(labels, None, ways, trials, seed)
}

/// [`one_shot_trials`], optionally **within groups**: with `class_groups` (the group of each
/// class, e.g. the alphabet of each Omniglot character), every trial first draws a group with
/// at least `ways` usable classes, uniformly, then draws its classes from that group only —
/// Koch et al.'s within-alphabet 20-way task.
pub fn one_shot_trials_within(
    labels: &[usize],
    class_groups: Option<&[usize]>,
    ways: usize,
    trials: usize,
    seed: u64,
) -> Result<Vec<Trial>> {
    use rand::seq::SliceRandom;
    use rand::{RngExt, SeedableRng};
    let by_class = crate::data::pairs::indices_by_class(labels);
    let eligible: Vec<usize> = (0..by_class.len())
        .filter(|&c| by_class[c].len() >= 2)
        .collect();
    // Pools of classes that trials draw from: one per group, or all eligible classes.
    let pools: Vec<Vec<usize>> = match class_groups {
        None => vec![eligible.clone()],
        Some(groups) => {
            let n_groups = eligible
                .iter()
                .map(|&c| groups.get(c).copied().unwrap_or(0) + 1)
                .max()
                .unwrap_or(0);
            let mut pools = vec![Vec::new(); n_groups];
            for &c in &eligible {
                pools[groups.get(c).copied().unwrap_or(0)].push(c);
            }
            pools
        }
    };
    // Most usable classes in one pool, for the error message.
    let largest = pools.iter().map(Vec::len).max().unwrap_or(0);
    let pools: Vec<Vec<usize>> = pools.into_iter().filter(|p| p.len() >= ways).collect();
    if ways < 2 || pools.is_empty() {
        return Err(SiameseError::invalid(
            "one-shot",
            format!(
                "{ways}-way trials need {ways} classes with two samples or more{}; {largest} have",
                if class_groups.is_some() {
                    " in one group"
                } else {
                    ""
                }
            ),
        ));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(trials);
    for _ in 0..trials {
        let pool = if pools.len() == 1 {
            &pools[0]
        } else {
            &pools[rng.random_range(0..pools.len())]
        };
        let mut classes = pool.clone();
        classes.shuffle(&mut rng);
        classes.truncate(ways);
        let target = &by_class[classes[0]];
        let q = rng.random_range(0..target.len());
        let s = (q + rng.random_range(1..target.len())) % target.len();
        let mut candidates: Vec<usize> = vec![target[s]];
        for &c in &classes[1..] {
            candidates.push(by_class[c][rng.random_range(0..by_class[c].len())]);
        }
        let mut positions: Vec<usize> = (0..ways).collect();
        positions.shuffle(&mut rng);
        let shuffled: Vec<usize> = positions.iter().map(|&p| candidates[p]).collect();
        let correct = positions.iter().position(|&p| p == 0).unwrap_or(0);
        out.push(Trial {
            query: target[q],
            candidates: shuffled,
            correct,
        });
    }
    Ok(out)
}

pub use crate::data::split::parent_groups;

/// Fraction of trials whose nearest candidate (by `distance(query, candidate)`) is correct.
pub fn one_shot_accuracy(trials: &[Trial], mut distance: impl FnMut(usize, usize) -> f32) -> f64 {
    let hits = trials
        .iter()
        .filter(|t| {
            let d: Vec<f32> = t.candidates.iter().map(|&c| distance(t.query, c)).collect();
            nearest_is_correct(&d, t.correct)
        })
        .count();
    ratio(hits, trials.len())
}

/// Every trial's (query, candidate) pairs, trial by trial in candidate order: what a model
/// scores in one call before [`one_shot_accuracy_of`].
pub fn trial_pairs(trials: &[Trial]) -> Vec<crate::data::pairs::IndexPair> {
    trials
        .iter()
        .flat_map(|t| {
            t.candidates.iter().map(|&c| crate::data::pairs::IndexPair {
                i: t.query,
                j: c,
                label: 0.0,
            })
        })
        .collect()
}

/// [`one_shot_accuracy`] from the distances of [`trial_pairs`]`(trials)`, in that order.
///
/// # Panics
/// When `distances` is shorter than the trials' candidates.
pub fn one_shot_accuracy_of(trials: &[Trial], distances: &[f32]) -> f64 {
    let mut at = 0;
    let hits = trials
        .iter()
        .filter(|t| {
            let d = &distances[at..at + t.candidates.len()];
            at += t.candidates.len();
            nearest_is_correct(d, t.correct)
        })
        .count();
    ratio(hits, trials.len())
}

/// Whether the smallest of `d` is at `correct`.
fn nearest_is_correct(d: &[f32], correct: usize) -> bool {
    let best = (0..d.len())
        .min_by(|&a, &b| d[a].total_cmp(&d[b]))
        .unwrap_or(0);
    best == correct
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values: tools/reference_metrics.py (scikit-learn 1.x, scipy):
    // d = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.55, 0.3, 0.7, 0.45]; y = [1,1,0,0,1,0,1,0,0,1]
    const D: [f32; 10] = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.55, 0.3, 0.7, 0.45];
    const Y: [f32; 10] = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0];

    #[test]
    fn confusion_metrics_match_sklearn() {
        // accuracy 0.7, precision 0.6667, recall 0.8, f1 0.7273; tn fp fn tp = 3 2 1 4
        let c = Confusion::at(&D, &Y, 0.5).unwrap();
        assert_eq!((c.tn, c.fp, c.fn_, c.tp), (3, 2, 1, 4));
        assert!((c.accuracy() - 0.7).abs() < 1e-12);
        assert!((c.precision() - 0.666_666_666_666_666_6).abs() < 1e-12);
        assert!((c.recall() - 0.8).abs() < 1e-12);
        assert!((c.f1() - 0.727_272_727_272_727_3).abs() < 1e-12);
        assert!((c.far() - 0.4).abs() < 1e-12);
        assert!((c.frr() - 0.2).abs() < 1e-12);
    }

    #[test]
    fn auc_and_eer_match_sklearn_scipy() {
        // roc_auc_score(y, -d) = 0.76;
        // brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1) = 0.4
        let r = roc(&D, &Y).unwrap();
        assert!((r.auc() - 0.76).abs() < 1e-9, "{}", r.auc());
        let e = r.eer();
        assert!((e.rate - 0.4).abs() < 1e-9, "{e:?}");
        // Between the points (0.4, 0.4) at d = 0.35 and (0.4, 1.0) at d = 0.55.
        assert!((0.35..=0.55).contains(&e.threshold), "{e:?}");
        assert!(roc(&D, &[1.0; 10]).is_err());
    }

    #[test]
    fn perfect_separation_has_auc_1_and_eer_0() {
        let d = [0.1, 0.2, 0.8, 0.9];
        let y = [1.0, 1.0, 0.0, 0.0];
        let r = roc(&d, &y).unwrap();
        assert_eq!(r.auc(), 1.0);
        assert_eq!(r.eer().rate, 0.0);
        let t = calibrate(&d, &y, Objective::Accuracy).unwrap();
        assert!(t > 0.2 && t < 0.8, "{t}");
    }

    #[test]
    fn calibration_objectives() {
        let t = calibrate(&D, &Y, Objective::Accuracy).unwrap();
        let best = Confusion::at(&D, &Y, t).unwrap().accuracy();
        for c in candidates(&D) {
            assert!(Confusion::at(&D, &Y, c).unwrap().accuracy() <= best);
        }
        let t = calibrate(&D, &Y, Objective::TargetFar(0.0)).unwrap();
        assert_eq!(Confusion::at(&D, &Y, t).unwrap().far(), 0.0);
        // The largest such threshold: just below 0.3, the smallest impostor distance.
        assert!(t > 0.2 && t < 0.3, "{t}");
        let t = calibrate(&D, &Y, Objective::F1).unwrap();
        assert!(Confusion::at(&D, &Y, t).unwrap().f1() >= 0.727);
        assert_eq!(
            "far=0.01".parse::<Objective>().unwrap(),
            Objective::TargetFar(0.01)
        );
        assert!("recall".parse::<Objective>().is_err());
        // EER: the threshold where FAR and FRR cross, as reported by the ROC.
        assert_eq!("eer".parse::<Objective>().unwrap(), Objective::Eer);
        let t = calibrate(&D, &Y, Objective::Eer).unwrap();
        assert_eq!(t as f64, roc(&D, &Y).unwrap().eer().threshold as f32 as f64);
    }

    #[test]
    fn correlations_match_scipy() {
        // pearsonr = 0.9550440826162435, spearmanr = 1.0
        let a = [1.0, 2.5, 3.0, 4.5, 2.0, 5.0];
        let b = [0.8, 2.0, 3.5, 4.0, 1.0, 4.8];
        assert!((pearson(&a, &b) - 0.955_044_082_616_243_5).abs() < 1e-12);
        assert!((spearman(&a, &b) - 1.0).abs() < 1e-12);
        // With ties: spearmanr = 0.7631578947368421, pearsonr = 0.8287248620773796
        let c = [1.0, 2.0, 2.0, 3.0, 5.0];
        let e = [2.0, 1.0, 4.0, 4.0, 6.0];
        assert!((spearman(&c, &e) - 0.763_157_894_736_842_1).abs() < 1e-12);
        assert!((pearson(&c, &e) - 0.828_724_862_077_379_6).abs() < 1e-12);
    }

    #[test]
    fn one_shot_trials_follow_the_protocol() {
        let labels: Vec<usize> = (0..60).map(|i| i % 20).collect();
        let trials = one_shot_trials(&labels, 5, 50, 1).unwrap();
        for t in &trials {
            assert_eq!(t.candidates.len(), 5);
            assert_eq!(labels[t.candidates[t.correct]], labels[t.query]);
            assert_ne!(t.candidates[t.correct], t.query);
            let classes: std::collections::BTreeSet<usize> =
                t.candidates.iter().map(|&c| labels[c]).collect();
            assert_eq!(classes.len(), 5);
        }
        // An oracle distance (0 for the same class) is always right; a constant one picks
        // position 0, right about 1/5 of the time.
        assert_eq!(
            one_shot_accuracy(&trials, |q, c| if labels[q] == labels[c] {
                0.0
            } else {
                1.0
            }),
            1.0
        );
        let chance = one_shot_accuracy(&trials, |_, _| 1.0);
        assert!(chance < 0.5, "{chance}");
        // The same scores through trial_pairs, in pair order: the same accuracy.
        let score = |q: usize, c: usize| ((q * 7 + c * 13) % 11) as f32;
        let pairs = trial_pairs(&trials);
        assert_eq!(pairs.len(), 50 * 5);
        let d: Vec<f32> = pairs.iter().map(|p| score(p.i, p.j)).collect();
        assert_eq!(
            one_shot_accuracy_of(&trials, &d),
            one_shot_accuracy(&trials, score)
        );
        assert!(one_shot_trials(&labels, 25, 1, 0).is_err());
    }

    #[test]
    fn within_group_trials_stay_in_one_group() {
        let names: Vec<String> = ["A/c1", "A/c2", "A/c3", "B/c1", "B/c2", "B/c3", "C/c1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (groups, group_names) = parent_groups(&names);
        assert_eq!(groups, vec![0, 0, 0, 1, 1, 1, 2]);
        assert_eq!(group_names, vec!["A", "B", "C"]);
        let labels: Vec<usize> = (0..7).flat_map(|c| [c, c, c]).collect();
        let trials = one_shot_trials_within(&labels, Some(&groups), 3, 200, 4).unwrap();
        let mut used = [0usize; 3];
        for t in &trials {
            let g = groups[labels[t.query]];
            used[g] += 1;
            assert!(t.candidates.iter().all(|&c| groups[labels[c]] == g));
            assert_eq!(labels[t.candidates[t.correct]], labels[t.query]);
            assert_ne!(t.candidates[t.correct], t.query);
        }
        // Group C has one class: never usable for 3-way trials; A and B share the trials.
        assert_eq!(used[2], 0);
        assert!(used[0] > 60 && used[1] > 60, "{used:?}");
        let err = one_shot_trials_within(&labels, Some(&groups), 4, 1, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("in one group") && err.contains("3 have"),
            "{err}"
        );
    }
}
