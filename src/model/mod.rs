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
use crate::data::tokenize::TextTokenizer;
use crate::data::{Matrix, PairData, PairsRef, check_pair_shapes, to_tensor};
use crate::error::{Result, SiameseError};
use crate::fused::{self, FusedHyper, HostEncoder, HostHead, HostTrainer, OptimizerState};
use crate::infer::{self, Evaluation};
use crate::io::{self, Extra, ModelMeta};
use crate::siamese::SiameseNetwork;
use crate::train::{self, Callback, FitOptions, History, Hooks, OptimizerSnapshot, TrainState};

mod inputs;
pub use inputs::{InputEncoder, InputKind};
mod pretrained;
pub use pretrained::PretrainedSetup;
mod protocols;
mod soup;
mod summary;

/// A Siamese model with its loss and optimizer attached ("compiled", in Keras terms).
pub struct Siamese {
    /// Config, calibrated threshold, preprocessing and application entries.
    meta: ModelMeta,
    /// A text model's tokenizer (`tokenizer.json` in its directory).
    tokenizer: Option<TextTokenizer>,
    network: SiameseNetwork,
    optimizer: ModuleOptimizer,
    /// Optimizer state of the fused MLP path (see [`crate::fused`]), kept between `fit` calls.
    fused_state: Option<OptimizerState>,
    /// The fused path's host copy of the weights for inference, made on first use after each
    /// change of the network (copying them per call cost a single-pair `predict` ~200 µs).
    fused_host: OnceLock<Option<(HostEncoder, HostHead)>>,
    device: Device,
    /// Use the host paths of [`crate::fused`] where they cover the model.
    fused: bool,
}

impl std::fmt::Debug for Siamese {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Siamese")
            .field("config", &self.meta.config)
            .field("threshold", &self.meta.threshold)
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
        Ok(Self::assemble(
            ModelMeta::new(config),
            network,
            optimizer,
            device,
        ))
    }

    /// A model from `config` around an already built `network` (e.g. pretrained weights);
    /// the network must be the one `config` describes.
    fn with_network(config: ModelConfig, network: SiameseNetwork, device: &Device) -> Result<Self> {
        let optimizer = config.optimizer.init()?;
        Ok(Self::assemble(
            ModelMeta::new(config),
            network,
            optimizer,
            device.clone().autodiff(),
        ))
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

    fn assemble(
        meta: ModelMeta,
        network: SiameseNetwork,
        optimizer: ModuleOptimizer,
        device: Device,
    ) -> Self {
        Self {
            meta,
            tokenizer: None,
            network,
            optimizer,
            fused_state: None,
            fused_host: OnceLock::new(),
            device,
            fused: fused::enabled_by_default(),
        }
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.meta.config
    }

    /// Everything `config.json` records: config, threshold, preprocessing, extra entries.
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// Whether the host paths of [`crate::fused`] run this model's training and inference
    /// where they cover it (default: yes).
    pub fn fused(&self) -> bool {
        self.fused
    }

    /// Turns the host paths of [`crate::fused`] on or off for this model; off runs everything
    /// through burn (same results to float rounding, several times slower on the CPU).
    pub fn set_fused(&mut self, on: bool) {
        self.fused = on;
        self.fused_host = OnceLock::new();
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
        self.meta.config.network.encoder.input_dim()
    }

    /// Application entries saved with the model (e.g. the run config that trained it).
    pub fn extra(&self) -> &Extra {
        &self.meta.extra
    }

    /// Mutable access to the application entries saved with the model.
    pub fn extra_mut(&mut self) -> &mut Extra {
        &mut self.meta.extra
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
        self.fit_with(data, options, Vec::new())
    }

    /// [`Self::fit_pairs`] with callbacks (see [`crate::train::Callback`]: keep the best
    /// epoch, stop early, write checkpoints, report progress).
    pub fn fit_with(
        &mut self,
        data: PairData<'_>,
        options: &FitOptions,
        callbacks: Vec<&mut dyn Callback>,
    ) -> Result<History> {
        self.run_fit(data, options, callbacks, None)
    }

    /// Continues the run that `state` (from [`Self::load_checkpoint`]) stopped at, up to
    /// `options.epochs` epochs in all, with the same data and options: on one thread the
    /// history and weights are then those of an uninterrupted run.
    pub fn resume(
        &mut self,
        data: PairData<'_>,
        options: &FitOptions,
        state: TrainState,
        callbacks: Vec<&mut dyn Callback>,
    ) -> Result<History> {
        self.run_fit(data, options, callbacks, Some(state))
    }

    fn run_fit(
        &mut self,
        data: PairData<'_>,
        options: &FitOptions,
        callbacks: Vec<&mut dyn Callback>,
        resume: Option<TrainState>,
    ) -> Result<History> {
        data.check(self.input_dim())?;
        if let Some(v) = options.validation.data() {
            v.check(self.input_dim())
                .map_err(|e| SiameseError::invalid("validation data", e.to_string()))?;
        }
        let mut printer = train::PrintEpochs::default();
        let config = self.meta.config.clone();
        let mut all: Vec<&mut dyn Callback> = Vec::with_capacity(callbacks.len() + 1);
        if options.verbose {
            all.push(&mut printer);
        }
        for c in callbacks {
            all.push(c);
        }
        let options = &FitOptions {
            verbose: false,
            ..options.clone()
        };
        let network = self.network.clone();
        let hooks = Hooks {
            config: &config,
            callbacks: all,
            resume,
            host: self.fused,
        };
        let outcome = match self.fused_trainer() {
            Some(mut trainer) => {
                let out = train::fit_fused(network, &mut trainer, data, options, hooks);
                self.fused_state = Some(trainer.into_state());
                out?
            }
            None => train::fit(
                network,
                &mut self.optimizer,
                self.meta.config.optimizer.lr(),
                data,
                options,
                hooks,
            )?,
        };
        self.network = outcome.network;
        self.fused_host = OnceLock::new();
        Ok(outcome.history)
    }

    /// The fused path's host weights and head (see [`crate::fused`]), when it can run this
    /// model's inference.
    fn fused_host(&self) -> Option<&(HostEncoder, HostHead)> {
        if !self.fused {
            return None;
        }
        self.fused_host
            .get_or_init(|| {
                let encoder = HostEncoder::for_inference(&self.network)?;
                Some((encoder, HostHead::from_network(&self.network)?))
            })
            .as_ref()
    }

    /// The fused CPU trainer (see [`crate::fused`]) when it computes this model exactly (an
    /// MLP or convolutional encoder with a head and loss it covers, see
    /// [`HostTrainer::new`]) on the flex device, unless [`Self::set_fused`] turned the host
    /// paths off.
    fn fused_trainer(&mut self) -> Option<HostTrainer> {
        if !self.fused {
            return None;
        }
        let config = &self.meta.config;
        let hyper = FusedHyper::from_config(&config.optimizer, &config.loss)?;
        HostTrainer::new(&self.network, self.fused_state.take(), hyper)
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
                let scores = infer::fused_pair_scores(encoder, head, data)?;
                infer::distances_from_scores(&self.network, scores)
            }
            None => infer::distances(&self.network, data, false),
        }
    }

    /// Embeddings of the rows of `x`: `[n, input_dim] → [n, embedding_dim]`.
    pub fn embed(&self, x: &Matrix) -> Result<Matrix> {
        crate::data::check_width(x, self.input_dim(), "input")?;
        if let Some((encoder, _)) = self.fused_host() {
            return encoder.embed(x, "input");
        }
        x.check_finite("input")?;
        let network = self.network.valid();
        let device = infer::network_device(&network);
        let dim = self.meta.config.network.encoder.output_dim();
        let mut out = Vec::with_capacity(x.rows() * dim);
        for start in (0..x.rows()).step_by(infer::INFERENCE_BATCH) {
            let end = (start + infer::INFERENCE_BATCH).min(x.rows());
            let e = network.embed(to_tensor(&x.slice_rows(start, end), &device));
            out.extend(crate::data::read_tensor(e)?);
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
        infer::evaluate(
            &self.network,
            &self.meta.config.loss,
            data,
            threshold,
            self.fused,
        )
    }

    /// Saves the model (config, threshold, preprocessing, tokenizer, extra entries, weights)
    /// as the directory `dir`, atomically.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.save_with(dir, &[])
    }

    /// Saves the model as [`Siamese::save`] does, plus extra `files` (name, bytes) in the same
    /// directory, all in one atomic replacement.
    pub fn save_with(&self, dir: impl AsRef<Path>, files: &[(&str, Vec<u8>)]) -> Result<()> {
        let mut all: Vec<(&str, Vec<u8>)> = files.to_vec();
        if let Some(t) = &self.tokenizer
            && !files.iter().any(|f| f.0 == io::TOKENIZER_FILE)
        {
            all.push((io::TOKENIZER_FILE, t.to_bytes()?));
        }
        io::save_model(dir.as_ref(), &self.meta, &self.network, &all)
    }

    /// Loads a model directory written by [`Siamese::save`] onto `device` (a format version 1
    /// directory too), or a sentence-transformers / Hugging Face BERT directory as it is
    /// ([`Siamese::from_pretrained`]).
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        if crate::encoder::bert::pretrained::is_pretrained_dir(dir) {
            return Self::from_pretrained(dir, device);
        }
        let device = device.clone().autodiff();
        let (meta, network) = io::load_model(dir, &device)?;
        Self::from_parts(dir, meta, network, device)
    }

    fn from_parts(
        dir: &Path,
        meta: ModelMeta,
        network: SiameseNetwork,
        device: Device,
    ) -> Result<Self> {
        let optimizer = meta.config.optimizer.init()?;
        let tokenizer = match meta.preprocessing.as_ref().and_then(|p| p.text.as_ref()) {
            Some(t) => Some(
                TextTokenizer::from_file(&dir.join(io::TOKENIZER_FILE), t.max_len)?
                    .with_special_tokens(t.special_tokens)?,
            ),
            None => None,
        };
        let mut model = Self::assemble(meta, network, optimizer, device);
        model.tokenizer = tokenizer;
        Ok(model)
    }

    /// A [`crate::io::Checkpoint`] callback for this model's training, writing into `dir`
    /// after every epoch, with the model's preprocessing and tokenizer (which a resumed
    /// text model needs to make the same rows).
    pub fn checkpoint(&self, dir: impl Into<std::path::PathBuf>) -> Result<io::Checkpoint> {
        let tokenizer = self.tokenizer.as_ref().map(|t| t.to_bytes()).transpose()?;
        Ok(io::Checkpoint::new(dir).with_inputs(self.meta.preprocessing.clone(), tokenizer))
    }

    /// Loads a checkpoint written by [`crate::io::Checkpoint`]: the model with its
    /// optimizer's state, and the [`TrainState`] to pass to [`Self::resume`].
    pub fn load_checkpoint(dir: impl AsRef<Path>, device: &Device) -> Result<(Self, TrainState)> {
        let dir = dir.as_ref();
        let device = device.clone().autodiff();
        let (meta, network, mut state) = io::load_checkpoint(dir, &device)?;
        let mut model = Self::from_parts(dir, meta, network, device)?;
        match state.optimizer.take() {
            Some(OptimizerSnapshot::Fused(parts)) => {
                model.fused_state = Some(OptimizerState::from_parts(parts)?);
            }
            Some(OptimizerSnapshot::Burn { record, param_ids }) => {
                let optimizer = model.meta.config.optimizer.init()?;
                let (optimizer, network) = OptimizerSnapshot::restore_burn(
                    &record,
                    &param_ids,
                    optimizer,
                    model.network.clone(),
                )?;
                model.optimizer = optimizer;
                model.network = network;
            }
            None => {}
        }
        Ok((model, state))
    }
}
