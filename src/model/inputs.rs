//! What a saved model needs to be used on raw inputs: the stored preprocessing (image size,
//! inversion, tokenizer), the calibrated threshold and the same/different decision.
//!
//! This is `siamese predict --decide` in a few lines:
//!
//! ```
//! # use siamese::prelude::*;
//! # use siamese::io::Threshold;
//! # let dir = tempfile::tempdir().unwrap();
//! # let (a, b, _) = siamese::synthetic::random_pairs(3, 8, 0);
//! # siamese::data::npy::write_matrix(&dir.path().join("a.npy"), &a).unwrap();
//! # siamese::data::npy::write_matrix(&dir.path().join("b.npy"), &b).unwrap();
//! # let mut m = Siamese::reference(8, 0).unwrap();
//! # m.set_threshold(Threshold { value: 0.5, source: "example".into() });
//! # m.save(dir.path().join("model")).unwrap();
//! # let model_dir = dir.path().join("model");
//! # let (a_path, b_path) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
//! let model = Siamese::load(&model_dir, &Device::flex())?;
//! let (a, _) = model.load_inputs(&a_path)?; // a matrix, images or sentences, as trained
//! let (b, _) = model.load_inputs(&b_path)?;
//! let distances = model.predict(&a, &b)?;
//! let same = model.decide(&a, &b)?; // d < the calibrated threshold
//! for (d, s) in distances.iter().zip(same) {
//!     println!("{d}\t{}", if s { "same" } else { "different" });
//! }
//! # Ok::<(), SiameseError>(())
//! ```

use std::path::{Path, PathBuf};

use super::Siamese;
use crate::data::prepare::{PairSet, Preprocessing};
use crate::data::tokenize::TextTokenizer;
use crate::data::{Matrix, PairData, predicts_similar};
use crate::error::{Result, SiameseError};
use crate::eval::Objective;
use crate::io::Threshold;

/// What a model takes as one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// A vector of `input_dim` numbers.
    Vector,
    /// An image (preprocessed as the model was trained).
    Image,
    /// A sentence (tokenized with the model's tokenizer).
    Text,
}

/// Turns raw inputs into a model's rows, apart from the model: cheap to clone and shared
/// between threads (a service decodes requests on many threads and runs the model on one).
///
/// ```
/// use siamese::prelude::*;
///
/// let model = Siamese::reference(3, 0).unwrap();
/// let enc = model.input_encoder();
/// assert_eq!(enc.kind(), siamese::model::InputKind::Vector);
/// let rows = enc.vectors(&[vec![1.0, 2.0, 3.0]], "inputs").unwrap();
/// assert_eq!(rows.shape(), [1, 3]);
/// let err = enc.vectors(&[vec![1.0, f32::NAN, 3.0]], "inputs").unwrap_err();
/// assert!(err.to_string().contains("inputs[0]"), "{err}");
/// ```
#[derive(Debug, Clone)]
pub struct InputEncoder {
    input_dim: usize,
    image: Option<crate::data::ImageOptions>,
    tokenizer: Option<TextTokenizer>,
}

impl InputEncoder {
    /// What one input is.
    pub fn kind(&self) -> InputKind {
        match (&self.tokenizer, &self.image) {
            (Some(_), _) => InputKind::Text,
            (None, Some(_)) => InputKind::Image,
            (None, None) => InputKind::Vector,
        }
    }

    /// Values per row.
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// The image preprocessing, for an image model.
    pub fn image_options(&self) -> Option<&crate::data::ImageOptions> {
        self.image.as_ref()
    }

    fn wrong_kind(&self, what: &str, given: &str) -> SiameseError {
        let wanted = match self.kind() {
            InputKind::Vector => format!("vectors of {} numbers", self.input_dim),
            InputKind::Image => "images".to_string(),
            InputKind::Text => "sentences".to_string(),
        };
        SiameseError::invalid(what, format!("is {given}, but this model takes {wanted}"))
    }

    /// Rows for vectors; each must hold `input_dim` finite numbers (`what[i]` names a bad one).
    pub fn vectors(&self, rows: &[Vec<f32>], what: &str) -> Result<Matrix> {
        if self.kind() != InputKind::Vector {
            return Err(self.wrong_kind(what, "a vector"));
        }
        let mut data = Vec::with_capacity(rows.len() * self.input_dim);
        for (i, r) in rows.iter().enumerate() {
            if r.len() != self.input_dim {
                return Err(SiameseError::shape(
                    format!("{what}[{i}]"),
                    format!("{} numbers (the model's input_dim)", self.input_dim),
                    format!("{} numbers", r.len()),
                ));
            }
            if let Some(j) = r.iter().position(|v| !v.is_finite()) {
                return Err(SiameseError::invalid(
                    format!("{what}[{i}]"),
                    format!("value {j} is {} (NaN and ±∞ are not inputs)", r[j]),
                ));
            }
            data.extend_from_slice(r);
        }
        Matrix::new(rows.len(), self.input_dim, data)
    }

    /// Rows for decoded images, with the model's image preprocessing.
    pub fn images(&self, images: &[image::DynamicImage], what: &str) -> Result<Matrix> {
        let Some(opts) = &self.image else {
            return Err(self.wrong_kind(what, "an image"));
        };
        crate::data::images::preprocess_images(images, opts)
    }

    /// Rows for sentences, with the model's tokenizer (truncated to its length).
    pub fn sentences<S: AsRef<str>>(&self, sentences: &[S], what: &str) -> Result<Matrix> {
        let Some(tok) = &self.tokenizer else {
            return Err(self.wrong_kind(what, "a sentence"));
        };
        tok.encode(sentences)
    }
}

impl Siamese {
    /// This model's [`InputEncoder`].
    pub fn input_encoder(&self) -> InputEncoder {
        InputEncoder {
            input_dim: self.input_dim(),
            image: self.preprocessing().and_then(|p| p.image.clone()),
            tokenizer: self.tokenizer.clone(),
        }
    }

    /// The calibrated decision threshold, when the model has one.
    pub fn threshold(&self) -> Option<&Threshold> {
        self.meta.threshold.as_ref()
    }

    /// Sets the decision threshold (saved with the model).
    pub fn set_threshold(&mut self, threshold: Threshold) {
        self.meta.threshold = Some(threshold);
    }

    /// Chooses the decision threshold that maximises `objective` on labelled `validation`
    /// pairs (never the test pairs), stores it, and returns it.
    pub fn calibrate(&mut self, validation: PairData<'_>, objective: Objective) -> Result<f32> {
        let d = self.predict_pairs(validation)?;
        let value = crate::eval::calibrate(&d, &validation.labels(), objective)?;
        self.set_threshold(Threshold {
            value,
            source: format!("calibrated on validation pairs: {objective}"),
        });
        Ok(value)
    }

    /// Same (`true`) or different for every pair, with the stored threshold: `d < threshold`.
    pub fn decide(&self, a: &Matrix, b: &Matrix) -> Result<Vec<bool>> {
        let t = self.require_threshold()?;
        Ok(self
            .predict(a, b)?
            .into_iter()
            .map(|d| predicts_similar(d, t))
            .collect())
    }

    fn require_threshold(&self) -> Result<f32> {
        self.threshold().map(|t| t.value).ok_or_else(|| {
            SiameseError::invalid(
                "model",
                "has no calibrated threshold (calibrate it on validation pairs, or set one)",
            )
        })
    }

    /// How raw inputs become this model's rows, when it was trained on images or text.
    pub fn preprocessing(&self) -> Option<&Preprocessing> {
        self.meta.preprocessing.as_ref()
    }

    /// The tokenizer of a text model.
    pub fn tokenizer(&self) -> Option<&TextTokenizer> {
        self.tokenizer.as_ref()
    }

    /// Records how raw inputs become rows (and, for text, the tokenizer), so that the saved
    /// model can embed raw images and sentences.
    pub fn set_preprocessing(
        &mut self,
        preprocessing: Preprocessing,
        tokenizer: Option<TextTokenizer>,
    ) -> Result<()> {
        if preprocessing.text.is_some() != tokenizer.is_some() {
            return Err(SiameseError::config(
                "preprocessing",
                "a text model needs its tokenizer, and only a text model has one",
            ));
        }
        if let Some(img) = &preprocessing.image {
            img.validate()?;
            if img.dim() != self.input_dim() {
                return Err(SiameseError::shape(
                    "preprocessing.image",
                    format!(
                        "{} values per image (the model's input_dim)",
                        self.input_dim()
                    ),
                    format!("{}×{} = {}", img.width, img.height, img.dim()),
                ));
            }
        }
        self.meta.preprocessing = Some(preprocessing);
        self.tokenizer = tokenizer;
        Ok(())
    }

    /// Rows for sentences, with the stored tokenizer (text models).
    pub fn encode_sentences(&self, sentences: &[&str]) -> Result<Matrix> {
        let tok = self.tokenizer.as_ref().ok_or_else(|| {
            SiameseError::invalid("model", "is not a text model (it has no tokenizer)")
        })?;
        tok.encode(sentences)
    }

    /// Rows for decoded images, with the stored image preprocessing (image models).
    pub fn encode_images(&self, images: &[image::DynamicImage]) -> Result<Matrix> {
        crate::data::images::preprocess_images(images, self.image_options()?)
    }

    fn image_options(&self) -> Result<&crate::data::ImageOptions> {
        self.preprocessing()
            .and_then(|p| p.image.as_ref())
            .ok_or_else(|| {
                SiameseError::invalid(
                    "model",
                    "was not trained on images (no image preprocessing)",
                )
            })
    }

    /// Rows for image files, in order, with the stored image preprocessing.
    pub fn load_images(&self, paths: &[PathBuf]) -> Result<Matrix> {
        crate::data::images::load_many(paths, self.image_options()?)
    }

    /// A class-labelled image folder read with the stored image preprocessing (one
    /// sub-folder per class, or flat files named `class.condition` like the Yale faces; see
    /// [`crate::data::images::scan_image_folder`]) and every pair of its images
    /// ([`crate::data::pairs::all_pairs`]): how a model is checked on a dataset it was not
    /// trained on, for verification, identification and one-shot trials alike.
    pub fn labelled_image_folder(&self, dir: impl AsRef<Path>) -> Result<PairSet> {
        let samples = crate::data::images::load_image_folder(dir.as_ref(), self.image_options()?)?;
        let pairs = crate::data::pairs::all_pairs(&samples.labels);
        Ok(PairSet::Indexed { samples, pairs })
    }

    /// The rows in `path`, as the command line reads them: sentences one per line for a text
    /// model; an image file or folder (searched recursively) for an image model, with the
    /// image paths in row order; else a `.npy`/`.csv` matrix. The width is checked against
    /// the model's input.
    pub fn load_inputs(&self, path: impl AsRef<Path>) -> Result<(Matrix, Vec<PathBuf>)> {
        let path = path.as_ref();
        let (m, paths) = match &self.tokenizer {
            Some(tok) => {
                let text = crate::data::table::read_text(path)?;
                let lines: Vec<&str> = text
                    .lines()
                    .map(|l| l.trim_end_matches('\r'))
                    .filter(|l| !l.trim().is_empty())
                    .collect();
                if lines.is_empty() {
                    return Err(SiameseError::Empty(format!(
                        "{} holds no sentence (one per line expected)",
                        path.display()
                    )));
                }
                (tok.encode(&lines)?, Vec::new())
            }
            None => crate::data::prepare::load_inputs(path, self.preprocessing())?,
        };
        crate::data::check_width(&m, self.input_dim(), &path.display().to_string())?;
        Ok((m, paths))
    }

    /// Embeddings of sentences (text models).
    pub fn embed_sentences(&self, sentences: &[&str]) -> Result<Matrix> {
        self.embed(&self.encode_sentences(sentences)?)
    }

    /// Embeddings of decoded images (image models).
    pub fn embed_images(&self, images: &[image::DynamicImage]) -> Result<Matrix> {
        self.embed(&self.encode_images(images)?)
    }

    /// Distances of sentence pairs (text models).
    pub fn predict_sentences(&self, a: &[&str], b: &[&str]) -> Result<Vec<f32>> {
        self.predict(&self.encode_sentences(a)?, &self.encode_sentences(b)?)
    }

    /// Same or different for sentence pairs, with the stored threshold.
    pub fn verify_sentences(&self, a: &[&str], b: &[&str]) -> Result<Vec<bool>> {
        self.decide(&self.encode_sentences(a)?, &self.encode_sentences(b)?)
    }

    /// Distances of pairs of image files.
    pub fn predict_image_files(&self, a: &[PathBuf], b: &[PathBuf]) -> Result<Vec<f32>> {
        self.predict(&self.load_images(a)?, &self.load_images(b)?)
    }

    /// Same or different for pairs of image files, with the stored threshold.
    pub fn verify_image_files(&self, a: &[PathBuf], b: &[PathBuf]) -> Result<Vec<bool>> {
        self.decide(&self.load_images(a)?, &self.load_images(b)?)
    }

    /// Same or different for pairs of decoded images, with the stored threshold.
    pub fn verify_images(
        &self,
        a: &[image::DynamicImage],
        b: &[image::DynamicImage],
    ) -> Result<Vec<bool>> {
        self.decide(&self.encode_images(a)?, &self.encode_images(b)?)
    }
}

impl Siamese {
    /// Pearson and Spearman correlation of the model's similarity
    /// ([`crate::loss::LossKind::similarity`] of each distance) with gold scores, on `pairs`
    /// (the STS protocol).
    pub fn correlations(&self, pairs: PairData<'_>, gold: &[f32]) -> Result<(f64, f64)> {
        if gold.len() != pairs.len() {
            return Err(SiameseError::shape(
                "gold scores",
                format!("one per pair ({})", pairs.len()),
                format!("{} scores", gold.len()),
            ));
        }
        let kind = self.config().loss.kind;
        let sim: Vec<f64> = self
            .predict_pairs(pairs)?
            .iter()
            .map(|&d| kind.similarity(d))
            .collect();
        let gold: Vec<f64> = gold.iter().map(|&g| g as f64).collect();
        Ok((
            crate::eval::pearson(&sim, &gold),
            crate::eval::spearman(&sim, &gold),
        ))
    }

    /// Sets a text model's token embeddings from a word-vector file (GloVe / word2vec text
    /// format) with its tokenizer; tokens without a vector are drawn from `seed`. Returns how
    /// many of the vocabulary's tokens were found.
    pub fn load_word_vectors(&mut self, path: &Path, seed: u64) -> Result<usize> {
        let tok = self.tokenizer.as_ref().ok_or_else(|| {
            SiameseError::config(
                "model.encoder.pretrained",
                "word vectors need a text model with its tokenizer (a text source: stsb, sick)",
            )
        })?;
        let mut network = self.network().clone();
        let crate::encoder::Encoder::Text(encoder) = &mut network.encoder else {
            return Err(SiameseError::config(
                "model.encoder.pretrained",
                "word vectors need model.encoder.type = \"text\"",
            ));
        };
        let dim = encoder.embedding.weight.dims()[1];
        let (values, found) = crate::data::tokenize::load_word_vectors(path, tok, dim, seed)?;
        encoder.set_embeddings(values)?;
        self.set_network(network);
        Ok(found)
    }
}
