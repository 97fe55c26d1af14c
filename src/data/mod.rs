//! Host-side data: dense matrices of samples and the checks every input goes through.
//!
//! A [`Matrix`] holds `rows × cols` `f32` values row-major: one sample per row. Pairs are two
//! matrices with the same shape plus one label per row (1 = similar, 0 = dissimilar).

pub mod pair_data;
pub mod pairs;
pub mod prepare;
pub mod sampler;
pub mod spec;
pub mod split;

use crate::error::{Result, SiameseError};

pub mod augment;
pub mod idx;
pub mod images;
pub mod info;
pub mod npy;
pub mod pairlist;
pub mod table;
pub mod text;
pub mod tokenize;

pub use images::{ImageOptions, LabelledSamples};
pub use pair_data::{PairData, Pairs, PairsRef};
pub use pairlist::LabelConvention;
pub use spec::{DataConfig, DataSource, Pairing, SplitBy};
pub use text::TextPair;

/// A dense row-major `f32` matrix: `rows` samples of `cols` features.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// Wraps `data` as a `rows × cols` matrix; errors if the length is not `rows · cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(SiameseError::shape(
                "matrix data",
                format!("{rows} × {cols} = {} values", rows * cols),
                format!("{} values", data.len()),
            ));
        }
        Ok(Self { rows, cols, data })
    }

    /// A matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Builds a matrix from equally long rows.
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (i, row) in rows.iter().enumerate() {
            if row.len() != cols {
                return Err(SiameseError::shape(
                    format!("row {i}"),
                    format!("{cols} values like row 0"),
                    format!("{} values", row.len()),
                ));
            }
            data.extend_from_slice(row);
        }
        Self::new(rows.len(), cols, data)
    }

    /// Number of rows (samples).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (features per sample).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// The values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Consumes the matrix into its row-major values.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// A new matrix made of the given rows, in order.
    pub fn select_rows(&self, indices: &[usize]) -> Self {
        let mut data = Vec::with_capacity(indices.len() * self.cols);
        for &i in indices {
            data.extend_from_slice(self.row(i));
        }
        Self {
            rows: indices.len(),
            cols: self.cols,
            data,
        }
    }

    /// Rows `start..end`.
    pub fn slice_rows(&self, start: usize, end: usize) -> Self {
        Self {
            rows: end - start,
            cols: self.cols,
            data: self.data[start * self.cols..end * self.cols].to_vec(),
        }
    }

    /// Errors naming `what` and the first position holding NaN or ±Inf.
    pub fn check_finite(&self, what: &str) -> Result<()> {
        match crate::simd::first_non_finite(&self.data) {
            None => Ok(()),
            Some(p) => Err(SiameseError::invalid(
                what,
                format!(
                    "row {}, column {} is {}; inputs must be finite numbers",
                    p / self.cols.max(1),
                    p % self.cols.max(1),
                    self.data[p]
                ),
            )),
        }
    }
}

/// Checks that `a` and `b` form pairs with `labels` for a model taking `input_dim` features:
/// same shapes, one label per row, labels in `[0, 1]`, finite inputs.
pub fn check_pairs(a: &Matrix, b: &Matrix, labels: Option<&[f32]>, input_dim: usize) -> Result<()> {
    check_pair_shapes(a, b, labels, input_dim)?;
    a.check_finite("input a")?;
    b.check_finite("input b")
}

/// Checks that the rows of `x` have `input_dim` features (a model's input width); the error
/// names `what` (a file, a field) and both widths. The one width check of the crate.
pub fn check_width(x: &Matrix, input_dim: usize, what: &str) -> Result<()> {
    if x.cols() != input_dim {
        return Err(SiameseError::shape(
            what,
            format!("{input_dim} features per row (the model's input_dim)"),
            format!("{} features", x.cols()),
        ));
    }
    Ok(())
}

/// Checks that `b` has the shape of `a` (the two inputs of pairs).
pub fn check_same_shape(a: &Matrix, b: &Matrix) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(SiameseError::shape(
            "input b",
            format!("the shape of input a, [{}, {}]", a.rows(), a.cols()),
            format!("[{}, {}]", b.rows(), b.cols()),
        ));
    }
    Ok(())
}

/// [`check_pairs`] without the scan for NaN and ±∞ (for callers that check each block of
/// rows as they read it).
pub fn check_pair_shapes(
    a: &Matrix,
    b: &Matrix,
    labels: Option<&[f32]>,
    input_dim: usize,
) -> Result<()> {
    check_same_shape(a, b)?;
    check_width(a, input_dim, "inputs")?;
    if a.rows() == 0 {
        return Err(SiameseError::Empty("no pairs were given".into()));
    }
    if let Some(labels) = labels {
        if labels.len() != a.rows() {
            return Err(SiameseError::shape(
                "labels",
                format!("one label per pair ({})", a.rows()),
                format!("{} labels", labels.len()),
            ));
        }
        check_labels("labels", labels)?;
    }
    Ok(())
}

/// Checks that every label is a finite number in `[0, 1]` (1 = similar, 0 = dissimilar).
///
/// The error names `what` (e.g. the file the labels came from) and the first bad index.
pub fn check_labels(what: &str, labels: &[f32]) -> Result<()> {
    match labels
        .iter()
        .position(|y| !(y.is_finite() && (0.0..=1.0).contains(y)))
    {
        None => Ok(()),
        Some(i) => Err(SiameseError::invalid(
            what,
            format!(
                "label {i} is {}; labels must be in [0, 1] (1 = similar, 0 = dissimilar)",
                labels[i]
            ),
        )),
    }
}

/// Whether a label says "similar": `y ≥ 0.5` (labels are in `[0, 1]`, 1 = similar).
pub fn label_is_similar(y: f32) -> bool {
    y >= 0.5
}

/// The decision rule of every accuracy in this crate: a pair at distance `d` is predicted
/// similar when `d < threshold`.
pub fn predicts_similar(d: f32, threshold: f32) -> bool {
    d < threshold
}

/// Fraction of pairs whose prediction ([`predicts_similar`]) matches the label
/// ([`label_is_similar`]); 0 for no pairs.
pub fn pair_accuracy(distances: &[f32], labels: &[f32], threshold: f32) -> f32 {
    let correct = distances
        .iter()
        .zip(labels)
        .filter(|&(&d, &y)| predicts_similar(d, threshold) == label_is_similar(y))
        .count();
    correct as f32 / labels.len().max(1) as f32
}

/// Reads a float tensor of any rank back to the host, row-major.
pub fn read_tensor<const D: usize>(t: burn::tensor::Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| SiameseError::Runtime(format!("cannot read a tensor back: {e:?}")))
}

/// Copies a matrix into a `[rows, cols]` tensor on `device`.
pub fn to_tensor(m: &Matrix, device: &burn::tensor::Device) -> burn::tensor::Tensor<2> {
    burn::tensor::Tensor::from_data(
        burn::tensor::TensorData::new(m.as_slice().to_vec(), [m.rows(), m.cols()]),
        device,
    )
}

/// Moves a matrix into a `[rows, cols]` tensor on `device` (no host copy).
pub fn into_tensor(m: Matrix, device: &burn::tensor::Device) -> burn::tensor::Tensor<2> {
    let shape = [m.rows(), m.cols()];
    burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(m.into_vec(), shape), device)
}

/// Copies labels into a `[n, 1]` tensor on `device`.
pub fn labels_tensor(labels: &[f32], device: &burn::tensor::Device) -> burn::tensor::Tensor<2> {
    burn::tensor::Tensor::from_data(
        burn::tensor::TensorData::new(labels.to_vec(), [labels.len(), 1]),
        device,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_outside_unit_interval_are_rejected() {
        assert!(check_labels("labels", &[0.0, 1.0, 0.5]).is_ok());
        let err = check_labels("pairs.csv", &[0.0, 2.0])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pairs.csv") && err.contains("label 1 is 2"),
            "{err}"
        );
        assert!(check_labels("l", &[-1.0]).is_err());
        assert!(check_labels("l", &[f32::NAN]).is_err());
    }

    #[test]
    fn shapes_are_checked() {
        assert!(Matrix::new(2, 3, vec![0.0; 5]).is_err());
        let a = Matrix::zeros(4, 3);
        let b = Matrix::zeros(4, 2);
        let err = check_pairs(&a, &b, None, 3).unwrap_err().to_string();
        assert!(err.contains("input b") && err.contains("[4, 2]"), "{err}");
        let err = check_pairs(&a, &a, Some(&[1.0; 3]), 3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("labels") && err.contains("3 labels"), "{err}");
        let err = check_pairs(&a, &a, None, 5).unwrap_err().to_string();
        assert!(err.contains("5 features"), "{err}");
        let err = check_pairs(&a, &a, Some(&[0.0, 1.0, 3.0, 0.0]), 3).unwrap_err();
        assert!(err.to_string().contains("label 2 is 3"), "{err}");
        assert!(check_pairs(&a, &a, Some(&[0.0, 1.0, 1.0, 0.0]), 3).is_ok());
    }

    #[test]
    fn non_finite_inputs_are_located() {
        let mut v = vec![0.0; 6];
        v[4] = f32::NAN;
        let m = Matrix::new(2, 3, v).unwrap();
        let err = m.check_finite("input a").unwrap_err().to_string();
        assert!(err.contains("row 1, column 1"), "{err}");
    }

    #[test]
    fn select_and_slice_rows() {
        let m = Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0, 4.0], vec![5.0, 6.0]]).unwrap();
        assert_eq!(m.select_rows(&[2, 0]).as_slice(), &[5.0, 6.0, 1.0, 2.0]);
        assert_eq!(m.slice_rows(1, 3).as_slice(), &[3.0, 4.0, 5.0, 6.0]);
        assert!(Matrix::from_rows(&[vec![1.0], vec![1.0, 2.0]]).is_err());
    }
}
