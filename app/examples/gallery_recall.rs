//! Recall@k and query time of HNSW against exact search, on a gallery file (e.g. one filled
//! by `gallery_fill`). Probes are stored embeddings with uniform noise added. Two recalls:
//! of the `k` nearest samples (`HnswIndex::search` against `ExactIndex`), and of the top `k`
//! identities by min distance (`Gallery::identify`, where HNSW shortlists and rescoring is
//! exact).
//!
//! ```text
//! cargo run --release --example gallery_recall -- --model DIR --gallery g.sqlite [--probes 200] [--k 10]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use rand::{RngExt, SeedableRng};
use siamese::gallery::{
    ExactIndex, Gallery, GalleryStore, HnswIndex, IndexKind, ReferenceScore, SqliteStore,
    model_fingerprint,
};
use siamese::model::Siamese;
use siamese::prelude::Device;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    gallery: PathBuf,
    #[arg(long, default_value_t = 200)]
    probes: usize,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Noise added to each probe, as a fraction of the embedding's RMS value.
    #[arg(long, default_value_t = 0.1)]
    noise: f32,
}

fn main() -> siamese::error::Result<()> {
    let a = Args::parse();
    let model = Siamese::load(&a.model, &Device::flex())?;
    let fp = model_fingerprint(&a.model)?;
    let store = SqliteStore::open(&a.gallery)?;
    let dim = store
        .binding()?
        .ok_or_else(|| siamese::error::SiameseError::Empty("the gallery is empty".into()))?
        .dim;
    let open = |kind| -> siamese::error::Result<(Gallery, f64)> {
        let t = Instant::now();
        let g = Gallery::open(
            Box::new(SqliteStore::open(&a.gallery)?),
            &fp,
            dim,
            model.scorer()?,
            kind,
        )?;
        Ok((g, t.elapsed().as_secs_f64()))
    };
    let (exact, t_exact) = open(IndexKind::Exact)?;
    let (hnsw, t_hnsw) = open(IndexKind::Hnsw)?;
    let samples = exact.store().all_samples()?;
    let scorer = model.scorer()?;
    let mut flat = ExactIndex::new(dim);
    for s in &samples {
        flat.insert(s.sample_id, 0, &s.embedding)?;
    }
    let t = Instant::now();
    let mut graph = HnswIndex::new(dim, &scorer);
    graph.rebuild(&flat);
    let t_graph = t.elapsed().as_secs_f64();
    let (mut nn_hits, mut tg) = (0usize, 0.0f64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let (mut hits, mut total, mut top1) = (0usize, 0usize, 0usize);
    let (mut te, mut th) = (0.0f64, 0.0f64);
    for _ in 0..a.probes {
        let s = &samples[rng.random_range(0..samples.len())];
        let rms = (s.embedding.iter().map(|v| v * v).sum::<f32>() / dim as f32).sqrt();
        let probe: Vec<f32> = s
            .embedding
            .iter()
            .map(|v| v + a.noise * rms * (rng.random_range(-1.0f32..1.0) * 1.732))
            .collect();
        let d = flat.distances(&scorer, &probe)?;
        let mut order: Vec<usize> = (0..d.len()).collect();
        order.select_nth_unstable_by(a.k - 1, |x, y| d[*x].total_cmp(&d[*y]));
        let nearest: Vec<i64> = order[..a.k].iter().map(|&i| flat.ids()[i]).collect();
        let t = Instant::now();
        let approx = graph.search(&probe, a.k);
        tg += t.elapsed().as_secs_f64();
        nn_hits += nearest.iter().filter(|id| approx.contains(id)).count();
        let t = Instant::now();
        let want = exact.identify(&probe, a.k, ReferenceScore::Min, 0.5)?;
        te += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let got = hnsw.identify(&probe, a.k, ReferenceScore::Min, 0.5)?;
        th += t.elapsed().as_secs_f64();
        total += want.matches.len();
        hits += want
            .matches
            .iter()
            .filter(|m| got.matches.iter().any(|g| g.identity == m.identity))
            .count();
        top1 += usize::from(
            got.matches.first().map(|m| &m.identity) == want.matches.first().map(|m| &m.identity),
        );
    }
    println!(
        "{} samples, {} probes: nearest-sample recall@{} {:.4} (hnsw search {:.3} ms, graph \
         built in {:.1} s)",
        samples.len(),
        a.probes,
        a.k,
        nn_hits as f64 / (a.k * a.probes) as f64,
        1e3 * tg / a.probes as f64,
        t_graph
    );
    println!(
        "identify (min distance): recall@{} {:.4}, top-1 agreement {:.4}; \
         query exact {:.2} ms, hnsw {:.2} ms; open (load + build) exact {:.1} s, hnsw {:.1} s",
        a.k,
        hits as f64 / total as f64,
        top1 as f64 / a.probes as f64,
        1e3 * te / a.probes as f64,
        1e3 * th / a.probes as f64,
        t_exact,
        t_hnsw
    );
    Ok(())
}
