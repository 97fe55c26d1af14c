//! The optimizers of the fused path ([`FusedOptimizer`]), their per-parameter kernels, and the
//! optimizer state a model keeps between `fit` calls ([`OptimizerState`]).

use serde::{Deserialize, Serialize};

use crate::error::{Result, SiameseError};
use crate::simd::multiversion;

multiversion! {
    /// Keras RMSprop on one parameter: `v ← ρ·v + (1 − ρ)·g²`, `w ← w − lr·g/√(v + ε)`, in
    /// the operation order of [`crate::optim::KerasRmsProp`].
    ///
    /// Averages that decay below `f32::MIN_POSITIVE` (≈ 1.2e-38), and squares of gradients
    /// below 1e-19, are flushed to zero: weights that stop receiving gradient (dead ReLU units)
    /// otherwise drive `v` into subnormal numbers, which x86 cores handle in microcode at up
    /// to a hundred times the cost (a quarter of a batch-32 step was spent there). With
    /// `ε ≥ 1e-30` (the fused path is not used below) the change to `v + ε` is under an
    /// eighth of its last place, so the weights move exactly as without the flush, up to a
    /// rare one-ulp rounding of `v + ε`; at Keras's `ε = 1e-7`, `v + ε` is `ε` either way.
    fn rmsprop(w: &mut [f32], v: &mut [f32], g: &[f32], lr: f32, rho: f32, epsilon: f32) {
        for ((w, v), &g) in w.iter_mut().zip(v.iter_mut()).zip(g) {
            let gs = if g.abs() < 1e-19 { 0.0 } else { g };
            let nv = *v * rho + gs * gs * (1.0 - rho);
            *v = if nv < f32::MIN_POSITIVE { 0.0 } else { nv };
            *w -= g / (*v + epsilon).sqrt() * lr;
        }
    }
}

/// One Adam step's scalars: the decays, `c = √(1 − β₂ᵗ)/(1 − β₁ᵗ)` and `ε·√(1 − β₂ᵗ)`.
#[derive(Debug, Clone, Copy)]
struct AdamStep {
    lr: f32,
    beta_1: f32,
    beta_2: f32,
    factor: f32,
    eps: f32,
}

multiversion! {
    /// burn's Adam on one parameter, in its operation order: `m ← β₁·m + (1 − β₁)·g`,
    /// `v ← β₂·v + (1 − β₂)·g²`, `w ← w − lr·(c·m)/(√v + ε·√(1 − β₂ᵗ))`.
    fn adam(w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: AdamStep) {
        for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
            *m = *m * k.beta_1 + g * (1.0 - k.beta_1);
            *v = *v * k.beta_2 + g * g * (1.0 - k.beta_2);
            *w -= *m * k.factor / (v.sqrt() + k.eps) * k.lr;
        }
    }
}

multiversion! {
    /// burn's SGD on one parameter (dampening 0): with momentum `μ > 0`, `u ← g + μ·u` and the
    /// step is `u` (Nesterov: `μ·u + g`); without, the step is `g`. `w ← w − lr·step`.
    fn sgd(w: &mut [f32], u: &mut [f32], g: &[f32], lr: f32, momentum: f32, nesterov: bool) {
        if momentum > 0.0 {
            for ((w, u), &g) in w.iter_mut().zip(u.iter_mut()).zip(g) {
                *u = g + *u * momentum;
                let step = if nesterov { *u * momentum + g } else { *u };
                *w -= step * lr;
            }
        } else {
            for (w, &g) in w.iter_mut().zip(g) {
                *w -= g * lr;
            }
        }
    }
}

/// Optimizer state of the fused path, kept by the model between `fit` calls: per parameter
/// value a first slot (RMSprop's square average, Adam's first moment, SGD's velocity) and a
/// second (Adam's second moment), `[kernel, bias]` per layer, and the step count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OptimizerState {
    pub(super) first: Vec<[Vec<f32>; 2]>,
    pub(super) second: Vec<[Vec<f32>; 2]>,
    pub(super) steps: i32,
    pub(super) kind: Option<&'static str>,
}

/// An [`OptimizerState`] as plain data, to save with a model and restore through
/// [`OptimizerState::from_parts`]: the two slots (`[kernel, bias]` per layer), the step count
/// and the name of the optimizer the state belongs to (`"rmsprop"`, `"adam"` or `"sgd"`;
/// `None` for the empty default state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerStateParts {
    /// First slot per parameter value: RMSprop's square average, Adam's first moment, SGD's
    /// velocity.
    pub first: Vec<[Vec<f32>; 2]>,
    /// Second slot per parameter value (Adam's second moment), shaped as `first`.
    pub second: Vec<[Vec<f32>; 2]>,
    /// Optimizer steps taken so far.
    pub steps: i32,
    /// The optimizer's name.
    pub kind: Option<String>,
}

impl OptimizerState {
    /// `state` when it is a state of `optimizer` over parameters of the shapes of `zeros`
    /// (`[kernel, bias]` per layer, all zeros), else a fresh state.
    pub(super) fn resume_or_fresh(
        state: Option<Self>,
        zeros: &[[Vec<f32>; 2]],
        optimizer: FusedOptimizer,
    ) -> Self {
        let kind = Some(optimizer.name());
        let same_shapes = |a: &[[Vec<f32>; 2]]| {
            a.len() == zeros.len()
                && a.iter()
                    .zip(zeros)
                    .all(|(a, b)| a[0].len() == b[0].len() && a[1].len() == b[1].len())
        };
        state
            .filter(|s| s.kind == kind && same_shapes(&s.first))
            .unwrap_or_else(|| Self {
                first: zeros.to_vec(),
                second: zeros.to_vec(),
                steps: 0,
                kind,
            })
    }

    /// The state as plain data, for [`OptimizerState::from_parts`].
    pub fn to_parts(&self) -> OptimizerStateParts {
        OptimizerStateParts {
            first: self.first.clone(),
            second: self.second.clone(),
            steps: self.steps,
            kind: self.kind.map(str::to_owned),
        }
    }

    /// The state [`OptimizerState::to_parts`] gave. An unknown optimizer name, a negative step
    /// count or a second slot shaped unlike the first is an error.
    pub fn from_parts(parts: OptimizerStateParts) -> Result<Self> {
        let invalid = |message: String| SiameseError::invalid("optimizer state", message);
        let kind = match parts.kind.as_deref() {
            None => None,
            Some(name) => Some(
                FusedOptimizer::NAMES
                    .into_iter()
                    .find(|&known| known == name)
                    .ok_or_else(|| {
                        invalid(format!(
                            "unknown optimizer {name:?}, expected one of {:?}",
                            FusedOptimizer::NAMES
                        ))
                    })?,
            ),
        };
        if parts.steps < 0 {
            return Err(invalid(format!("negative step count {}", parts.steps)));
        }
        let shape = |slot: &[[Vec<f32>; 2]]| -> Vec<[usize; 2]> {
            slot.iter().map(|[k, b]| [k.len(), b.len()]).collect()
        };
        let (first, second) = (shape(&parts.first), shape(&parts.second));
        if first != second {
            return Err(invalid(format!(
                "the second slot's [kernel, bias] lengths {second:?} differ from the first's {first:?}"
            )));
        }
        Ok(Self {
            first: parts.first,
            second: parts.second,
            steps: parts.steps,
            kind,
        })
    }
}

/// The optimizer of a fused training run, with the exact formulas of the burn path
/// ([`crate::optim`]): Keras RMSprop, burn's Adam, burn's SGD without dampening.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FusedOptimizer {
    /// Keras RMSprop (`ε` inside the square root).
    RmsProp {
        /// Learning rate.
        lr: f32,
        /// Decay of the square average.
        rho: f32,
        /// Added under the square root; at least 1e-30 (see `rmsprop`'s subnormal flush).
        epsilon: f32,
    },
    /// burn's Adam (bias-corrected, `ε` outside the square root).
    Adam {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta_1: f32,
        /// Second-moment decay.
        beta_2: f32,
        /// Numerical-stability term.
        epsilon: f32,
    },
    /// burn's SGD with optional (Nesterov) momentum, no dampening.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum (0: plain SGD).
        momentum: f32,
        /// Nesterov momentum.
        nesterov: bool,
    },
}

impl FusedOptimizer {
    /// The fused form of a configured optimizer, when there is one.
    pub fn from_config(config: &crate::optim::OptimizerConfig) -> Option<Self> {
        use crate::optim::OptimizerConfig as C;
        Some(match *config {
            // ε ≥ 1e-30 keeps the subnormal flush of the square average exact.
            C::Rmsprop { lr, rho, epsilon } if epsilon >= 1e-30 => Self::RmsProp {
                lr: lr as f32,
                rho,
                epsilon,
            },
            C::Rmsprop { .. } => return None,
            C::Adam {
                lr,
                beta_1,
                beta_2,
                epsilon,
            } => Self::Adam {
                lr: lr as f32,
                beta_1,
                beta_2,
                epsilon,
            },
            C::Sgd {
                lr,
                momentum,
                nesterov,
            } => Self::Sgd {
                lr: lr as f32,
                momentum: momentum as f32,
                nesterov,
            },
        })
    }

    /// The learning rate.
    pub fn lr(self) -> f32 {
        match self {
            Self::RmsProp { lr, .. } | Self::Adam { lr, .. } | Self::Sgd { lr, .. } => lr,
        }
    }

    /// The same optimizer with learning rate `lr` (a schedule's step).
    pub fn with_lr(mut self, rate: f32) -> Self {
        match &mut self {
            Self::RmsProp { lr, .. } | Self::Adam { lr, .. } | Self::Sgd { lr, .. } => *lr = rate,
        }
        self
    }

    /// The names [`FusedOptimizer::name`] gives, which an [`OptimizerState`] records.
    const NAMES: [&'static str; 3] = ["rmsprop", "adam", "sgd"];

    pub(super) fn name(self) -> &'static str {
        let [rmsprop, adam, sgd] = Self::NAMES;
        match self {
            Self::RmsProp { .. } => rmsprop,
            Self::Adam { .. } => adam,
            Self::Sgd { .. } => sgd,
        }
    }

    /// Updates one span of a parameter from its summed gradient, at step `t` (from 1).
    pub(super) fn update(
        self,
        w: &mut [f32],
        first: &mut [f32],
        second: &mut [f32],
        g: &[f32],
        t: i32,
    ) {
        match self {
            Self::RmsProp { lr, rho, epsilon } => rmsprop(w, first, g, lr, rho, epsilon),
            Self::Adam {
                lr,
                beta_1,
                beta_2,
                epsilon,
            } => {
                // At step t (from 1), as burn computes them, in f32.
                let bias2 = (1.0 - beta_2.powi(t)).sqrt();
                let step = AdamStep {
                    lr,
                    beta_1,
                    beta_2,
                    factor: bias2 / (1.0 - beta_1.powi(t)),
                    eps: epsilon * bias2,
                };
                adam(w, first, second, g, step)
            }
            Self::Sgd {
                lr,
                momentum,
                nesterov,
            } => sgd(w, first, g, lr, momentum, nesterov),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flushing subnormal averages leaves every weight exactly where Keras's formula puts it.
    #[test]
    fn rmsprop_flush_moves_weights_exactly_as_the_plain_formula() {
        let (lr, rho, epsilon) = (0.001f32, 0.9f32, 1e-7f32);
        for v0 in [0.0, 1e-39, 1e-37, 3e-30, 1e-12, 1e-3] {
            for g in [0.0, 1e-21, -1e-20, 3e-19, 1e-5, -0.1] {
                let (mut w, mut v) = ([0.25f32, 0.0], [v0, v0]);
                rmsprop(&mut w, &mut v, &[g, g], lr, rho, epsilon);
                let plain_v = v0 * rho + g * g * (1.0 - rho);
                let plain = |w: f32| w - g / (plain_v + epsilon).sqrt() * lr;
                assert_eq!(w, [plain(0.25), plain(0.0)], "v = {v0}, g = {g}");
                assert!(v[0] == 0.0 || v[0].is_normal(), "v = {}", v[0]);
                assert!((v[0] - plain_v).abs() < f32::MIN_POSITIVE, "v = {}", v[0]);
            }
        }
    }

    /// `from_parts` inverts `to_parts` and rejects an unknown optimizer, a negative step
    /// count and slots of different shapes.
    #[test]
    fn optimizer_state_parts_are_checked() {
        let slot = || vec![[vec![0.5; 6], vec![-0.25; 3]], [vec![1e-39; 3], vec![2.0]]];
        let parts = OptimizerStateParts {
            first: slot(),
            second: slot(),
            steps: 2,
            kind: Some("adam".into()),
        };
        let state = OptimizerState::from_parts(parts.clone()).unwrap();
        assert_eq!(state.kind, Some("adam"));
        assert_eq!(state.to_parts(), parts);
        let empty = OptimizerState::default();
        assert_eq!(OptimizerState::from_parts(empty.to_parts()).unwrap(), empty);
        let mut short = slot();
        short[1][0].pop();
        for (bad, what) in [
            (
                OptimizerStateParts {
                    kind: Some("adagrad".into()),
                    ..parts.clone()
                },
                "adagrad",
            ),
            (
                OptimizerStateParts {
                    steps: -1,
                    ..parts.clone()
                },
                "negative step count",
            ),
            (
                OptimizerStateParts {
                    second: short,
                    ..parts.clone()
                },
                "second slot",
            ),
            (
                OptimizerStateParts {
                    second: Vec::new(),
                    ..parts.clone()
                },
                "second slot",
            ),
        ] {
            let err = OptimizerState::from_parts(bad).unwrap_err().to_string();
            assert!(
                err.contains("optimizer state") && err.contains(what),
                "{err}"
            );
        }
    }
}
