//! Embeds sentences with a sentence-transformers model directory through this crate and
//! compares them with embeddings sentence-transformers wrote (`.npy`, one row per sentence):
//! the largest absolute difference and the smallest cosine between matching rows. Exits
//! with status 1 when a difference exceeds `--tolerance` (default 1e-4).
//!
//! ```sh
//! python3 tools/fetch_minilm.py /tmp/models/all-MiniLM-L6-v2
//! /tmp/st-venv/bin/python bench/peers/st_embed.py --mode encode \
//!     --model /tmp/models/all-MiniLM-L6-v2 --input sentences.txt --out st.npy
//! cargo run --release --example pretrained_check -- /tmp/models/all-MiniLM-L6-v2 sentences.txt st.npy
//! ```

use std::process::ExitCode;

use siamese::burn::tensor::Device;
use siamese::model::Siamese;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut tolerance = 1e-4f32;
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--tolerance" {
            tolerance = it.next().and_then(|v| v.parse().ok()).unwrap_or(tolerance);
        } else {
            positional.push(a.clone());
        }
    }
    let [model_dir, sentences, reference] = positional.as_slice() else {
        eprintln!(
            "usage: pretrained_check MODEL_DIR SENTENCES.txt REFERENCE.npy [--tolerance 1e-4]"
        );
        return ExitCode::from(2);
    };
    match run(model_dir, sentences, reference, tolerance) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(
    model_dir: &str,
    sentences: &str,
    reference: &str,
    tolerance: f32,
) -> siamese::error::Result<bool> {
    let started = std::time::Instant::now();
    let model = Siamese::load(model_dir, &Device::flex())?;
    let loaded = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(sentences)
        .map_err(|e| siamese::error::SiameseError::io(std::path::Path::new(sentences), e))?;
    let lines: Vec<&str> = text.lines().collect();
    let started = std::time::Instant::now();
    let ours = model.embed(&model.encode_sentences(&lines)?)?;
    let seconds = started.elapsed().as_secs_f64();
    let want = siamese::data::npy::read_matrix(std::path::Path::new(reference))?;
    if want.shape() != ours.shape() {
        return Err(siamese::error::SiameseError::shape(
            reference,
            format!("{:?} (one row per sentence)", ours.shape()),
            format!("{:?}", want.shape()),
        ));
    }
    let mut max_diff = 0.0f32;
    let mut min_cos = 1.0f64;
    for r in 0..ours.rows() {
        let (a, b) = (ours.row(r), want.row(r));
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        max_diff = max_diff.max(d);
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        min_cos = min_cos.min(dot / (na * nb).max(1e-30));
    }
    println!(
        "{} sentences, {} dims: max |Δ| {max_diff:.3e}, min cosine {min_cos:.8} \
         (model loaded in {loaded:.2}s, embedded in {seconds:.2}s)",
        ours.rows(),
        ours.cols()
    );
    Ok(max_diff <= tolerance)
}
