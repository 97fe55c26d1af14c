//! Writing matrices as `float32` `.npy` files.

use std::io;
use std::path::Path;

use npyz::{DType, TypeStr, WriterBuilder};

use crate::data::Matrix;
use crate::error::{Result, SiameseError};

/// Writes `m` as a 2-D C-order `float32` (`<f4`) `.npy` file, atomically.
///
/// The file is first written to a temporary sibling and then renamed over `path`.
///
/// # Errors
/// [`SiameseError::Io`] if the file cannot be written.
pub fn write_matrix(path: &Path, m: &Matrix) -> Result<()> {
    let bytes = npy_bytes(m).map_err(|e| SiameseError::io(path, e))?;
    crate::atomic::write_file_atomic(path, &bytes)
}

/// The bytes of a 2-D `<f4` `.npy` file holding `m` (header padded to 64 bytes as NumPy does).
fn npy_bytes(m: &Matrix) -> io::Result<Vec<u8>> {
    let f4: TypeStr = "<f4".parse().map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(128 + 4 * m.as_slice().len());
    let mut writer = npyz::WriteOptions::new()
        .dtype(DType::new_scalar(f4))
        .shape(&[m.rows() as u64, m.cols() as u64])
        .writer(&mut out)
        .begin_nd()?;
    writer.extend(m.as_slice().iter().copied())?;
    writer.finish()?;
    Ok(out)
}
