//! Distance layers: compare two embeddings row by row.
//!
//! Every distance maps `a: [batch, dim]` and `b: [batch, dim]` to `d: [batch, 1]`.
//!
//! | distance    | formula                                              |
//! |-------------|------------------------------------------------------|
//! | `euclidean` | `d = √max(Σᵢ (aᵢ − bᵢ)², ε)` with `ε = 1e-7` (reference) |
//! | `manhattan` | `d = Σᵢ |aᵢ − bᵢ|`                                    |
//! | `cosine`    | `d = 1 − a·b / max(‖a‖·‖b‖, ε)`                      |
//!
//! The Euclidean clamp is the one in the Keras examples (`K.sqrt(K.maximum(sum_square,
//! K.epsilon()))`): without it the gradient of `√x` at `x = 0` is infinite and identical inputs
//! poison training with NaN.
//!
//! ```
//! use siamese::distance::Distance;
//! use siamese::burn::tensor::{Device, Tensor};
//!
//! let device = Device::flex();
//! let a = Tensor::<2>::from_floats([[0.0, 0.0], [1.0, 1.0]], &device);
//! let b = Tensor::<2>::from_floats([[3.0, 4.0], [1.0, 1.0]], &device);
//! let d = Distance::Euclidean.forward(a, b).into_data().try_to_vec::<f32>().unwrap();
//! assert_eq!(d[0], 5.0);
//! assert!((d[1] - 1e-7f32.sqrt()).abs() < 1e-9);
//! ```

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// The `ε` used by the Euclidean and cosine distances (Keras's `backend.epsilon()`).
pub const EPSILON: f32 = 1e-7;

/// `max(x, min)` that keeps NaN, as burn's `clamp_min` does (`f32::max` would return `min`
/// and hide a diverged model's NaN embeddings).
pub trait ClampMinNan {
    /// `min` where `x < min`, else `x` (NaN stays NaN).
    fn clamp_min_nan(self, min: Self) -> Self;
}

impl ClampMinNan for f32 {
    fn clamp_min_nan(self, min: f32) -> f32 {
        if self < min { min } else { self }
    }
}

/// How two embeddings are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// `√max(Σ(a − b)², ε)`: the reference.
    #[default]
    Euclidean,
    /// `Σ|a − b|`.
    Manhattan,
    /// `1 − cos(a, b)`, in `[0, 2]`.
    Cosine,
}

impl Distance {
    /// Distances between matching rows of `a` and `b`: `[batch, dim] × [batch, dim] → [batch, 1]`.
    pub fn forward(self, a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Euclidean => (a - b).square().sum_dim(1).clamp_min(EPSILON).sqrt(),
            Self::Manhattan => (a - b).abs().sum_dim(1),
            Self::Cosine => {
                let dot = (a.clone() * b.clone()).sum_dim(1);
                let na = a.square().sum_dim(1).sqrt();
                let nb = b.square().sum_dim(1).sqrt();
                dot.div((na * nb).clamp_min(EPSILON)).neg().add_scalar(1.0)
            }
        }
    }

    /// The same distance between two embeddings held on the host (one pair, no tensors).
    pub fn between(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Self::Euclidean => a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .clamp_min_nan(EPSILON)
                .sqrt(),
            Self::Manhattan => a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum(),
            Self::Cosine => {
                let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
                let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
                1.0 - dot / (na * nb).clamp_min_nan(EPSILON)
            }
        }
    }

    /// Name used in summaries and configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Euclidean => "euclidean",
            Self::Manhattan => "manhattan",
            Self::Cosine => "cosine",
        }
    }
}

impl std::str::FromStr for Distance {
    type Err = crate::error::SiameseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "euclidean" | "l2" => Ok(Self::Euclidean),
            "manhattan" | "l1" => Ok(Self::Manhattan),
            "cosine" => Ok(Self::Cosine),
            other => Err(crate::error::SiameseError::config(
                "distance",
                format!("unknown distance `{other}`; expected euclidean, manhattan or cosine"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    const A: [[f32; 3]; 3] = [[0.1, -0.4, 0.7], [1.0, 2.0, 3.0], [0.3, 0.3, -0.2]];
    const B: [[f32; 3]; 3] = [[0.5, 0.2, -0.1], [1.0, 2.0, 3.0], [-0.6, 0.9, 0.4]];

    fn values(distance: Distance, a: [[f32; 3]; 3], b: [[f32; 3]; 3]) -> Vec<f32> {
        let device = Device::flex();
        distance
            .forward(
                Tensor::from_floats(a, &device),
                Tensor::from_floats(b, &device),
            )
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    /// Values computed by hand in f64 from the formulas in the module docs.
    fn reference(distance: Distance, a: &[f32; 3], b: &[f32; 3]) -> f32 {
        let a: Vec<f64> = a.iter().map(|&v| v as f64).collect();
        let b: Vec<f64> = b.iter().map(|&v| v as f64).collect();
        let r = match distance {
            Distance::Euclidean => a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f64>()
                .max(EPSILON as f64)
                .sqrt(),
            Distance::Manhattan => a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum(),
            Distance::Cosine => {
                let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
                let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
                let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
                1.0 - dot / (na * nb).max(EPSILON as f64)
            }
        };
        r as f32
    }

    #[test]
    fn values_match_formulas_and_shape() {
        for distance in [Distance::Euclidean, Distance::Manhattan, Distance::Cosine] {
            let got = values(distance, A, B);
            assert_eq!(got.len(), 3);
            for i in 0..3 {
                let want = reference(distance, &A[i], &B[i]);
                assert!((distance.between(&A[i], &B[i]) - want).abs() < 1e-5);
                assert!(
                    (got[i] - want).abs() < 1e-5,
                    "{distance:?} row {i}: {} vs {want}",
                    got[i]
                );
            }
        }
        // Hand-computed: row 0 Euclidean = √(0.16 + 0.36 + 0.64) = √1.16.
        assert!((values(Distance::Euclidean, A, B)[0] - 1.16f32.sqrt()).abs() < 1e-6);
        assert!((values(Distance::Manhattan, A, B)[0] - 1.8).abs() < 1e-6);
        assert_eq!(values(Distance::Euclidean, A, B)[1], EPSILON.sqrt());
        assert!(values(Distance::Cosine, A, B)[1].abs() < 1e-6);
        let device = Device::flex();
        let d = Distance::Cosine.forward(
            Tensor::<2>::zeros([2, 3], &device),
            Tensor::<2>::zeros([2, 3], &device),
        );
        assert_eq!(d.dims(), [2, 1]);
    }

    /// Gradient of Σ d(a, b) with respect to `a`, by autodiff.
    fn autodiff_grad(distance: Distance, a: [[f32; 3]; 3], b: [[f32; 3]; 3]) -> Vec<f32> {
        let device = Device::flex().autodiff();
        let ta = Tensor::<2>::from_data(TensorData::from(a), &device).require_grad();
        let tb = Tensor::<2>::from_data(TensorData::from(b), &device);
        let grads = distance.forward(ta.clone(), tb).sum().backward();
        ta.grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn gradients_match_finite_differences() {
        let h = 1e-3f32;
        for distance in [Distance::Euclidean, Distance::Manhattan, Distance::Cosine] {
            let grad = autodiff_grad(distance, A, B);
            for (i, row) in [0usize, 2].into_iter().enumerate() {
                let _ = i;
                for j in 0..3 {
                    let mut plus = A[row];
                    let mut minus = A[row];
                    plus[j] += h;
                    minus[j] -= h;
                    let fd = (reference(distance, &plus, &B[row])
                        - reference(distance, &minus, &B[row]))
                        / (2.0 * h);
                    let g = grad[row * 3 + j];
                    assert!(
                        (g - fd).abs() < 2e-3,
                        "{distance:?} [{row},{j}]: {g} vs {fd}"
                    );
                }
            }
        }
    }

    #[test]
    fn euclidean_gradient_is_finite_at_zero_distance() {
        let grad = autodiff_grad(Distance::Euclidean, A, A);
        assert!(grad.iter().all(|g| g.is_finite()), "{grad:?}");
        // Below the clamp the distance is constant, so its gradient is exactly zero.
        assert!(grad.iter().all(|&g| g == 0.0), "{grad:?}");
    }

    #[test]
    fn parses_names() {
        assert_eq!("L2".parse::<Distance>().unwrap(), Distance::Euclidean);
        assert!(
            "hamming"
                .parse::<Distance>()
                .unwrap_err()
                .to_string()
                .contains("distance")
        );
    }
}
