//! Learning-rate schedules: the optimizer's configured rate `lr₀` times a factor of the
//! training progress, set before every step (PyTorch's `StepLR`, `CosineAnnealingLR` and
//! linear warm-up; Keras's `LearningRateScheduler`; Hugging Face's
//! `get_linear_schedule_with_warmup`, which Sentence-BERT fine-tunes with: `linear` decay to 0
//! after a warm-up of a tenth of the run, a fractional `W`).
//!
//! With `t` the epochs done so far (fractional within an epoch: `e + s/S` before step `s` of
//! `S` in epoch `e`, from 0), `E` the run's epochs and `W` the warm-up epochs:
//!
//! ```text
//! constant   f = 1
//! step       f = γ^⌊e / every⌋
//! cosine     f = f_min + (1 − f_min)·(1 + cos(π·u))/2,   u = (t − W)/(E − W) clamped to [0, 1]
//! linear     f = f_min + (1 − f_min)·(1 − u)
//! warm-up    f ← f · (e·S + s + 1)/(W·S)   while t < W   (linear from lr₀/(W·S) to lr₀)
//! lr = lr₀ · f
//! ```
//!
//! ```
//! use siamese::train::{LrDecay, LrSchedule};
//!
//! let s = LrSchedule { decay: LrDecay::Cosine { min_factor: 0.0 }, warmup_epochs: 1.0 };
//! // 10 epochs of 4 steps: the first epoch warms up, then the rate falls to 0.
//! assert_eq!(s.factor(0, 0, 4, 10), 0.25);
//! assert_eq!(s.factor(1, 0, 4, 10), 1.0);
//! assert!(s.factor(9, 3, 4, 10) < 0.01);
//! let step = LrSchedule { decay: LrDecay::Step { every: 5, gamma: 0.1 }, warmup_epochs: 0.0 };
//! assert!((step.factor(7, 2, 4, 10) - 0.1).abs() < 1e-12);
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Result, SiameseError};

/// How the learning rate decays (see the module's formulas).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LrDecay {
    /// The configured rate throughout.
    #[default]
    Constant,
    /// Multiplied by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: usize,
        /// Factor of each decay.
        gamma: f64,
    },
    /// Cosine annealing from the configured rate to `min_factor` times it, over the epochs
    /// after the warm-up.
    Cosine {
        /// The last epoch's factor.
        #[serde(default)]
        min_factor: f64,
    },
    /// Linear decay from the configured rate to `min_factor` times it, over the epochs after
    /// the warm-up.
    Linear {
        /// The factor at the end of the run.
        #[serde(default)]
        min_factor: f64,
    },
}

/// A learning-rate schedule: a decay and an optional linear warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LrSchedule {
    /// The decay.
    #[serde(default)]
    pub decay: LrDecay,
    /// Epochs of linear warm-up (0: none); fractional values count steps (`0.4` of a
    /// 4-epoch run: its first tenth).
    #[serde(default)]
    pub warmup_epochs: f64,
}

impl LrSchedule {
    /// Whether the rate never changes.
    pub fn is_constant(&self) -> bool {
        self.decay == LrDecay::Constant && self.warmup_epochs == 0.0
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        if !(self.warmup_epochs >= 0.0 && self.warmup_epochs.is_finite()) {
            return Err(SiameseError::config(
                "schedule.warmup_epochs",
                format!("must be a number of epochs ≥ 0, got {}", self.warmup_epochs),
            ));
        }
        match self.decay {
            LrDecay::Step { every, gamma } => {
                if every == 0 {
                    return Err(SiameseError::config(
                        "schedule.every",
                        "must be at least 1 epoch",
                    ));
                }
                if !(gamma > 0.0 && gamma.is_finite()) {
                    return Err(SiameseError::config(
                        "schedule.gamma",
                        format!("must be a positive number, got {gamma}"),
                    ));
                }
            }
            LrDecay::Cosine { min_factor } | LrDecay::Linear { min_factor } => {
                if !(0.0..=1.0).contains(&min_factor) {
                    return Err(SiameseError::config(
                        "schedule.min_factor",
                        format!("must be in [0, 1], got {min_factor}"),
                    ));
                }
            }
            LrDecay::Constant => {}
        }
        Ok(())
    }

    /// The factor of the configured rate before step `step` (from 0) of `steps` in epoch
    /// `epoch` (from 0) of a run of `epochs`.
    pub fn factor(&self, epoch: usize, step: usize, steps: usize, epochs: usize) -> f64 {
        let steps = steps.max(1);
        let t = epoch as f64 + step as f64 / steps as f64;
        let w = self.warmup_epochs;
        // Progress through the epochs after the warm-up, in [0, 1].
        let u = || ((t - w) / (epochs as f64 - w).max(1e-9)).clamp(0.0, 1.0);
        let mut f = match self.decay {
            LrDecay::Constant => 1.0,
            LrDecay::Step { every, gamma } => gamma.powi((epoch / every.max(1)) as i32),
            LrDecay::Cosine { min_factor } => {
                min_factor + (1.0 - min_factor) * (1.0 + (std::f64::consts::PI * u()).cos()) / 2.0
            }
            LrDecay::Linear { min_factor } => min_factor + (1.0 - min_factor) * (1.0 - u()),
        };
        if t < w {
            f *= ((epoch * steps + step + 1) as f64 / (w * steps as f64)).min(1.0);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_follow_the_formulas() {
        let cosine = LrSchedule {
            decay: LrDecay::Cosine { min_factor: 0.1 },
            warmup_epochs: 2.0,
        };
        // Warm-up: (e·S + s + 1)/(W·S), S = 5, W = 2.
        assert!((cosine.factor(0, 0, 5, 12) - 0.1).abs() < 1e-12);
        assert!((cosine.factor(1, 4, 5, 12) - 1.0).abs() < 1e-12);
        // Half-way through the 10 epochs after it: 0.1 + 0.9·0.5.
        assert!((cosine.factor(7, 0, 5, 12) - 0.55).abs() < 1e-12);
        assert!(
            (cosine.factor(11, 4, 5, 12)
                - (0.1 + 0.9 * (1.0 + (0.98 * std::f64::consts::PI).cos()) / 2.0))
                .abs()
                < 1e-12
        );
        let step = LrSchedule {
            decay: LrDecay::Step {
                every: 3,
                gamma: 0.5,
            },
            warmup_epochs: 0.0,
        };
        let per_epoch: Vec<f64> = (0..7).map(|e| step.factor(e, 2, 4, 7)).collect();
        assert_eq!(per_epoch, [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]);
        // SBERT's: a tenth of 4 epochs of 10 steps warms up, then linear decay to 0.
        let linear = LrSchedule {
            decay: LrDecay::Linear { min_factor: 0.0 },
            warmup_epochs: 0.4,
        };
        assert!((linear.factor(0, 0, 10, 4) - 0.25).abs() < 1e-12);
        assert!((linear.factor(0, 3, 10, 4) - 1.0).abs() < 1e-12);
        assert!((linear.factor(0, 4, 10, 4) - 1.0).abs() < 1e-12);
        // Half-way through the 3.6 epochs after it (t = 2.2): 0.5.
        assert!((linear.factor(2, 2, 10, 4) - 0.5).abs() < 1e-12);
        assert!(linear.factor(3, 9, 10, 4) < 0.03);
        let bad = LrSchedule {
            warmup_epochs: -1.0,
            ..linear
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("warmup_epochs")
        );
        assert!(LrSchedule::default().is_constant());
        assert_eq!(LrSchedule::default().factor(3, 1, 4, 5), 1.0);
    }

    #[test]
    fn configs_parse_and_bad_ones_are_named() {
        let s: LrSchedule = serde_json::from_str(
            r#"{"decay": {"type": "cosine", "min_factor": 0.01}, "warmup_epochs": 3}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            LrSchedule {
                decay: LrDecay::Cosine { min_factor: 0.01 },
                warmup_epochs: 3.0
            }
        );
        let s: LrSchedule =
            serde_json::from_str(r#"{"decay": {"type": "step", "every": 0, "gamma": 0.1}}"#)
                .unwrap();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("schedule.every")
        );
        let s: LrSchedule =
            serde_json::from_str(r#"{"decay": {"type": "cosine", "min_factor": 2}}"#).unwrap();
        assert!(s.validate().unwrap_err().to_string().contains("min_factor"));
        let typo = serde_json::from_str::<LrSchedule>(r#"{"warmup": 2}"#).unwrap_err();
        assert!(typo.to_string().contains("warmup"), "{typo}");
        let s: LrSchedule =
            serde_json::from_str(r#"{"decay": {"type": "step", "every": 2, "gamma": 0.5}}"#)
                .unwrap();
        assert!(s.validate().is_ok());
    }
}
