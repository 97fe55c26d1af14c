//! Fills a `siamese serve` gallery with synthetic identities for load tests: N identities ×
//! K samples, embedded by the model and enrolled through the library, as the service would.
//! Vector and image models: each identity has a random centre (uniform in [0, 1]) and its
//! samples are the centre plus uniform noise of ±`spread`, clamped to [0, 1], so that an
//! identity's samples resemble each other as real ones do. Text models: lines of a
//! sentence file with a numbered suffix.
//!
//! ```text
//! cargo run --release --example gallery_fill -- --model DIR --gallery g.sqlite \
//!     --identities 10000 --samples 5 [--sentences FILE]
//! ```

use std::path::PathBuf;

use clap::Parser;
use rand::{RngExt, SeedableRng};
use siamese::data::Matrix;
use siamese::gallery::{Gallery, IndexKind, NewSample, SqliteStore, model_fingerprint};
use siamese::model::{InputKind, Siamese};
use siamese::prelude::Device;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    gallery: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    identities: usize,
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Sentences (one per line) for a text model.
    #[arg(long)]
    sentences: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Half-width of the noise around an identity's centre (vector and image models).
    #[arg(long, default_value_t = 0.1)]
    spread: f32,
}

fn main() -> siamese::error::Result<()> {
    let args = Args::parse();
    let model = Siamese::load(&args.model, &Device::flex())?;
    let enc = model.input_encoder();
    let scorer = model.scorer()?;
    let sentences: Vec<String> = match &args.sentences {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| siamese::error::SiameseError::io(p, e))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    };
    if enc.kind() == InputKind::Text && sentences.is_empty() {
        return Err(siamese::error::SiameseError::config(
            "--sentences",
            "a text model needs a sentence file",
        ));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let rows_for =
        |n: usize,
         start: usize,
         rng: &mut rand_chacha::ChaCha8Rng|
         -> siamese::error::Result<(Matrix, Vec<Vec<u8>>)> {
            if enc.kind() == InputKind::Text {
                let s: Vec<String> = (0..n)
                    .map(|i| {
                        format!(
                            "{} ({})",
                            sentences[(start + i) % sentences.len()],
                            start + i
                        )
                    })
                    .collect();
                let raw = s.iter().map(|x| x.as_bytes().to_vec()).collect();
                Ok((enc.sentences(&s, "sentences")?, raw))
            } else {
                let d = enc.input_dim();
                let k = args.samples.max(1);
                let mut data = Vec::with_capacity(n * d);
                let mut centre = vec![0.0f32; d];
                for r in 0..n {
                    if r % k == 0 {
                        centre
                            .iter_mut()
                            .for_each(|c| *c = rng.random_range(0.0..1.0));
                    }
                    data.extend(centre.iter().map(|c| {
                        (c + rng.random_range(-args.spread..=args.spread)).clamp(0.0, 1.0)
                    }));
                }
                let raw = data
                    .chunks(d)
                    .map(|r| r.iter().flat_map(|x| x.to_le_bytes()).collect())
                    .collect();
                Ok((Matrix::new(n, d, data)?, raw))
            }
        };
    let dim = model.config().network.encoder.output_dim();
    let mut gallery = Gallery::open(
        Box::new(SqliteStore::open(&args.gallery)?),
        &model_fingerprint(&args.model)?,
        dim,
        scorer,
        IndexKind::Exact,
    )?;
    let start = std::time::Instant::now();
    let per_batch = (256 / args.samples).max(1);
    let mut done = 0;
    while done < args.identities {
        let n = per_batch.min(args.identities - done);
        let (rows, raw) = rows_for(n * args.samples, done * args.samples, &mut rng)?;
        let e = model.embed(&rows)?;
        for i in 0..n {
            let id = format!("id{:06}", done + i);
            gallery.put_identity(&id, &serde_json::json!({"synthetic": true}))?;
            let samples = (0..args.samples)
                .map(|k| {
                    let r = i * args.samples + k;
                    NewSample::new(e.row(r).to_vec(), &raw[r], false)
                })
                .collect();
            gallery.enrol(&id, samples)?;
        }
        done += n;
    }
    eprintln!(
        "{} identities × {} samples enrolled in {:.1} s ({} samples in the gallery)",
        args.identities,
        args.samples,
        start.elapsed().as_secs_f64(),
        gallery.sample_count()
    );
    Ok(())
}
