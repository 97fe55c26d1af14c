//! A BERT-family sentence encoder (the architecture of sentence-transformers models such as
//! `all-MiniLM-L6-v2`), loadable from a Hugging Face / sentence-transformers directory
//! ([`pretrained`]) and fine-tunable as the shared twin of a Siamese network.
//!
//! Rows are token ids as floats like every text encoder here ([`super::text`]): the
//! tokenizer's id `t` is stored as `t + 1` and 0 is padding, `[batch, max_len]`, with the
//! model's `[CLS] … [SEP]` around each sentence. Each batch is cut to its longest row.
//!
//! ```text
//! h⁰ = LN(E_word[t] + E_pos[i] + E_type[0])                               [batch, L, H]
//! per layer l:  Q, K, V = h Wq + bq, h Wk + bk, h Wv + bv, split into A heads of H/A
//!               a = softmax(Q Kᵀ / √(H/A) + M) V,  M = 0 on tokens, −3.4e38 on padding
//!               h' = LN(h + a Wo + bo)
//!               h  = LN(h' + GELU(h' W₁ + b₁) W₂ + b₂)                     W₁: [H, I]
//! pooling over the tokens (mask m): mean Σ mᵢhᵢ / max(Σ mᵢ, 1e−9) │ CLS h₀ │ max
//! optional L2 normalisation: e / max(‖e‖₂, 1e−12)                        [batch, H]
//! ```
//!
//! GELU is the exact `x·Φ(x)` (Hugging Face `"gelu"`) or the tanh approximation
//! (`"gelu_new"`, `"gelu_pytorch_tanh"`). Dropout (training only) follows the embeddings,
//! the attention output and the feed-forward output, as in BERT.
//!
//! ```
//! use siamese::encoder::bert::BertEncoderConfig;
//! use siamese::burn::tensor::{Device, Tensor};
//!
//! let config = BertEncoderConfig::tiny(50, 8); // vocabulary 50, rows of 8 ids
//! let encoder = config.init(&Device::flex(), 0).unwrap();
//! // "[CLS] 7 9 [SEP]" and "[CLS] 5 [SEP]" as rows (ids + 1, 0 = padding).
//! let rows = [3.0, 8.0, 10.0, 4.0, 0.0, 0.0, 0.0, 0.0, 3.0, 6.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0];
//! let x = Tensor::<1>::from_floats(rows.as_slice(), &Device::flex()).reshape([2, 8]);
//! assert_eq!(encoder.forward(x).dims(), [2, 16]);
//! ```

use burn::module::{Module, Param};
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::SeededDropout;
use super::text::PAD_ID;
use crate::error::{Result, SiameseError};

pub mod pretrained;
mod weights;

pub use pretrained::{PretrainedBert, load_pretrained};

/// The feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BertActivation {
    /// Exact GELU, `x·Φ(x)` (Hugging Face `"gelu"`).
    #[default]
    Gelu,
    /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (`"gelu_new"`, `"gelu_pytorch_tanh"`).
    GeluTanh,
}

/// How token states become one sentence vector (sentence-transformers' `1_Pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BertPooling {
    /// Mean over the tokens (padding excluded).
    #[default]
    Mean,
    /// The first token's state (`[CLS]`).
    Cls,
    /// Element-wise maximum over the tokens.
    Max,
}

/// Configuration of a [`BertEncoder`]: the architecture of the Hugging Face `config.json`
/// plus the sentence-transformers modules around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BertEncoderConfig {
    /// The tokenizer's vocabulary (`vocab_size`); rows hold ids + 1.
    pub vocab_size: usize,
    /// Model width `H` (`hidden_size`): the embedding size.
    pub hidden: usize,
    /// Transformer layers (`num_hidden_layers`).
    pub layers: usize,
    /// Attention heads (`num_attention_heads`); they divide `hidden`.
    pub heads: usize,
    /// Feed-forward width (`intermediate_size`).
    pub intermediate: usize,
    /// Position embeddings (`max_position_embeddings`).
    pub max_position: usize,
    /// Token-type embeddings (`type_vocab_size`); single sentences use type 0.
    #[serde(default = "two")]
    pub type_vocab: usize,
    /// `layer_norm_eps`.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Feed-forward activation (`hidden_act`).
    #[serde(default)]
    pub activation: BertActivation,
    /// Tokens per row, `[CLS]` and `[SEP]` included (`max_seq_length`); at most
    /// `max_position`.
    pub max_len: usize,
    /// Pooling over the tokens.
    #[serde(default)]
    pub pooling: BertPooling,
    /// L2-normalise the pooled vector (a `Normalize` module).
    #[serde(default)]
    pub normalize: bool,
    /// Dropout rate when training (`hidden_dropout_prob`; 0 disables it).
    #[serde(default)]
    pub dropout: f64,
}

fn two() -> usize {
    2
}

fn default_eps() -> f64 {
    1e-12
}

impl BertEncoderConfig {
    /// A small random BERT (16 wide, 2 layers of 2 heads, feed-forward 32) for tests and
    /// examples.
    pub fn tiny(vocab_size: usize, max_len: usize) -> Self {
        Self {
            vocab_size,
            hidden: 16,
            layers: 2,
            heads: 2,
            intermediate: 32,
            max_position: max_len.max(8),
            type_vocab: 2,
            layer_norm_eps: 1e-12,
            activation: BertActivation::Gelu,
            max_len,
            pooling: BertPooling::Mean,
            normalize: false,
            dropout: 0.0,
        }
    }

    /// Checks the configuration, naming the offending field.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("heads", self.heads),
            ("intermediate", self.intermediate),
            ("max_position", self.max_position),
            ("type_vocab", self.type_vocab),
            ("max_len", self.max_len),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(SiameseError::config(
                format!("encoder.{name}"),
                "must be at least 1",
            ));
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return Err(SiameseError::config(
                "encoder.heads",
                format!(
                    "{} heads do not divide the width {}",
                    self.heads, self.hidden
                ),
            ));
        }
        if self.max_len > self.max_position {
            return Err(SiameseError::config(
                "encoder.max_len",
                format!(
                    "{} tokens per row, but the model has {} positions",
                    self.max_len, self.max_position
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(SiameseError::config(
                "encoder.dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            ));
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps.is_finite()) {
            return Err(SiameseError::config(
                "encoder.layer_norm_eps",
                format!("must be a positive number, got {}", self.layer_norm_eps),
            ));
        }
        Ok(())
    }

    /// Size of the sentence embedding.
    pub fn output_dim(&self) -> usize {
        self.hidden
    }

    /// Trainable parameters.
    pub fn num_params(&self) -> usize {
        let (h, i) = (self.hidden, self.intermediate);
        let embeddings = (self.vocab_size + self.max_position + self.type_vocab) * h + 2 * h;
        let layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h;
        embeddings + self.layers * layer
    }

    /// Builds the encoder with BERT's initialisation drawn from `seed`: every weight
    /// `~ N(0, 0.02²)`, biases 0, layer norms `γ = 1, β = 0`.
    pub fn init(&self, device: &Device, seed: u64) -> Result<BertEncoder> {
        self.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut normal = |shape: [usize; 2]| weights::normal(shape, 0.02, &mut rng);
        let (h, i) = (self.hidden, self.intermediate);
        let embedding = |v: Vec<f32>, n: usize| Embedding {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(v, [n, h]), device)),
        };
        let word = embedding(normal([self.vocab_size, h]), self.vocab_size);
        let position = embedding(normal([self.max_position, h]), self.max_position);
        let token_type = embedding(normal([self.type_vocab, h]), self.type_vocab);
        let norm = || self.layer_norm(device);
        let mut layers = Vec::with_capacity(self.layers);
        for _ in 0..self.layers {
            let mut dense = |fan_in: usize, fan_out: usize| {
                super::dense_from_values(
                    fan_in,
                    fan_out,
                    normal([fan_in, fan_out]),
                    vec![0.0; fan_out],
                    device,
                )
            };
            layers.push(BertLayer {
                query: dense(h, h),
                key: dense(h, h),
                value: dense(h, h),
                attention_out: dense(h, h),
                attention_norm: norm(),
                intermediate: dense(h, i),
                output: dense(i, h),
                output_norm: norm(),
            });
        }
        Ok(BertEncoder::assemble(
            self,
            word,
            position,
            token_type,
            norm(),
            layers,
            seed,
        ))
    }

    pub(super) fn layer_norm(&self, device: &Device) -> LayerNorm {
        LayerNormConfig::new(self.hidden)
            .with_epsilon(self.layer_norm_eps)
            .init(device)
    }

    /// Rows of a Keras-style summary.
    pub fn layer_rows(&self) -> Vec<(String, String, String, usize)> {
        let (h, i, l) = (self.hidden, self.intermediate, self.max_len);
        let mut rows = vec![(
            "embeddings".to_string(),
            format!(
                "word {} + position {} + type {}, LayerNorm",
                self.vocab_size, self.max_position, self.type_vocab
            ),
            format!("(None, {l}, {h})"),
            (self.vocab_size + self.max_position + self.type_vocab) * h + 2 * h,
        )];
        for k in 0..self.layers {
            rows.push((
                format!("layer_{k}"),
                format!("self-attention ({} heads), feed-forward {i}", self.heads),
                format!("(None, {l}, {h})"),
                4 * (h * h + h) + 4 * h + 2 * h * i + i + h,
            ));
        }
        rows.push((
            "pooling".to_string(),
            format!(
                "{:?}{}",
                self.pooling,
                if self.normalize { ", L2 normalise" } else { "" }
            ),
            format!("(None, {h})"),
            0,
        ));
        rows
    }
}

/// One transformer layer (post-norm, as BERT).
#[derive(Module, Debug)]
pub struct BertLayer {
    /// `Wq`, `[H, H]`.
    pub query: Linear,
    /// `Wk`.
    pub key: Linear,
    /// `Wv`.
    pub value: Linear,
    /// `Wo`, the attention output projection.
    pub attention_out: Linear,
    /// The layer norm after the attention block.
    pub attention_norm: LayerNorm,
    /// `W₁`, `[H, I]`.
    pub intermediate: Linear,
    /// `W₂`, `[I, H]`.
    pub output: Linear,
    /// The layer norm after the feed-forward block.
    pub output_norm: LayerNorm,
}

/// The BERT encoder built by [`BertEncoderConfig::init`] or loaded by [`load_pretrained`].
#[derive(Module, Debug)]
pub struct BertEncoder {
    /// Token embeddings, `[vocab, H]`.
    pub word: Embedding,
    /// Position embeddings, `[max_position, H]`.
    pub position: Embedding,
    /// Token-type embeddings, `[type_vocab, H]`.
    pub token_type: Embedding,
    /// The layer norm over the summed embeddings.
    pub embedding_norm: LayerNorm,
    /// The transformer layers.
    pub layers: Vec<BertLayer>,
    /// Dropout when training.
    pub dropout: Option<SeededDropout>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    activation: BertActivation,
    #[module(skip)]
    pooling: BertPooling,
    #[module(skip)]
    normalize: bool,
    #[module(skip)]
    eps: f64,
    #[module(skip)]
    max_len: usize,
}

impl BertEncoder {
    /// The encoder from its weights and `config`'s settings (dropout masks from `seed`).
    fn assemble(
        config: &BertEncoderConfig,
        word: Embedding,
        position: Embedding,
        token_type: Embedding,
        embedding_norm: LayerNorm,
        layers: Vec<BertLayer>,
        seed: u64,
    ) -> Self {
        Self {
            word,
            position,
            token_type,
            embedding_norm,
            layers,
            dropout: (config.dropout > 0.0).then(|| SeededDropout::new(config.dropout, seed)),
            heads: config.heads,
            activation: config.activation,
            pooling: config.pooling,
            normalize: config.normalize,
            eps: config.layer_norm_eps,
            max_len: config.max_len,
        }
    }

    /// Sets the dropout rate used when training (0 removes it), masks drawn from `seed`.
    pub fn set_dropout(&mut self, rate: f64, seed: u64) {
        self.dropout = (rate > 0.0).then(|| SeededDropout::new(rate, seed));
    }

    /// Restarts the dropout mask stream from `seed`.
    pub fn reseed(&self, seed: u64) {
        if let Some(d) = &self.dropout {
            d.reseed(seed);
        }
    }

    fn drop<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match &self.dropout {
            Some(d) => d.forward(x),
            None => x,
        }
    }

    /// Token states of the last layer, `[batch, L, H]`, and the float mask `[batch, L]` (1 on
    /// tokens), for rows cut to the batch's longest sentence `L`.
    pub fn token_states(&self, x: Tensor<2>) -> (Tensor<3>, Tensor<2>) {
        self.run(x, None)
    }

    /// [`Self::token_states`] with every intermediate state, `[batch, L, H]` each: the
    /// embeddings (after their layer norm), then per layer the attention block's output
    /// (after its residual and layer norm) and the layer's output. For comparisons with a
    /// reference implementation.
    pub fn trace(&self, x: Tensor<2>) -> (Tensor<3>, Tensor<2>, Vec<Tensor<3>>) {
        let mut states = Vec::with_capacity(1 + 2 * self.layers.len());
        let (h, m) = self.run(x, Some(&mut states));
        (h, m, states)
    }

    fn run(&self, x: Tensor<2>, mut trace: Option<&mut Vec<Tensor<3>>>) -> (Tensor<3>, Tensor<2>) {
        let mut keep = |t: &Tensor<3>| {
            if let Some(v) = trace.as_deref_mut() {
                v.push(t.clone());
            }
        };
        let [batch, width] = x.dims();
        let device = x.device();
        let rows = x.int();
        let mask = rows.clone().not_equal_elem(PAD_ID as i64);
        let longest = super::text::row_lengths(&mask)
            .into_iter()
            .max()
            .unwrap_or(width);
        let len = longest.clamp(1, width);
        // Row ids are the tokenizer's ids + 1; padding (0) becomes id 0, masked below.
        let ids: Tensor<2, Int> = (rows.narrow(1, 0, len) - 1).clamp_min(0);
        let mask = mask.narrow(1, 0, len).float();
        let [_, h] = self.word.weight.dims();
        let positions = Tensor::<1, Int>::arange(0..len as i64, &device).reshape([1, len]);
        let types = self
            .token_type
            .weight
            .val()
            .narrow(0, 0, 1)
            .reshape([1, 1, h]);
        let mut x = self.word.forward(ids) + self.position.forward(positions) + types;
        x = self.drop(self.embedding_norm.forward(x));
        keep(&x);
        // Additive mask: 0 on tokens, the most negative f32 on padding (Hugging Face's).
        let bias = ((mask.clone() - 1.0) * -f32::MIN).reshape([batch, 1, 1, len]);
        let (heads, dh) = (self.heads, h / self.heads);
        let scale = 1.0 / (dh as f64).sqrt();
        for layer in &self.layers {
            let split = |t: Tensor<3>| t.reshape([batch, len, heads, dh]).swap_dims(1, 2);
            let q = split(layer.query.forward(x.clone()));
            let k = split(layer.key.forward(x.clone()));
            let v = split(layer.value.forward(x.clone()));
            let scores = q.matmul(k.swap_dims(2, 3)) * scale + bias.clone();
            let probs = self.drop(activation::softmax(scores, 3));
            let context = probs.matmul(v).swap_dims(1, 2).reshape([batch, len, h]);
            let attended = self.drop(layer.attention_out.forward(context));
            x = layer.attention_norm.forward(attended + x);
            keep(&x);
            let inner = layer.intermediate.forward(x.clone());
            let inner = match self.activation {
                BertActivation::Gelu => activation::gelu(inner),
                BertActivation::GeluTanh => activation::gelu_approximate(inner),
            };
            let out = self.drop(layer.output.forward(inner));
            x = layer.output_norm.forward(out + x);
            keep(&x);
        }
        (x, mask)
    }

    /// Maps `[batch, max_len]` rows of token ids (ids + 1 as floats, 0 = padding) to
    /// `[batch, H]` sentence embeddings.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let (states, mask) = self.token_states(x);
        let [batch, len, h] = states.dims();
        let m = mask.reshape([batch, len, 1]);
        let pooled = match self.pooling {
            BertPooling::Mean => {
                let count = m.clone().sum_dim(1).clamp_min(1e-9);
                (states * m).sum_dim(1).div(count)
            }
            BertPooling::Cls => states.narrow(1, 0, 1),
            // Padding set to −1e9 first, as sentence-transformers does.
            BertPooling::Max => (states * m.clone() + (m - 1.0) * 1e9).max_dim(1),
        }
        .reshape([batch, h]);
        if self.normalize {
            let norm = pooled.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
            pooled.div(norm)
        } else {
            pooled
        }
    }

    /// The pooling over tokens.
    pub fn pooling(&self) -> BertPooling {
        self.pooling
    }

    /// Whether embeddings are L2-normalised.
    pub fn normalize(&self) -> bool {
        self.normalize
    }

    /// Attention heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// The feed-forward activation.
    pub fn activation(&self) -> BertActivation {
        self.activation
    }

    /// The layer norms' `ε`.
    pub fn layer_norm_eps(&self) -> f64 {
        self.eps
    }

    /// Token ids per input row (the configuration's `max_len`): the width of the rows the
    /// text pipeline feeds it.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}
