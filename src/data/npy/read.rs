//! Decoding whole `.npy` arrays into `f32` values: matrices and label vectors.

use std::fs;
use std::io;
use std::path::Path;

use npyz::{Deserialize, NpyFile, TypeChar, TypeStr};

use super::header::{NpyInfo, Parsed, SUPPORTED, numpy_name, parse_header, shape_string};
use crate::data::Matrix;
use crate::error::{Result, SiameseError};

/// A decoded array: its header and its values converted to `f32`, in C order.
#[derive(Debug, Clone)]
pub(super) struct NpyArray {
    info: NpyInfo,
    data: Vec<f32>,
}

impl NpyArray {
    /// `d0 × (d1 · … · dk)`; 1-D → `n × 1`; 0-D → `1 × 1`.
    pub(super) fn into_matrix(self) -> Result<Matrix> {
        let (rows, cols) = match self.info.shape.split_first() {
            None => (1, 1),
            Some((&n, [])) => (n, 1),
            Some((&n, rest)) => (n, rest.iter().product()),
        };
        Matrix::new(rows, cols, self.data)
    }

    /// The values of a 1-D or `n × 1` array; `what` names the source in the error.
    pub(super) fn into_labels(self, what: &Path) -> Result<Vec<f32>> {
        match self.info.shape.as_slice() {
            [_] | [_, 1] => Ok(self.data),
            shape => Err(SiameseError::format(
                what,
                format!(
                    "labels must be a 1-D array or an n × 1 column, got shape {}",
                    shape_string(shape)
                ),
            )),
        }
    }
}

/// Reads all `count` elements of `npy` (of element type `ty`) and converts them to `f32`.
fn decode(ty: &TypeStr, npy: NpyFile<&[u8]>, count: usize) -> io::Result<Vec<f32>> {
    fn all<T: Deserialize>(
        npy: NpyFile<&[u8]>,
        count: usize,
        to_f32: impl Fn(T) -> f32,
    ) -> io::Result<Vec<f32>> {
        let mut out = Vec::with_capacity(count);
        for v in npy.data::<T>().map_err(io::Error::other)? {
            out.push(to_f32(v?));
        }
        Ok(out)
    }
    match (ty.type_char(), ty.size_field()) {
        (TypeChar::Float, 4) => all(npy, count, |v: f32| v),
        (TypeChar::Float, 8) => all(npy, count, |v: f64| v as f32),
        (TypeChar::Uint, 1) => all(npy, count, |v: u8| f32::from(v)),
        (TypeChar::Int, 1) => all(npy, count, |v: i8| f32::from(v)),
        (TypeChar::Uint, 2) => all(npy, count, |v: u16| f32::from(v)),
        (TypeChar::Int, 2) => all(npy, count, |v: i16| f32::from(v)),
        (TypeChar::Uint, 4) => all(npy, count, |v: u32| v as f32),
        (TypeChar::Int, 4) => all(npy, count, |v: i32| v as f32),
        (TypeChar::Uint, 8) => all(npy, count, |v: u64| v as f32),
        (TypeChar::Int, 8) => all(npy, count, |v: i64| v as f32),
        (TypeChar::Bool, 1) => all(npy, count, |v: bool| f32::from(u8::from(v))),
        _ => Err(io::Error::other(format!("unsupported dtype '{ty}'"))),
    }
}

/// Reads a whole file, mapping the error to [`SiameseError::Io`] naming it.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| SiameseError::io(path, e))
}

/// Decodes a complete `.npy` image held in `bytes`; `path` names it in errors.
pub(super) fn parse_npy(path: &Path, bytes: &[u8]) -> Result<NpyArray> {
    let Parsed {
        info,
        ty,
        header,
        data,
    } = parse_header(path, bytes)?;
    let fmt = |m: String| SiameseError::format(path, m);
    let name = numpy_name(&ty).ok_or_else(|| {
        fmt(format!(
            "unsupported dtype '{}'; supported: {SUPPORTED}",
            info.descr
        ))
    })?;
    if info.fortran_order && info.shape.len() > 1 {
        return Err(fmt(format!(
            "the array {} is stored in Fortran (column-major) order, which is not supported; \
             save it from NumPy with np.ascontiguousarray(x) first",
            info.shape_string()
        )));
    }
    // npyz multiplies the shape without checking; do it here before trusting the count.
    let count = info
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let sizes = count.and_then(|n| Some((n, n.checked_mul(ty.num_bytes()?)?)));
    let Some((count, nbytes)) = sizes else {
        return Err(fmt(format!(
            "the shape {} is too large to hold in memory; the header is corrupt",
            info.shape_string()
        )));
    };
    if data.len() < nbytes {
        return Err(fmt(format!(
            "truncated .npy file: shape {} of {name} needs {nbytes} data bytes but only {} are \
             present",
            info.shape_string(),
            data.len()
        )));
    }
    if data.len() > nbytes {
        return Err(fmt(format!(
            "{} unexpected bytes after the data of shape {} ({name}); the file is corrupt",
            data.len() - nbytes,
            info.shape_string(),
        )));
    }
    let values = decode(&ty, NpyFile::with_header(header, data), count)
        .map_err(|e| fmt(format!("bad {name} data: {e}")))?;
    Ok(NpyArray { info, data: values })
}

/// Reads an `.npy` array as a matrix of `d0 × (d1 · … · dk)` `f32` values.
///
/// A 1-D array of `n` becomes `n × 1`, a 0-D scalar `1 × 1`; see the [module docs](super) for
/// the supported dtypes.
///
/// # Errors
/// [`SiameseError::Io`] for a missing or unreadable file; [`SiameseError::Format`] naming the
/// file for a bad magic or header, an unsupported dtype (listing the supported ones), Fortran
/// order, or data shorter (`truncated`) or longer than the header says.
pub fn read_matrix(path: &Path) -> Result<Matrix> {
    parse_npy(path, &read_file(path)?)?.into_matrix()
}

/// Reads a label vector: a 1-D array of `n` or an `n × 1` array, as `f32`.
///
/// Values are not range-checked here (see [`crate::data::check_labels`]).
///
/// # Errors
/// As [`read_matrix`], plus a [`SiameseError::Format`] naming the shape for any other shape.
pub fn read_labels(path: &Path) -> Result<Vec<f32>> {
    parse_npy(path, &read_file(path)?)?.into_labels(path)
}
