//! Criterion: one training step of the reference model (`784 → Dense(128, relu) ×3`,
//! Euclidean, contrastive, RMSprop) at batch 128 on flex — as burn autodiff steps and as the
//! fused step — and one `fit` epoch over 1,024 pairs.
//!
//! ```text
//! cargo bench --bench train_step
//! ```

use std::hint::black_box;
use std::time::Duration;

use burn::optim::GradientsParams;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use siamese::data::{labels_tensor, to_tensor};
use siamese::prelude::*;
use siamese::synthetic::random_pairs;

const DIM: usize = 784;
const BATCH: usize = 128;

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BATCH as u64));

    // A bare burn step on one ready-made batch: forward, loss, backward, RMSprop update.
    let device = Device::flex().autodiff();
    let config = ModelConfig::reference(DIM);
    let mut net = config.network.init(&device, 0).unwrap();
    let mut optim = config.optimizer.init().unwrap();
    let lr = config.optimizer.lr();
    let loss = config.loss;
    let (a, b, y) = random_pairs(BATCH, DIM, 1);
    let (ta, tb, ty) = (
        to_tensor(&a, &device),
        to_tensor(&b, &device),
        labels_tensor(&y, &device),
    );
    group.bench_function("reference_b128_d784", |bench| {
        bench.iter(|| {
            let d = net.forward(ta.clone(), tb.clone());
            let l = loss.forward(d, ty.clone());
            let grads = GradientsParams::from_grads(l.backward(), &net);
            net = optim.step(lr, net.clone(), grads);
        })
    });

    // The fused step (src/fused/) on the same batch: what `fit` runs for this model.
    let mut trainer = siamese::fused::FusedTrainer::new(
        &config.network.init(&device, 0).unwrap(),
        None,
        siamese::fused::FusedHyper {
            optimizer: siamese::fused::FusedOptimizer::from_config(&config.optimizer).unwrap(),
            loss: siamese::loss::LossKind::Contrastive,
            margin: 1.0,
            miner: None,
        },
    )
    .unwrap();
    group.bench_function("fused_reference_b128_d784", |bench| {
        bench.iter(|| {
            let fill = |r: usize, row: &mut [f32]| {
                row.copy_from_slice(if r < BATCH {
                    a.row(r)
                } else {
                    b.row(r - BATCH)
                })
            };
            black_box(
                trainer
                    .step(siamese::fused::HostBatch::Pairs(&y), &fill)
                    .unwrap(),
            )
        })
    });

    // `Siamese::fit` for one epoch of 1,024 shuffled pairs (8 steps plus the loop's own work).
    let pairs = 1024;
    let (a, b, y) = random_pairs(pairs, DIM, 2);
    let mut model = Siamese::reference(DIM, 0).unwrap();
    let options = FitOptions {
        verbose: false,
        ..FitOptions::new(1, BATCH)
    };
    group.throughput(Throughput::Elements(pairs as u64));
    group.bench_function("fit_epoch_1024_pairs_b128_d784", |bench| {
        bench.iter(|| black_box(model.fit(&a, &b, &y, &options).unwrap()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: the plotters backend needs system fonts, which minimal machines lack.
    config = Criterion::default().without_plots();
    targets = train_step
}
criterion_main!(benches);
