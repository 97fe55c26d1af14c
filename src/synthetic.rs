//! Synthetic data for examples, tests and benchmarks.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::Matrix;

/// `n` pairs of uniform random `dim`-vectors in `[0, 1)` with random 0/1 labels — the
/// reference program's data (`np.random.rand(n, 2, dim)`, `np.random.randint(0, 2, n)`).
pub fn random_pairs(n: usize, dim: usize, seed: u64) -> (Matrix, Matrix, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draw = |rows: usize| {
        let v: Vec<f32> = (0..rows * dim).map(|_| rng.random::<f32>()).collect();
        Matrix::new(rows, dim, v).expect("length is rows × dim")
    };
    let a = draw(n);
    let b = draw(n);
    let labels = (0..n).map(|_| rng.random_range(0..2) as f32).collect();
    (a, b, labels)
}

/// A task with hidden classes: `classes` random centres in `[0, 1)^dim`, samples are a centre
/// plus uniform noise in `[-noise, noise]`; returns `n` balanced pairs (label 1 = same class).
///
/// Unlike [`random_pairs`], random pairs here are not already beyond the margin: the raw
/// Euclidean distance of two samples of the same class and of different classes overlap
/// unless the model learns which directions matter.
pub fn class_pairs(
    n: usize,
    dim: usize,
    classes: usize,
    noise: f32,
    seed: u64,
) -> (Matrix, Matrix, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..classes)
        .map(|_| (0..dim).map(|_| rng.random::<f32>()).collect())
        .collect();
    let sample = |rng: &mut ChaCha8Rng, c: usize| -> Vec<f32> {
        centres[c]
            .iter()
            .map(|&m| m + rng.random_range(-noise..noise))
            .collect()
    };
    let (mut a, mut b, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let ca = rng.random_range(0..classes);
        let same = i % 2 == 0;
        let cb = if same {
            ca
        } else {
            (ca + rng.random_range(1..classes)) % classes
        };
        a.extend(sample(&mut rng, ca));
        b.extend(sample(&mut rng, cb));
        labels.push(if same { 1.0 } else { 0.0 });
    }
    (
        Matrix::new(n, dim, a).expect("n × dim"),
        Matrix::new(n, dim, b).expect("n × dim"),
        labels,
    )
}
