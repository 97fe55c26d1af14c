//! Criterion: the forward pass of the reference model (no gradients) at batch 1,024 — the
//! bare network on ready-made tensors, `Siamese::predict` on host matrices, and the fused
//! path's pair scores through `gemm` (the trainer's copy of the weights) and through the
//! packed AVX-512 inference kernel that `predict` uses.
//!
//! ```text
//! cargo bench --bench forward
//! ```

use std::hint::black_box;
use std::time::Duration;

use burn::module::Module;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use siamese::data::to_tensor;
use siamese::fused::{FusedMlp, HostHead};
use siamese::infer::network_device;
use siamese::prelude::*;
use siamese::synthetic::random_pairs;

const BATCH: usize = 1024;

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BATCH as u64));
    for dim in [100, 784] {
        let model = Siamese::reference(dim, 0).unwrap();
        let (a, b, _) = random_pairs(BATCH, dim, 1);

        let net = model.network().valid();
        let device = network_device(&net);
        let (ta, tb) = (to_tensor(&a, &device), to_tensor(&b, &device));
        group.bench_with_input(BenchmarkId::new("network", dim), &dim, |bench, _| {
            bench.iter(|| {
                let d = net.forward(ta.clone(), tb.clone());
                black_box(d.into_data())
            })
        });

        group.bench_with_input(BenchmarkId::new("predict", dim), &dim, |bench, _| {
            bench.iter(|| black_box(model.predict(&a, &b).unwrap()))
        });

        let head = HostHead::from_network(&net).unwrap();
        for (name, mlp) in [
            ("fused_gemm", FusedMlp::from_network(&net)),
            ("fused_packed", FusedMlp::for_inference(&net)),
        ] {
            let mlp = mlp.unwrap();
            group.bench_with_input(BenchmarkId::new(name, dim), &dim, |bench, _| {
                bench.iter(|| black_box(mlp.pair_scores(&a, &b, &head).unwrap()))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: the plotters backend needs system fonts, which minimal machines lack.
    config = Criterion::default().without_plots();
    targets = forward
}
criterion_main!(benches);
