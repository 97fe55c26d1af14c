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

/// A task with hidden classes: `classes` random centres in `[0, 1)^dim`; a sample is a centre
/// plus uniform noise in `[−noise, noise]` per feature. Similar = same class.
///
/// Unlike [`random_pairs`], raw distances do not separate the pairs at the 0.5 threshold:
/// the model has to learn which differences matter.
#[derive(Debug, Clone)]
pub struct ClassTask {
    centres: Vec<Vec<f32>>,
    noise: f32,
}

impl ClassTask {
    /// Draws the class centres from `seed`.
    pub fn new(classes: usize, dim: usize, noise: f32, seed: u64) -> Self {
        assert!(classes >= 2, "a class task needs at least two classes");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = (0..classes)
            .map(|_| (0..dim).map(|_| rng.random::<f32>()).collect())
            .collect();
        Self { centres, noise }
    }

    /// `n` fresh samples drawn from `seed`, with their classes (`n / classes` or one more per
    /// class, classes in turn).
    pub fn samples(&self, n: usize, seed: u64) -> (Matrix, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let classes = self.centres.len();
        let dim = self.centres[0].len();
        let labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
        let v: Vec<f32> = labels
            .iter()
            .flat_map(|&c| {
                self.centres[c]
                    .iter()
                    .map(|&m| m + rng.random_range(-self.noise..=self.noise))
                    .collect::<Vec<_>>()
            })
            .collect();
        (Matrix::new(n, dim, v).expect("n × dim"), labels)
    }

    /// `n` balanced pairs of fresh samples drawn from `seed` (even rows similar, odd rows not).
    pub fn pairs(&self, n: usize, seed: u64) -> (Matrix, Matrix, Vec<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let classes = self.centres.len();
        let dim = self.centres[0].len();
        let noise = self.noise;
        let sample = |rng: &mut ChaCha8Rng, c: usize| -> Vec<f32> {
            self.centres[c]
                .iter()
                .map(|&m| m + rng.random_range(-noise..=noise))
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
}
