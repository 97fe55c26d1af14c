//! Weight averaging over the later steps of a run: stochastic weight averaging's uniform mean
//! (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and Better
//! Generalization"; PyTorch's `torch.optim.swa_utils.AveragedModel`) or an exponential moving
//! average (Polyak averaging, `AveragedModel(..., multi_avg_fn=get_ema_multi_avg_fn(decay))`).
//!
//! Snapshots `θ_1, θ_2, …` are taken every `every_steps` optimizer steps once `start_epochs`
//! epochs of training are done:
//!
//! ```text
//! uniform (SWA):  θ̄_n = θ̄_{n−1} + (θ_n − θ̄_{n−1}) / n          (θ̄_1 = θ_1: the mean of θ_1..θ_n)
//! ema:            θ̄_n = decay · θ̄_{n−1} + (1 − decay) · θ_n     (θ̄_1 = θ_1)
//! ```
//!
//! Every tensor of the network is averaged: weights, biases, and batch-norm running
//! statistics (an approximation of SWA's recomputed statistics). Once the first snapshot is
//! taken, each epoch's validation and callbacks (keep-best, early stopping, one-shot
//! monitors) see the averaged weights, and `fit` returns them; the optimizer keeps stepping
//! the raw weights. A checkpoint written during such a run (`io::Checkpoint`) holds the
//! averaged weights as its model, and resuming an averaging run is refused: the running
//! average is not part of the checkpoint.
//!
//! Each snapshot reads every weight once (on the host trainers, after writing the trainer's
//! weights back into the burn network), so for a large model `every_steps` of 10 or more
//! keeps the cost small.
//!
//! ```
//! use siamese::train::WeightAverage;
//! let swa: WeightAverage = toml::from_str("start_epochs = 1.5\nevery_steps = 10").unwrap();
//! assert_eq!(swa, WeightAverage { start_epochs: 1.5, every_steps: 10, ..Default::default() });
//! assert!(swa.validate().is_ok());
//! let bad = WeightAverage { decay: Some(1.0), ..swa };
//! assert!(bad.validate().unwrap_err().to_string().contains("average.decay"));
//! ```

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SiameseError};
use crate::siamese::SiameseNetwork;

/// When and how to average the weights: SWA's uniform mean `θ̄_n = θ̄_{n−1} + (θ_n − θ̄_{n−1}) / n`
/// or, with `decay`, an EMA `θ̄_n = decay · θ̄_{n−1} + (1 − decay) · θ_n` of snapshots taken every
/// `every_steps` steps after the start (see [`crate::train::FitOptions::average`]); in a run config
/// `[train] average = { start_epochs = 1, every_steps = 10 }` or `{ start_fraction = 0.5 }`,
/// with `decay` for an EMA.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightAverage {
    /// Epochs of training before the first snapshot (fractional counts steps: `1.5` starts
    /// half-way through epoch 2); default 0, from the first step.
    #[serde(default)]
    pub start_epochs: f64,
    /// The share of the run's epochs before the first snapshot instead of `start_epochs`, in
    /// `[0, 1)`: `0.5` averages the second half of however many epochs the run has (SWA's
    /// usual choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_fraction: Option<f64>,
    /// Optimizer steps between snapshots (default 1, every step).
    #[serde(default = "one")]
    pub every_steps: usize,
    /// The exponential moving average's decay per snapshot, in `[0, 1)`; absent: the uniform
    /// mean of every snapshot (SWA).
    #[serde(default)]
    pub decay: Option<f64>,
}

fn one() -> usize {
    1
}

impl Default for WeightAverage {
    fn default() -> Self {
        Self {
            start_epochs: 0.0,
            start_fraction: None,
            every_steps: 1,
            decay: None,
        }
    }
}

impl WeightAverage {
    /// Checks the fields; errors name `average.start_epochs`, `average.every_steps` or
    /// `average.decay`.
    pub fn validate(&self) -> Result<()> {
        if !(self.start_epochs.is_finite() && self.start_epochs >= 0.0) {
            return Err(SiameseError::config(
                "average.start_epochs",
                format!("must be a finite number ≥ 0, got {}", self.start_epochs),
            ));
        }
        if let Some(f) = self.start_fraction
            && !(0.0..1.0).contains(&f)
        {
            return Err(SiameseError::config(
                "average.start_fraction",
                format!("must be in [0, 1), got {f}"),
            ));
        }
        if self.every_steps == 0 {
            return Err(SiameseError::config(
                "average.every_steps",
                "must be at least 1",
            ));
        }
        if let Some(d) = self.decay
            && !(0.0..1.0).contains(&d)
        {
            return Err(SiameseError::config(
                "average.decay",
                format!("must be in [0, 1), got {d}"),
            ));
        }
        Ok(())
    }

    /// Epochs of training before the first snapshot in a run of `epochs` epochs:
    /// `start_fraction · epochs` when the fraction is given, else `start_epochs`.
    pub fn start(&self, epochs: usize) -> f64 {
        self.start_fraction
            .map_or(self.start_epochs, |f| f * epochs as f64)
    }

    /// Whether the weights after global step `step` (from 1) of a run of `epochs` epochs of
    /// `steps_per_epoch` steps are a snapshot: past `start(epochs) · steps_per_epoch` steps,
    /// every `every_steps`-th step counted from there.
    pub fn takes(&self, step: usize, steps_per_epoch: usize, epochs: usize) -> bool {
        let start = (self.start(epochs) * steps_per_epoch as f64).round() as usize;
        step > start && (step - start).is_multiple_of(self.every_steps)
    }

    /// The epoch (from 1) that ends with the first snapshot of a run of `epochs` epochs, or
    /// `None` when the run would end without one: for an error up front instead of a run
    /// whose averaging never starts.
    pub fn first_epoch(&self, steps_per_epoch: usize, epochs: usize) -> Option<usize> {
        let total = steps_per_epoch * epochs;
        (1..=total)
            .find(|&s| self.takes(s, steps_per_epoch, epochs))
            .map(|s| s.div_ceil(steps_per_epoch.max(1)))
    }
}

/// The element-wise mean of networks of one architecture (a uniform "model soup",
/// Wortsman et al. 2022, of runs fine-tuned from the same start; or checkpoint averaging):
/// `θ̄ = (θ_1 + … + θ_n) / n` for every tensor, in the first network's structure.
///
/// # Errors
/// No networks, or networks whose tensors differ in number or size.
pub fn average_networks(networks: &[&SiameseNetwork]) -> Result<SiameseNetwork> {
    let first = networks
        .first()
        .ok_or_else(|| SiameseError::Empty("no networks to average".into()))?;
    let mut averager = Averager::new(WeightAverage::default());
    for (i, n) in networks.iter().enumerate() {
        averager.add(n).map_err(|e| {
            SiameseError::invalid(
                format!("network {} of {}", i + 1, networks.len()),
                format!("cannot be averaged with the first: {e}"),
            )
        })?;
    }
    // At least one network was added, so the average exists.
    averager
        .averaged(first)
        .ok_or_else(|| SiameseError::Empty("no networks to average".into()))
}

/// The running average of a network's tensors, in the network's visiting order.
#[derive(Debug, Clone, Default)]
pub(super) struct Averager {
    config: WeightAverage,
    /// One flat buffer per tensor.
    mean: Vec<Vec<f32>>,
    /// Snapshots taken so far.
    count: usize,
}

impl Averager {
    pub(super) fn new(config: WeightAverage) -> Self {
        Self {
            config,
            mean: Vec::new(),
            count: 0,
        }
    }

    pub(super) fn config(&self) -> &WeightAverage {
        &self.config
    }

    /// Adds `network`'s weights as the next snapshot.
    pub(super) fn add(&mut self, network: &SiameseNetwork) -> Result<()> {
        let mut reader = Reader {
            tensors: Vec::new(),
            failed: None,
        };
        network.visit(&mut reader);
        if let Some(e) = reader.failed {
            return Err(SiameseError::Runtime(format!(
                "weight averaging: could not read a weight tensor: {e}"
            )));
        }
        let tensors = reader.tensors;
        self.count += 1;
        if self.count == 1 {
            self.mean = tensors;
            return Ok(());
        }
        if tensors.len() != self.mean.len()
            || tensors
                .iter()
                .zip(&self.mean)
                .any(|(t, m)| t.len() != m.len())
        {
            return Err(SiameseError::Runtime(format!(
                "weight averaging: {} tensors of {} values, expected {} tensors of {} values \
                 (another architecture, or shapes changed during training)",
                tensors.len(),
                tensors.iter().map(Vec::len).sum::<usize>(),
                self.mean.len(),
                self.mean.iter().map(Vec::len).sum::<usize>(),
            )));
        }
        // Keep (1 − w)·θ̄ + w·θ, with w = 1/n (uniform) or 1 − decay (EMA).
        let w = match self.config.decay {
            Some(d) => (1.0 - d) as f32,
            None => 1.0 / self.count as f32,
        };
        for (m, t) in self.mean.iter_mut().zip(&tensors) {
            for (m, &t) in m.iter_mut().zip(t) {
                *m += w * (t - *m);
            }
        }
        Ok(())
    }

    /// `network` with the averaged tensors in place, or `None` before the first snapshot.
    pub(super) fn averaged(&self, network: &SiameseNetwork) -> Option<SiameseNetwork> {
        (self.count > 0).then(|| {
            network.clone().map(&mut Writer {
                mean: &self.mean,
                next: 0,
            })
        })
    }
}

/// Reads every float tensor (parameters and running statistics) in visiting order.
struct Reader {
    tensors: Vec<Vec<f32>>,
    /// Why a tensor could not be read, if one could not.
    failed: Option<String>,
}

impl ModuleVisitor for Reader {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        match param.val().into_data().convert::<f32>().try_to_vec::<f32>() {
            Ok(v) => self.tensors.push(v),
            Err(e) => self.failed = Some(format!("{e:?}")),
        }
    }
}

/// Writes the averages back in the same order, with each tensor's shape and device.
struct Writer<'a> {
    mean: &'a [Vec<f32>],
    next: usize,
}

impl ModuleMapper for Writer<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(values) = self.mean.get(self.next) else {
            return param;
        };
        self.next += 1;
        param.map(|t| {
            let device = t.device();
            let shape = t.shape();
            let require_grad = t.is_require_grad();
            let out = Tensor::<D>::from_data(TensorData::new(values.clone(), shape), &device);
            if require_grad {
                out.require_grad()
            } else {
                out
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    fn weights(network: &SiameseNetwork) -> Vec<Vec<f32>> {
        let mut r = Reader {
            tensors: Vec::new(),
            failed: None,
        };
        network.visit(&mut r);
        r.tensors
    }

    /// The uniform mean of three networks is their element-wise mean; the EMA weights them
    /// `decay²·(1 − ...)` as its recursion says.
    #[test]
    fn uniform_and_ema_means() {
        let nets: Vec<SiameseNetwork> = (0..3)
            .map(|s| Siamese::reference(4, s).unwrap().network().clone())
            .collect();
        let w: Vec<Vec<Vec<f32>>> = nets.iter().map(weights).collect();
        let mut uniform = Averager::new(WeightAverage::default());
        let decay = 0.5;
        let mut ema = Averager::new(WeightAverage {
            decay: Some(decay),
            ..WeightAverage::default()
        });
        for n in &nets {
            uniform.add(n).unwrap();
            ema.add(n).unwrap();
        }
        assert_eq!(uniform.count, 3);
        let got = weights(&uniform.averaged(&nets[0]).unwrap());
        let got_ema = weights(&ema.averaged(&nets[0]).unwrap());
        assert_eq!(got.len(), w[0].len());
        let d = decay as f32;
        for t in 0..got.len() {
            for i in 0..got[t].len() {
                let mean = (w[0][t][i] + w[1][t][i] + w[2][t][i]) / 3.0;
                assert!((got[t][i] - mean).abs() < 1e-6, "uniform tensor {t}[{i}]");
                // θ̄ = d·(d·θ0 + (1−d)·θ1) + (1−d)·θ2
                let e = d * (d * w[0][t][i] + (1.0 - d) * w[1][t][i]) + (1.0 - d) * w[2][t][i];
                assert!((got_ema[t][i] - e).abs() < 1e-6, "ema tensor {t}[{i}]");
            }
        }
        // The averaged network still computes: same shapes, finite predictions.
        let (a, b, _) = crate::synthetic::random_pairs(3, 4, 1);
        let mut model = Siamese::reference(4, 0).unwrap();
        model.set_network(uniform.averaged(&nets[0]).unwrap());
        assert!(model.predict(&a, &b).unwrap().iter().all(|d| d.is_finite()));
    }

    #[test]
    fn snapshot_steps() {
        let a = WeightAverage {
            start_epochs: 1.5,
            every_steps: 2,
            ..WeightAverage::default()
        };
        // 10 steps an epoch: from step 15, every second step.
        let taken: Vec<usize> = (1..=20).filter(|&s| a.takes(s, 10, 2)).collect();
        assert_eq!(taken, vec![17, 19]);
        assert_eq!(a.first_epoch(10, 2), Some(2));
        assert_eq!(a.first_epoch(10, 1), None);
        assert_eq!(WeightAverage::default().first_epoch(3, 1), Some(1));
        let never = WeightAverage {
            start_epochs: 3.0,
            ..a
        };
        assert!(never.first_epoch(10, 3).is_none());
        // The second half of a 4-epoch run of 10 steps: steps 21..=40, every second one.
        let half = WeightAverage {
            start_fraction: Some(0.5),
            ..a
        };
        let taken: Vec<usize> = (1..=40).filter(|&s| half.takes(s, 10, 4)).collect();
        assert_eq!(taken, (22..=40).step_by(2).collect::<Vec<_>>());
        assert_eq!(half.first_epoch(10, 4), Some(3));
        assert!(
            WeightAverage {
                start_fraction: Some(1.0),
                ..a
            }
            .validate()
            .unwrap_err()
            .to_string()
            .contains("average.start_fraction")
        );
        assert!(
            WeightAverage {
                every_steps: 0,
                ..a
            }
            .validate()
            .unwrap_err()
            .to_string()
            .contains("average.every_steps")
        );
        assert!(
            WeightAverage {
                start_epochs: -1.0,
                ..a
            }
            .validate()
            .is_err()
        );
    }

    fn fit(average: Option<WeightAverage>, epochs: usize, fused: bool) -> Vec<Vec<f32>> {
        let (a, b, y) = crate::synthetic::random_pairs(32, 6, 3);
        let mut model = Siamese::reference(6, 0).unwrap();
        model.set_fused(fused);
        let options = FitOptions {
            average,
            ..FitOptions::new(epochs, 8)
        };
        model.fit(&a, &b, &y, &options).unwrap();
        weights(model.network())
    }

    fn assert_close(got: &[Vec<f32>], want: &[Vec<f32>], tol: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: tensors");
        for (t, (g, w)) in got.iter().zip(want).enumerate() {
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                assert!((g - w).abs() <= tol, "{what}: tensor {t}[{i}] {g} vs {w}");
            }
        }
    }

    /// Through `fit` on both paths: an EMA with decay 0 is the last step's weights; the
    /// uniform mean of the snapshots at the ends of epochs 2 and 3 is the mean of a 2-epoch
    /// and a 3-epoch run's weights (the runs share their first epochs), and differs from both.
    #[test]
    fn fit_returns_the_average() {
        for fused in [true, false] {
            let plain = fit(None, 3, fused);
            let last = WeightAverage {
                decay: Some(0.0),
                ..WeightAverage::default()
            };
            assert_close(&fit(Some(last), 3, fused), &plain, 1e-6, "decay 0");
            let two = fit(None, 2, fused);
            // 32 pairs in batches of 8: 4 steps an epoch, one snapshot at each epoch's end.
            let swa = WeightAverage {
                start_epochs: 1.0,
                every_steps: 4,
                ..WeightAverage::default()
            };
            let got = fit(Some(swa), 3, fused);
            let mean: Vec<Vec<f32>> = two
                .iter()
                .zip(&plain)
                .map(|(x, y)| x.iter().zip(y).map(|(x, y)| 0.5 * (x + y)).collect())
                .collect();
            assert_close(&got, &mean, 1e-5, "uniform mean of epochs 2 and 3");
            let moved = got
                .iter()
                .zip(&plain)
                .flat_map(|(g, p)| g.iter().zip(p))
                .map(|(g, p)| (g - p).abs())
                .fold(0.0f32, f32::max);
            assert!(
                moved > 1e-4,
                "the average equals the last weights ({moved})"
            );
        }
    }

    /// Averaging that would never start, and a resumed averaging run, are refused up front.
    #[test]
    fn refused_runs_say_why() {
        let (a, b, y) = crate::synthetic::random_pairs(32, 6, 3);
        let mut model = Siamese::reference(6, 0).unwrap();
        let late = FitOptions {
            average: Some(WeightAverage {
                start_epochs: 2.0,
                ..WeightAverage::default()
            }),
            ..FitOptions::new(2, 8)
        };
        let e = model.fit(&a, &b, &y, &late).unwrap_err().to_string();
        assert!(
            e.contains("average.start_epochs") && e.contains("2 epochs"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut cp = model.checkpoint(dir.path()).unwrap();
        model
            .fit_with(
                PairData::Dense(PairsRef {
                    a: &a,
                    b: &b,
                    labels: &y,
                }),
                &FitOptions::new(1, 8),
                vec![&mut cp],
            )
            .unwrap();
        let (mut resumed, state) = Siamese::load_checkpoint(dir.path(), model.device()).unwrap();
        let options = FitOptions {
            average: Some(WeightAverage::default()),
            ..FitOptions::new(2, 8)
        };
        let e = resumed
            .resume(
                PairData::Dense(PairsRef {
                    a: &a,
                    b: &b,
                    labels: &y,
                }),
                &options,
                state,
                Vec::new(),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("resuming a run with weight averaging"), "{e}");
    }
}
