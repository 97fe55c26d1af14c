//! The first convolution as im2col + one matrix product, for a cheaper weight gradient.

use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

/// A valid-padding convolution as im2col + one matrix product:
/// `y[b, o, p] = Σ_k W[o, k]·cols[b, k, p] + bias[o]`, `cols = unfold(x)` of shape
/// `[batch, c·kh·kw, h'·w']`. Used for the first layer, whose input needs no gradient: burn's
/// convolution computes the weight gradient as another convolution (batch and channels
/// swapped), which for a first layer is one huge, badly shaped product; here it is the
/// matrix product's backward, `∂W = Σ_b ∂y_b·cols_bᵀ`.
pub(super) fn conv_as_matmul(m: &Conv2d, x: Tensor<4>, stride: usize) -> Tensor<4> {
    let [b, _, h, w] = x.dims();
    let [out_c, in_c, kh, kw] = m.weight.dims();
    let (ho, wo) = ((h - kh) / stride + 1, (w - kw) / stride + 1);
    let cols = burn::tensor::module::unfold4d(
        x,
        [kh, kw],
        burn::tensor::ops::UnfoldOptions::new([stride, stride], [0, 0], [1, 1]),
    );
    let weight = m.weight.val().reshape([1, out_c, in_c * kh * kw]);
    let mut y = weight.matmul(cols);
    if let Some(bias) = &m.bias {
        y = y + bias.val().reshape([1, out_c, 1]);
    }
    y.reshape([b, out_c, ho, wo])
}
