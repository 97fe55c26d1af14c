//! One benchmark configuration of the reference model per process, for `bench/run.py`: the
//! harness runs this, `bench/peers/torch_ref.py` and `bench/peers/keras_ref.py` with the same
//! flags and compares their JSON lines, wall times and peak RSS.
//!
//! ```text
//! cargo build --release --example peer_bench
//! target/release/examples/peer_bench --mode train   --dim 784 --batch 128  --pairs 8192 --epochs 2
//! target/release/examples/peer_bench --mode predict --dim 100 --batch 1024 --pairs 8192 --epochs 5
//! target/release/examples/peer_bench --mode startup --dim 784
//! target/release/examples/peer_bench --mode train --model koch-cpu --batch 32 --pairs 1024
//! ```
//!
//! - `train`: `pairs` random pairs (uniform `[0, 1)`, random 0/1 labels), one warm-up epoch of
//!   `fit`, then `epochs` timed epochs (shuffled, progress off).
//! - `predict`: one warm-up pass of `predict` over all pairs in chunks of `batch`, then
//!   `epochs` timed passes.
//! - `startup`: build the model and stop; the harness times the whole process.
//!
//! `--model conv` is the `faces` conv preset on 46×56 grey images, `--model koch-cpu` the
//! `koch-cpu` preset on 52×52 (`--dim` is ignored for both).
//!
//! Prints one JSON line:
//! `{"impl":"siamese","mode":..,"dim":..,"batch":..,"pairs_per_s":..,"seconds":..,"params":..}`
//! (`params`: the trainable parameters of the shared encoder).
//! Threads: `--threads N`, else `RAYON_NUM_THREADS`, else every core. `--burn` runs the
//! model through burn's autodiff graph instead of the fused MLP path (`src/fused/`).

use std::time::Instant;

use clap::{Parser, ValueEnum};
use siamese::burn::module::Module;
use siamese::encoder::conv::ConvEncoderConfig;
use siamese::prelude::*;
use siamese::synthetic::random_pairs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Train,
    Predict,
    Startup,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Predict => "predict",
            Self::Startup => "startup",
        }
    }
}

/// The encoder benchmarked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Model {
    /// The reference model: `Dense(128, relu)` ×3 on `--dim` features.
    Mlp,
    /// The `faces` conv preset on 46×56 grey images (`--dim` is ignored: 2,576 features).
    Conv,
    /// The `koch-cpu` conv preset on 52×52 grey images (`--dim` is ignored: 2,704 features).
    KochCpu,
}

impl Model {
    fn name(self) -> &'static str {
        match self {
            Self::Mlp => "mlp",
            Self::Conv => "conv",
            Self::KochCpu => "koch-cpu",
        }
    }

    /// The conv preset and its image (width, height), if this is a conv model.
    fn conv(self) -> Option<(&'static str, (usize, usize))> {
        match self {
            Self::Mlp => None,
            Self::Conv => Some(("faces", CONV_IMAGE)),
            Self::KochCpu => Some(("koch-cpu", KOCH_CPU_IMAGE)),
        }
    }
}

/// Width and height of the conv benchmark's images (AT&T faces downscaled, as
/// `configs/att_conv.toml`).
const CONV_IMAGE: (usize, usize) = (46, 56);

/// Width and height of the `koch-cpu` benchmark's images (Omniglot downscaled, as
/// `configs/omniglot.toml`).
const KOCH_CPU_IMAGE: (usize, usize) = (52, 52);

#[derive(Debug, Parser)]
#[command(about = "One benchmark configuration of the reference Siamese model")]
struct Args {
    /// The encoder: the reference MLP, the `faces` conv preset, or the `koch-cpu` one.
    #[arg(long, value_enum, default_value = "mlp")]
    model: Model,
    /// What to time.
    #[arg(long, value_enum, default_value = "train")]
    mode: Mode,
    /// Input features per sample.
    #[arg(long, default_value_t = 100)]
    dim: usize,
    /// Batch size (training batch, or predict chunk).
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Number of pairs.
    #[arg(long, default_value_t = 8192)]
    pairs: usize,
    /// Timed epochs (train) or passes over the pairs (predict), after one warm-up.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Worker threads (rayon); default: RAYON_NUM_THREADS, else every core.
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the weights and the data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run through burn's autodiff graph instead of the fused MLP path
    /// (`Siamese::set_fused(false)`): the "before" figures of the fused path.
    #[arg(long)]
    burn: bool,
}

fn main() -> Result<()> {
    siamese_app::alloc::tune_host_allocator();
    let args = Args::parse();
    if let Some(n) = args.threads {
        rayon_global(n);
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    });

    let dim = match args.model.conv() {
        None => args.dim,
        Some((_, (width, height))) => width * height,
    };
    let args = Args { dim, ..args };
    let started = Instant::now();
    let mut model = match args.model.conv() {
        None => Siamese::reference(args.dim, args.seed)?,
        Some((preset, (width, height))) => {
            let encoder = ConvEncoderConfig::preset(preset, width, height)?;
            let config = ModelConfig {
                network: SiameseConfig {
                    encoder: EncoderConfig::Conv(encoder),
                    ..SiameseConfig::reference(args.dim)
                },
                seed: args.seed,
                ..ModelConfig::reference(args.dim)
            };
            Siamese::new(config, &siamese::burn::tensor::Device::flex())?
        }
    };
    model.set_fused(!args.burn);
    let (seconds, processed) = match args.mode {
        Mode::Startup => (started.elapsed().as_secs_f64(), 0),
        Mode::Train => {
            let (a, b, y) = random_pairs(args.pairs, args.dim, args.seed + 1);
            let options = FitOptions {
                verbose: false,
                seed: args.seed,
                ..FitOptions::new(1, args.batch)
            };
            model.fit(&a, &b, &y, &options)?; // warm-up epoch
            let options = FitOptions {
                epochs: args.epochs,
                ..options
            };
            let t = Instant::now();
            model.fit(&a, &b, &y, &options)?;
            (t.elapsed().as_secs_f64(), args.pairs * args.epochs)
        }
        Mode::Predict => {
            let (a, b, _) = random_pairs(args.pairs, args.dim, args.seed + 1);
            // Chunks are cut before timing, as the peers slice ready-made arrays.
            let chunks: Vec<(Matrix, Matrix)> = (0..args.pairs)
                .step_by(args.batch.max(1))
                .map(|s| {
                    let e = (s + args.batch).min(args.pairs);
                    (a.slice_rows(s, e), b.slice_rows(s, e))
                })
                .collect();
            let pass = |model: &Siamese| -> Result<f32> {
                let mut sum = 0.0;
                for (ca, cb) in &chunks {
                    sum += model.predict(ca, cb)?.iter().sum::<f32>();
                }
                Ok(sum)
            };
            pass(&model)?; // warm-up pass
            let t = Instant::now();
            for _ in 0..args.epochs {
                std::hint::black_box(pass(&model)?);
            }
            (t.elapsed().as_secs_f64(), args.pairs * args.epochs)
        }
    };
    let pairs_per_s = if seconds > 0.0 && processed > 0 {
        processed as f64 / seconds
    } else {
        0.0
    };
    println!(
        "{{\"impl\":\"siamese\",\"model\":\"{}\",\"mode\":\"{}\",\"dim\":{},\"batch\":{},\"pairs\":{},\"epochs\":{},\"threads\":{},\"pairs_per_s\":{:.1},\"seconds\":{:.6},\"params\":{}}}",
        args.model.name(),
        args.mode.name(),
        args.dim,
        args.batch,
        args.pairs,
        args.epochs,
        threads,
        pairs_per_s,
        seconds,
        model.network().num_params()
    );
    Ok(())
}

/// Sizes rayon's global pool (used by flex and its matmul) before any work runs.
fn rayon_global(threads: usize) {
    // rayon is not a direct dependency; its env variable is read when the pool starts.
    // SAFETY: called first thing in `main`, before any other thread exists.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
}
