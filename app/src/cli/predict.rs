//! `siamese predict` and `siamese embed`: a thin shell over the model's stored preprocessing
//! ([`Siamese::load_inputs`], [`Siamese::encode_sentences`]) and threshold
//! ([`Siamese::decide`]).

use std::path::{Path, PathBuf};

use siamese::burn::tensor::Device;
use siamese::data::Matrix;
use siamese::data::predicts_similar;
use siamese::error::{Result, SiameseError};
use siamese::model::Siamese;

/// What `predict` compares.
pub enum Inputs {
    /// Two files of inputs (matrices, images, or sentences one per line).
    Files(PathBuf, PathBuf),
    /// Two sentences from the command line.
    Sentences(String, String),
}

/// `siamese predict`.
pub fn predict(
    model_dir: &Path,
    inputs: &Inputs,
    out: Option<&Path>,
    decide: bool,
    device: &Device,
) -> Result<()> {
    let model = super::with_env(Siamese::load(model_dir, device)?);
    let (ma, mb, a, b) = match inputs {
        Inputs::Files(a, b) => {
            let (ma, _) = model.load_inputs(a)?;
            let (mb, _) = model.load_inputs(b)?;
            (ma, mb, a.clone(), b.clone())
        }
        Inputs::Sentences(a, b) => {
            if model.tokenizer().is_none() {
                return Err(SiameseError::invalid(
                    model_dir.display().to_string(),
                    "--text-a/--text-b need a text model (trained on stsb or sick)",
                ));
            }
            (
                model.encode_sentences(&[a])?,
                model.encode_sentences(&[b])?,
                PathBuf::from("--text-a"),
                PathBuf::from("--text-b"),
            )
        }
    };
    let (a, b) = (a.as_path(), b.as_path());
    if ma.rows() != mb.rows() {
        return Err(SiameseError::shape(
            b.display().to_string(),
            format!("{} rows like {}", ma.rows(), a.display()),
            format!("{} rows", mb.rows()),
        ));
    }
    let text_model = model.tokenizer().is_some();
    let threshold = if decide {
        Some(model.threshold().map(|t| t.value).ok_or_else(|| {
            SiameseError::invalid(
                model_dir.display().to_string(),
                "has no calibrated threshold (train it with a validation part)",
            )
        })?)
    } else {
        None
    };
    let d = model.predict(&ma, &mb)?;
    match out {
        Some(path) => {
            let m = Matrix::new(d.len(), 1, d)?;
            siamese::data::table::write_matrix_any(path, &m, Some(&["distance".to_string()]))?;
            println!("wrote {} distances to {}", m.rows(), path.display());
        }
        None => {
            let kind = model.config().loss.kind;
            if text_model {
                println!("similarity\tdistance");
            }
            for v in d {
                let decision = match threshold {
                    Some(t) => format!(
                        "\t{}",
                        if predicts_similar(v, t) {
                            "same"
                        } else {
                            "different"
                        }
                    ),
                    None => String::new(),
                };
                if text_model {
                    println!("{:.4}\t{v}{decision}", kind.similarity(v));
                } else {
                    println!("{v}{decision}");
                }
            }
        }
    }
    Ok(())
}

/// `siamese embed`.
pub fn embed(model_dir: &Path, input: &Path, out: &Path, device: &Device) -> Result<()> {
    let model = super::with_env(Siamese::load(model_dir, device)?);
    let (x, paths) = model.load_inputs(input)?;
    let e = model.embed(&x)?;
    siamese::data::table::write_matrix_any(out, &e, None)?;
    if !paths.is_empty() {
        let list: String = paths.iter().map(|p| format!("{}\n", p.display())).collect();
        let stem = out.with_extension("paths.txt");
        siamese::atomic::write_file_atomic(&stem, list.as_bytes())?;
        println!(
            "wrote {} embeddings to {} (row names in {})",
            e.rows(),
            out.display(),
            stem.display()
        );
    } else {
        println!("wrote {} embeddings to {}", e.rows(), out.display());
    }
    Ok(())
}
