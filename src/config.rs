//! Serialisable configurations: what a saved model directory records about its model.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::loss::LossConfig;
use crate::optim::OptimizerConfig;
use crate::siamese::SiameseConfig;

/// Everything needed to rebuild and keep training a model: architecture, loss, optimizer and
/// the seed its weights were drawn from. Stored as `config.json` in a model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The network's architecture.
    pub network: SiameseConfig,
    /// The training loss.
    #[serde(default)]
    pub loss: LossConfig,
    /// The optimizer.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Seed for weight initialisation.
    #[serde(default)]
    pub seed: u64,
}

impl ModelConfig {
    /// The reference system: `input_dim → Dense(128, relu) ×3`, Euclidean distance, contrastive
    /// loss with margin 1, Keras RMSprop.
    pub fn reference(input_dim: usize) -> Self {
        Self {
            network: SiameseConfig::reference(input_dim),
            loss: LossConfig::default(),
            optimizer: OptimizerConfig::rmsprop(),
            seed: 0,
        }
    }

    /// Checks every part, naming the offending field.
    pub fn validate(&self) -> Result<()> {
        use crate::loss::LossKind;
        use crate::siamese::Head;
        self.network.validate()?;
        self.loss.validate()?;
        match (self.network.head, self.loss.kind) {
            (Head::Distance, LossKind::BinaryCrossEntropy) => {
                return Err(crate::error::SiameseError::config(
                    "loss.type",
                    "binary-cross-entropy needs the weighted-l1 head (model.head = \"weighted-l1\")",
                ));
            }
            (_, LossKind::CosineMse)
                if self.network.distance != crate::distance::Distance::Cosine =>
            {
                return Err(crate::error::SiameseError::config(
                    "loss.type",
                    "cosine-mse regresses the cosine similarity: use model.distance = \"cosine\"",
                ));
            }
            (Head::WeightedL1, LossKind::CosineMse | LossKind::ExpMse) => {
                return Err(crate::error::SiameseError::config(
                    "model.head",
                    "cosine-mse and exp-mse train the distance head (model.head = \"distance\")",
                ));
            }
            (Head::WeightedL1, LossKind::Contrastive | LossKind::Triplet) => {
                return Err(crate::error::SiameseError::config(
                    "model.head",
                    "the weighted-l1 head is trained with loss.type = \"binary-cross-entropy\"",
                ));
            }
            _ => {}
        }
        self.optimizer.validate()
    }
}

/// Where the samples of a run come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DataSource {
    /// MNIST IDX files in a folder (`t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`).
    Mnist,
    /// A folder with one sub-folder of images per class/identity.
    Images,
    /// Ready-made pairs: a folder with `a.npy`, `b.npy`, `labels.npy`, or an `.npz` with them.
    Pairs,
    /// A CSV list of image pairs `path_a,path_b,label`.
    PairList,
    /// STS Benchmark: a folder with `sts-train.csv`, `sts-dev.csv`, `sts-test.csv` (scores
    /// 0–5); train / validation (dev) / test as published.
    Stsb,
    /// SICK (`SICK.txt`, relatedness 1–5): its own TRAIN / TRIAL (validation) / TEST split.
    Sick,
}

/// How pairs are built from class-labelled samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Pairing {
    /// The Keras `mnist_siamese` scheme: consecutive same-class positives, one negative each.
    Keras,
    /// `num_pairs` random pairs with `positive_ratio` positives.
    Random,
    /// Every unordered pair of distinct samples (for small held-out sets).
    All,
    /// Signature verification: within each writer, genuine × genuine pairs are similar and
    /// genuine × skilled forgery pairs dissimilar. Forgeries of writer `W` are the class named
    /// `W` + `forgery_suffix` (`049_forg/`); splits keep a writer and its forgeries together.
    GenuineForgery,
}

/// How samples are divided into train / validation / test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SplitBy {
    /// By sample: every class appears in every part, no sample in two parts.
    Sample,
    /// By class: test (and validation) identities are unseen in training.
    Class,
}

/// Label convention of a pair list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PairLabels {
    /// 1 = same (our convention).
    #[default]
    OneMeansSimilar,
    /// 1 = different (e.g. 1 = forgery in signature pair lists).
    OneMeansDifferent,
}

impl From<PairLabels> for crate::data::pairlist::LabelConvention {
    fn from(p: PairLabels) -> Self {
        match p {
            PairLabels::OneMeansSimilar => Self::OneMeansSimilar,
            PairLabels::OneMeansDifferent => Self::OneMeansDifferent,
        }
    }
}

/// The `[data]` section of a run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Kind of data.
    pub source: DataSource,
    /// File or folder; a relative path that does not exist is looked up under
    /// `SIAMESE_DATA_DIR`.
    pub path: std::path::PathBuf,
    /// Image width after resizing (image sources).
    #[serde(default = "default_image_side")]
    pub image_width: usize,
    /// Image height after resizing (image sources).
    #[serde(default = "default_image_side")]
    pub image_height: usize,
    /// Map pixel values v → 1 − v (dark strokes on white paper become high values).
    #[serde(default)]
    pub invert: bool,
    /// Pair-building scheme for class-labelled samples.
    #[serde(default = "default_pairing")]
    pub pairing: Pairing,
    /// Pairing of the validation and test parts; default: the same as `pairing`.
    #[serde(default)]
    pub eval_pairing: Option<Pairing>,
    /// Number of training pairs for `pairing = "random"` (test and validation get a share
    /// proportional to their samples).
    #[serde(default = "default_num_pairs")]
    pub num_pairs: usize,
    /// Fraction of positive pairs for `pairing = "random"`.
    #[serde(default = "default_positive_ratio")]
    pub positive_ratio: f64,
    /// How the test (and validation) parts are split off.
    #[serde(default = "default_split")]
    pub split: SplitBy,
    /// Fraction of samples (or classes, or pairs) held out for the test.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Fraction of the remaining training part held out for validation (0 = none).
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// Use only the first `limit` samples (quick runs).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Label convention of a pair list.
    #[serde(default)]
    pub pair_labels: PairLabels,
    /// A separate folder for the test part (image and MNIST sources): train and validation
    /// come from `path`, the test from here, and `test_fraction` is not used. Classes whose
    /// name also appears under `path` are dropped from the test (e.g. the Greek and Latin
    /// alphabets that both Omniglot background-small sets hold).
    #[serde(default)]
    pub test_path: Option<std::path::PathBuf>,
    /// Cross-validation by class (by writer with `pairing = "genuine-forgery"`): the classes
    /// are dealt into `folds` folds and the test part is fold `fold`; `test_fraction` is not
    /// used. Run every fold with the same seed to test each class once.
    #[serde(default)]
    pub folds: Option<usize>,
    /// Which fold is the test part (from 0), with `folds`.
    #[serde(default)]
    pub fold: usize,
    /// Class-name suffix of skilled forgeries, for `pairing = "genuine-forgery"`.
    #[serde(default = "default_forgery_suffix")]
    pub forgery_suffix: String,
    /// Text: tokens kept per sentence.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Text: size of the WordPiece vocabulary trained on the training sentences.
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    /// Text: a `tokenizer.json` to use instead of training one.
    #[serde(default)]
    pub tokenizer: Option<std::path::PathBuf>,
    /// Text: binary labels, similar when the gold score is ≥ this value (on the dataset's
    /// scale; e.g. 4 for STS-B with the contrastive loss). Without it labels are the gold
    /// score scaled to [0, 1], for the regression losses.
    #[serde(default)]
    pub label_threshold: Option<f32>,
}

fn default_max_len() -> usize {
    48
}
fn default_vocab_size() -> usize {
    8000
}

fn default_forgery_suffix() -> String {
    "_forg".into()
}

fn default_image_side() -> usize {
    28
}
fn default_pairing() -> Pairing {
    Pairing::Keras
}
fn default_num_pairs() -> usize {
    10_000
}
fn default_positive_ratio() -> f64 {
    0.5
}
fn default_split() -> SplitBy {
    SplitBy::Sample
}
fn default_test_fraction() -> f64 {
    0.2
}
fn default_validation_fraction() -> f64 {
    0.1
}

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
    pub layers: Option<Vec<crate::encoder::conv::ConvLayerConfig>>,
    /// MLP: output size of each dense layer.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Activation after each layer.
    #[serde(default)]
    pub activation: crate::encoder::Activation,
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
    pub body: Option<crate::encoder::text::TextBody>,
    /// Text: `mean` or `max` pooling over the tokens.
    #[serde(default)]
    pub pooling: crate::encoder::text::Pooling,
    /// Text: size of an optional final linear projection.
    #[serde(default)]
    pub output: Option<usize>,
    /// Text: pretrained word vectors (GloVe / word2vec text format) for the embeddings.
    #[serde(default)]
    pub pretrained: Option<std::path::PathBuf>,
}

fn default_embed_dim() -> usize {
    128
}
fn default_hidden() -> Vec<usize> {
    vec![128, 128, 128]
}
fn default_true() -> bool {
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
    ) -> Result<crate::encoder::EncoderConfig> {
        use crate::encoder::conv::ConvEncoderConfig;
        use crate::error::SiameseError;
        Ok(match self.kind {
            EncoderKind::Mlp => {
                crate::encoder::EncoderConfig::Mlp(crate::encoder::MlpEncoderConfig {
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
                crate::encoder::EncoderConfig::Conv(config)
            }
            EncoderKind::Text => {
                return Err(SiameseError::config(
                    "model.encoder",
                    "a text encoder needs a text source (stsb, sick) and its tokenizer",
                ));
            }
        })
    }

    /// The text encoder config for `vocab_size` row ids and sentences of `max_len` tokens.
    pub fn to_text_config(
        &self,
        vocab_size: usize,
        max_len: usize,
    ) -> Result<crate::encoder::EncoderConfig> {
        use crate::encoder::text::{TextBody, TextEncoderConfig};
        if self.kind != EncoderKind::Text {
            return Err(crate::error::SiameseError::config(
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
        Ok(crate::encoder::EncoderConfig::Text(config))
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
    pub distance: crate::distance::Distance,
    /// The head: `distance` or `weighted-l1` (Koch et al.).
    #[serde(default)]
    pub head: crate::siamese::Head,
}

/// The `[train]` section of a run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Passes over the training pairs.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Pairs per step.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Shuffle every epoch.
    #[serde(default = "default_true")]
    pub shuffle: bool,
    /// Seed for weights, splits, pairs, shuffling and dropout.
    #[serde(default)]
    pub seed: u64,
    /// Distance under which a pair counts as similar in the accuracy metric during training
    /// (and the decision threshold when there is no validation part to calibrate on).
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// Random affine augmentation of training images (image sources), e.g.
    /// `augment = { rotation = 10, shift = 0.05, scale = 0.1, shear = 5 }`.
    #[serde(default)]
    pub augment: Option<crate::data::augment::AugmentConfig>,
    /// What the decision threshold maximises on the validation pairs after training:
    /// `accuracy`, `f1`, or `far=0.01` (largest threshold with FAR ≤ 1%).
    #[serde(default = "default_calibrate")]
    pub calibrate: String,
}

fn default_calibrate() -> String {
    "accuracy".into()
}

fn default_epochs() -> usize {
    20
}
fn default_batch() -> usize {
    128
}
fn default_threshold() -> f32 {
    0.5
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: default_epochs(),
            batch_size: default_batch(),
            shuffle: true,
            seed: 0,
            threshold: default_threshold(),
            augment: None,
            calibrate: default_calibrate(),
        }
    }
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
    /// are errors.
    pub fn from_toml(text: &str, origin: &std::path::Path) -> Result<Self> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let message = e.message().trim().replace('\n', " ");
            crate::error::SiameseError::format(
                origin,
                match line {
                    Some(l) => format!("invalid run config at line {l}: {message}"),
                    None => format!("invalid run config: {message}"),
                },
            )
        })
    }

    /// Reads a run config file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| crate::error::SiameseError::io(path, e))?;
        Self::from_toml(&text, path)
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
pub const RUN_TEMPLATE: &str = r#"# siamese run config. Every key can also be given as a flag to `siamese train`.
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
split = "sample"                 # sample | class (unseen identities at test time)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_to_the_mnist_recipe() {
        let c = RunConfig::from_toml(RUN_TEMPLATE, std::path::Path::new("run.toml")).unwrap();
        assert_eq!(c.data.source, DataSource::Mnist);
        assert_eq!(c.model.encoder.dropout, 0.1);
        assert_eq!(c.train.batch_size, 128);
        assert_eq!(c.optimizer, OptimizerConfig::rmsprop());
        let m = c.model_config(784).unwrap();
        assert_eq!(m.network.encoder.input_dim(), 784);
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
