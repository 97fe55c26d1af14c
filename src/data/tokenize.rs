//! Sentences → rows of token ids, with the `tokenizers` crate.
//!
//! A [`TextTokenizer`] is either trained here (WordPiece on the training sentences, BERT-style
//! lower-casing, accent stripping and punctuation splitting) or loaded from any
//! `tokenizer.json` (e.g. one shipped with a pretrained model). Its ids are shifted by one so
//! that **id 0 is always padding**, whatever the tokenizer's own special tokens are:
//!
//! ```text
//! row = [id(t₁)+1, id(t₂)+1, …, id(t_n)+1, 0, 0, …, 0]      length max_len (longer sentences are truncated)
//! ```
//!
//! ```
//! use siamese::data::tokenize::TextTokenizer;
//!
//! let corpus = ["A man is playing a guitar.", "A woman is slicing an onion."];
//! let tok = TextTokenizer::train(&corpus, 100, 8).unwrap();
//! let rows = tok.encode(&["a man is slicing a guitar"]).unwrap();
//! assert_eq!(rows.shape(), [1, 8]);
//! let ids = rows.row(0);
//! assert!(ids[..6].iter().all(|&v| v > 0.0) && ids[6..] == [0.0, 0.0]);
//! ```

use std::collections::HashMap;
use std::path::Path;

use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::normalizers::{BertNormalizer, NormalizerWrapper};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, Tokenizer, TokenizerImpl};

use super::Matrix;
use crate::error::{Result, SiameseError};

/// Unknown-word token of tokenizers trained here.
pub const UNK: &str = "[UNK]";

/// A tokenizer plus the fixed row length.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_len: usize,
    special_tokens: bool,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("max_len", &self.max_len)
            .finish()
    }
}

fn tok_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> SiameseError {
    SiameseError::Runtime(format!("{what}: {e}"))
}

impl TextTokenizer {
    /// Trains a WordPiece vocabulary of at most `vocab_size` tokens (including `[UNK]`) on
    /// `sentences`; rows will hold `max_len` ids.
    ///
    /// # Errors
    /// [`SiameseError::Config`] for `vocab_size < 2` or `max_len == 0`; [`SiameseError::Empty`]
    /// when there is no sentence.
    pub fn train<S: AsRef<str>>(
        sentences: &[S],
        vocab_size: usize,
        max_len: usize,
    ) -> Result<Self> {
        if vocab_size < 2 {
            return Err(SiameseError::config(
                "text.vocab_size",
                format!("must be at least 2, got {vocab_size}"),
            ));
        }
        if max_len == 0 {
            return Err(SiameseError::config("text.max_len", "must be at least 1"));
        }
        if sentences.is_empty() {
            return Err(SiameseError::Empty(
                "no sentences to train a tokenizer on".into(),
            ));
        }
        let model = WordPiece::builder()
            .unk_token(UNK.into())
            .build()
            .map_err(|e| tok_err("cannot build a WordPiece model", e))?;
        let mut tok: TokenizerImpl<
            ModelWrapper,
            NormalizerWrapper,
            PreTokenizerWrapper,
            PostProcessorWrapper,
            DecoderWrapper,
        > = TokenizerImpl::new(ModelWrapper::from(model));
        tok.with_normalizer(Some(NormalizerWrapper::from(BertNormalizer::default())))
            .map_err(|e| tok_err("cannot set the normalizer", e))?;
        tok.with_pre_tokenizer(Some(PreTokenizerWrapper::from(BertPreTokenizer)));
        let trainer = WordPieceTrainer::builder()
            .vocab_size(vocab_size)
            .min_frequency(1)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from(UNK, true)])
            .build();
        let owned: Vec<String> = sentences.iter().map(|s| s.as_ref().to_string()).collect();
        tok.train(&mut TrainerWrapper::from(trainer), owned.into_iter())
            .map_err(|e| tok_err("cannot train the tokenizer", e))?;
        Ok(Self {
            inner: tok.into(),
            max_len,
            special_tokens: false,
        })
    }

    /// Loads a `tokenizer.json` (Hugging Face format).
    ///
    /// # Errors
    /// [`SiameseError::Io`] for a missing file; [`SiameseError::Format`] naming the file when
    /// it is not a tokenizer.
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| SiameseError::io(path, e))?;
        Self::from_bytes(&bytes, max_len).map_err(|e| SiameseError::format(path, e.to_string()))
    }

    /// Parses a `tokenizer.json` held in memory.
    pub fn from_bytes(bytes: &[u8], max_len: usize) -> Result<Self> {
        if max_len == 0 {
            return Err(SiameseError::config("text.max_len", "must be at least 1"));
        }
        let inner = Tokenizer::from_bytes(bytes)
            .map_err(|e| SiameseError::invalid("tokenizer.json", e.to_string()))?;
        Ok(Self {
            inner,
            max_len,
            special_tokens: false,
        })
    }

    /// A pretrained model's `tokenizer.json` used as the model was trained: its special
    /// tokens added by its post-processor (`[CLS] … [SEP]` for BERT), rows truncated to
    /// `max_len` tokens special tokens included (the sequence is cut, `[SEP]` kept), no
    /// padding of its own.
    ///
    /// # Errors
    /// As [`Self::from_file`].
    pub fn pretrained(path: &Path, max_len: usize) -> Result<Self> {
        Self::from_file(path, max_len)?
            .with_special_tokens(true)
            .map_err(|e| SiameseError::format(path, e.to_string()))
    }

    /// Adds the tokenizer's special tokens to every row (and truncates as
    /// [`Self::pretrained`] does), or not (the default: plain token ids).
    pub fn with_special_tokens(mut self, on: bool) -> Result<Self> {
        self.special_tokens = on;
        let truncation = on.then(|| tokenizers::TruncationParams {
            max_length: self.max_len,
            ..Default::default()
        });
        self.inner
            .with_truncation(truncation)
            .map_err(|e| tok_err("cannot set truncation", e))?;
        self.inner.with_padding(None);
        Ok(self)
    }

    /// Whether rows carry the tokenizer's special tokens.
    pub fn special_tokens(&self) -> bool {
        self.special_tokens
    }

    /// The tokenizer as `tokenizer.json` bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.inner
            .to_string(false)
            .map(String::into_bytes)
            .map_err(|e| tok_err("cannot serialise the tokenizer", e))
    }

    /// Ids per row.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Number of row ids: the tokenizer's vocabulary plus the padding id 0.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true) + 1
    }

    /// Token → row id (the tokenizer's id + 1).
    pub fn vocab(&self) -> HashMap<String, u32> {
        self.inner
            .get_vocab(true)
            .into_iter()
            .map(|(t, id)| (t, id + 1))
            .collect()
    }

    /// The tokens of one sentence (for inspection).
    pub fn tokens(&self, sentence: &str) -> Result<Vec<String>> {
        let e = self
            .inner
            .encode(sentence, false)
            .map_err(|e| tok_err("cannot tokenise", e))?;
        Ok(e.get_tokens().to_vec())
    }

    /// One row of `max_len` ids per sentence: ids + 1, truncated, right-padded with 0.
    pub fn encode<S: AsRef<str>>(&self, sentences: &[S]) -> Result<Matrix> {
        Ok(self.encode_counting(sentences)?.0)
    }

    /// [`Self::encode`], plus how many sentences had more than `max_len` tokens (and were
    /// truncated).
    pub fn encode_counting<S: AsRef<str>>(&self, sentences: &[S]) -> Result<(Matrix, usize)> {
        let mut data = vec![0.0f32; sentences.len() * self.max_len];
        let mut truncated = 0;
        for (r, s) in sentences.iter().enumerate() {
            let e = self
                .inner
                .encode(s.as_ref(), self.special_tokens)
                .map_err(|e| tok_err(format!("cannot tokenise sentence {r}"), e))?;
            let ids = e.get_ids();
            truncated += usize::from(ids.len() > self.max_len || !e.get_overflowing().is_empty());
            for (c, &id) in ids.iter().take(self.max_len).enumerate() {
                data[r * self.max_len + c] = (id + 1) as f32;
            }
        }
        Ok((Matrix::new(sentences.len(), self.max_len, data)?, truncated))
    }
}

/// Rows of pretrained word vectors for a tokenizer's vocabulary, from a GloVe / word2vec text
/// file (`word v₁ v₂ … v_dim` per line; a word2vec header line `count dim` is skipped).
///
/// Returns `vocab_size × dim` values: the file's vector for each token found (tried as
/// written, then lower-cased), and small uniform values in `[−0.05, 0.05]` drawn from `seed`
/// for the others (and for padding, row 0, which is masked anyway); plus how many tokens were
/// found.
///
/// # Errors
/// [`SiameseError::Io`] for a missing file; [`SiameseError::Format`] naming the file and line
/// for a vector of the wrong length or a value that is not a number.
pub fn load_word_vectors(
    path: &Path,
    tokenizer: &TextTokenizer,
    dim: usize,
    seed: u64,
) -> Result<(Vec<f32>, usize)> {
    use rand::{RngExt, SeedableRng};
    let text = super::table::read_text(path)?;
    let vocab = tokenizer.vocab();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let rows = tokenizer.vocab_size();
    let mut values: Vec<f32> = (0..rows * dim)
        .map(|_| rng.random_range(-0.05f32..0.05))
        .collect();
    let mut found = vec![false; rows];
    for (n, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let Some(word) = fields.next() else {
            continue;
        };
        let rest: Vec<&str> = fields.collect();
        if n == 0 && rest.len() == 1 && word.parse::<usize>().is_ok() {
            continue; // word2vec header
        }
        if rest.len() != dim {
            return Err(SiameseError::format(
                path,
                format!(
                    "line {}: `{word}` has {} values; the text encoder's embed_dim is {dim}",
                    n + 1,
                    rest.len()
                ),
            ));
        }
        let id = vocab
            .get(word)
            .or_else(|| vocab.get(&word.to_lowercase()))
            .map(|&id| id as usize);
        let Some(id) = id else {
            continue;
        };
        if found[id] {
            continue;
        }
        for (k, v) in rest.iter().enumerate() {
            values[id * dim + k] =
                v.parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        SiameseError::format(
                            path,
                            format!("line {}: `{v}` is not a finite number", n + 1),
                        )
                    })?;
        }
        found[id] = true;
    }
    Ok((values, found.iter().filter(|&&f| f).count()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<&'static str> {
        vec![
            "A man is playing a guitar.",
            "A woman is slicing an onion.",
            "Two dogs are running on the grass.",
        ]
    }

    #[test]
    fn rows_are_shifted_ids_padded_with_zero() {
        let tok = TextTokenizer::train(&corpus(), 200, 6).unwrap();
        let m = tok
            .encode(&["a man", "A man is playing a guitar ."])
            .unwrap();
        assert_eq!(m.shape(), [2, 6]);
        let vocab = tok.vocab();
        let man = vocab["man"] as f32;
        assert_eq!(m.row(0), &[vocab["a"] as f32, man, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(
            tok.encode_counting(&["a man", "A man is playing a guitar ."])
                .unwrap()
                .1,
            1
        );
        // Truncated to 6 ids, none of them padding; lower-cased like the first row.
        assert!(m.row(1).iter().all(|&v| v > 0.0));
        assert_eq!(m.row(1)[1], man);
        assert!(
            vocab
                .values()
                .all(|&id| id >= 1 && (id as usize) < tok.vocab_size())
        );
        // Unknown words map to [UNK], never to padding.
        let unk = tok.encode(&["zzzz"]).unwrap();
        assert!(unk.row(0)[0] > 0.0);
    }

    #[test]
    fn round_trips_through_json() {
        let tok = TextTokenizer::train(&corpus(), 200, 10).unwrap();
        let again = TextTokenizer::from_bytes(&tok.to_bytes().unwrap(), 10).unwrap();
        let s = ["two dogs slicing the onion"];
        assert_eq!(tok.encode(&s).unwrap(), again.encode(&s).unwrap());
        assert!(TextTokenizer::from_bytes(b"{not json", 10).is_err());
        assert!(TextTokenizer::train(&corpus(), 1, 10).is_err());
        assert!(TextTokenizer::train::<&str>(&[], 10, 10).is_err());
    }

    #[test]
    fn word_vectors_fill_known_tokens() {
        let tok = TextTokenizer::train(&corpus(), 200, 10).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("glove.txt");
        std::fs::write(&path, "3 2\nman 0.5 -1\nDogs 2 3\nnotaword 9 9\n").unwrap();
        let (v, found) = load_word_vectors(&path, &tok, 2, 0).unwrap();
        assert_eq!(found, 2);
        let vocab = tok.vocab();
        let man = vocab["man"] as usize;
        assert_eq!(&v[man * 2..man * 2 + 2], &[0.5, -1.0]);
        let dogs = vocab["dogs"] as usize;
        assert_eq!(&v[dogs * 2..dogs * 2 + 2], &[2.0, 3.0]);
        std::fs::write(&path, "man 0.5\n").unwrap();
        let err = load_word_vectors(&path, &tok, 2, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("glove.txt") && err.contains("line 1"), "{err}");
    }
}
