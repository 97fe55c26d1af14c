//! The fused CPU path for MLP Siamese networks: the same model, computed without a graph.
//!
//! On the flex backend every tensor op of the reference model is its own pass over memory, and
//! autodiff records and replays each one; at batch 1024 that framework work costs more than the
//! matrix products themselves. For a Siamese network whose encoder is an MLP (ReLU or linear
//! activations, optional dropout) on the flex CPU device, this module computes the very same
//! function with hand-fused kernels around `gemm`, the crate flex itself calls:
//!
//! ```text
//! forward, layer l:   Hₗ = act(Hₗ₋₁·Wₗ + bₗ) ⊙ Mₗ          (bias, activation and dropout mask Mₗ in one pass)
//! distance:           d = √max(Σ(eₐ − e_b)², ε)
//! contrastive loss:   L = mean(y·d² + (1 − y)·max(0, m − d)²)
//! ∂L/∂d = (2/B)·(y·d − (1 − y)·max(0, m − d)),  ∂L/∂eₐ = ∂L/∂d · (eₐ − e_b)/d = −∂L/∂e_b
//! backward, layer l:  Gₗ = ∂L/∂Hₗ ⊙ act′ ⊙ Mₗ,   ∂L/∂Wₗ = Hₗ₋₁ᵀ·Gₗ,   ∂L/∂bₗ = Σ_rows Gₗ,
//!                     ∂L/∂Hₗ₋₁ = Gₗ·Wₗᵀ
//! RMSprop (Keras):    v ← ρ·v + (1 − ρ)·g²,   w ← w − lr·g/√(v + ε)
//!                     (or burn's Adam or SGD, with the formulas of `crate::optim`)
//! ```
//!
//! Work is split over rows, not inside each product: every rayon thread runs whole layers on
//! its own slice of the batch (both branches stacked, `[2·batch, input_dim]`, as the burn path
//! does), so there is one fork-join per phase instead of one per op. Per-thread weight
//! gradients are summed in the optimizer pass, so float rounding depends on the number of
//! threads: a fixed `RAYON_NUM_THREADS` gives bit-identical runs.
//!
//! Inference (`predict`, `evaluate`, `embed`) runs on weights packed once per model for an
//! AVX-512 kernel (`packed`), where the CPU has AVX-512, and through `gemm` otherwise. Inputs
//! are checked for NaN and ±∞ without a pass of their own: such a value makes every
//! first-layer pre-activation of its row non-finite, so only a block where that happens is
//! scanned to name the bad value. Convolutional encoders get host inference in [`conv`] (im2col
//! and the same kernel); [`HostEncoder`] picks the host path a model can take. Convolutional
//! and BERT encoders also train on the host ([`ConvTrainer`], [`BertTrainer`]: forward and
//! backward over unpadded token blocks); [`HostTrainer`] picks the trainer.
//!
//! The burn module stays the source of truth: weights are read from it when a `fit` or
//! `predict` starts and written back (same parameter ids) after every epoch. The results
//! match the burn path to float rounding (see the tests); `Siamese::set_fused(false)` runs
//! everything through burn instead.

pub mod bert;
mod bert_train;
pub mod conv;
mod conv_train;
mod host;
mod loss;
mod mlp;
mod optimizer;
mod packed;
mod trainer;

pub use bert::FusedBert;
pub use bert_train::BertTrainer;
pub use conv::FusedConv;
pub use conv_train::ConvTrainer;
pub use host::{HostEncoder, HostHead};
pub use loss::HostBatch;
pub use mlp::FusedMlp;
pub use optimizer::{FusedOptimizer, OptimizerState, OptimizerStateParts};
pub use trainer::{FusedHyper, FusedTrainer, HostTrainer, StepOutput};

/// Whether a new model uses the fused path where it covers the model: always in the library
/// (see `Siamese::set_fused`); the crate's own unit tests read `SIAMESE_FUSED=0` so that CI can
/// run them once through burn alone.
pub fn enabled_by_default() -> bool {
    #[cfg(test)]
    {
        !matches!(
            std::env::var("SIAMESE_FUSED").as_deref(),
            Ok("0" | "off" | "false")
        )
    }
    #[cfg(not(test))]
    true
}

#[cfg(test)]
mod tests;
