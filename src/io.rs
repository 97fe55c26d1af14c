//! Saving and loading model directories and training checkpoints.
//!
//! A model directory holds:
//!
//! | file                | content                                                          |
//! |---------------------|------------------------------------------------------------------|
//! | `config.json`       | format tag, version, the [`ModelConfig`] and the [`ModelMeta`] parts: calibrated [`Threshold`], [`Preprocessing`], application `extra` entries |
//! | `model.safetensors` | the weights, named by their path in the module (`encoder…`)     |
//! | `tokenizer.json`    | text models: the tokenizer (`Preprocessing::text`)               |
//! | `train_state.json`, `optimizer.safetensors` | checkpoints only: [`TrainState`] and its optimizer state ([`OptimizerSnapshot::to_safetensors`]; checkpoints written before 2026-12-01 hold `optimizer.json`, which still loads) |
//!
//! Format version 2 made the threshold and the preprocessing typed fields; a version 1
//! directory (where they sat in `extra`) still loads. Writes go through
//! [`crate::atomic::write_dir_atomic`]: killed at any moment, the directory is the old model
//! or the new one, and leftovers of a killed save are removed by the next save or load.

use std::fs;
use std::path::{Path, PathBuf};

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::data::prepare::Preprocessing;
use crate::error::{Result, SiameseError};
use crate::siamese::SiameseNetwork;
use crate::train::{Callback, Control, EpochContext, EpochLog, OptimizerSnapshot, TrainState};

/// Name of the configuration file in a model directory.
pub const CONFIG_FILE: &str = "config.json";
/// Name of the weights file in a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Name of a text model's tokenizer file.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Name of a checkpoint's training state.
pub const TRAIN_STATE_FILE: &str = "train_state.json";
/// Name of a checkpoint's optimizer state.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Name of the optimizer state in checkpoints written before `optimizer.safetensors` (JSON).
pub const OPTIMIZER_JSON_FILE: &str = "optimizer.json";
/// Format tag written into `config.json`.
pub const FORMAT: &str = "siamese-model";
/// Current format version.
pub const VERSION: u32 = 2;

/// Extra named entries an application stores beside the model (e.g. the run config that
/// trained it).
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// The decision threshold of a model: pairs at distance `d < value` are "same".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// The threshold on the model's distance.
    pub value: f32,
    /// Where it came from (e.g. `calibrated on validation pairs: eer`).
    pub source: String,
}

/// Everything `config.json` records besides the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMeta {
    /// Architecture, loss, optimizer, seed.
    pub config: ModelConfig,
    /// The calibrated decision threshold.
    pub threshold: Option<Threshold>,
    /// How raw inputs (images, sentences) become the model's input rows.
    pub preprocessing: Option<Preprocessing>,
    /// Application entries.
    pub extra: Extra,
}

impl ModelMeta {
    /// Only a model config: no threshold, preprocessing or extra entries.
    pub fn new(config: ModelConfig) -> Self {
        Self {
            config,
            threshold: None,
            preprocessing: None,
            extra: Extra::new(),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    format: String,
    version: u32,
    model: ModelConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    preprocessing: Option<Preprocessing>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    extra: Extra,
}

/// The bytes of `config.json` and `model.safetensors`.
fn model_files(meta: &ModelMeta, network: &SiameseNetwork) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let file = ConfigFile {
        format: FORMAT.into(),
        version: VERSION,
        model: meta.config.clone(),
        threshold: meta.threshold.clone(),
        preprocessing: meta.preprocessing.clone(),
        extra: meta.extra.clone(),
    };
    let json = serde_json::to_vec_pretty(&file)
        .map_err(|e| SiameseError::Runtime(format!("cannot serialise the config: {e}")))?;
    let mut store = SafetensorsStore::from_bytes(None);
    network
        .save_into(&mut store)
        .map_err(|e| SiameseError::Runtime(format!("cannot serialise the weights: {e}")))?;
    let weights = store
        .get_bytes()
        .map_err(|e| SiameseError::Runtime(format!("cannot serialise the weights: {e}")))?;
    Ok(vec![(CONFIG_FILE, json), (WEIGHTS_FILE, weights)])
}

/// Saves `network` with its `meta` (and extra `files` such as `history.csv` or
/// `tokenizer.json`) as the model directory `dir`, atomically.
pub fn save_model(
    dir: &Path,
    meta: &ModelMeta,
    network: &SiameseNetwork,
    files: &[(&str, Vec<u8>)],
) -> Result<()> {
    let mut all: Vec<(&str, Vec<u8>)> = model_files(meta, network)?;
    all.extend(files.iter().cloned());
    crate::atomic::write_dir_atomic(dir, &all)
}

/// Reads the config and the other typed parts of the model directory `dir` (not the
/// weights). A version 1 directory's `extra.threshold` and `extra.preprocessing` become the
/// typed parts.
pub fn load_meta(dir: &Path) -> Result<ModelMeta> {
    crate::atomic::recover_dir(dir);
    let path = dir.join(CONFIG_FILE);
    let text = fs::read_to_string(&path).map_err(|e| SiameseError::io(&path, e))?;
    let mut file: ConfigFile = serde_json::from_str(&text)
        .map_err(|e| SiameseError::format(&path, format!("not a valid model config: {e}")))?;
    if file.format != FORMAT {
        return Err(SiameseError::format(
            &path,
            format!("format is `{}`, expected `{FORMAT}`", file.format),
        ));
    }
    if file.version > VERSION {
        return Err(SiameseError::format(
            &path,
            format!(
                "format version {} is newer than this build understands ({VERSION})",
                file.version
            ),
        ));
    }
    file.model
        .validate()
        .map_err(|e| SiameseError::format(&path, e.to_string()))?;
    if file.version < 2 {
        let typed = |v: serde_json::Value, field: &str| {
            SiameseError::format(&path, format!("extra.{field} (format version 1): {v}"))
        };
        if let Some(v) = file.extra.remove("threshold") {
            file.threshold =
                Some(serde_json::from_value(v.clone()).map_err(|_| typed(v, "threshold"))?);
        }
        if let Some(v) = file.extra.remove("preprocessing") {
            file.preprocessing =
                Some(serde_json::from_value(v.clone()).map_err(|_| typed(v, "preprocessing"))?);
        }
    }
    Ok(ModelMeta {
        config: file.model,
        threshold: file.threshold,
        preprocessing: file.preprocessing,
        extra: file.extra,
    })
}

/// Saves a training checkpoint as the directory `dir`: a model directory (`config`, the
/// weights, the `extra` entries, extra `files` such as a text model's `tokenizer.json`) plus
/// `train_state.json` and `optimizer.safetensors`, atomically.
pub fn save_checkpoint(
    dir: &Path,
    meta: &ModelMeta,
    network: &SiameseNetwork,
    state: &TrainState,
    files: &[(&str, Vec<u8>)],
) -> Result<()> {
    let mut all = model_files(meta, network)?;
    all.extend(files.iter().cloned());
    all.push((TRAIN_STATE_FILE, to_json(state)?));
    let optimizer = state
        .optimizer
        .as_ref()
        .ok_or_else(|| SiameseError::Runtime("a checkpoint needs the optimizer's state".into()))?;
    all.push((OPTIMIZER_FILE, optimizer.to_safetensors()?));
    crate::atomic::write_dir_atomic(dir, &all)
}

/// Loads a checkpoint written by [`save_checkpoint`]: the model parts, the weights on
/// `device`, and the training state with its optimizer state.
pub fn load_checkpoint(
    dir: &Path,
    device: &Device,
) -> Result<(ModelMeta, SiameseNetwork, TrainState)> {
    let (meta, network) = load_model(dir, device)?;
    let read = |name: &str| -> Result<String> {
        let path = dir.join(name);
        fs::read_to_string(&path).map_err(|e| SiameseError::io(&path, e))
    };
    let bad = |name: &str, e: serde_json::Error| {
        SiameseError::format(dir.join(name), format!("not a valid checkpoint file: {e}"))
    };
    let mut state: TrainState =
        serde_json::from_str(&read(TRAIN_STATE_FILE)?).map_err(|e| bad(TRAIN_STATE_FILE, e))?;
    let binary = dir.join(OPTIMIZER_FILE);
    let optimizer = if binary.exists() {
        let bytes = fs::read(&binary).map_err(|e| SiameseError::io(&binary, e))?;
        OptimizerSnapshot::from_safetensors(&bytes, &binary)?
    } else {
        serde_json::from_str(&read(OPTIMIZER_JSON_FILE)?)
            .map_err(|e| bad(OPTIMIZER_JSON_FILE, e))?
    };
    state.optimizer = Some(optimizer);
    Ok((meta, network, state))
}

/// JSON bytes of a serialisable value.
fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| SiameseError::Runtime(format!("cannot serialise: {e}")))
}

/// Writes a resumable checkpoint directory after every `every`-th epoch: the model (as
/// `Siamese::save` writes it) plus `train_state.json` and the optimizer's state, replaced
/// atomically. `Siamese::load_checkpoint` reads it back.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    dir: PathBuf,
    every: usize,
    saved: Option<usize>,
    extra: Extra,
    preprocessing: Option<Preprocessing>,
    tokenizer: Option<Vec<u8>>,
}

impl Checkpoint {
    /// A checkpoint in `dir` after every epoch.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            every: 1,
            saved: None,
            extra: Extra::new(),
            preprocessing: None,
            tokenizer: None,
        }
    }

    /// Saves only after every `every`-th epoch (and never less often than once).
    pub fn every(mut self, every: usize) -> Self {
        self.every = every.max(1);
        self
    }

    /// Application entries saved in every checkpoint's `config.json` (e.g. the run config
    /// that a resumed run needs).
    pub fn with_extra(mut self, extra: Extra) -> Self {
        self.extra = extra;
        self
    }

    /// The model's input preprocessing and, for a text model, its tokenizer
    /// (`TextTokenizer::to_bytes`), saved in every checkpoint so that the resumed run makes
    /// the same rows (`Siamese::checkpoint` fills both from the model).
    pub fn with_inputs(
        mut self,
        preprocessing: Option<Preprocessing>,
        tokenizer: Option<Vec<u8>>,
    ) -> Self {
        self.preprocessing = preprocessing;
        self.tokenizer = tokenizer;
        self
    }

    /// The last epoch saved.
    pub fn saved(&self) -> Option<usize> {
        self.saved
    }
}

impl Callback for Checkpoint {
    fn on_epoch_end(&mut self, log: &EpochLog, ctx: &mut EpochContext<'_>) -> Result<Control> {
        if log.epoch.is_multiple_of(self.every) {
            let state = ctx.snapshot()?;
            let meta = ModelMeta {
                extra: self.extra.clone(),
                preprocessing: self.preprocessing.clone(),
                ..ModelMeta::new(ctx.config().clone())
            };
            let files: Vec<(&str, Vec<u8>)> = match &self.tokenizer {
                Some(bytes) => vec![(TOKENIZER_FILE, bytes.clone())],
                None => Vec::new(),
            };
            save_checkpoint(&self.dir, &meta, ctx.network(), &state, &files)?;
            self.saved = Some(log.epoch);
        }
        Ok(Control::Continue)
    }
}

/// Loads the model directory `dir` onto `device`.
pub fn load_model(dir: &Path, device: &Device) -> Result<(ModelMeta, SiameseNetwork)> {
    let meta = load_meta(dir)?;
    let config = &meta.config;
    let path = dir.join(WEIGHTS_FILE);
    let bytes = fs::read(&path).map_err(|e| SiameseError::io(&path, e))?;
    let mut network = config.network.init(device, config.seed)?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let applied = network.load_from(&mut store).map_err(|e| {
        SiameseError::format(
            &path,
            format!("cannot load these weights into the model that config.json describes: {e}"),
        )
    })?;
    if !applied.errors.is_empty() {
        let list: Vec<String> = applied.errors.iter().map(|e| format!("{e:?}")).collect();
        return Err(SiameseError::format(
            &path,
            format!(
                "weights do not fit the model in config.json: {}",
                list.join("; ")
            ),
        ));
    }
    if !applied.missing.is_empty() {
        let list: Vec<&str> = applied.missing.iter().map(|(p, _)| p.as_str()).collect();
        return Err(SiameseError::format(
            &path,
            format!("weights are missing tensors: {}", list.join(", ")),
        ));
    }
    if !applied.unused.is_empty() {
        return Err(SiameseError::format(
            &path,
            format!(
                "weights hold tensors the model does not have: {}",
                applied.unused.join(", ")
            ),
        ));
    }
    Ok((meta, network))
}
