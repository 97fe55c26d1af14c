//! Labelled pairs: a directory of `a.npy`, `b.npy` and `labels.npy`, or an `.npz` archive.

use std::path::Path;

use super::npz::read_npz_arrays;
use super::read::{read_labels, read_matrix};
use crate::data::Pairs;
use crate::error::{Result, SiameseError};

/// Reads labelled pairs: a directory holding `a.npy`, `b.npy` and `labels.npy`, or an `.npz`
/// with members `a`, `b` and `labels`.
///
/// `a` and `b` are `[n, …]` arrays of the same shape (flattened to `n × d`), `labels` a 1-D or
/// `n × 1` array in `[0, 1]` (1 = similar).
///
/// # Errors
/// Besides the file errors of [`read_matrix`]: a [`SiameseError::Shape`] when `a` and `b`
/// differ in shape (naming both) or the label count differs from the row count (naming both);
/// a [`SiameseError::InvalidValue`] naming the file for a label outside `[0, 1]` or a NaN/±Inf
/// input; [`SiameseError::Empty`] when there are no pairs.
pub fn read_pairs(path: &Path) -> Result<Pairs> {
    let (a, b, labels, names) = if path.is_dir() {
        let names = ["a.npy", "b.npy", "labels.npy"].map(|f| path.join(f));
        let a = read_matrix(&names[0])?;
        let b = read_matrix(&names[1])?;
        let labels = read_labels(&names[2])?;
        (a, b, labels, names.map(|p| p.display().to_string()))
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"))
    {
        let mut arrays = read_npz_arrays(path)?;
        let present = arrays.keys().cloned().collect::<Vec<_>>().join(", ");
        let mut take = |k: &str| {
            arrays.remove(k).ok_or_else(|| {
                SiameseError::format(
                    path,
                    format!("no member '{k}' (pairs need a, b and labels; found: {present})"),
                )
            })
        };
        let (a, b, labels) = (take("a")?, take("b")?, take("labels")?);
        let names = ["a", "b", "labels"].map(|k| format!("{}[{k}]", path.display()));
        let labels = labels.into_labels(Path::new(&names[2]))?;
        (a.into_matrix()?, b.into_matrix()?, labels, names)
    } else {
        return Err(SiameseError::format(
            path,
            "pairs must be a directory with a.npy, b.npy and labels.npy, or an .npz file \
             with members a, b and labels",
        ));
    };
    if a.shape() != b.shape() {
        return Err(SiameseError::shape(
            &names[1],
            format!("the shape of {}, [{}, {}]", names[0], a.rows(), a.cols()),
            format!("[{}, {}]", b.rows(), b.cols()),
        ));
    }
    if labels.len() != a.rows() {
        return Err(SiameseError::shape(
            &names[2],
            format!("one label per pair: {} rows in {}", a.rows(), names[0]),
            format!("{} labels", labels.len()),
        ));
    }
    if a.rows() == 0 {
        return Err(SiameseError::Empty(format!(
            "no pairs in {}",
            path.display()
        )));
    }
    crate::data::check_labels(&names[2], &labels)?;
    a.check_finite(&names[0])?;
    b.check_finite(&names[1])?;
    Ok(Pairs { a, b, labels })
}
