//! Our side of the sentence-encoder benchmark against `bench/peers/st_embed.py --mode embed`:
//! the same work — tokenise and embed every sentence in batches of `--batch`, after a
//! warm-up on the first four batches — and the same JSON line.
//!
//! ```text
//! target/release/examples/text_bench --model models/all-MiniLM-L6-v2 --batch 32 --threads 2
//! target/release/examples/text_bench --model DIR --sentences sentences.txt --burn
//! ```
//!
//! Sentences: `--sentences FILE` (one per line), else the unique sentences of STS-B's test
//! split in first-seen order (`$SIAMESE_DATA_DIR/sts_benchmark/sts-test.csv`, as the peer
//! reads them). `--burn` embeds through burn instead of the host path
//! (`Siamese::set_fused(false)`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use siamese::prelude::*;

#[derive(Debug, Parser)]
struct Args {
    /// A sentence-transformers directory or a saved text model.
    #[arg(long)]
    model: PathBuf,
    /// Sentences per `embed` call.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// One sentence per line (default: STS-B test's unique sentences).
    #[arg(long)]
    sentences: Option<PathBuf>,
    /// Timed passes over all sentences (the median is reported).
    #[arg(long, default_value_t = 1)]
    passes: usize,
    /// Worker threads (rayon); default: RAYON_NUM_THREADS, else every core.
    #[arg(long)]
    threads: Option<usize>,
    /// Embed through burn instead of the host path.
    #[arg(long)]
    burn: bool,
}

/// STS-B test's sentences, each once, in first-seen order (pairs `a`, `b` per line).
fn stsb_sentences() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let dir = std::env::var("SIAMESE_DATA_DIR").unwrap_or_else(|_| "../shared/data".into());
    let path = PathBuf::from(dir).join("sts_benchmark/sts-test.csv");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (set SIAMESE_DATA_DIR)", path.display()))?;
    let (mut seen, mut out) = (HashSet::new(), Vec::new());
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 7 {
            let got = fields.len();
            return Err(format!("{} line {}: {got} fields, need 7", path.display(), n + 1).into());
        }
        for s in &fields[5..7] {
            if seen.insert(s.to_string()) {
                out.push(s.to_string());
            }
        }
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    siamese_app::alloc::tune_host_allocator();
    let args = Args::parse();
    if let Some(n) = args.threads {
        // SAFETY: first thing in `main`, before any other thread exists; rayon reads it
        // when its pool starts.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let sentences = match &args.sentences {
        Some(p) => std::fs::read_to_string(p)?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        None => stsb_sentences()?,
    };
    if args.batch == 0 || sentences.is_empty() {
        return Err("need --batch > 0 and at least one sentence".into());
    }
    let mut model = Siamese::load(&args.model, &siamese::burn::tensor::Device::flex())?;
    if args.burn {
        model.set_fused(false);
    }
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let pass = |refs: &[&str]| -> siamese::error::Result<()> {
        for chunk in refs.chunks(args.batch) {
            let e = model.embed(&model.encode_sentences(chunk)?)?;
            std::hint::black_box(e);
        }
        Ok(())
    };
    pass(&refs[..refs.len().min(4 * args.batch)])?;
    let mut times = Vec::with_capacity(args.passes);
    for _ in 0..args.passes.max(1) {
        let t0 = Instant::now();
        pass(&refs)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let seconds = times[times.len() / 2];
    println!(
        "{{\"impl\":\"{}\",\"mode\":\"embed\",\"batch\":{},\"sentences\":{},\"threads\":{},\"sentences_per_s\":{:.2},\"seconds\":{:.4}}}",
        if args.burn { "burn" } else { "siamese" },
        args.batch,
        refs.len(),
        threads,
        refs.len() as f64 / seconds,
        seconds
    );
    Ok(())
}
