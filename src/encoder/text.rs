//! Text encoders: token ids → one sentence embedding.
//!
//! A sentence enters as one row of token ids stored as floats (`[batch, max_len]`, ids are
//! exact in `f32` below 2²⁴), right-padded with id 0 (`[PAD]`), so text pairs use the same
//! [`Matrix`](crate::data::Matrix) rows, batching and training loop as every other input.
//! Each batch is cut to its longest sentence before the encoder runs.
//!
//! ```text
//! ids [batch, L] ──▶ Embedding [batch, L, E] ──▶ body ──▶ masked pooling ──▶ (Dense) ──▶ [batch, D]
//!                                                 │
//!   body: none (bag of embeddings) │ LSTM │ BiLSTM │ GRU │ Transformer encoder (+ sinusoidal positions)
//!   pooling over the non-pad positions: mean = Σ mᵢhᵢ / Σ mᵢ, max = maxᵢ (hᵢ where mᵢ = 1)
//! ```
//!
//! ```
//! use siamese::encoder::text::{TextBody, TextEncoderConfig};
//! use siamese::burn::tensor::{Device, Tensor};
//!
//! let config = TextEncoderConfig {
//!     body: TextBody::Lstm { hidden: 16, bidirectional: true },
//!     ..TextEncoderConfig::new(100, 12)
//! };
//! let encoder = config.init(&Device::flex(), 0).unwrap();
//! // Two sentences of 3 and 5 tokens, padded with 0 to max_len = 12.
//! let mut ids = vec![0.0f32; 24];
//! ids[..3].copy_from_slice(&[5.0, 9.0, 7.0]);
//! ids[12..17].copy_from_slice(&[5.0, 9.0, 7.0, 11.0, 3.0]);
//! let x = Tensor::<1>::from_floats(ids.as_slice(), &Device::flex()).reshape([2, 12]);
//! assert_eq!(encoder.forward(x).dims(), [2, 32]); // 2 × 16 (both directions)
//! ```

use std::sync::Mutex;

use burn::module::{Module, Param};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{
    Embedding, EmbeddingConfig, Gru, GruConfig, Linear, Lstm, LstmConfig, PositionalEncoding,
    PositionalEncodingConfig,
};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{SeededDropout, glorot_dense};
use crate::error::{Result, SiameseError};

/// The number of tokens (non-padding ids) of each row of a `[batch, width]` token mask, read
/// to the host: one small read per batch, so a batch can be cut to its longest sentence.
pub(crate) fn row_lengths(mask: &Tensor<2, burn::tensor::Bool>) -> Vec<usize> {
    mask.clone()
        .int()
        .sum_dim(1)
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.max(0) as usize)
        .collect()
}

/// Token id of padding: positions holding it are masked out.
pub const PAD_ID: u32 = 0;

/// What runs over the token embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum TextBody {
    /// Nothing: the embeddings are pooled directly (a learned bag of words).
    Pooling,
    /// An LSTM (`bidirectional`: forward and backward, outputs concatenated).
    Lstm {
        /// Hidden size of each direction.
        hidden: usize,
        /// Run a second LSTM over the reversed sentence.
        #[serde(default)]
        bidirectional: bool,
    },
    /// A GRU.
    Gru {
        /// Hidden size.
        hidden: usize,
    },
    /// A transformer encoder (post-norm, GELU) over embeddings plus sinusoidal positions.
    Transformer {
        /// Encoder layers.
        layers: usize,
        /// Attention heads (must divide the embedding size).
        heads: usize,
        /// Inner size of the feed-forward blocks.
        ff: usize,
    },
}

/// How token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over the non-pad positions.
    #[default]
    Mean,
    /// Element-wise maximum over the non-pad positions.
    Max,
}

/// Configuration of a [`TextEncoder`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextEncoderConfig {
    /// Vocabulary size (ids `0..vocab_size`; 0 is padding).
    pub vocab_size: usize,
    /// Tokens per sentence (longer ones are truncated when tokenised).
    pub max_len: usize,
    /// Size of the token embeddings (and of the transformer's model dimension).
    #[serde(default = "default_embed_dim")]
    pub embed_dim: usize,
    /// What runs over the embeddings.
    #[serde(default = "default_body")]
    pub body: TextBody,
    /// Pooling over positions.
    #[serde(default)]
    pub pooling: Pooling,
    /// Optional Dense projection of the pooled vector (linear), its size.
    #[serde(default)]
    pub output: Option<usize>,
    /// Dropout on the token embeddings and before the projection.
    #[serde(default)]
    pub dropout: f64,
}

fn default_embed_dim() -> usize {
    128
}
fn default_body() -> TextBody {
    TextBody::Pooling
}

impl TextEncoderConfig {
    /// A bag-of-embeddings encoder (128-dim embeddings, mean pooling) for `vocab_size` ids and
    /// sentences of `max_len` tokens.
    pub fn new(vocab_size: usize, max_len: usize) -> Self {
        Self {
            vocab_size,
            max_len,
            embed_dim: default_embed_dim(),
            body: TextBody::Pooling,
            pooling: Pooling::Mean,
            output: None,
            dropout: 0.0,
        }
    }

    /// Checks sizes, naming the field.
    pub fn validate(&self) -> Result<()> {
        let positive = |field: &str, v: usize| {
            if v == 0 {
                Err(SiameseError::config(field, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        if self.vocab_size < 2 {
            return Err(SiameseError::config(
                "encoder.vocab_size",
                "must be at least 2 (id 0 is padding)",
            ));
        }
        positive("encoder.max_len", self.max_len)?;
        positive("encoder.embed_dim", self.embed_dim)?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(SiameseError::config(
                "encoder.dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            ));
        }
        if let Some(o) = self.output {
            positive("encoder.output", o)?;
        }
        match &self.body {
            TextBody::Pooling => Ok(()),
            TextBody::Lstm { hidden, .. } | TextBody::Gru { hidden } => {
                positive("encoder.body.hidden", *hidden)
            }
            TextBody::Transformer { layers, heads, ff } => {
                positive("encoder.body.layers", *layers)?;
                positive("encoder.body.heads", *heads)?;
                positive("encoder.body.ff", *ff)?;
                if !self.embed_dim.is_multiple_of(*heads) {
                    return Err(SiameseError::config(
                        "encoder.body.heads",
                        format!(
                            "must divide embed_dim = {}; got {heads} heads",
                            self.embed_dim
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Size of the body's per-token states.
    fn state_dim(&self) -> usize {
        match &self.body {
            TextBody::Pooling | TextBody::Transformer { .. } => self.embed_dim,
            TextBody::Lstm {
                hidden,
                bidirectional,
            } => hidden * if *bidirectional { 2 } else { 1 },
            TextBody::Gru { hidden } => *hidden,
        }
    }

    /// Size of the embedding.
    pub fn output_dim(&self) -> usize {
        self.output.unwrap_or_else(|| self.state_dim())
    }

    /// Builds the encoder on `device`, weights drawn from `seed`.
    ///
    /// burn's recurrent and transformer layers draw their weights from the backend's global
    /// random stream, lazily; it is seeded here under a lock and every weight is drawn before
    /// the lock is released, so a model's weights depend on `seed` only, even with several
    /// models built or run at once.
    pub fn init(&self, device: &Device, seed: u64) -> Result<TextEncoder> {
        self.validate()?;
        static INIT: Mutex<()> = Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(seed);
        let embedding = EmbeddingConfig::new(self.vocab_size, self.embed_dim).init(device);
        let body = match &self.body {
            TextBody::Pooling => None,
            TextBody::Lstm {
                hidden,
                bidirectional: false,
            } => Some(TextBodyModule::Lstm(
                LstmConfig::new(self.embed_dim, *hidden, true)
                    .with_batch_first(true)
                    .init(device),
            )),
            TextBody::Lstm {
                hidden,
                bidirectional: true,
            } => {
                let lstm = || {
                    LstmConfig::new(self.embed_dim, *hidden, true)
                        .with_batch_first(true)
                        .init(device)
                };
                Some(TextBodyModule::BiLstm(BiLstmBody {
                    forward: lstm(),
                    backward: lstm(),
                }))
            }
            TextBody::Gru { hidden } => Some(TextBodyModule::Gru(
                GruConfig::new(self.embed_dim, *hidden, true).init(device),
            )),
            TextBody::Transformer { layers, heads, ff } => {
                Some(TextBodyModule::Transformer(TransformerBody {
                    positions: PositionalEncodingConfig::new(self.embed_dim)
                        .with_max_sequence_size(self.max_len.max(1))
                        .init(device),
                    encoder: TransformerEncoderConfig::new(self.embed_dim, *ff, *heads, *layers)
                        .with_dropout(0.0)
                        .init(device),
                }))
            }
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7E47);
        let output = self
            .output
            .map(|o| glorot_dense(self.state_dim(), o, &mut rng, device));
        let encoder = TextEncoder {
            embedding,
            body,
            output,
            dropout: SeededDropout::new(self.dropout, seed ^ 0xD0),
            pooling: self.pooling,
        };
        // burn draws a parameter's values on its first use: draw them all now, while the
        // stream is seeded and locked, not at the first forward pass beside other models.
        super::materialize(&encoder);
        Ok(encoder)
    }

    /// Rows of a Keras-style summary: `(name, type, output shape, parameters)`.
    pub fn layer_rows(&self) -> Vec<(String, String, String, usize)> {
        let (l, e, s) = (self.max_len, self.embed_dim, self.state_dim());
        let mut rows = vec![(
            "embedding".to_string(),
            format!("Embedding {} ids", self.vocab_size),
            format!("(None, {l}, {e})"),
            self.vocab_size * e,
        )];
        match &self.body {
            TextBody::Pooling => {}
            TextBody::Lstm {
                hidden,
                bidirectional,
            } => {
                let one = 4 * (e * hidden + hidden * hidden + 2 * hidden);
                let dirs = if *bidirectional { 2 } else { 1 };
                rows.push((
                    "lstm".into(),
                    if *bidirectional { "BiLSTM" } else { "LSTM" }.into(),
                    format!("(None, {l}, {s})"),
                    one * dirs,
                ));
            }
            TextBody::Gru { hidden } => rows.push((
                "gru".into(),
                "GRU".into(),
                format!("(None, {l}, {s})"),
                3 * (e * hidden + hidden * hidden + 2 * hidden),
            )),
            TextBody::Transformer { layers, heads, ff } => {
                // Per layer: 4 attention projections, two feed-forward layers, two norms.
                let per = 4 * (e * e + e) + (e * ff + ff) + (ff * e + e) + 4 * e;
                rows.push((
                    "transformer".into(),
                    format!("Transformer {layers}×({heads} heads, ff {ff})"),
                    format!("(None, {l}, {e})"),
                    per * layers,
                ));
            }
        }
        let pool = match self.pooling {
            Pooling::Mean => "mean",
            Pooling::Max => "max",
        };
        rows.push((
            "pooling".into(),
            format!("masked {pool} pooling"),
            format!("(None, {s})"),
            0,
        ));
        if let Some(o) = self.output {
            rows.push((
                "dense".into(),
                "Dense, linear".into(),
                format!("(None, {o})"),
                s * o + o,
            ));
        }
        rows
    }
}

/// Forward and reversed LSTMs of a bidirectional body.
#[derive(Module, Debug)]
pub struct BiLstmBody {
    /// Reads each sentence left to right.
    pub forward: Lstm,
    /// Reads each sentence's real tokens right to left (padding never reaches it).
    pub backward: Lstm,
}

/// Sinusoidal positions and a transformer encoder.
#[derive(Module, Debug)]
pub struct TransformerBody {
    /// Adds sinusoidal position codes to the embeddings.
    pub positions: PositionalEncoding,
    /// The encoder layers.
    pub encoder: TransformerEncoder,
}

/// The body of a [`TextEncoder`].
// Built once per model and moved only with it: the size gap between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum TextBodyModule {
    /// Unidirectional LSTM.
    Lstm(Lstm),
    /// Bidirectional LSTM.
    BiLstm(BiLstmBody),
    /// GRU.
    Gru(Gru),
    /// Sinusoidal positions + transformer encoder.
    Transformer(TransformerBody),
}

/// A text encoder (burn module) built by [`TextEncoderConfig::init`].
#[derive(Module, Debug)]
pub struct TextEncoder {
    /// Token embeddings, `[vocab_size, embed_dim]`.
    pub embedding: Embedding,
    /// What runs over the embeddings (none for a bag of embeddings).
    pub body: Option<TextBodyModule>,
    /// Optional projection.
    pub output: Option<Linear>,
    dropout: SeededDropout,
    #[module(skip)]
    pooling: Pooling,
}

impl TextEncoder {
    /// Restarts the dropout stream from `seed`.
    pub fn reseed(&self, seed: u64) {
        self.dropout.reseed(seed);
    }

    /// Replaces the token embeddings with `values` (`[vocab_size, embed_dim]`, row-major),
    /// e.g. pretrained word vectors.
    ///
    /// # Errors
    /// [`SiameseError::Shape`] when `values` does not hold `vocab_size · embed_dim` numbers.
    pub fn set_embeddings(&mut self, values: Vec<f32>) -> Result<()> {
        let [v, e] = self.embedding.weight.dims();
        if values.len() != v * e {
            return Err(SiameseError::shape(
                "embedding values",
                format!("{v} × {e} = {} numbers", v * e),
                format!("{}", values.len()),
            ));
        }
        let device = self.embedding.weight.device();
        let t = Tensor::<2>::from_data(TensorData::new(values, [v, e]), &device);
        self.embedding.weight = Param::from_tensor(t);
        Ok(())
    }

    /// Maps `[batch, max_len]` rows of token ids (as floats, 0 = padding) to `[batch, D]`.
    ///
    /// The batch is first cut to its longest sentence (one small read of the mask), so short
    /// sentences cost short sequences. An all-padding row embeds to zeros (mean pooling).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [batch, width] = x.dims();
        let device = x.device();
        let ids = x.int();
        let mask = ids.clone().not_equal_elem(PAD_ID as i64);
        let lengths = row_lengths(&mask);
        let longest = lengths.iter().copied().max().unwrap_or(width);
        let len = longest.clamp(1, width);
        let ids: Tensor<2, Int> = ids.narrow(1, 0, len);
        let mask = mask.narrow(1, 0, len);
        let h = self.dropout.forward(self.embedding.forward(ids));
        let h = match &self.body {
            None => h,
            Some(TextBodyModule::Lstm(m)) => m.forward(h, None).0,
            Some(TextBodyModule::BiLstm(BiLstmBody {
                forward: fwd,
                backward: bwd,
            })) => {
                let reverse = reversal_index(&lengths, len, h.dims()[2], &device);
                let backward = bwd.forward(h.clone().gather(1, reverse.clone()), None).0;
                let reverse = reversal_index(&lengths, len, backward.dims()[2], &device);
                let backward = backward.gather(1, reverse);
                Tensor::cat(vec![fwd.forward(h, None).0, backward], 2)
            }
            Some(TextBodyModule::Gru(m)) => m.forward(h, None),
            Some(TextBodyModule::Transformer(t)) => t.encoder.forward(
                TransformerEncoderInput::new(t.positions.forward(h))
                    .mask_pad(mask.clone().bool_not()),
            ),
        };
        let [_, _, d] = h.dims();
        let m = mask.float().reshape([batch, len, 1]);
        let pooled = match self.pooling {
            Pooling::Mean => {
                let count = m.clone().sum_dim(1).clamp_min(1.0); // [batch, 1, 1]
                (h * m).sum_dim(1).div(count)
            }
            Pooling::Max => {
                // Pad positions get −1e9 so they never win; an all-padding row gives 0.
                let pooled = (h + (m - 1.0) * 1e9).max_dim(1);
                let empty = pooled.clone().lower_equal_elem(-1e8);
                pooled.mask_fill(empty, 0.0)
            }
        }
        .reshape([batch, d]);
        match &self.output {
            Some(layer) => layer.forward(self.dropout.forward(pooled)),
            None => pooled,
        }
    }
}

/// Gather index `[batch, len, dim]` that reverses the first `lengths[r]` positions of each row
/// `r` and leaves its padding in place (the reversal is its own inverse).
fn reversal_index(lengths: &[usize], len: usize, dim: usize, device: &Device) -> Tensor<3, Int> {
    let mut idx = Vec::with_capacity(lengths.len() * len);
    for &n in lengths {
        let n = n.min(len);
        idx.extend((0..len).map(|t| if t < n { (n - 1 - t) as i64 } else { t as i64 }));
    }
    Tensor::<2, Int>::from_data(TensorData::new(idx, [lengths.len(), len]), device)
        .reshape([lengths.len(), len, 1])
        .repeat_dim(2, dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(rows: &[&[u32]], width: usize) -> Tensor<2> {
        let mut v = vec![0.0f32; rows.len() * width];
        for (r, row) in rows.iter().enumerate() {
            for (c, &id) in row.iter().enumerate() {
                v[r * width + c] = id as f32;
            }
        }
        Tensor::<1>::from_floats(v.as_slice(), &Device::flex()).reshape([rows.len(), width])
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn mean_pooling_ignores_padding() {
        let device = Device::flex();
        let config = TextEncoderConfig {
            embed_dim: 2,
            ..TextEncoderConfig::new(4, 6)
        };
        let mut enc = config.init(&device, 0).unwrap();
        enc.set_embeddings(vec![9.0, 9.0, 1.0, 2.0, 3.0, 6.0, 5.0, -4.0])
            .unwrap();
        // [1, 2] → mean of rows 1 and 2 = (2, 4); [3] → (5, −4); padding (row 0) never counts.
        let out = values(enc.forward(ids(&[&[1, 2], &[3]], 6)));
        assert_eq!(out, vec![2.0, 4.0, 5.0, -4.0]);
        let max = TextEncoderConfig {
            pooling: Pooling::Max,
            ..config
        };
        let mut enc = max.init(&device, 0).unwrap();
        enc.set_embeddings(vec![9.0, 9.0, 1.0, 2.0, 3.0, 6.0, 5.0, -4.0])
            .unwrap();
        let out = values(enc.forward(ids(&[&[1, 2], &[3], &[]], 6)));
        assert_eq!(out, vec![3.0, 6.0, 5.0, -4.0, 0.0, 0.0]);
        assert!(enc.set_embeddings(vec![0.0; 3]).is_err());
    }

    #[test]
    fn every_body_gives_its_output_size_and_ignores_trailing_padding() {
        let device = Device::flex();
        for body in [
            TextBody::Pooling,
            TextBody::Lstm {
                hidden: 8,
                bidirectional: false,
            },
            TextBody::Lstm {
                hidden: 8,
                bidirectional: true,
            },
            TextBody::Gru { hidden: 8 },
            TextBody::Transformer {
                layers: 1,
                heads: 2,
                ff: 16,
            },
        ] {
            let config = TextEncoderConfig {
                embed_dim: 8,
                body: body.clone(),
                output: Some(5),
                ..TextEncoderConfig::new(20, 10)
            };
            let enc = config.init(&device, 3).unwrap();
            let out = enc.forward(ids(&[&[4, 5, 6], &[7, 8]], 10));
            assert_eq!(out.dims(), [2, 5], "{body:?}");
            // The same sentences padded to a different width embed identically: padding is
            // cut off (per batch) and masked.
            let wide = enc.forward(ids(&[&[4, 5, 6], &[7, 8]], 16));
            assert_eq!(values(out.clone()), values(wide));
            let alone = values(enc.forward(ids(&[&[7, 8]], 10)));
            let both = values(out);
            // A sentence embeds the same alone or beside a longer one (padding never leaks
            // into any body, the reversed direction of a BiLSTM included).
            for (a, b) in alone.iter().zip(&both[5..]) {
                assert!((a - b).abs() < 1e-5, "{body:?}: {alone:?} vs {both:?}");
            }
            // Same seed, same weights.
            let again = config.init(&device, 3).unwrap();
            assert_eq!(
                values(again.forward(ids(&[&[4, 5]], 10))),
                values(enc.forward(ids(&[&[4, 5]], 10)))
            );
            let rows = config.layer_rows();
            let params: usize = rows.iter().map(|r| r.3).sum();
            assert_eq!(params, enc.num_params(), "{body:?}");
        }
    }

    #[test]
    fn bad_configs_name_the_field() {
        let mut c = TextEncoderConfig::new(1, 10);
        assert!(c.validate().unwrap_err().to_string().contains("vocab_size"));
        c.vocab_size = 10;
        c.body = TextBody::Transformer {
            layers: 1,
            heads: 3,
            ff: 8,
        };
        assert!(c.validate().unwrap_err().to_string().contains("heads"));
    }
}
