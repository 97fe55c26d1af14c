//! NumPy `.npy` and `.npz` files: matrices, label vectors and ready-made pairs.
//!
//! Parsing and writing are done by the [`npyz`] crate (its `npz` feature reads the zip archives
//! through the `zip` crate). An array of shape `(d0, d1, …, dk)` becomes a [`Matrix`] of
//! `d0 × (d1 · … · dk)`: one sample per first-axis index. A 1-D array of `n` becomes `n × 1`
//! and a 0-D scalar `1 × 1`.
//!
//! Supported dtypes (any byte order): `float32` (`f4`), `float64` (`f8`), `uint8` (`u1`),
//! `int8` (`i1`), `uint16` (`u2`), `int16` (`i2`), `uint32` (`u4`), `int32` (`i4`), `uint64`
//! (`u8`), `int64` (`i8`) and `bool` (`b1`); every value is converted to `f32` (`f64` and 64-bit
//! integers may lose precision). Fortran-ordered arrays, structured, string, object and complex
//! dtypes are refused with an error that names them.
//!
//! `.npz` files are zip archives of `.npy` members, stored (`np.savez`) or deflated
//! (`np.savez_compressed`); every member's CRC is checked. Members whose name does not end in
//! `.npy` are not arrays and are skipped, as `np.load` does.
//!
//! Every error is a [`SiameseError`] naming the file: a missing file is
//! [`SiameseError::Io`], a malformed one [`SiameseError::Format`] (a short file says
//! `truncated`).
//!
//! The code is split by concern: `header` checks and parses the preamble and header (dtype,
//! shape, order), `read` decodes whole arrays, `npz` reads archives, `pairs` reads labelled
//! pairs and `write` writes matrices.
//!
//! [`Matrix`]: crate::data::Matrix
//! [`SiameseError`]: crate::error::SiameseError
//! [`SiameseError::Io`]: crate::error::SiameseError::Io
//! [`SiameseError::Format`]: crate::error::SiameseError::Format

mod header;
mod npz;
mod pairs;
mod read;
mod write;

#[cfg(test)]
pub(crate) mod tests;

pub use header::{NpyInfo, read_info};
pub use npz::{read_npz, read_npz_info};
pub use pairs::read_pairs;
pub(crate) use read::read_file;
pub use read::{read_labels, read_matrix};
pub use write::write_matrix;
