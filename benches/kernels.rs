//! Criterion: the distance and loss kernels on `[1024, 128]` embeddings — each distance
//! forward, the contrastive loss, distance + loss forward and backward (autodiff), and the
//! host-side `Distance::between` used for cached embeddings.
//!
//! ```text
//! cargo bench --bench kernels
//! ```

use std::hint::black_box;
use std::time::Duration;

use burn::tensor::{Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use siamese::prelude::*;

const ROWS: usize = 1024;
const EMBED: usize = 128;

fn embeddings(seed: u64) -> Vec<f32> {
    // A small LCG: deterministic values in [0, 1) without touching the crate's RNG choices.
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..ROWS * EMBED)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn tensor(values: &[f32], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values.to_vec(), [rows, cols]), device)
}

fn kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernels");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(ROWS as u64));
    let (ea, eb) = (embeddings(1), embeddings(2));
    let labels: Vec<f32> = (0..ROWS).map(|i| (i % 2) as f32).collect();
    let device = Device::flex();
    let (ta, tb) = (
        tensor(&ea, ROWS, EMBED, &device),
        tensor(&eb, ROWS, EMBED, &device),
    );
    let ty = tensor(&labels, ROWS, 1, &device);

    for distance in [Distance::Euclidean, Distance::Manhattan, Distance::Cosine] {
        group.bench_with_input(
            BenchmarkId::new("distance_forward", distance.name()),
            &distance,
            |bench, &distance| {
                bench.iter(|| black_box(distance.forward(ta.clone(), tb.clone()).into_data()))
            },
        );
    }

    let d = Distance::Euclidean.forward(ta.clone(), tb.clone());
    let loss = ContrastiveLoss::new(1.0);
    group.bench_function("contrastive_forward", |bench| {
        bench.iter(|| black_box(loss.forward(d.clone(), ty.clone()).into_data()))
    });

    let ad = device.clone().autodiff();
    let (ga, gb, gy) = (
        tensor(&ea, ROWS, EMBED, &ad),
        tensor(&eb, ROWS, EMBED, &ad),
        tensor(&labels, ROWS, 1, &ad),
    );
    group.bench_function("euclidean_contrastive_backward", |bench| {
        bench.iter(|| {
            let a = ga.clone().require_grad();
            let d = Distance::Euclidean.forward(a.clone(), gb.clone());
            let grads = loss.forward(d, gy.clone()).backward();
            black_box(a.grad(&grads).map(|g| g.into_data()))
        })
    });

    group.bench_function("euclidean_between_host", |bench| {
        bench.iter(|| {
            let mut sum = 0.0f32;
            for (x, y) in ea.chunks_exact(EMBED).zip(eb.chunks_exact(EMBED)) {
                sum += Distance::Euclidean.between(x, y);
            }
            black_box(sum)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: the plotters backend needs system fonts, which minimal machines lack.
    config = Criterion::default().without_plots();
    targets = kernels
}
criterion_main!(benches);
