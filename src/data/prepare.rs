//! From a `[data]` config to train / validation / test pairs.
//!
//! ```text
//! source ──load──▶ samples + class labels ──split (by sample | by class)──▶ train/val/test
//!        ──pairs (keras | random)──▶ Pairs for each part
//! ready-made pairs ──split by pair──▶ train/val/test
//! ```
//!
//! Test and validation parts are split off before any pair is built, so no sample is shared
//! between parts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::LabelConvention;
use crate::data::images::ImageOptions;
use crate::data::pairs::{self, IndexPair};
use crate::data::spec::{DataConfig, DataSource, Pairing};
use crate::data::split::{
    drop_shared_classes, merge, split, split_from_class, split_groups, subset,
};
use crate::data::{LabelledSamples, Matrix};
use crate::data::{PairData, Pairs};
use crate::error::{Result, SiameseError};

/// `path` itself if it exists, else `root/path` for a relative `path` (named datasets under a
/// data folder such as `$SIAMESE_DATA_DIR`); an error names both places.
pub fn resolve_data_path(path: &Path, root: Option<&Path>) -> Result<PathBuf> {
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    if path.is_relative()
        && let Some(dir) = root
    {
        let candidate = dir.join(path);
        if candidate.exists() {
            return Ok(candidate);
        }
        return Err(SiameseError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("not found (nor as {})", candidate.display()),
            ),
        ));
    }
    Err(SiameseError::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not found (no data folder given to look up named datasets; the command line \
             reads SIAMESE_DATA_DIR)",
        ),
    ))
}

/// How raw inputs were turned into feature vectors; saved with a model so that `predict` and
/// `embed` on new images preprocess them the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// The source kind the model was trained on; none for a pretrained model used as it is.
    pub source: Option<DataSource>,
    /// Image preprocessing, for image sources.
    pub image: Option<ImageOptions>,
    /// Text preprocessing, for text sources (the tokenizer itself is saved beside the model
    /// as `tokenizer.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextPreprocessing>,
}

/// How sentences became rows of token ids, and how gold scores became labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextPreprocessing {
    /// Tokens per sentence.
    pub max_len: usize,
    /// Row ids (tokenizer vocabulary + padding).
    pub vocab_size: usize,
    /// The dataset's score scale `(low, high)`; labels are `(score − low) / (high − low)`.
    pub score_range: (f32, f32),
    /// Binary labels `score ≥ t` instead, when set.
    pub label_threshold: Option<f32>,
    /// Whether rows carry the tokenizer's special tokens (`[CLS] … [SEP]`: pretrained
    /// encoders).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub special_tokens: bool,
}

/// What a text source adds to its pairs: the tokenizer and the gold scores.
#[derive(Debug, Clone)]
pub struct TextData {
    /// The tokenizer (trained on the training sentences, or loaded).
    pub tokenizer: crate::data::tokenize::TextTokenizer,
    /// Gold scores of the validation pairs, on the dataset's scale.
    pub validation_scores: Vec<f32>,
    /// Gold scores of the test pairs, on the dataset's scale.
    pub test_scores: Vec<f32>,
}

/// One part of the data: dense pairs, or index pairs into labelled samples (sample sources:
/// each image is stored once however many pairs use it).
#[derive(Debug, Clone)]
pub enum PairSet {
    /// Dense pairs (ready-made pair sources).
    Dense(Pairs),
    /// Index pairs into class-labelled samples.
    Indexed {
        /// The samples of this part, with their classes.
        samples: LabelledSamples,
        /// Pairs of indices into `samples`.
        pairs: Vec<IndexPair>,
    },
}

impl PairSet {
    /// The pairs, borrowed for training or evaluation.
    pub fn data(&self) -> PairData<'_> {
        match self {
            Self::Dense(p) => PairData::Dense(p.as_ref()),
            Self::Indexed { samples, pairs } => PairData::Indexed {
                samples: &samples.samples,
                pairs,
            },
        }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.data().len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class-labelled samples behind index pairs.
    pub fn samples(&self) -> Option<&LabelledSamples> {
        match self {
            Self::Dense(_) => None,
            Self::Indexed { samples, .. } => Some(samples),
        }
    }
}

/// Pairs ready for training and evaluation.
#[derive(Debug, Clone)]
pub struct PreparedData {
    /// Training pairs.
    pub train: PairSet,
    /// Validation pairs, when `validation_fraction > 0`.
    pub validation: Option<PairSet>,
    /// Held-out test pairs.
    pub test: PairSet,
    /// Features per sample.
    pub input_dim: usize,
    /// How samples were preprocessed.
    pub preprocessing: Preprocessing,
    /// One line per part: how many samples/classes/pairs went where.
    pub description: Vec<String>,
    /// Tokenizer and gold scores, for text sources.
    pub text: Option<TextData>,
}

fn image_options(c: &DataConfig) -> ImageOptions {
    ImageOptions {
        width: c.image_width,
        height: c.image_height,
        invert: c.invert,
    }
}

impl PreparedData {
    /// `(width, height)` of the image samples: the image preprocessing's size, or the size
    /// the samples were read at (MNIST's IDX files hold 28 × 28 images); `None` for vectors
    /// and text. Augmentation needs it.
    pub fn image_size(&self) -> Option<(usize, usize)> {
        self.preprocessing
            .image
            .as_ref()
            .map(|img| (img.width, img.height))
            .or_else(|| self.train.samples().and_then(|s| s.image_size))
    }
}

/// Loads, splits and pairs the data described by `config`, deterministically for `seed`.
pub fn prepare(config: &DataConfig, seed: u64) -> Result<PreparedData> {
    prepare_with(config, seed, None)
}

/// [`prepare`], with a text source's sentences tokenised by `tokenizer` (a pretrained
/// model's, [`crate::model::Siamese::tokenizer`]) instead of one trained on the training
/// sentences or read from `data.tokenizer`; rows then hold the tokenizer's `max_len` ids.
pub fn prepare_with(
    config: &DataConfig,
    seed: u64,
    tokenizer: Option<crate::data::tokenize::TextTokenizer>,
) -> Result<PreparedData> {
    let path = resolve_data_path(&config.path, config.data_root.as_deref())?;
    match config.source {
        DataSource::Mnist | DataSource::Images => {
            let opts = image_options(config);
            let load = |path: &Path| -> Result<LabelledSamples> {
                if config.source == DataSource::Mnist {
                    crate::data::idx::load_mnist(path)
                } else {
                    crate::data::images::load_image_folder(path, &opts)
                }
            };
            let mut samples = load(&path)?;
            let mut notes = Vec::new();
            for extra in &config.extra_paths {
                let more = load(&resolve_data_path(extra, config.data_root.as_deref())?)?;
                let (more, dropped) = drop_shared_classes(&samples, more);
                if !dropped.is_empty() {
                    notes.push(format!(
                        "{}: skipped {} classes already under {} ({})",
                        extra.display(),
                        dropped.len(),
                        config.path.display(),
                        parents(&dropped)
                    ));
                }
                samples = merge(samples, more)?;
            }
            let samples = limit(samples, config.limit);
            let test = match &config.test_path {
                Some(p) => Some(load(&resolve_data_path(p, config.data_root.as_deref())?)?),
                None => None,
            };
            let mut data = from_samples(
                config,
                samples,
                test,
                seed,
                Preprocessing {
                    source: Some(config.source),
                    image: (config.source == DataSource::Images).then_some(opts),
                    text: None,
                },
            )?;
            notes.append(&mut data.description);
            data.description = notes;
            Ok(data)
        }
        DataSource::Stsb | DataSource::Sick => prepare_text(config, &path, tokenizer),
        DataSource::Pairs | DataSource::PairList => {
            reject_sample_splits(
                config,
                "applies to class-labelled samples (mnist or images), not to ready-made pairs",
            )?;
            let (all, image) = if config.source == DataSource::Pairs {
                (crate::data::npy::read_pairs(&path)?, None)
            } else {
                let opts = image_options(config);
                (
                    load_pair_list(&path, config.pair_labels, &opts)?,
                    Some(opts),
                )
            };
            from_pairs(
                config,
                all,
                seed,
                Preprocessing {
                    source: Some(config.source),
                    image,
                    text: None,
                },
            )
        }
    }
}

/// Errors naming `data.test_path` or `data.folds` when set for a source they do not apply to.
fn reject_sample_splits(config: &DataConfig, why: &str) -> Result<()> {
    for (field, set) in [
        ("data.test_path", config.test_path.is_some()),
        ("data.extra_paths", !config.extra_paths.is_empty()),
        ("data.folds", config.folds.is_some()),
        ("data.test_classes_from", config.test_classes_from.is_some()),
    ] {
        if set {
            return Err(SiameseError::config(field, why));
        }
    }
    Ok(())
}

/// The train / validation / test sentence pairs of a text source, and its score scale.
/// Train, validation and test pairs of a text source.
type TextSplits = [Vec<crate::data::TextPair>; 3];

fn read_text_splits(config: &DataConfig, path: &Path) -> Result<(TextSplits, (f32, f32))> {
    use crate::data::text::{read_sick, read_stsb};
    Ok(match config.source {
        DataSource::Stsb => {
            let file = |name: &str| read_stsb(&path.join(name));
            (
                [
                    file("sts-train.csv")?,
                    file("sts-dev.csv")?,
                    file("sts-test.csv")?,
                ],
                (0.0, 5.0),
            )
        }
        _ => {
            let part = |split: &str| read_sick(path, Some(split));
            ([part("TRAIN")?, part("TRIAL")?, part("TEST")?], (1.0, 5.0))
        }
    })
}

/// Loads a text source: its published splits, a tokenizer (trained on the training sentences
/// only, or loaded), and labels from the gold scores.
fn prepare_text(
    config: &DataConfig,
    path: &Path,
    given: Option<crate::data::tokenize::TextTokenizer>,
) -> Result<PreparedData> {
    use crate::data::tokenize::TextTokenizer;
    reject_sample_splits(
        config,
        "text sources use their published train / validation / test splits",
    )?;
    let ([mut train, val, test], (low, high)) = read_text_splits(config, path)?;
    if let Some(n) = config.limit {
        train.truncate(n);
    }
    let tokenizer = match (given, &config.tokenizer) {
        (Some(t), _) => t,
        (None, Some(p)) => TextTokenizer::from_file(
            &resolve_data_path(p, config.data_root.as_deref())?,
            config.max_len,
        )?,
        (None, None) => {
            let sentences: Vec<&str> = train
                .iter()
                .flat_map(|p| [p.a.as_str(), p.b.as_str()])
                .collect();
            TextTokenizer::train(&sentences, config.vocab_size, config.max_len)?
        }
    };
    let label = |score: f32| match config.label_threshold {
        Some(t) => {
            if score >= t {
                1.0
            } else {
                0.0
            }
        }
        None => ((score - low) / (high - low)).clamp(0.0, 1.0),
    };
    // The pairs, and how many of their sentences were longer than max_len.
    let encode = |pairs: &[crate::data::TextPair]| -> Result<(Pairs, usize)> {
        let a: Vec<&str> = pairs.iter().map(|p| p.a.as_str()).collect();
        let b: Vec<&str> = pairs.iter().map(|p| p.b.as_str()).collect();
        let (a, long_a) = tokenizer.encode_counting(&a)?;
        let (b, long_b) = tokenizer.encode_counting(&b)?;
        let labels = pairs.iter().map(|p| label(p.score)).collect();
        Ok((Pairs { a, b, labels }, long_a + long_b))
    };
    let (train_pairs, truncated) = encode(&train)?;
    let describe = |name: &str, pairs: &[crate::data::TextPair]| {
        format!("{name}: {} sentence pairs", pairs.len())
    };
    let description = vec![
        format!(
            "tokenizer: {} ids ({}), {} tokens per sentence ({} training sentences longer)",
            tokenizer.vocab_size(),
            match (&config.tokenizer, tokenizer.special_tokens()) {
                (_, true) => "the pretrained model's, with its special tokens".into(),
                (Some(p), false) => format!("loaded from {}", p.display()),
                (None, false) => "WordPiece trained on the training sentences".into(),
            },
            tokenizer.max_len(),
            truncated
        ),
        describe("train", &train),
        describe("validation", &val),
        describe("test", &test),
    ];
    let preprocessing = Preprocessing {
        source: Some(config.source),
        image: None,
        text: Some(TextPreprocessing {
            max_len: tokenizer.max_len(),
            vocab_size: tokenizer.vocab_size(),
            score_range: (low, high),
            label_threshold: config.label_threshold,
            special_tokens: tokenizer.special_tokens(),
        }),
    };
    Ok(PreparedData {
        train: PairSet::Dense(train_pairs),
        validation: Some(PairSet::Dense(encode(&val)?.0)),
        test: PairSet::Dense(encode(&test)?.0),
        input_dim: tokenizer.max_len(),
        preprocessing,
        description,
        text: Some(TextData {
            validation_scores: val.iter().map(|p| p.score).collect(),
            test_scores: test.iter().map(|p| p.score).collect(),
            tokenizer,
        }),
    })
}

/// Reads a pair-list CSV with its label convention and loads its images.
pub fn load_pair_list(path: &Path, labels: LabelConvention, opts: &ImageOptions) -> Result<Pairs> {
    let list = crate::data::pairlist::read_pair_list_with(path, labels)?;
    crate::data::pairlist::load_pair_images(&list, opts)
}

fn limit(s: LabelledSamples, limit: Option<usize>) -> LabelledSamples {
    match limit {
        Some(n) if n < s.samples.rows() => {
            let idx: Vec<usize> = (0..n).collect();
            subset(&s, &idx)
        }
        _ => s,
    }
}

fn build_pairs(
    config: &DataConfig,
    pairing: Pairing,
    s: &LabelledSamples,
    n_pairs: usize,
    seed: u64,
) -> Result<Vec<IndexPair>> {
    match pairing {
        Pairing::Keras => pairs::keras_pairs(&s.labels, Some(&s.class_names), seed),
        Pairing::Random => pairs::random_pairs(&s.labels, n_pairs, config.positive_ratio, seed),
        Pairing::All => Ok(pairs::all_pairs(&s.labels)),
        Pairing::GenuineForgery => {
            let groups = pairs::forgery_groups(&s.class_names, &config.forgery_suffix);
            if !groups.iter().any(|g| g.1) {
                return Err(SiameseError::invalid(
                    config.path.display().to_string(),
                    format!(
                        "pairing = \"genuine-forgery\" needs forgery classes named \
                         <writer>{} (found classes {})",
                        config.forgery_suffix,
                        preview(&s.class_names)
                    ),
                ));
            }
            Ok(pairs::genuine_forgery_pairs(&s.labels, &groups))
        }
    }
}

fn preview(names: &[String]) -> String {
    let mut out = names.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 4 {
        out.push_str(&format!(", … ({} in all)", names.len()));
    }
    out
}

/// Groups of class names by their parent folder (`Greek/character01` → `Greek`), for the
/// message listing dropped classes.
fn parents(names: &[String]) -> String {
    let mut p: Vec<&str> = names
        .iter()
        .map(|n| n.rsplit_once('/').map_or(n.as_str(), |(p, _)| p))
        .collect();
    p.dedup();
    p.join(", ")
}

fn count_classes(labels: &[usize]) -> usize {
    let mut seen: Vec<usize> = labels.to_vec();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

fn from_samples(
    config: &DataConfig,
    all: LabelledSamples,
    test_samples: Option<LabelledSamples>,
    seed: u64,
    preprocessing: Preprocessing,
) -> Result<PreparedData> {
    if all.samples.rows() == 0 {
        return Err(SiameseError::Empty(format!(
            "{} holds no samples",
            config.path.display()
        )));
    }
    all.samples
        .check_finite(&config.path.display().to_string())?;
    let input_dim = all.samples.cols();
    let mut notes = Vec::new();
    // data.test_path, data.folds and data.test_classes_from each choose the test part.
    let from = config.test_classes_from.as_deref();
    let (train_all, test) = match (test_samples, config.folds, from) {
        (Some(_), Some(_), _) => {
            return Err(SiameseError::config(
                "data.folds",
                "cannot be combined with data.test_path (the test part comes from one or the other)",
            ));
        }
        (Some(_), None, Some(_)) | (None, Some(_), Some(_)) => {
            return Err(SiameseError::config(
                "data.test_classes_from",
                "cannot be combined with data.test_path or data.folds (each chooses the test \
                 part)",
            ));
        }
        (None, None, Some(from)) => {
            let (train_idx, test_idx) = split_from_class(config, &all, from)?;
            (subset(&all, &train_idx), subset(&all, &test_idx))
        }
        (Some(test), None, None) => {
            let (test, dropped) = drop_shared_classes(&all, test);
            if !dropped.is_empty() {
                notes.push(format!(
                    "test: dropped {} classes also under {} ({})",
                    dropped.len(),
                    config.path.display(),
                    parents(&dropped)
                ));
            }
            if test.samples.rows() == 0 {
                return Err(SiameseError::Empty(format!(
                    "every class of data.test_path is also under {}; nothing is left to test",
                    config.path.display()
                )));
            }
            test.samples.check_finite("data.test_path")?;
            (all, test)
        }
        (None, Some(folds), None) => {
            let (train_idx, test_idx) =
                pairs::split_fold(&split_groups(config, &all), folds, config.fold, seed)?;
            (subset(&all, &train_idx), subset(&all, &test_idx))
        }
        // No test part: every sample trains (or validates); the model is evaluated later on
        // other data (`siamese evaluate --images`).
        (None, None, None) if config.test_fraction == 0.0 => {
            let none = subset(&all, &[]);
            (all, none)
        }
        (None, None, None) => {
            let (train_idx, test_idx) = split(config, &all, config.test_fraction, seed)?;
            (subset(&all, &train_idx), subset(&all, &test_idx))
        }
    };
    let (train, val) = if config.validation_fraction > 0.0 {
        let (t, v) = split(
            config,
            &train_all,
            config.validation_fraction,
            seed.wrapping_add(1),
        )?;
        (subset(&train_all, &t), Some(subset(&train_all, &v)))
    } else {
        (train_all, None)
    };
    // Random pairing: held-out parts get pairs in proportion to their samples.
    let share = |s: &LabelledSamples| {
        let ratio = s.samples.rows() as f64 / train.samples.rows().max(1) as f64;
        ((config.num_pairs as f64 * ratio).round() as usize).max(1)
    };
    let eval_pairing = config.eval_pairing.unwrap_or(config.pairing);
    let train_pairs = build_pairs(
        config,
        config.pairing,
        &train,
        config.num_pairs,
        seed.wrapping_add(10),
    )?;
    let test_pairs = if test.is_empty() {
        Vec::new()
    } else {
        build_pairs(
            config,
            eval_pairing,
            &test,
            share(&test),
            seed.wrapping_add(11),
        )?
    };
    let val_pairs = match &val {
        Some(v) => Some(build_pairs(
            config,
            eval_pairing,
            v,
            share(v),
            seed.wrapping_add(12),
        )?),
        None => None,
    };
    let describe = |name: &str, s: &LabelledSamples, p: &[IndexPair]| {
        format!(
            "{name}: {} samples of {} classes → {} pairs ({} similar)",
            s.samples.rows(),
            count_classes(&s.labels),
            p.len(),
            p.iter().filter(|p| p.label == 1.0).count()
        )
    };
    let mut description = notes;
    description.push(describe("train", &train, &train_pairs));
    if let (Some(v), Some(p)) = (&val, &val_pairs) {
        description.push(describe("validation", v, p));
    }
    description.push(if test.is_empty() {
        "test: none (data.test_fraction = 0)".to_string()
    } else {
        describe("test", &test, &test_pairs)
    });
    Ok(PreparedData {
        train: PairSet::Indexed {
            samples: train,
            pairs: train_pairs,
        },
        validation: match (val, val_pairs) {
            (Some(samples), Some(pairs)) => Some(PairSet::Indexed { samples, pairs }),
            _ => None,
        },
        test: PairSet::Indexed {
            samples: test,
            pairs: test_pairs,
        },
        input_dim,
        preprocessing,
        description,
        text: None,
    })
}

fn from_pairs(
    config: &DataConfig,
    all: Pairs,
    seed: u64,
    preprocessing: Preprocessing,
) -> Result<PreparedData> {
    let n = all.labels.len();
    if n == 0 {
        return Err(SiameseError::Empty(format!(
            "{} holds no pairs",
            config.path.display()
        )));
    }
    if config.test_fraction == 0.0 {
        return Err(SiameseError::config(
            "data.test_fraction",
            "0 (no test part) applies to class-labelled samples, not to ready-made pairs",
        ));
    }
    let (train_idx, test_idx) = pairs::split_indices(n, config.test_fraction, seed)?;
    let (train_idx, val_idx) = if config.validation_fraction > 0.0 {
        let (t, v) = pairs::split_indices(
            train_idx.len(),
            config.validation_fraction,
            seed.wrapping_add(1),
        )?;
        (
            t.iter().map(|&i| train_idx[i]).collect::<Vec<_>>(),
            Some(v.iter().map(|&i| train_idx[i]).collect::<Vec<_>>()),
        )
    } else {
        (train_idx, None)
    };
    let describe = |name: &str, idx: &[usize]| {
        format!(
            "{name}: {} pairs ({} similar), split by pair",
            idx.len(),
            idx.iter().filter(|&&i| all.labels[i] >= 0.5).count()
        )
    };
    let mut description = vec![describe("train", &train_idx)];
    if let Some(v) = &val_idx {
        description.push(describe("validation", v));
    }
    description.push(describe("test", &test_idx));
    Ok(PreparedData {
        train: PairSet::Dense(all.select(&train_idx)),
        validation: val_idx.map(|v| PairSet::Dense(all.select(&v))),
        test: PairSet::Dense(all.select(&test_idx)),
        input_dim: all.a.cols(),
        preprocessing,
        description,
        text: None,
    })
}

/// Loads inputs for `predict` / `embed`: a matrix file (`.npy`, `.csv`), or an image file or
/// folder of images (preprocessed as the model's training images). Returns the matrix and, for
/// images, the path of each row.
pub fn load_inputs(
    path: &Path,
    preprocessing: Option<&Preprocessing>,
) -> Result<(Matrix, Vec<PathBuf>)> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if matches!(ext.as_str(), "npy" | "csv" | "txt") {
        return Ok((crate::data::table::read_matrix_any(path)?, Vec::new()));
    }
    match preprocessing.and_then(|p| p.image.as_ref()) {
        Some(opts) => crate::data::images::load_images_recursive(path, opts),
        None => Err(SiameseError::invalid(
            path.display().to_string(),
            "expected a .npy or .csv matrix (this model was not trained on images)",
        )),
    }
}
