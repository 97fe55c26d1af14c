//! BERT weights: random initialisation, and the tensors of a Hugging Face `model.safetensors`
//! (names as `BertModel` writes them, with or without a `bert.` prefix) put into a
//! [`BertEncoder`].

use std::collections::HashMap;
use std::path::Path;

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, RngExt};
use safetensors::{Dtype, SafeTensors};

use super::{BertEncoder, BertEncoderConfig, BertLayer};
use crate::error::{Result, SiameseError};

/// `rows × cols` values `~ N(0, std²)` (Box–Muller), row-major.
pub(super) fn normal(shape: [usize; 2], std: f32, rng: &mut impl Rng) -> Vec<f32> {
    let n = shape[0] * shape[1];
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
        let u2: f32 = rng.random::<f32>();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let t = std::f32::consts::TAU * u2;
        out.push(r * t.cos());
        out.push(r * t.sin());
    }
    out.truncate(n);
    out
}

/// The f32 values and shape of every tensor of a safetensors file, by name, with a common
/// `bert.` prefix removed (checkpoints saved from `BertFor…` heads carry it).
pub(super) struct Tensors {
    path: String,
    map: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

fn f16_to_f32(bits: u16) -> f32 {
    let sign = ((bits >> 15) as u32) << 31;
    let exp = ((bits >> 10) & 0x1f) as u32;
    let mant = (bits & 0x3ff) as u32;
    let v = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise.
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(v)
}

impl Tensors {
    /// Reads `path` (F32, F16 or BF16 tensors).
    pub(super) fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| SiameseError::io(path, e))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| SiameseError::format(path, format!("not a safetensors file: {e}")))?;
        let names = st.names();
        let strip = !names.is_empty() && names.iter().all(|n| n.starts_with("bert."));
        let mut map = HashMap::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                    .collect(),
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                    .collect(),
                // Integer buffers (e.g. `embeddings.position_ids`) are not weights.
                _ => continue,
            };
            let key = if strip {
                name.trim_start_matches("bert.").to_string()
            } else {
                name
            };
            map.insert(key, (view.shape().to_vec(), values));
        }
        Ok(Self {
            path: path.display().to_string(),
            map,
        })
    }

    /// The tensor `name` with exactly `shape`; errors name the file, the tensor and both
    /// shapes.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        // Old checkpoints name layer-norm parameters gamma / beta.
        let alias = name
            .strip_suffix("LayerNorm.weight")
            .map(|p| format!("{p}LayerNorm.gamma"))
            .or_else(|| {
                name.strip_suffix("LayerNorm.bias")
                    .map(|p| format!("{p}LayerNorm.beta"))
            });
        let key = if self.map.contains_key(name) {
            name.to_string()
        } else {
            match alias.filter(|a| self.map.contains_key(a)) {
                Some(a) => a,
                None => {
                    return Err(SiameseError::invalid(
                        self.path.clone(),
                        format!(
                            "has no tensor `{name}` (expected a BERT model's weights as \
                             Hugging Face names them)"
                        ),
                    ));
                }
            }
        };
        let (got, values) = self.map.remove(&key).expect("checked above");
        if got != shape {
            return Err(SiameseError::shape(
                format!("{} tensor `{key}`", self.path),
                format!("{shape:?} (from config.json)"),
                format!("{got:?}"),
            ));
        }
        Ok(values)
    }
}

/// `values` of a `[rows, cols]` PyTorch weight, transposed to `[cols, rows]`.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

fn param<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

impl BertEncoder {
    /// The encoder for `config`'s architecture built from the tensors of a Hugging Face
    /// `model.safetensors` (the pooler, if present, is not used), with no random
    /// initialisation first.
    ///
    /// # Errors
    /// [`SiameseError::Io`] for an unreadable file; [`SiameseError::Format`] for one that is
    /// not safetensors; [`SiameseError::InvalidValue`] naming a missing tensor;
    /// [`SiameseError::Shape`] naming a tensor whose shape does not match the config.
    pub fn from_safetensors(
        path: &Path,
        config: &BertEncoderConfig,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let mut t = Tensors::read(path)?;
        let (h, i) = (config.hidden, config.intermediate);
        let embedding = |t: &mut Tensors, name: &str, n: usize| -> Result<Embedding> {
            Ok(Embedding {
                weight: param(t.take(name, &[n, h])?, [n, h], device),
            })
        };
        let norm = |t: &mut Tensors, prefix: &str| -> Result<LayerNorm> {
            let mut norm = config.layer_norm(device);
            norm.gamma = param(t.take(&format!("{prefix}.weight"), &[h])?, [h], device);
            norm.beta = Some(param(t.take(&format!("{prefix}.bias"), &[h])?, [h], device));
            Ok(norm)
        };
        // PyTorch stores Linear weights as [out, in]; burn as [in, out].
        let linear = |t: &mut Tensors, prefix: &str, fan_in: usize, fan_out: usize| {
            let w = t.take(&format!("{prefix}.weight"), &[fan_out, fan_in])?;
            let b = t.take(&format!("{prefix}.bias"), &[fan_out])?;
            Ok::<_, SiameseError>(Linear {
                weight: param(transpose(&w, fan_out, fan_in), [fan_in, fan_out], device),
                bias: Some(param(b, [fan_out], device)),
            })
        };
        let word = embedding(
            &mut t,
            "embeddings.word_embeddings.weight",
            config.vocab_size,
        )?;
        let position = embedding(
            &mut t,
            "embeddings.position_embeddings.weight",
            config.max_position,
        )?;
        let token_type = embedding(
            &mut t,
            "embeddings.token_type_embeddings.weight",
            config.type_vocab,
        )?;
        let embedding_norm = norm(&mut t, "embeddings.LayerNorm")?;
        let mut layers = Vec::with_capacity(config.layers);
        for k in 0..config.layers {
            let p = format!("encoder.layer.{k}");
            layers.push(BertLayer {
                query: linear(&mut t, &format!("{p}.attention.self.query"), h, h)?,
                key: linear(&mut t, &format!("{p}.attention.self.key"), h, h)?,
                value: linear(&mut t, &format!("{p}.attention.self.value"), h, h)?,
                attention_out: linear(&mut t, &format!("{p}.attention.output.dense"), h, h)?,
                attention_norm: norm(&mut t, &format!("{p}.attention.output.LayerNorm"))?,
                intermediate: linear(&mut t, &format!("{p}.intermediate.dense"), h, i)?,
                output: linear(&mut t, &format!("{p}.output.dense"), i, h)?,
                output_norm: norm(&mut t, &format!("{p}.output.LayerNorm"))?,
            });
        }
        let extra = format!("encoder.layer.{}.", config.layers);
        if let Some(name) = t.map.keys().find(|k| k.starts_with(&extra)) {
            return Err(SiameseError::shape(
                format!("{} tensor `{name}`", t.path),
                format!(
                    "{} layers (num_hidden_layers in config.json)",
                    config.layers
                ),
                "more layers".to_string(),
            ));
        }
        Ok(Self::assemble(
            config,
            word,
            position,
            token_type,
            embedding_norm,
            layers,
            0,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_values_widen_exactly() {
        for (bits, want) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x0001, 5.960_464_5e-8), // smallest subnormal
            (0x7bff, 65504.0),
            (0x0000, 0.0),
        ] {
            assert_eq!(f16_to_f32(bits), want, "{bits:#06x}");
        }
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn transposes_row_major() {
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }

    #[test]
    fn normal_values_have_the_asked_spread() {
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let v = normal([100, 101], 0.02, &mut rng);
        assert_eq!(v.len(), 10_100);
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt();
        assert!(mean.abs() < 1e-3 && (sd - 0.02).abs() < 1e-3, "{mean} {sd}");
    }
}
