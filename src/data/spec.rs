//! [`DataConfig`]: which data a run reads and how it is split and paired.

use serde::{Deserialize, Serialize};

use super::LabelConvention;

/// Where the samples of a run come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitBy {
    /// By sample: every class appears in every part, no sample in two parts.
    Sample,
    /// By class: test (and validation) identities are unseen in training.
    Class,
    /// By group of classes, the classes' parent folder (Omniglot alphabets): whole groups go
    /// to the test (and validation) parts, so their scripts are unseen in training.
    Group,
}

/// Where a run's data comes from and how it becomes train / validation / test pairs (the
/// `[data]` section of a run config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Kind of data.
    pub source: DataSource,
    /// File or folder; a relative path that does not exist is looked up under `data_root`.
    pub path: std::path::PathBuf,
    /// Where relative data paths that do not exist are looked up (the command line sets it
    /// from `SIAMESE_DATA_DIR`). Not part of the config file.
    #[serde(skip)]
    pub data_root: Option<std::path::PathBuf>,
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
    /// Fraction of samples (or classes, groups, or pairs) held out for the test; `0` for
    /// no test part (class-labelled sources: every sample trains or validates, and the model
    /// is evaluated on other data later).
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
    pub pair_labels: LabelConvention,
    /// More folders of the same kind whose classes join those under `path` (image and MNIST
    /// sources), e.g. both Omniglot background-small sets; a class whose name is already
    /// under `path` (or an earlier extra folder) is skipped, so duplicated alphabets count
    /// once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_paths: Vec<std::path::PathBuf>,
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
    /// A fixed test part by class name: the classes (writers, with `pairing =
    /// "genuine-forgery"`: a forgery class counts as its writer) whose name sorts at or after
    /// this one, in string order; `test_fraction` is not used. E.g. `"049"` for
    /// `signatures_sign_data_64`, whose writers 001–048 and 049–069 are disjoint sets.
    #[serde(default)]
    pub test_classes_from: Option<String>,
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
