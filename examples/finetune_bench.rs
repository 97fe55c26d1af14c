//! Fine-tuning speed of a sentence-transformers model as the Siamese twin, the counterpart of
//! `bench/peers/st_embed.py --mode finetune-epoch`: SBERT's STS-B objective (cosine-MSE on
//! score / 5, batch 16, Adam 2e-5, the directory's dropout) on STS-B train pairs in a seeded
//! shuffled order, 2 untimed steps, then `--steps` timed steps through `Siamese::fit`; prints
//! one JSON line with seconds per step and the epoch time extrapolated to all 5,749 pairs.
//! `--burn` trains through burn's autodiff instead of the host BERT trainer.
//!
//! ```sh
//! python3 tools/fetch_minilm.py /tmp/models/all-MiniLM-L6-v2
//! SIAMESE_DATA_DIR=../shared/data cargo run --release --example finetune_bench -- \
//!     /tmp/models/all-MiniLM-L6-v2 [--steps 50] [--batch 16] [--burn]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use siamese::burn::tensor::Device;
use siamese::data::text::read_stsb;
use siamese::error::{Result, SiameseError};
use siamese::model::{PretrainedSetup, Siamese};
use siamese::train::FitOptions;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut steps, mut batch, mut burn, mut dir) = (50usize, 16usize, false, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = |default: usize| it.next().and_then(|v| v.parse().ok()).unwrap_or(default);
        match a.as_str() {
            "--steps" => steps = number(steps),
            "--batch" => batch = number(batch),
            "--burn" => burn = true,
            other => dir = Some(other.to_string()),
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: finetune_bench MODEL_DIR [--steps 50] [--batch 16] [--burn]");
        return ExitCode::from(2);
    };
    match run(&dir, steps.max(1), batch.max(1), burn) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(dir: &str, steps: usize, batch: usize, burn: bool) -> Result<()> {
    let data = std::env::var_os("SIAMESE_DATA_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| {
            SiameseError::config("SIAMESE_DATA_DIR", "set it to the shared data folder")
        })?;
    let mut pairs = read_stsb(&data.join("sts_benchmark/sts-train.csv"))?;
    let total = pairs.len();
    pairs.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    let mut model =
        Siamese::from_pretrained_with(dir, &Device::flex(), PretrainedSetup::default())?;
    model.set_fused(!burn);
    let part = |model: &Siamese, from: usize, n: usize| -> Result<_> {
        let p = &pairs[from..(from + n).min(pairs.len())];
        let a: Vec<&str> = p.iter().map(|p| p.a.as_str()).collect();
        let b: Vec<&str> = p.iter().map(|p| p.b.as_str()).collect();
        let y: Vec<f32> = p.iter().map(|p| p.score / 5.0).collect();
        Ok((model.encode_sentences(&a)?, model.encode_sentences(&b)?, y))
    };
    let options = FitOptions {
        shuffle: false,
        ..FitOptions::new(1, batch)
    };
    let (a, b, y) = part(&model, 0, 2 * batch)?;
    model.fit(&a, &b, &y, &options)?;
    let (a, b, y) = part(&model, 2 * batch, steps * batch)?;
    let started = Instant::now();
    let history = model.fit(&a, &b, &y, &options)?;
    let seconds = started.elapsed().as_secs_f64();
    let per_step = seconds / y.len().div_ceil(batch) as f64;
    let epoch_steps = total.div_ceil(batch);
    println!(
        "{{\"impl\":\"siamese\",\"path\":\"{}\",\"batch\":{batch},\"steps_timed\":{},\
         \"seconds\":{seconds:.3},\"seconds_per_step\":{per_step:.4},\
         \"seconds_per_epoch\":{:.1},\"steps_per_epoch\":{epoch_steps},\"mean_loss\":{:.6},\
         \"threads\":{}}}",
        if burn { "burn" } else { "host" },
        y.len().div_ceil(batch),
        per_step * epoch_steps as f64,
        history.loss().first().copied().unwrap_or(f32::NAN),
        rayon::current_num_threads(),
    );
    Ok(())
}
