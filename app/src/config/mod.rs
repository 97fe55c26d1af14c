//! Run configs (`run.toml`): the `[data]`, `[model]`, `[loss]`, `[optimizer]` and `[train]`
//! sections of a training run, read from TOML, overridden by `--set section.key=value` and
//! the `train` flags, and checked whole before any data is read.

use std::path::Path;

use serde::{Deserialize, Serialize};
use siamese::config::ModelConfig;
use siamese::data::DataConfig;
use siamese::error::{Result, SiameseError};
use siamese::loss::LossConfig;
use siamese::optim::OptimizerConfig;
use siamese::siamese::SiameseConfig;

mod train;

pub use train::{EarlyStoppingSection, MonitorName, OneShotSection, SamplerSection, TrainSection};

/// The encoder of a run; the input size comes from the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderSpec {
    /// `mlp` (dense layers on flat vectors) or `conv` (convolutional, on images).
    #[serde(default, rename = "type")]
    pub kind: EncoderKind,
    /// Conv: a named preset (`koch2015`, `koch-cpu`, `faces`, `signatures`).
    #[serde(default)]
    pub preset: Option<String>,
    /// Conv: an explicit layer list (instead of a preset).
    #[serde(default)]
    pub layers: Option<Vec<siamese::encoder::conv::ConvLayerConfig>>,
    /// MLP: output size of each dense layer.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Activation after each layer.
    #[serde(default)]
    pub activation: siamese::encoder::Activation,
    /// Dropout after each layer but the last.
    #[serde(default)]
    pub dropout: f64,
    /// Whether the last layer has the activation too.
    #[serde(default = "default_true")]
    pub final_activation: bool,
    /// Text: size of the token embeddings.
    #[serde(default = "default_embed_dim")]
    pub embed_dim: usize,
    /// Text: what runs over the embeddings, e.g. `{ kind = "lstm", hidden = 128,
    /// bidirectional = true }`; default: none (pooled embeddings).
    #[serde(default)]
    pub body: Option<siamese::encoder::text::TextBody>,
    /// Text: `mean` or `max` pooling over the tokens.
    #[serde(default)]
    pub pooling: siamese::encoder::text::Pooling,
    /// Text: size of an optional final linear projection.
    #[serde(default)]
    pub output: Option<usize>,
    /// Text: pretrained word vectors (GloVe / word2vec text format) for the embeddings.
    #[serde(default)]
    pub pretrained: Option<std::path::PathBuf>,
    /// Pretrained: the sentence-transformers / Hugging Face model directory to fine-tune
    /// (`type = "pretrained"`); its dropout is the directory's `hidden_dropout_prob` unless
    /// `dropout` is set above 0 here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<std::path::PathBuf>,
}

fn default_embed_dim() -> usize {
    128
}
fn default_hidden() -> Vec<usize> {
    vec![128, 128, 128]
}
pub(crate) fn default_true() -> bool {
    true
}

/// Encoder family of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    /// Dense layers on flat vectors.
    #[default]
    Mlp,
    /// Convolutional layers on images.
    Conv,
    /// Token embeddings (+ LSTM / GRU / transformer) on sentences.
    Text,
    /// A pretrained sentence encoder (BERT family) read from `path`, fine-tuned on sentences.
    Pretrained,
}

impl Default for EncoderSpec {
    fn default() -> Self {
        Self {
            kind: EncoderKind::Mlp,
            preset: None,
            layers: None,
            hidden: default_hidden(),
            activation: Default::default(),
            dropout: 0.0,
            final_activation: true,
            embed_dim: default_embed_dim(),
            body: None,
            pooling: Default::default(),
            output: None,
            pretrained: None,
            path: None,
        }
    }
}

impl EncoderSpec {
    /// The full encoder config for inputs of `input_dim` features; conv encoders see them as
    /// `width × height` images.
    pub fn to_config(
        &self,
        input_dim: usize,
        width: usize,
        height: usize,
    ) -> Result<siamese::encoder::EncoderConfig> {
        use siamese::encoder::conv::ConvEncoderConfig;
        use siamese::error::SiameseError;
        Ok(match self.kind {
            EncoderKind::Mlp => {
                siamese::encoder::EncoderConfig::Mlp(siamese::encoder::MlpEncoderConfig {
                    input_dim,
                    hidden: self.hidden.clone(),
                    activation: self.activation,
                    final_activation: self.final_activation,
                    dropout: self.dropout,
                })
            }
            EncoderKind::Conv => {
                if width * height != input_dim {
                    return Err(SiameseError::config(
                        "model.encoder",
                        format!(
                            "a conv encoder needs image inputs of {width}×{height} = {} values \
                             (data.image_width × data.image_height), the data has {input_dim}",
                            width * height
                        ),
                    ));
                }
                let config = match (&self.preset, &self.layers) {
                    (Some(p), None) => ConvEncoderConfig::preset(p, width, height)?,
                    (None, Some(layers)) => ConvEncoderConfig {
                        width,
                        height,
                        channels: 1,
                        layers: layers.clone(),
                    },
                    _ => {
                        return Err(SiameseError::config(
                            "model.encoder",
                            "a conv encoder needs exactly one of `preset` or `layers`",
                        ));
                    }
                };
                config.validate()?;
                siamese::encoder::EncoderConfig::Conv(config)
            }
            EncoderKind::Text | EncoderKind::Pretrained => {
                return Err(SiameseError::config(
                    "model.encoder",
                    "a text or pretrained encoder needs a text source (stsb, sick) and its \
                     tokenizer",
                ));
            }
        })
    }

    /// The text encoder config for `vocab_size` row ids and sentences of `max_len` tokens.
    pub fn to_text_config(
        &self,
        vocab_size: usize,
        max_len: usize,
    ) -> Result<siamese::encoder::EncoderConfig> {
        use siamese::encoder::text::{TextBody, TextEncoderConfig};
        if self.kind != EncoderKind::Text {
            return Err(siamese::error::SiameseError::config(
                "model.encoder.type",
                "text sources (stsb, sick) need model.encoder.type = \"text\"",
            ));
        }
        let config = TextEncoderConfig {
            vocab_size,
            max_len,
            embed_dim: self.embed_dim,
            body: self.body.clone().unwrap_or(TextBody::Pooling),
            pooling: self.pooling,
            output: self.output,
            dropout: self.dropout,
        };
        config.validate()?;
        Ok(siamese::encoder::EncoderConfig::Text(config))
    }
}

/// The `[model]` section of a run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// The shared encoder.
    #[serde(default)]
    pub encoder: EncoderSpec,
    /// How embeddings are compared.
    #[serde(default)]
    pub distance: siamese::distance::Distance,
    /// The head: `distance` or `weighted-l1` (Koch et al.).
    #[serde(default)]
    pub head: siamese::siamese::Head,
}

/// A whole training run (`siamese train --config run.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The data.
    pub data: DataConfig,
    /// The network.
    #[serde(default)]
    pub model: ModelSection,
    /// The loss.
    #[serde(default)]
    pub loss: LossConfig,
    /// The optimizer.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Training options.
    #[serde(default)]
    pub train: TrainSection,
    /// Model directory to write.
    #[serde(default = "default_output")]
    pub output: std::path::PathBuf,
}

fn default_output() -> std::path::PathBuf {
    "model".into()
}

impl RunConfig {
    /// Parses a run config from TOML text; `origin` names the file in errors. Unknown keys
    /// and bad values are errors, and the whole config is checked ([`Self::validate`]).
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let table = parse_table(text, origin)?;
        Self::from_table(table, origin, text)
    }

    /// The config from a TOML table (`text` locates errors in the file it came from).
    pub fn from_table(table: toml::Table, origin: &Path, text: &str) -> Result<Self> {
        let config: Self = toml::from_str(
            &toml::to_string(&table)
                .map_err(|e| SiameseError::format(origin, format!("invalid run config: {e}")))?,
        )
        .map_err(|e| {
            let message = e.message().trim().replace('\n', " ");
            // Point at the line of the file when the offending key is there.
            let line = key_in_error(&message)
                .and_then(|k| text.lines().position(|l| l.trim_start().starts_with(&k)))
                .map(|i| i + 1);
            SiameseError::format(
                origin,
                match line {
                    Some(l) => format!("invalid run config at line {l}: {message}"),
                    None => format!("invalid run config: {message}"),
                },
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a run config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| SiameseError::io(path, e))?;
        Self::from_toml(&text, path)
    }

    /// The run config recorded in a model or checkpoint directory (`extra.run`).
    pub fn from_model(model: &siamese::model::Siamese, dir: &Path) -> Result<Self> {
        let run: Self = model
            .extra()
            .get("run")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .ok_or_else(|| {
                SiameseError::invalid(
                    dir.display().to_string(),
                    "records no training run (no valid extra.run in config.json)",
                )
            })?;
        run.validate()?;
        Ok(run)
    }

    /// Checks every value that can be checked before any data is read: ranges, names
    /// (calibration objective, optimizer, loss, presets, layer lists), and the model the
    /// config describes, built for the input size the image settings imply.
    pub fn validate(&self) -> Result<()> {
        let d = &self.data;
        let fraction = |key: &str, v: f64, top_open: bool| {
            let ok = v >= 0.0 && if top_open { v < 1.0 } else { v <= 1.0 };
            if ok {
                Ok(())
            } else {
                Err(SiameseError::config(
                    key,
                    format!(
                        "must be in [0, 1{}, got {v}",
                        if top_open { ")" } else { "]" }
                    ),
                ))
            }
        };
        fraction("data.test_fraction", d.test_fraction, true)?;
        fraction("data.validation_fraction", d.validation_fraction, true)?;
        fraction("data.positive_ratio", d.positive_ratio, false)?;
        if d.image_width == 0 || d.image_height == 0 {
            return Err(SiameseError::config(
                "data.image_width",
                "image sides must be at least 1",
            ));
        }
        if let Some(k) = d.folds {
            if k < 2 {
                return Err(SiameseError::config("data.folds", "must be at least 2"));
            }
            if d.fold >= k {
                return Err(SiameseError::config(
                    "data.fold",
                    format!("must be below data.folds ({k}), got {}", d.fold),
                ));
            }
        }
        if d.max_len == 0 || d.vocab_size == 0 {
            return Err(SiameseError::config(
                "data.max_len",
                "text settings max_len and vocab_size must be at least 1",
            ));
        }
        let t = &self.train;
        t.calibrate
            .parse::<siamese::eval::Objective>()
            .map_err(|e| SiameseError::config("train.calibrate", e.to_string()))?;
        // A pretrained encoder may be evaluated as it is (zero-shot).
        if t.epochs == 0 && self.model.encoder.kind != EncoderKind::Pretrained {
            return Err(SiameseError::config(
                "train.epochs",
                "must be at least 1 (0 only evaluates a pretrained encoder as it is)",
            ));
        }
        match (self.model.encoder.kind, &self.model.encoder.path) {
            (EncoderKind::Pretrained, None) => {
                return Err(SiameseError::config(
                    "model.encoder.path",
                    "type = \"pretrained\" needs the model directory (a sentence-transformers \
                     folder, e.g. from tools/fetch_minilm.py)",
                ));
            }
            (EncoderKind::Pretrained, Some(_))
                if !matches!(
                    self.data.source,
                    siamese::data::DataSource::Stsb | siamese::data::DataSource::Sick
                ) =>
            {
                return Err(SiameseError::config(
                    "model.encoder.type",
                    "a pretrained sentence encoder trains on a text source (stsb, sick)",
                ));
            }
            (kind, Some(_)) if kind != EncoderKind::Pretrained => {
                return Err(SiameseError::config(
                    "model.encoder.path",
                    "is the directory of type = \"pretrained\"",
                ));
            }
            _ => {}
        }
        if t.batch_size == 0 {
            return Err(SiameseError::config(
                "train.batch_size",
                "must be at least 1",
            ));
        }
        if !t.threshold.is_finite() {
            return Err(SiameseError::config(
                "train.threshold",
                "must be a finite number",
            ));
        }
        if let Some(a) = &t.augment {
            a.validate()?;
        }
        t.augment_config()?;
        t.schedule.validate()?;
        if let Some(s) = t.sampler {
            siamese::data::sampler::PerClassSampler::check_shape(s.classes, s.per_class)
                .map_err(|e| SiameseError::config("train.sampler", e.to_string()))?;
        }
        // The model: text encoders are built with the data's settings, the others for the
        // input the image settings imply (MLPs on any other width work the same).
        let model = match self.model.encoder.kind {
            EncoderKind::Text => self.model_config_with(d.max_len, Some(d.vocab_size)),
            // Read with the directory when the run starts.
            EncoderKind::Pretrained => {
                self.optimizer.validate()?;
                return self.loss.validate();
            }
            _ => self.model_config(d.image_width * d.image_height),
        }?;
        model.validate()
    }

    /// The model config for inputs of `input_dim` features (images of
    /// `data.image_width × data.image_height` for conv encoders).
    pub fn model_config(&self, input_dim: usize) -> Result<ModelConfig> {
        self.model_config_with(input_dim, None)
    }

    /// [`Self::model_config`], with the vocabulary size of a text source's tokenizer.
    pub fn model_config_with(
        &self,
        input_dim: usize,
        text_vocab: Option<usize>,
    ) -> Result<ModelConfig> {
        let encoder = match text_vocab {
            Some(vocab) => self.model.encoder.to_text_config(vocab, input_dim)?,
            None => self.model.encoder.to_config(
                input_dim,
                self.data.image_width,
                self.data.image_height,
            )?,
        };
        Ok(ModelConfig {
            network: SiameseConfig {
                encoder,
                distance: self.model.distance,
                head: self.model.head,
            },
            loss: self.loss,
            optimizer: self.optimizer.clone(),
            seed: self.train.seed,
        })
    }
}

/// A commented `run.toml` template (`siamese init`): the MNIST recipe.
pub const RUN_TEMPLATE: &str = r#"# siamese run config. Every key can also be set with `siamese train --set section.key=value`.
# Relative data paths that do not exist are looked up under $SIAMESE_DATA_DIR.

output = "mnist-model"           # model directory to write (atomically)

[data]
source = "mnist"                 # mnist | images | pairs | pair-list
path = "mnist"                   # file or folder
image_width = 28                 # images are converted to grayscale, resized, scaled to [0, 1]
image_height = 28
invert = false                   # v -> 1 - v (dark strokes on white paper)
pairing = "keras"                # keras (mnist_siamese scheme) | random | all | genuine-forgery
# eval_pairing = "all"           # validation/test pairing, default: same as pairing
num_pairs = 10000                # training pairs when pairing = "random"
positive_ratio = 0.5             # fraction of similar pairs when pairing = "random"
split = "sample"                 # sample | class (unseen identities at test time) | group (unseen parent folders)
test_fraction = 0.2              # held-out test part
validation_fraction = 0.1        # part of the training samples used for validation
# limit = 1000                   # use only the first N samples
# pair_labels = "one-means-similar"   # for pair lists: or "one-means-different"
# test_path = "omniglot/images_background_small2"   # test part from its own folder
# folds = 4                      # cross-validation by class (by writer for signatures) ...
# fold = 0                       # ... testing fold 0
# forgery_suffix = "_forg"       # pairing = "genuine-forgery": class W_forg = forgeries of W

[model]
distance = "euclidean"           # euclidean | manhattan | cosine
head = "distance"                # distance | weighted-l1 (Koch: sigmoid of weighted |e_a - e_b|)

[model.encoder]
hidden = [128, 128, 128]         # Dense layer sizes
activation = "relu"              # relu | tanh | sigmoid | gelu | linear
dropout = 0.1                    # after every layer but the last
final_activation = true

[loss]
type = "contrastive"             # contrastive | triplet | binary-cross-entropy (head = "weighted-l1")
margin = 1.0                     # contrastive / triplet margin; label 1 = similar

[optimizer]
type = "rmsprop"                 # rmsprop | adam | sgd
lr = 0.001
rho = 0.9
epsilon = 1e-7

[train]
epochs = 20
batch_size = 128
shuffle = true
seed = 0
threshold = 0.5                  # d < threshold => similar, for the accuracy metric
calibrate = "accuracy"           # decision threshold chosen on validation pairs: accuracy | f1 | far=0.01
# augment = { rotation = 10, shift = 0.05, scale = 0.1, shear = 5 }   # images: random affine, seeded
"#;

/// Parses TOML text into a table, naming the line of a syntax error.
pub fn parse_table(text: &str, origin: &Path) -> Result<toml::Table> {
    text.parse::<toml::Table>().map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let message = e.message().trim().replace('\n', " ");
        SiameseError::format(
            origin,
            match line {
                Some(l) => format!("invalid run config at line {l}: {message}"),
                None => format!("invalid run config: {message}"),
            },
        )
    })
}

/// The key that a serde error names (`unknown field `batch``), if any.
fn key_in_error(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    let key = &message[start..end];
    (!key.is_empty()).then(|| format!("{key} "))
}

/// Applies `section.key=value` overrides to a run config table. The value is read as a TOML
/// value (`5`, `0.1`, `true`, `"eer"`, `[64, 64]`, `{ rotation = 10 }`); a bare word that is
/// not one is taken as a string.
pub fn apply_sets(table: &mut toml::Table, sets: &[String]) -> Result<()> {
    for set in sets {
        let (key, value) = set.split_once('=').ok_or_else(|| {
            SiameseError::config(
                "--set",
                format!("`{set}` is not KEY=VALUE (e.g. train.epochs=5)"),
            )
        })?;
        let key = key.trim();
        let value = value.trim();
        let parsed: toml::Value = match format!("v = {value}").parse::<toml::Table>() {
            Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(value.into())),
            Err(_) => toml::Value::String(value.into()),
        };
        let path: Vec<&str> = key.split('.').map(str::trim).collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(SiameseError::config(
                "--set",
                format!("`{key}` is not a key path"),
            ));
        }
        let mut node = &mut *table;
        for part in &path[..path.len() - 1] {
            let entry = node
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = entry.as_table_mut().ok_or_else(|| {
                SiameseError::config("--set", format!("`{part}` in `{key}` is not a section"))
            })?;
        }
        node.insert(path[path.len() - 1].to_string(), parsed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_to_the_mnist_recipe() {
        let c = RunConfig::from_toml(RUN_TEMPLATE, std::path::Path::new("run.toml")).unwrap();
        assert_eq!(c.data.source, siamese::data::DataSource::Mnist);
        assert_eq!(c.model.encoder.dropout, 0.1);
        assert_eq!(c.train.batch_size, 128);
        assert_eq!(c.optimizer, OptimizerConfig::rmsprop());
        let m = c.model_config(784).unwrap();
        assert_eq!(m.network.encoder.input_dim(), 784);
    }

    /// Every run config shipped in `configs/` parses and passes the checks made before any
    /// data is read (sampler, schedule, miner, keep_best and augmentation keys included).
    #[test]
    fn shipped_configs_parse_and_validate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let c = RunConfig::from_toml(&text, &path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                if path.ends_with("att_mined.toml") {
                    assert!(c.train.sampler.is_some() && c.loss.miner.is_some());
                    assert!(!c.train.schedule.is_constant());
                }
                seen += 1;
            }
        }
        assert!(seen >= 12, "{seen} configs");
        // Checked before any data is read: an unknown preset, both augment forms, a bad
        // schedule or sampler.
        for (extra, key) in [
            ("augment_preset = \"cats\"", "augment_preset"),
            (
                "augment_preset = \"faces\"\naugment = { flip = true }",
                "not both",
            ),
            (
                "schedule = { decay = { type = \"step\", every = 0, gamma = 0.5 } }",
                "schedule.every",
            ),
            ("sampler = { classes = 1, per_class = 4 }", "train.sampler"),
        ] {
            let text = format!("[data]\nsource = \"mnist\"\npath = \"x\"\n[train]\n{extra}\n");
            let err = RunConfig::from_toml(&text, std::path::Path::new("r.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let text = "[data]\nsource = \"mnist\"\npath = \"x\"\nbatch = 3\n";
        let err = RunConfig::from_toml(text, std::path::Path::new("run.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("run.toml") && err.contains("batch"), "{err}");
        let err = RunConfig::from_toml(
            "[data]\nsource = \"floppy\"\npath = \"x\"\n",
            std::path::Path::new("r.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("floppy"), "{err}");
    }
}
