//! Reading a sentence-transformers (or plain Hugging Face BERT) model directory as it is:
//!
//! | file | what is read |
//! |---|---|
//! | `config.json` | `model_type` (`bert`), sizes, `hidden_act`, `layer_norm_eps`, `hidden_dropout_prob` |
//! | `model.safetensors` | the weights ([`BertEncoder::from_safetensors`]) |
//! | `tokenizer.json` | the tokenizer, with `[CLS] … [SEP]` and truncation at `max_seq_length` |
//! | `modules.json` | `Transformer` → `Pooling` → optional `Normalize` (no `Dense` yet) |
//! | `1_Pooling/config.json` (the Pooling module's path) | mean, CLS or max pooling (`pooling_mode`, or the older `pooling_mode_*_tokens` flags) |
//! | `sentence_bert_config.json` | `max_seq_length` |
//!
//! Without `modules.json` (a plain Hugging Face model) the sentence embedding is the mean of
//! the token states, as sentence-transformers does for such a model; without
//! `sentence_bert_config.json`, rows hold `min(512, max_position_embeddings)` tokens.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde_json::Value;

use super::{BertActivation, BertEncoder, BertEncoderConfig, BertPooling};
use crate::data::tokenize::TextTokenizer;
use crate::error::{Result, SiameseError};

/// A model directory read into a config, weights and tokenizer.
#[derive(Debug)]
pub struct PretrainedBert {
    /// The architecture, pooling and row length.
    pub config: BertEncoderConfig,
    /// The encoder with the directory's weights.
    pub encoder: BertEncoder,
    /// The directory's tokenizer (ids + 1 in rows, `[CLS]`/`[SEP]` added, truncated).
    pub tokenizer: TextTokenizer,
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| SiameseError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| SiameseError::format(path, e.to_string()))
}

fn usize_field(json: &Value, path: &Path, key: &str) -> Result<usize> {
    json.get(key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| {
            SiameseError::format(path, format!("needs `{key}` (a non-negative integer)"))
        })
}

/// The architecture from `config.json`, with the row length and pooling still to set.
fn architecture(dir: &Path) -> Result<BertEncoderConfig> {
    let path = dir.join("config.json");
    let json = read_json(&path)?;
    let model_type = json.get("model_type").and_then(Value::as_str).unwrap_or("");
    if model_type != "bert" {
        return Err(SiameseError::invalid(
            path.display().to_string(),
            format!(
                "has model_type \"{model_type}\"; supported: \"bert\" (BERT, MiniLM and other \
                 BERT-architecture sentence-transformers models)"
            ),
        ));
    }
    let activation = match json.get("hidden_act").and_then(Value::as_str) {
        Some("gelu") | None => BertActivation::Gelu,
        Some("gelu_new") | Some("gelu_pytorch_tanh") | Some("gelu_fast") => {
            BertActivation::GeluTanh
        }
        Some(other) => {
            return Err(SiameseError::invalid(
                path.display().to_string(),
                format!("has hidden_act \"{other}\"; supported: gelu, gelu_new, gelu_pytorch_tanh"),
            ));
        }
    };
    if let Some(p) = json.get("position_embedding_type").and_then(Value::as_str)
        && p != "absolute"
    {
        return Err(SiameseError::invalid(
            path.display().to_string(),
            format!("has position_embedding_type \"{p}\"; supported: absolute"),
        ));
    }
    let max_position = usize_field(&json, &path, "max_position_embeddings")?;
    Ok(BertEncoderConfig {
        vocab_size: usize_field(&json, &path, "vocab_size")?,
        hidden: usize_field(&json, &path, "hidden_size")?,
        layers: usize_field(&json, &path, "num_hidden_layers")?,
        heads: usize_field(&json, &path, "num_attention_heads")?,
        intermediate: usize_field(&json, &path, "intermediate_size")?,
        max_position,
        type_vocab: json
            .get("type_vocab_size")
            .and_then(Value::as_u64)
            .map_or(2, |v| v as usize),
        layer_norm_eps: json
            .get("layer_norm_eps")
            .and_then(Value::as_f64)
            .unwrap_or(1e-12),
        activation,
        max_len: max_position.min(512),
        pooling: BertPooling::Mean,
        normalize: false,
        dropout: json
            .get("hidden_dropout_prob")
            .and_then(Value::as_f64)
            .unwrap_or(0.1),
    })
}

/// Pooling and normalisation from `modules.json` and the pooling module's config.
fn modules(dir: &Path, config: &mut BertEncoderConfig) -> Result<()> {
    let path = dir.join("modules.json");
    if !path.exists() {
        return Ok(());
    }
    let json = read_json(&path)?;
    let list = json
        .as_array()
        .ok_or_else(|| SiameseError::format(&path, "expected a list of modules"))?;
    for (k, module) in list.iter().enumerate() {
        let kind = module.get("type").and_then(Value::as_str).unwrap_or("");
        let name = kind.rsplit('.').next().unwrap_or(kind);
        let sub = module.get("path").and_then(Value::as_str).unwrap_or("");
        match name {
            "Transformer" if k == 0 => {}
            "Pooling" => pooling(&dir.join(sub).join("config.json"), config)?,
            "Normalize" => config.normalize = true,
            _ => {
                return Err(SiameseError::invalid(
                    path.display().to_string(),
                    format!(
                        "module {k} is `{kind}`; supported: a Transformer first, then \
                         Pooling and Normalize"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn pooling(path: &Path, config: &mut BertEncoderConfig) -> Result<()> {
    let json = read_json(path)?;
    // sentence-transformers 5 writes one `pooling_mode` string; earlier versions one flag
    // per mode.
    if let Some(mode) = json.get("pooling_mode").and_then(Value::as_str) {
        config.pooling = match mode {
            "mean" => BertPooling::Mean,
            "cls" => BertPooling::Cls,
            "max" => BertPooling::Max,
            other => {
                return Err(SiameseError::invalid(
                    path.display().to_string(),
                    format!("sets pooling_mode \"{other}\"; supported: mean, cls, max"),
                ));
            }
        };
        return Ok(());
    }
    let on = |key: &str| json.get(key).and_then(Value::as_bool).unwrap_or(false);
    let modes: Vec<(&str, BertPooling)> = [
        ("pooling_mode_mean_tokens", BertPooling::Mean),
        ("pooling_mode_cls_token", BertPooling::Cls),
        ("pooling_mode_max_tokens", BertPooling::Max),
    ]
    .into_iter()
    .filter(|(k, _)| on(k))
    .collect();
    let unsupported = [
        "pooling_mode_mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens",
        "pooling_mode_lasttoken",
    ]
    .into_iter()
    .find(|k| on(k));
    match (modes.as_slice(), unsupported) {
        ([(_, mode)], None) => {
            config.pooling = *mode;
            Ok(())
        }
        _ => Err(SiameseError::invalid(
            path.display().to_string(),
            "sets an unsupported pooling: exactly one of pooling_mode_mean_tokens, \
             pooling_mode_cls_token, pooling_mode_max_tokens must be true",
        )),
    }
}

/// Whether `dir` holds a Hugging Face / sentence-transformers model (a `config.json` with a
/// `model_type`) rather than a model saved by this crate (whose `config.json` has
/// `"format": "siamese-model"`).
pub fn is_pretrained_dir(dir: &Path) -> bool {
    let Ok(bytes) = std::fs::read(dir.join("config.json")) else {
        return false;
    };
    let Ok(json) = serde_json::from_slice::<Value>(&bytes) else {
        return false;
    };
    json.get("model_type").is_some() && json.get("format").is_none()
}

/// Reads a sentence-transformers / Hugging Face BERT directory: its architecture, weights,
/// tokenizer, pooling and row length (see the [module documentation](self)).
///
/// # Errors
/// [`SiameseError::Io`] naming a missing file; [`SiameseError::InvalidValue`] for an unsupported
/// architecture, activation, module or pooling; [`SiameseError::Format`] for a malformed file;
/// [`SiameseError::Shape`] for weights that do not fit `config.json`.
pub fn load_pretrained(dir: impl AsRef<Path>, device: &Device) -> Result<PretrainedBert> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(SiameseError::invalid(
            dir.display().to_string(),
            "is not a model directory (expected config.json, model.safetensors and \
             tokenizer.json, as sentence-transformers saves them)",
        ));
    }
    let mut config = architecture(dir)?;
    modules(dir, &mut config)?;
    let st_config = dir.join("sentence_bert_config.json");
    if st_config.exists() {
        let json = read_json(&st_config)?;
        if let Some(n) = json.get("max_seq_length").and_then(Value::as_u64) {
            config.max_len = (n as usize).min(config.max_position);
        }
    }
    config.validate()?;
    let weights: PathBuf = dir.join("model.safetensors");
    if !weights.exists() {
        let hint = if dir.join("pytorch_model.bin").exists() {
            " (only pytorch_model.bin is there: convert it to safetensors first)"
        } else {
            ""
        };
        return Err(SiameseError::invalid(
            weights.display().to_string(),
            format!("is missing{hint}"),
        ));
    }
    let encoder = BertEncoder::from_safetensors(&weights, &config, device)?;
    let tokenizer = TextTokenizer::pretrained(&dir.join("tokenizer.json"), config.max_len)?;
    if tokenizer.vocab_size() - 1 > config.vocab_size {
        return Err(SiameseError::shape(
            dir.join("tokenizer.json").display().to_string(),
            format!(
                "at most {} tokens (vocab_size in config.json)",
                config.vocab_size
            ),
            format!("{} tokens", tokenizer.vocab_size() - 1),
        ));
    }
    Ok(PretrainedBert {
        config,
        encoder,
        tokenizer,
    })
}
