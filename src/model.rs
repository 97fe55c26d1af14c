//! [`Siamese`]: the Keras-like model object — build, `fit`, `predict`, `evaluate`, `summary`,
//! `save`, `load`.
//!
//! ```
//! use siamese::prelude::*;
//!
//! // 20 random pairs of 100-dim inputs, alternating labels (1 = similar).
//! let (a, b, labels) = siamese::synthetic::random_pairs(20, 100, 0);
//! let mut model = Siamese::new(ModelConfig::reference(100), &Device::flex()).unwrap();
//! let history = model
//!     .fit(&a, &b, &labels, &FitOptions { verbose: false, ..FitOptions::new(2, 8) })
//!     .unwrap();
//! assert_eq!(history.epochs.len(), 2);
//! let d = model.predict(&a, &b).unwrap();
//! assert_eq!(d.len(), 20);
//! ```

use std::path::Path;
use std::sync::OnceLock;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;

use crate::config::ModelConfig;
use crate::data::{Matrix, check_pair_shapes, to_tensor};
use crate::error::{Result, SiameseError};
use crate::fused::{
    self, FusedHyper, FusedOptimizer, FusedTrainer, HostEncoder, HostHead, OptimizerState,
};
use crate::io::{self, Extra};
use crate::loss::LossKind;
use crate::siamese::SiameseNetwork;
use crate::train::{self, Evaluation, FitOptions, History, PairData, PairsRef};

/// A Siamese model with its loss and optimizer attached ("compiled", in Keras terms).
pub struct Siamese {
    config: ModelConfig,
    network: SiameseNetwork,
    optimizer: ModuleOptimizer,
    /// Optimizer state of the fused MLP path (see [`crate::fused`]), kept between `fit` calls.
    fused_state: Option<OptimizerState>,
    /// The fused path's host copy of the weights for inference, made on first use after each
    /// change of the network (copying them per call cost a single-pair `predict` ~200 µs).
    fused_host: OnceLock<Option<(HostEncoder, HostHead)>>,
    device: Device,
    extra: Extra,
}

impl std::fmt::Debug for Siamese {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Siamese")
            .field("config", &self.config)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl Siamese {
    /// Builds a model from `config` on `device` (autodiff is enabled on it for training).
    pub fn new(config: ModelConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let device = device.clone().autodiff();
        let network = config.network.init(&device, config.seed)?;
        let optimizer = config.optimizer.init()?;
        Ok(Self {
            config,
            network,
            optimizer,
            fused_state: None,
            fused_host: OnceLock::new(),
            device,
            extra: Extra::new(),
        })
    }

    /// The reference model (`input_dim → Dense(128, relu) ×3`, Euclidean, contrastive, RMSprop)
    /// on the flex CPU backend, weights drawn from `seed`.
    pub fn reference(input_dim: usize, seed: u64) -> Result<Self> {
        Self::new(
            ModelConfig {
                seed,
                ..ModelConfig::reference(input_dim)
            },
            &Device::flex(),
        )
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The burn module.
    pub fn network(&self) -> &SiameseNetwork {
        &self.network
    }

    /// Replaces the burn module (e.g. after training it with a custom loop).
    ///
    /// The fused path's optimizer state is reset; burn's optimizer keeps its state per
    /// parameter id.
    pub fn set_network(&mut self, network: SiameseNetwork) {
        self.network = network;
        self.fused_state = None;
        self.fused_host = OnceLock::new();
    }

    /// The (autodiff) device the model trains on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of features one input sample must have.
    pub fn input_dim(&self) -> usize {
        self.config.network.encoder.input_dim()
    }

    /// Extra entries saved with the model (e.g. a calibrated threshold).
    pub fn extra(&self) -> &Extra {
        &self.extra
    }

    /// Mutable access to the extra entries saved with the model.
    pub fn extra_mut(&mut self) -> &mut Extra {
        &mut self.extra
    }

    /// Trains on pairs `(a[i], b[i])` with `labels[i]` (1 = similar, 0 = dissimilar).
    ///
    /// Mirrors Keras's `model.fit([a, b], labels, epochs, batch_size, validation_split | data)`.
    /// Returns the per-epoch history. Shapes, labels and finiteness are checked first.
    ///
    /// An MLP model with the Euclidean distance and the contrastive loss (the reference, with
    /// any optimizer) trains on the fused CPU path of [`crate::fused`] when its device is
    /// flex: the same steps as burn's graph to float rounding, several times faster.
    pub fn fit(
        &mut self,
        a: &Matrix,
        b: &Matrix,
        labels: &[f32],
        options: &FitOptions,
    ) -> Result<History> {
        self.fit_pairs(PairData::Dense(PairsRef { a, b, labels }), options)
    }

    /// Trains on any [`PairData`]: dense pairs, or index pairs into one sample store (images
    /// are then gathered per batch, never duplicated per pair).
    pub fn fit_pairs(&mut self, data: PairData<'_>, options: &FitOptions) -> Result<History> {
        data.check(self.input_dim())?;
        if let Some(v) = options.validation.data() {
            v.check(self.input_dim())
                .map_err(|e| SiameseError::invalid("validation data", e.to_string()))?;
        }
        let network = self.network.clone();
        let (network, history) = match self.fused_trainer() {
            Some(mut trainer) => {
                let out = train::fit_fused(network, &mut trainer, &self.config.loss, data, options);
                self.fused_state = Some(trainer.into_state());
                out?
            }
            None => train::fit(
                network,
                &mut self.optimizer,
                self.config.optimizer.lr(),
                &self.config.loss,
                data,
                options,
            )?,
        };
        self.network = network;
        self.fused_host = OnceLock::new();
        Ok(history)
    }

    /// The fused path's host weights and head (see [`crate::fused`]), when it can run this
    /// model's inference.
    fn fused_host(&self) -> Option<&(HostEncoder, HostHead)> {
        if !fused::enabled() {
            return None;
        }
        self.fused_host
            .get_or_init(|| {
                let encoder = HostEncoder::for_inference(&self.network)?;
                Some((encoder, HostHead::from_network(&self.network)?))
            })
            .as_ref()
    }

    /// The fused CPU trainer (see [`crate::fused`]) when it computes this model exactly: an
    /// MLP encoder (ReLU or linear) with the Euclidean distance and the contrastive loss, on
    /// the flex device, unless `SIAMESE_FUSED=0`.
    fn fused_trainer(&mut self) -> Option<FusedTrainer> {
        if !fused::enabled() || self.config.loss.kind != LossKind::Contrastive {
            return None;
        }
        let hyper = FusedHyper {
            optimizer: FusedOptimizer::from_config(&self.config.optimizer)?,
            margin: self.config.loss.margin,
        };
        FusedTrainer::new(&self.network, self.fused_state.take(), hyper)
    }

    /// Distances `d(a[i], b[i])`, one per pair (the `(n, 1)` output of Keras's `predict`,
    /// flattened).
    pub fn predict(&self, a: &Matrix, b: &Matrix) -> Result<Vec<f32>> {
        check_pair_shapes(a, b, None, self.input_dim())?;
        // The host encoders of `fused` check their inputs for NaN and ±∞ themselves.
        if self.fused_host().is_none() {
            a.check_finite("input a")?;
            b.check_finite("input b")?;
        }
        self.distances(PairData::Dense(PairsRef { a, b, labels: &[] }))
    }

    /// Distances of any [`PairData`] (an indexed store is embedded once).
    pub fn predict_pairs(&self, data: PairData<'_>) -> Result<Vec<f32>> {
        data.check(self.input_dim())?;
        self.distances(data)
    }

    /// Distances of checked pairs: from the cached host weights on the fused path, else
    /// through burn.
    fn distances(&self, data: PairData<'_>) -> Result<Vec<f32>> {
        match self.fused_host() {
            Some((encoder, head)) => {
                let scores = train::fused_pair_scores(encoder, head, data)?;
                train::distances_from_scores(&self.network, scores)
            }
            None => train::distances(&self.network, data),
        }
    }

    /// Embeddings of the rows of `x`: `[n, input_dim] → [n, embedding_dim]`.
    pub fn embed(&self, x: &Matrix) -> Result<Matrix> {
        if x.cols() != self.input_dim() {
            return Err(SiameseError::shape(
                "input",
                format!("{} features per sample", self.input_dim()),
                format!("{} features", x.cols()),
            ));
        }
        if let Some((encoder, _)) = self.fused_host() {
            return encoder.embed(x, "input");
        }
        x.check_finite("input")?;
        let network = self.network.valid();
        let device = train::network_device(&network);
        let dim = self.config.network.encoder.output_dim();
        let mut out = Vec::with_capacity(x.rows() * dim);
        for start in (0..x.rows()).step_by(train::INFERENCE_BATCH) {
            let end = (start + train::INFERENCE_BATCH).min(x.rows());
            let e = network.embed(to_tensor(&x.slice_rows(start, end), &device));
            out.extend(e.into_data().try_to_vec::<f32>().map_err(|e| {
                SiameseError::Runtime(format!("cannot read embeddings back: {e:?}"))
            })?);
        }
        Matrix::new(x.rows(), dim, out)
    }

    /// Loss and pair accuracy (`d < threshold` ⇒ similar) on labelled pairs.
    pub fn evaluate(
        &self,
        a: &Matrix,
        b: &Matrix,
        labels: &[f32],
        threshold: f32,
    ) -> Result<Evaluation> {
        self.evaluate_pairs(PairData::Dense(PairsRef { a, b, labels }), threshold)
    }

    /// Loss and pair accuracy on any labelled [`PairData`].
    pub fn evaluate_pairs(&self, data: PairData<'_>, threshold: f32) -> Result<Evaluation> {
        data.check(self.input_dim())?;
        train::evaluate(&self.network, &self.config.loss, data, threshold)
    }

    /// A Keras-style summary table: layers, output shapes, parameters.
    pub fn summary(&self) -> String {
        let enc = &self.config.network.encoder;
        let rows = enc.layer_rows();
        let total: usize = rows.iter().map(|r| r.3).sum();
        let mut lines = vec![
            "Model: \"siamese\"".to_string(),
            format!(
                "{:<36}{:<22}{:>12}  {}",
                "Layer (type)", "Output Shape", "Param #", "Connected to"
            ),
            "=".repeat(90),
        ];
        let dim = enc.input_dim();
        for input in ["input_a", "input_b"] {
            lines.push(format!(
                "{:<36}{:<22}{:>12}",
                format!("{input} (Input)"),
                format!("(None, {dim})"),
                0
            ));
        }
        lines.push(format!(
            "{:<36}{:<22}{:>12}  {}",
            "encoder (shared)",
            format!("(None, {})", enc.output_dim()),
            group(total),
            "input_a, input_b"
        ));
        for (name, kind, shape, params) in &rows {
            lines.push(format!(
                "{:<36}{:<22}{:>12}",
                format!("  {name} ({kind})"),
                shape,
                group(*params)
            ));
        }
        let head_params = match self.config.network.head {
            crate::siamese::Head::Distance => {
                lines.push(format!(
                    "{:<36}{:<22}{:>12}  {}",
                    format!("distance ({})", self.config.network.distance.name()),
                    "(None, 1)",
                    0,
                    "encoder(a), encoder(b)"
                ));
                0
            }
            crate::siamese::Head::WeightedL1 => {
                let params = enc.output_dim() + 1;
                lines.push(format!(
                    "{:<36}{:<22}{:>12}  {}",
                    "weighted_l1 (Dense |a−b| → logit)",
                    "(None, 1)",
                    group(params),
                    "encoder(a), encoder(b)"
                ));
                params
            }
        };
        // Keras counts batch-norm moving statistics as (non-trainable) parameters.
        let total = total + head_params;
        let trainable = self.network.num_params();
        lines.push("=".repeat(90));
        lines.push(format!("Total params: {}", group(total)));
        lines.push(format!("Trainable params: {}", group(trainable)));
        lines.push(format!(
            "Non-trainable params: {}",
            group(total.saturating_sub(trainable))
        ));
        lines.join("\n")
    }

    /// Saves the model (config + weights + extra entries) as the directory `dir`, atomically.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.save_with(dir, &[])
    }

    /// Saves the model as [`Siamese::save`] does, plus extra `files` (name, bytes) in the same
    /// directory, all in one atomic replacement.
    pub fn save_with(&self, dir: impl AsRef<Path>, files: &[(&str, Vec<u8>)]) -> Result<()> {
        io::save_model(
            dir.as_ref(),
            &self.config,
            &self.network,
            &self.extra,
            files,
        )
    }

    /// Loads a model directory written by [`Siamese::save`] onto `device`.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let device = device.clone().autodiff();
        let (config, network, extra) = io::load_model(dir.as_ref(), &device)?;
        let optimizer = config.optimizer.init()?;
        Ok(Self {
            config,
            network,
            optimizer,
            fused_state: None,
            fused_host: OnceLock::new(),
            device,
            extra,
        })
    }
}

/// `45952` → `"45,952"`.
fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
