//! Throughput of the reference model: training and predict pairs/s, and the latency of a
//! single-pair `predict` call. `fit` (shuffling,
//! batching, metrics, history; the fused MLP path of `src/fused/` for this model) is set
//! against a bare loop of burn autodiff steps over ready-made batches, the path the fused one
//! replaces.
//!
//! ```text
//! cargo run --release --example bench            # full table
//! cargo run --release --example bench -- --quick # fewer pairs, for a smoke run
//! ```

use std::time::Instant;

use siamese::burn::optim::GradientsParams;
use siamese::burn::tensor::Tensor;
use siamese::data::{labels_tensor, to_tensor};
use siamese::prelude::*;
use siamese::synthetic::random_pairs;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Pairs/s of `Siamese::fit` (shuffle on, progress off) over `epochs` epochs.
fn fit_rate(dim: usize, batch: usize, n: usize, epochs: usize) -> f64 {
    let (a, b, y) = random_pairs(n, dim, 1);
    let mut model = siamese_app::cli::with_env(Siamese::reference(dim, 0).unwrap());
    let options = FitOptions {
        verbose: false,
        ..FitOptions::new(1, batch)
    };
    model.fit(&a, &b, &y, &options).unwrap(); // warm-up
    let options = FitOptions { epochs, ..options };
    let t = Instant::now();
    model.fit(&a, &b, &y, &options).unwrap();
    (n * epochs) as f64 / t.elapsed().as_secs_f64()
}

/// Pairs/s of a bare loop of burn steps over pre-built batch tensors (no shuffling, no metrics).
fn bare_rate(dim: usize, batch: usize, n: usize, epochs: usize) -> f64 {
    let device = Device::flex().autodiff();
    let config = ModelConfig::reference(dim);
    let mut net = config.network.init(&device, 0).unwrap();
    let mut optim = config.optimizer.init().unwrap();
    let loss = config.loss;
    let (a, b, y) = random_pairs(n, dim, 1);
    let batches: Vec<(Tensor<2>, Tensor<2>, Tensor<2>)> = (0..n)
        .step_by(batch)
        .map(|s| {
            let e = (s + batch).min(n);
            (
                to_tensor(&a.slice_rows(s, e), &device),
                to_tensor(&b.slice_rows(s, e), &device),
                labels_tensor(&y[s..e], &device),
            )
        })
        .collect();
    let mut run = |epochs: usize| {
        for _ in 0..epochs {
            for (ta, tb, ty) in &batches {
                let d = net.forward(ta.clone(), tb.clone());
                let l = loss.forward(d, ty.clone());
                let grads = GradientsParams::from_grads(l.backward(), &net);
                net = optim.step(0.001, net.clone(), grads);
            }
        }
    };
    run(1);
    let t = Instant::now();
    run(epochs);
    (n * epochs) as f64 / t.elapsed().as_secs_f64()
}

fn predict_rate(dim: usize, n: usize, reps: usize) -> f64 {
    let (a, b, _) = random_pairs(n, dim, 2);
    let model = siamese_app::cli::with_env(Siamese::reference(dim, 0).unwrap());
    model.predict(&a, &b).unwrap();
    let t = Instant::now();
    for _ in 0..reps {
        model.predict(&a, &b).unwrap();
    }
    (n * reps) as f64 / t.elapsed().as_secs_f64()
}

/// Mean seconds of one `predict` call on a single pair (the latency a service sees).
fn single_pair_latency(dim: usize, calls: usize) -> f64 {
    let (a, b, _) = random_pairs(1, dim, 3);
    let model = siamese_app::cli::with_env(Siamese::reference(dim, 0).unwrap());
    for _ in 0..100 {
        model.predict(&a, &b).unwrap();
    }
    let t = Instant::now();
    for _ in 0..calls {
        model.predict(&a, &b).unwrap();
    }
    t.elapsed().as_secs_f64() / calls as f64
}

fn main() {
    siamese_app::alloc::tune_host_allocator();
    let quick = std::env::args().any(|a| a == "--quick");
    let reps = if quick { 1 } else { 3 };
    println!(
        "reference model (Dense(128, relu) ×3, Euclidean, contrastive, RMSprop), flex CPU, {} threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:>5} {:>6} {:>14} {:>16} {:>9}",
        "dim", "batch", "fit pairs/s", "bare burn pairs/s", "fit/bare"
    );
    for dim in [100, 784] {
        for batch in [32, 128, 1024] {
            let n = if quick { 2048 } else { 8192 };
            let epochs = if quick { 1 } else { 2 };
            let mut fits = Vec::new();
            let mut bares = Vec::new();
            for _ in 0..reps {
                // Alternate the two so machine noise hits both alike.
                fits.push(fit_rate(dim, batch, n, epochs));
                bares.push(bare_rate(dim, batch, n, epochs));
            }
            let (f, b) = (median(fits), median(bares));
            println!("{dim:>5} {batch:>6} {f:>14.0} {b:>16.0} {:>8.2}×", f / b);
        }
    }
    for dim in [100, 784] {
        let rates: Vec<f64> = (0..reps)
            .map(|_| predict_rate(dim, 8192, if quick { 2 } else { 5 }))
            .collect();
        println!("predict dim {dim} batch 1024: {:.0} pairs/s", median(rates));
    }
    for dim in [100, 784] {
        let calls = if quick { 500 } else { 5000 };
        let seconds: Vec<f64> = (0..reps).map(|_| single_pair_latency(dim, calls)).collect();
        println!(
            "predict dim {dim}, one pair per call: {:.1} µs per call",
            median(seconds) * 1e6
        );
    }
}
