//! Optimizers: Keras-exact RMSprop (the reference), Adam and SGD with momentum.
//!
//! burn's own `RmsProp` divides by `√v + ε`; Keras divides by `√(v + ε)`. With Keras's
//! `ε = 1e-7` the two differ by orders of magnitude for small gradients (a gradient of 1e-4 on
//! the first step moves a weight by 3.2e-4 in Keras and by 3.2e-3 in burn), so the reference
//! optimizer is implemented here on burn's [`Optimizer`] trait:
//!
//! ```text
//! v ← ρ·v + (1 − ρ)·g²            (v starts at 0)
//! w ← w − lr · g / √(v + ε)
//! ```
//!
//! with Keras's defaults `lr = 0.001, ρ = 0.9, ε = 1e-7`, no momentum, not centred.

use burn::optim::{
    AdamConfig, LearningRate, ModuleOptimizer, Optimizer, SgdConfig, SquareAvgState,
    momentum::MomentumConfig,
};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SiameseError};

/// RMSprop exactly as `keras.optimizers.RMSprop` (momentum 0, not centred).
#[derive(Debug, Clone)]
pub struct KerasRmsProp {
    rho: f32,
    epsilon: f32,
}

impl KerasRmsProp {
    /// RMSprop with decay `rho` and `epsilon` inside the square root.
    pub fn new(rho: f32, epsilon: f32) -> Self {
        Self { rho, epsilon }
    }
}

impl Optimizer for KerasRmsProp {
    type State<const D: usize> = SquareAvgState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let g2 = grad.clone().square().mul_scalar(1.0 - self.rho);
        let velocity = match state {
            Some(state) => state.square_avg.mul_scalar(self.rho).add(g2),
            None => g2,
        };
        let step = grad
            .div(velocity.clone().add_scalar(self.epsilon).sqrt())
            .mul_scalar(lr);
        (tensor.sub(step), Some(SquareAvgState::new(velocity)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.to_device(device)
    }
}

/// Optimizer choice and hyper-parameters, serialisable in a run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// RMSprop, Keras formula (the reference).
    Rmsprop {
        /// Learning rate (Keras default 0.001).
        #[serde(default = "lr_default")]
        lr: f64,
        /// Decay of the squared-gradient average (Keras default 0.9).
        #[serde(default = "rho_default")]
        rho: f32,
        /// Added under the square root (Keras default 1e-7).
        #[serde(default = "eps_default")]
        epsilon: f32,
    },
    /// Adam (burn's formula, `m̂ / (√v̂ + ε)`).
    Adam {
        /// Learning rate.
        #[serde(default = "lr_default")]
        lr: f64,
        /// First-moment decay.
        #[serde(default = "beta1_default")]
        beta_1: f32,
        /// Second-moment decay.
        #[serde(default = "beta2_default")]
        beta_2: f32,
        /// Numerical-stability term.
        #[serde(default = "eps_default")]
        epsilon: f32,
    },
    /// Stochastic gradient descent with optional (Nesterov) momentum, no dampening (as Keras).
    Sgd {
        /// Learning rate.
        #[serde(default = "sgd_lr_default")]
        lr: f64,
        /// Momentum factor (0 disables it).
        #[serde(default)]
        momentum: f64,
        /// Nesterov momentum.
        #[serde(default)]
        nesterov: bool,
    },
}

fn lr_default() -> f64 {
    0.001
}
fn sgd_lr_default() -> f64 {
    0.01
}
fn rho_default() -> f32 {
    0.9
}
fn eps_default() -> f32 {
    1e-7
}
fn beta1_default() -> f32 {
    0.9
}
fn beta2_default() -> f32 {
    0.999
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self::rmsprop()
    }
}

impl OptimizerConfig {
    /// RMSprop with Keras defaults: lr 0.001, rho 0.9, epsilon 1e-7.
    pub fn rmsprop() -> Self {
        Self::Rmsprop {
            lr: lr_default(),
            rho: rho_default(),
            epsilon: eps_default(),
        }
    }

    /// Adam with Keras defaults: lr 0.001, betas 0.9 / 0.999, epsilon 1e-7.
    pub fn adam() -> Self {
        Self::Adam {
            lr: lr_default(),
            beta_1: beta1_default(),
            beta_2: beta2_default(),
            epsilon: eps_default(),
        }
    }

    /// SGD with learning rate `lr` and `momentum` (0 for plain SGD).
    pub fn sgd(lr: f64, momentum: f64) -> Self {
        Self::Sgd {
            lr,
            momentum,
            nesterov: false,
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Self::Rmsprop { lr, .. } | Self::Adam { lr, .. } | Self::Sgd { lr, .. } => *lr,
        }
    }

    /// A short name (`rmsprop`, `adam`, `sgd`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Rmsprop { .. } => "rmsprop",
            Self::Adam { .. } => "adam",
            Self::Sgd { .. } => "sgd",
        }
    }

    /// Checks every hyper-parameter, naming the offending field.
    pub fn validate(&self) -> Result<()> {
        let lr = self.lr();
        if !(lr.is_finite() && lr > 0.0) {
            return Err(SiameseError::config(
                "optimizer.lr",
                format!("must be a positive number, got {lr}"),
            ));
        }
        let unit = |field: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(SiameseError::config(
                    format!("optimizer.{field}"),
                    format!("must be in [0, 1), got {v}"),
                ))
            }
        };
        let positive = |field: &str, v: f32| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(SiameseError::config(
                    format!("optimizer.{field}"),
                    format!("must be positive, got {v}"),
                ))
            }
        };
        match *self {
            Self::Rmsprop { rho, epsilon, .. } => {
                unit("rho", rho as f64)?;
                positive("epsilon", epsilon)
            }
            Self::Adam {
                beta_1,
                beta_2,
                epsilon,
                ..
            } => {
                unit("beta_1", beta_1 as f64)?;
                unit("beta_2", beta_2 as f64)?;
                positive("epsilon", epsilon)
            }
            Self::Sgd { momentum, .. } => unit("momentum", momentum),
        }
    }

    /// Builds burn's module optimizer.
    pub fn init(&self) -> Result<ModuleOptimizer> {
        self.validate()?;
        Ok(match *self {
            Self::Rmsprop { rho, epsilon, .. } => {
                ModuleOptimizer::from(KerasRmsProp::new(rho, epsilon))
            }
            Self::Adam {
                beta_1,
                beta_2,
                epsilon,
                ..
            } => AdamConfig::new()
                .with_beta_1(beta_1)
                .with_beta_2(beta_2)
                .with_epsilon(epsilon)
                .init(),
            Self::Sgd {
                momentum, nesterov, ..
            } => {
                let mut config = SgdConfig::new();
                if momentum > 0.0 {
                    config = config.with_momentum(Some(
                        MomentumConfig::new()
                            .with_momentum(momentum)
                            .with_dampening(0.0)
                            .with_nesterov(nesterov),
                    ));
                }
                config.init()
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::optim::GradientsParams;
    use burn::tensor::TensorData;

    #[derive(Module, Debug)]
    struct Weights {
        w: Param<Tensor<1>>,
    }

    /// Runs `steps` of `optim` on `w0` with the given gradients, as a module parameter.
    pub(crate) fn run(config: &OptimizerConfig, w0: &[f32], grads: &[&[f32]]) -> Vec<f32> {
        let device = Device::flex().autodiff();
        let mut optim = config.init().unwrap();
        let mut module = Weights {
            w: Param::from_tensor(Tensor::from_data(TensorData::from(w0), &device)),
        };
        for g in grads {
            let mut gp = GradientsParams::new();
            gp.register(
                module.w.id,
                Tensor::<1>::from_data(TensorData::from(*g), &device),
            );
            module = optim.step(config.lr(), module, gp);
        }
        module.w.val().into_data().try_to_vec::<f32>().unwrap()
    }

    pub(crate) const W0: [f32; 5] = [0.5, -0.25, 1.0, 0.0, 2.0];
    pub(crate) const G1: [f32; 5] = [0.1, -0.2, 0.001, 3.0, -1e-4];
    pub(crate) const G2: [f32; 5] = [-0.05, 0.4, 0.002, 1.0, 5e-4];

    fn assert_close(got: &[f32], want: &[f32], tol: f32) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol, "element {i}: got {g}, want {w}");
        }
    }

    /// Reference values from Keras 3.15.1 (JAX backend), `tools/keras_rmsprop_reference.py`:
    /// ```python
    /// v = keras.Variable(w0); opt = keras.optimizers.RMSprop()
    /// opt.apply_gradients([(g1, v)]); opt.apply_gradients([(g2, v)])
    /// ```
    #[test]
    #[allow(clippy::excessive_precision)] // literal values as Keras printed them
    fn rmsprop_matches_keras_one_and_two_steps() {
        let step1 = [
            0.496_837_884_187_698_36,
            -0.246_837_764_978_408_8,
            0.997_763_931_751_251_2,
            -0.003_162_277_396_768_331_5,
            2.000_314_712_524_414,
        ];
        let step2 = [
            0.498_312_234_878_540_04,
            -0.249_694_898_724_555_97,
            0.995_160_162_448_883_1,
            -0.004_210_562_445_223_331_5,
            1.998_905_539_512_634_3,
        ];
        let config = OptimizerConfig::rmsprop();
        assert_close(&run(&config, &W0, &[&G1]), &step1, 1e-6);
        assert_close(&run(&config, &W0, &[&G1, &G2]), &step2, 1e-6);
    }

    #[test]
    fn sgd_momentum_matches_keras_formula() {
        // Keras SGD(momentum=0.9): m ← 0.9·m − lr·g; w ← w + m.
        let lr = 0.1f32;
        let mut m = [0f32; 5];
        let mut w = W0;
        for g in [G1, G2] {
            for i in 0..5 {
                m[i] = 0.9 * m[i] - lr * g[i];
                w[i] += m[i];
            }
        }
        let got = run(&OptimizerConfig::sgd(lr as f64, 0.9), &W0, &[&G1, &G2]);
        assert_close(&got, &w, 1e-6);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // Adam's first bias-corrected step is lr·g/(|g| + ε) ≈ lr·sign(g) for |g| ≫ ε.
        let got = run(&OptimizerConfig::adam(), &W0, &[&G1]);
        for i in 0..4 {
            assert!((W0[i] - got[i] - 0.001 * G1[i].signum()).abs() < 1e-5);
        }
    }

    #[test]
    fn invalid_hyper_parameters_are_named() {
        let bad = OptimizerConfig::Rmsprop {
            lr: -1.0,
            rho: 0.9,
            epsilon: 1e-7,
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("optimizer.lr")
        );
        let bad = OptimizerConfig::Rmsprop {
            lr: 0.1,
            rho: 1.5,
            epsilon: 1e-7,
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("optimizer.rho")
        );
    }
}
