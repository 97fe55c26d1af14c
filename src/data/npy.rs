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

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};

use npyz::npz::{NpzArchive, array_name_from_file_name};
use npyz::{DType, Deserialize, NpyFile, NpyHeader, Order, TypeChar, TypeStr, WriterBuilder};

use super::Matrix;
use crate::data::Pairs;
use crate::error::{Result, SiameseError};

/// The `.npy` magic string.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Largest header length accepted: NumPy's own default `max_header_size`. The header is a
/// Python literal, and parsing one costs far more per byte than reading data.
const MAX_HEADER_LEN: usize = 10_000;

/// Deepest bracket nesting accepted in a header. A plain array's header nests 2 deep (the dict
/// and the shape tuple), a structured dtype's 4 or 5. The literal parser `npyz` relies on takes
/// time exponential in the nesting of malformed input, so deeper headers are refused up front.
const MAX_NESTING: usize = 6;

/// The dtypes [`read_matrix`] accepts, for error messages.
const SUPPORTED: &str = "float32 (<f4), float64 (<f8), uint8 (|u1), int8 (|i1), uint16 (<u2), \
                         int16 (<i2), uint32 (<u4), int32 (<i4), uint64 (<u8), int64 (<i8), \
                         bool (|b1), in either byte order";

/// What an `.npy` header says: dtype string, shape and memory order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyInfo {
    /// The dtype as written in the file, e.g. `"<f4"`.
    pub descr: String,
    /// The array shape; empty for a 0-D scalar.
    pub shape: Vec<usize>,
    /// Whether the data is stored in Fortran (column-major) order.
    pub fortran_order: bool,
}

impl NpyInfo {
    /// The dtype in NumPy's words (`float32`, `uint8`, …), or the raw descr when unknown.
    pub fn dtype_name(&self) -> String {
        match self
            .descr
            .parse::<TypeStr>()
            .ok()
            .as_ref()
            .and_then(numpy_name)
        {
            Some(name) => name.to_string(),
            None => self.descr.clone(),
        }
    }

    /// The shape written as NumPy prints it: `(3, 4)`, `(5,)`, `()`.
    pub fn shape_string(&self) -> String {
        shape_string(&self.shape)
    }
}

/// A decoded array: its header and its values converted to `f32`, in C order.
#[derive(Debug, Clone)]
struct NpyArray {
    info: NpyInfo,
    data: Vec<f32>,
}

impl NpyArray {
    /// `d0 × (d1 · … · dk)`; 1-D → `n × 1`; 0-D → `1 × 1`.
    fn into_matrix(self) -> Result<Matrix> {
        let (rows, cols) = match self.info.shape.split_first() {
            None => (1, 1),
            Some((&n, [])) => (n, 1),
            Some((&n, rest)) => (n, rest.iter().product()),
        };
        Matrix::new(rows, cols, self.data)
    }

    /// The values of a 1-D or `n × 1` array; `what` names the source in the error.
    fn into_labels(self, what: &Path) -> Result<Vec<f32>> {
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

/// NumPy's name for a supported element type; `None` for the ones we cannot convert.
fn numpy_name(ty: &TypeStr) -> Option<&'static str> {
    Some(match (ty.type_char(), ty.size_field()) {
        (TypeChar::Float, 4) => "float32",
        (TypeChar::Float, 8) => "float64",
        (TypeChar::Uint, 1) => "uint8",
        (TypeChar::Int, 1) => "int8",
        (TypeChar::Uint, 2) => "uint16",
        (TypeChar::Int, 2) => "int16",
        (TypeChar::Uint, 4) => "uint32",
        (TypeChar::Int, 4) => "int32",
        (TypeChar::Uint, 8) => "uint64",
        (TypeChar::Int, 8) => "int64",
        (TypeChar::Bool, 1) => "bool",
        _ => return None,
    })
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

/// `(3, 4)`, `(5,)`, `()`.
fn shape_string(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reads a whole file, mapping the error to [`SiameseError::Io`] naming it.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| SiameseError::io(path, e))
}

// ---------------------------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------------------------

/// Checks what `npyz` takes on trust before it parses the header, and returns the header text.
///
/// `npyz` allocates whatever header length the preamble claims (up to 4 GiB), reports a file
/// shorter than the preamble as "magic not found", and parses deeply nested garbage in
/// exponential time; these cases get a clear error here instead.
fn check_preamble<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a [u8]> {
    let fmt = |m: String| SiameseError::format(path, m);
    if !bytes.starts_with(MAGIC) {
        return Err(if !bytes.is_empty() && MAGIC.starts_with(bytes) {
            fmt(format!(
                "truncated .npy file: {} bytes, shorter than the 10-byte preamble",
                bytes.len()
            ))
        } else {
            fmt("not a .npy file: it does not start with the `\\x93NUMPY` magic".into())
        });
    }
    let len_field = match bytes.get(6) {
        Some(1) => bytes
            .get(8..10)
            .map(|b| (usize::from(u16::from_le_bytes([b[0], b[1]])), 10)),
        Some(2 | 3) => bytes
            .get(8..12)
            .map(|b| (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)),
        // npyz names the unsupported version.
        Some(_) => return Ok(&[]),
        None => None,
    };
    let Some((header_len, start)) = len_field else {
        return Err(fmt(
            "truncated .npy file: the preamble ends before the header length".into(),
        ));
    };
    if header_len > MAX_HEADER_LEN {
        return Err(fmt(format!(
            "the .npy header claims {header_len} bytes, more than the {MAX_HEADER_LEN}-byte limit \
             (NumPy's own); the file is corrupt"
        )));
    }
    let header = bytes.get(start..start + header_len).ok_or_else(|| {
        fmt(format!(
            "truncated .npy file: the header needs {header_len} bytes but only {} follow the \
             preamble",
            bytes.len() - start.min(bytes.len())
        ))
    })?;
    let mut depth = 0usize;
    for c in header {
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_NESTING {
            return Err(fmt(format!(
                "malformed .npy header: brackets nested more than {MAX_NESTING} deep"
            )));
        }
    }
    Ok(header)
}

/// A parsed header: what it says, the element type, and the data bytes that follow it.
struct Parsed<'a> {
    info: NpyInfo,
    ty: TypeStr,
    header: NpyHeader,
    data: &'a [u8],
}

/// Parses the preamble and header of `bytes` with `npyz`.
fn parse_header<'a>(path: &Path, bytes: &'a [u8]) -> Result<Parsed<'a>> {
    let text = check_preamble(path, bytes)?;
    let fmt = |m: String| SiameseError::format(path, m);
    let mut data = bytes;
    let header = NpyHeader::from_reader(&mut data).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return fmt(format!("truncated .npy file: the header ends early ({e})"));
        }
        // The literal parser's messages span several lines; keep them to one.
        let e: String = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let e: String = e.chars().take(300).collect();
        if text.is_empty() {
            fmt(format!("not a readable .npy file: {e}"))
        } else {
            let text = String::from_utf8_lossy(text);
            let text: String = text.trim_end().chars().take(200).collect();
            fmt(format!("malformed .npy header {text}: {e}"))
        }
    })?;
    let ty = match header.dtype() {
        DType::Plain(ty) => ty,
        other => {
            return Err(fmt(format!(
                "unsupported dtype: a structured dtype ({}); supported: {SUPPORTED}",
                other.descr()
            )));
        }
    };
    let shape = header
        .shape()
        .iter()
        .map(|&n| {
            usize::try_from(n)
                .map_err(|_| fmt(format!("malformed .npy header: dimension {n} is too large")))
        })
        .collect::<Result<Vec<_>>>()?;
    let info = NpyInfo {
        descr: ty.to_string(),
        shape,
        fortran_order: header.order() == Order::Fortran,
    };
    Ok(Parsed {
        info,
        ty,
        header,
        data,
    })
}

/// Decodes a complete `.npy` image held in `bytes`; `path` names it in errors.
fn parse_npy(path: &Path, bytes: &[u8]) -> Result<NpyArray> {
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

/// Reads the header of an `.npy` file without decoding its data.
///
/// # Errors
/// [`SiameseError::Io`] if the file cannot be read; [`SiameseError::Format`] if it is not a
/// valid `.npy` header.
pub fn read_info(path: &Path) -> Result<NpyInfo> {
    let mut file = fs::File::open(path).map_err(|e| SiameseError::io(path, e))?;
    let mut head = Vec::new();
    // Preamble + the largest header we accept.
    (&mut file)
        .take((12 + MAX_HEADER_LEN) as u64)
        .read_to_end(&mut head)
        .map_err(|e| SiameseError::io(path, e))?;
    parse_header(path, &head).map(|p| p.info)
}

/// Reads an `.npy` array as a matrix of `d0 × (d1 · … · dk)` `f32` values.
///
/// A 1-D array of `n` becomes `n × 1`, a 0-D scalar `1 × 1`; see the [module docs](self) for
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

// ---------------------------------------------------------------------------------------------
// .npz archives
// ---------------------------------------------------------------------------------------------

/// The `.npy` members of an `.npz` archive: array name, a path naming the member in errors
/// (`file.npz[name.npy]`), and the member's bytes, read whole so that its CRC is checked.
fn npz_members(path: &Path) -> Result<Vec<(String, PathBuf, Vec<u8>)>> {
    let bytes = read_file(path)?;
    let fmt = |m: String| SiameseError::format(path, m);
    let mut npz = NpzArchive::new(Cursor::new(&bytes[..])).map_err(|e| {
        fmt(if bytes.starts_with(b"PK") {
            format!("not a valid .npz (zip) file, truncated or corrupt: {e}")
        } else {
            format!("not a valid .npz (zip) file: no zip signature ({e})")
        })
    })?;
    let zip = npz.zip_archive();
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut member = zip
            .by_index(i)
            .map_err(|e| fmt(format!("zip member {i}: {e}")))?;
        let Some(key) = array_name_from_file_name(member.name()).map(str::to_string) else {
            continue;
        };
        let name = member.name().to_string();
        let size = member.size();
        let mut data = Vec::new();
        // One byte more than declared, to detect a lying size without a zip bomb; reading to
        // the end is also what makes the zip reader check the CRC.
        (&mut member)
            .take(size.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(|e| {
                fmt(if e.to_string().contains("checksum") {
                    format!("member '{name}': CRC mismatch; the archive is truncated or corrupt")
                } else {
                    format!("member '{name}': corrupt compressed data ({e})")
                })
            })?;
        if data.len() as u64 != size {
            return Err(fmt(format!(
                "member '{name}': truncated or corrupt: {} bytes decoded, the directory says \
                 {size}",
                data.len()
            )));
        }
        let member_path = PathBuf::from(format!("{}[{name}]", path.display()));
        out.push((key, member_path, data));
    }
    Ok(out)
}

/// Reads every `.npy` member of an `.npz` archive, keeping headers and values.
fn read_npz_arrays(path: &Path) -> Result<BTreeMap<String, NpyArray>> {
    npz_members(path)?
        .into_iter()
        .map(|(key, member, data)| Ok((key, parse_npy(&member, &data)?)))
        .collect()
}

/// Reads every array of an `.npz` archive (`np.savez` or `np.savez_compressed`) as a matrix,
/// keyed by member name without the `.npy` suffix.
///
/// Shapes map to matrices as in [`read_matrix`].
///
/// # Errors
/// [`SiameseError::Io`] for an unreadable file; [`SiameseError::Format`] naming the file (and
/// member) for a corrupt zip (`truncated`, bad CRC, unsupported compression) or a bad member.
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, Matrix>> {
    read_npz_arrays(path)?
        .into_iter()
        .map(|(k, a)| Ok((k, a.into_matrix()?)))
        .collect()
}

/// Headers of every `.npy` member of an `.npz` archive, keyed by member name without `.npy`.
///
/// Like [`read_info`], only the headers are interpreted (member CRCs are still checked).
///
/// # Errors
/// As [`read_npz`], except that the members' dtypes and data sizes are not checked.
pub fn read_npz_info(path: &Path) -> Result<BTreeMap<String, NpyInfo>> {
    npz_members(path)?
        .into_iter()
        .map(|(key, member, data)| Ok((key, parse_header(&member, &data)?.info)))
        .collect()
}

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// The bytes of an `.npy` file with the given descr, shape text and raw data.
    pub(crate) fn npy_raw(descr: &str, shape: &str, fortran: bool, data: &[u8]) -> Vec<u8> {
        let f = if fortran { "True" } else { "False" };
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': {shape}, }}");
        let total = 10 + header.len() + 1;
        header.push_str(&" ".repeat((64 - total % 64) % 64));
        header.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// A zip archive of `(name, data, deflate)` members, as `np.savez` / `savez_compressed`
    /// write it (the first member gets a zip64 local header like NumPy's `force_zip64`).
    pub(crate) fn zip(members: &[(&str, Vec<u8>, bool)]) -> Vec<u8> {
        use npyz::zip::{CompressionMethod, ZipWriter, write::FileOptions};
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        for (i, (name, data, deflate)) in members.iter().enumerate() {
            let method = if *deflate {
                CompressionMethod::Deflated
            } else {
                CompressionMethod::Stored
            };
            let options = FileOptions::default()
                .compression_method(method)
                .large_file(i == 0);
            w.start_file(*name, options).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn err_of(r: Result<impl std::fmt::Debug>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn reads_every_dtype_and_shape() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("<f4", f32_bytes(&[1.0, -2.5, 3.0, 4.0, 5.0, 6.0])),
            (
                "<f8",
                [1.0f64, -2.5, 3.0, 4.0, 5.0, 6.0]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            ),
            (
                ">f8",
                [1.0f64, -2.5, 3.0, 4.0, 5.0, 6.0]
                    .iter()
                    .flat_map(|x| x.to_be_bytes())
                    .collect(),
            ),
            (
                "<i8",
                [1i64, -2, 3, 4, 5, 6]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            ),
            (
                "<i4",
                [1i32, -2, 3, 4, 5, 6]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            ),
            (
                "<u2",
                [1u16, 2, 3, 4, 5, 6]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            ),
            ("|u1", vec![1, 2, 3, 4, 5, 6]),
        ];
        for (descr, data) in cases {
            fs::write(&p, npy_raw(descr, "(2, 3)", false, &data)).unwrap();
            let m = read_matrix(&p).unwrap();
            assert_eq!(m.shape(), [2, 3], "{descr}");
            let expect: &[f32] = if descr.contains('u') {
                &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
            } else if descr.contains('i') {
                &[1.0, -2.0, 3.0, 4.0, 5.0, 6.0]
            } else {
                &[1.0, -2.5, 3.0, 4.0, 5.0, 6.0]
            };
            assert_eq!(m.as_slice(), expect, "{descr}");
        }
        // 1-D → n × 1, 3-D → n × (rest), 0-D → 1 × 1.
        fs::write(
            &p,
            npy_raw("<f4", "(3,)", false, &f32_bytes(&[1.0, 2.0, 3.0])),
        )
        .unwrap();
        assert_eq!(read_matrix(&p).unwrap().shape(), [3, 1]);
        assert_eq!(read_labels(&p).unwrap(), vec![1.0, 2.0, 3.0]);
        fs::write(
            &p,
            npy_raw("<f4", "(2, 2, 3)", false, &f32_bytes(&[0.5; 12])),
        )
        .unwrap();
        assert_eq!(read_matrix(&p).unwrap().shape(), [2, 6]);
        fs::write(&p, npy_raw("<f4", "()", false, &f32_bytes(&[7.0]))).unwrap();
        assert_eq!(read_matrix(&p).unwrap().as_slice(), &[7.0]);
        // Fortran order of a 1-D array is the same as C order.
        fs::write(&p, npy_raw("<f4", "(2,)", true, &f32_bytes(&[1.0, 2.0]))).unwrap();
        assert_eq!(read_labels(&p).unwrap(), vec![1.0, 2.0]);
    }

    #[test]
    fn write_then_read_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.npy");
        let m = Matrix::from_rows(&[vec![1.0, 2.0, 3.0], vec![-4.0, 5.5, f32::MAX]]).unwrap();
        write_matrix(&p, &m).unwrap();
        let bytes = fs::read(&p).unwrap();
        assert_eq!(
            (bytes.len() - 4 * 6) % 64,
            0,
            "header is padded to 64 bytes"
        );
        assert_eq!(read_matrix(&p).unwrap(), m);
        assert_eq!(read_info(&p).unwrap().shape, vec![2, 3]);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        // Writing into a missing directory is an I/O error naming the file.
        let bad = dir.path().join("missing").join("m.npy");
        assert!(err_of(write_matrix(&bad, &m)).contains("m.npy"));
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npy");
        // Missing file.
        let e = read_matrix(&dir.path().join("nope.npy")).unwrap_err();
        assert!(matches!(e, SiameseError::Io { .. }), "{e}");
        assert!(e.to_string().contains("nope.npy"));
        // Data shorter than the header says.
        fs::write(&p, npy_raw("<f4", "(2, 3)", false, &f32_bytes(&[1.0; 5]))).unwrap();
        let e = err_of(read_matrix(&p));
        assert!(e.contains("truncated") && e.contains("bad.npy"), "{e}");
        // Header cut short.
        let full = npy_raw("<f4", "(2, 3)", false, &f32_bytes(&[1.0; 6]));
        fs::write(&p, &full[..40]).unwrap();
        assert!(err_of(read_matrix(&p)).contains("truncated"));
        fs::write(&p, &full[..4]).unwrap();
        assert!(err_of(read_matrix(&p)).contains("truncated"));
        // Trailing garbage.
        let mut long = full.clone();
        long.push(0);
        fs::write(&p, &long).unwrap();
        assert!(err_of(read_matrix(&p)).contains("unexpected bytes"));
        // Unsupported dtype, named, with the supported list.
        fs::write(&p, npy_raw("<U3", "(2,)", false, &[0; 24])).unwrap();
        let e = err_of(read_matrix(&p));
        assert!(e.contains("'<U3'") && e.contains("float32"), "{e}");
        fs::write(&p, npy_raw("<c8", "(1,)", false, &[0; 8])).unwrap();
        assert!(err_of(read_matrix(&p)).contains("unsupported dtype"));
        // Fortran order.
        fs::write(&p, npy_raw("<f4", "(2, 3)", true, &f32_bytes(&[1.0; 6]))).unwrap();
        assert!(err_of(read_matrix(&p)).contains("Fortran"));
        // Not an npy at all.
        fs::write(&p, b"hello, world, this is text").unwrap();
        assert!(err_of(read_matrix(&p)).contains("not a .npy"));
        // Huge header length (format 2.0 with a 4 GiB header).
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&[2, 0, 0xff, 0xff, 0xff, 0xff]);
        huge.extend_from_slice(b"{'descr': '<f4'}");
        fs::write(&p, &huge).unwrap();
        assert!(err_of(read_matrix(&p)).contains("limit"));
        // A shape whose size overflows.
        let big = "(18446744073709551615, 18446744073709551615)";
        fs::write(&p, npy_raw("<f4", big, false, &[])).unwrap();
        assert!(err_of(read_matrix(&p)).contains("too large"));
        // Garbled header dict.
        let mut g = full.clone();
        g[10] = b'[';
        fs::write(&p, &g).unwrap();
        assert!(err_of(read_matrix(&p)).contains("malformed .npy header"));
        // Labels of the wrong shape name the shape.
        fs::write(&p, npy_raw("<f4", "(2, 3)", false, &f32_bytes(&[1.0; 6]))).unwrap();
        let e = err_of(read_labels(&p));
        assert!(e.contains("(2, 3)"), "{e}");
    }

    #[test]
    fn npz_members_are_read_stored_or_deflated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npz");
        let a = npy_raw("<f4", "(2, 2)", false, &f32_bytes(&[1.0, 2.0, 3.0, 4.0]));
        let l = npy_raw("|u1", "(2,)", false, &[1, 0]);
        fs::write(
            &p,
            zip(&[("a.npy", a.clone(), false), ("labels.npy", l.clone(), true)]),
        )
        .unwrap();
        let m = read_npz(&p).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), vec!["a", "labels"]);
        assert_eq!(m["a"].as_slice(), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m["labels"].shape(), [2, 1]);
        let info = read_npz_info(&p).unwrap();
        assert_eq!(info["labels"].dtype_name(), "uint8");

        // Truncated archive, and a corrupted member (CRC).
        let bytes = zip(&[("a.npy", a.clone(), false)]);
        fs::write(&p, &bytes[..bytes.len() - 30]).unwrap();
        let e = err_of(read_npz(&p));
        assert!(e.contains("x.npz") && e.contains("truncated"), "{e}");
        let mut bad = bytes.clone();
        let last = 30 + 5 + 20 + a.len() - 1; // a data byte inside the member
        bad[last] ^= 0xff;
        fs::write(&p, &bad).unwrap();
        assert!(err_of(read_npz(&p)).contains("CRC"));
        fs::write(&p, b"not a zip").unwrap();
        assert!(err_of(read_npz(&p)).contains("zip"));
    }

    #[test]
    fn pairs_from_directory_and_npz_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = npy_raw("<f4", "(3, 2)", false, &f32_bytes(&[1.0; 6]));
        let b = npy_raw("<f8", "(3, 2)", false, &[0u8; 48]);
        let l = npy_raw(
            "<i8",
            "(3,)",
            false,
            &[1i64, 0, 1].map(i64::to_le_bytes).concat(),
        );
        fs::write(d.join("a.npy"), &a).unwrap();
        fs::write(d.join("b.npy"), &b).unwrap();
        fs::write(d.join("labels.npy"), &l).unwrap();
        let pairs = read_pairs(d).unwrap();
        assert_eq!(pairs.a.shape(), [3, 2]);
        assert_eq!(pairs.labels, vec![1.0, 0.0, 1.0]);

        let npz = d.join("p.npz");
        fs::write(
            &npz,
            zip(&[
                ("a.npy", a.clone(), true),
                ("b.npy", b.clone(), false),
                ("labels.npy", l.clone(), true),
            ]),
        )
        .unwrap();
        assert_eq!(read_pairs(&npz).unwrap().labels, vec![1.0, 0.0, 1.0]);

        // Missing member.
        fs::write(&npz, zip(&[("a.npy", a.clone(), false)])).unwrap();
        let e = err_of(read_pairs(&npz));
        assert!(e.contains("'b'") && e.contains("found: a"), "{e}");
        // Shapes differ: both named.
        fs::write(
            d.join("b.npy"),
            npy_raw("<f4", "(3, 4)", false, &f32_bytes(&[0.0; 12])),
        )
        .unwrap();
        let e = err_of(read_pairs(d));
        assert!(
            e.contains("[3, 2]") && e.contains("[3, 4]") && e.contains("b.npy"),
            "{e}"
        );
        fs::write(d.join("b.npy"), &b).unwrap();
        // Label count differs.
        fs::write(
            d.join("labels.npy"),
            npy_raw("<f4", "(2,)", false, &f32_bytes(&[1.0, 0.0])),
        )
        .unwrap();
        let e = err_of(read_pairs(d));
        assert!(e.contains("3 rows") && e.contains("2 labels"), "{e}");
        // Label out of range names the file.
        fs::write(
            d.join("labels.npy"),
            npy_raw("<f4", "(3, 1)", false, &f32_bytes(&[1.0, 2.0, 0.0])),
        )
        .unwrap();
        let e = err_of(read_pairs(d));
        assert!(
            e.contains("labels.npy") && e.contains("label 1 is 2"),
            "{e}"
        );
        // NaN input names the file.
        fs::write(d.join("labels.npy"), &l).unwrap();
        fs::write(
            d.join("a.npy"),
            npy_raw(
                "<f4",
                "(3, 2)",
                false,
                &f32_bytes(&[0.0, 0.0, f32::NAN, 0.0, 0.0, 0.0]),
            ),
        )
        .unwrap();
        let e = err_of(read_pairs(d));
        assert!(e.contains("a.npy") && e.contains("row 1, column 0"), "{e}");
        // Neither a directory nor an npz.
        assert!(err_of(read_pairs(&d.join("a.npy"))).contains("directory"));
        // Missing file in the directory.
        fs::remove_file(d.join("b.npy")).unwrap();
        assert!(err_of(read_pairs(d)).contains("b.npy"));
    }

    #[test]
    fn garbled_input_never_panics_or_hangs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.npy");
        // Nested brackets that would take the header parser minutes are refused at once.
        let nested = format!("({}{})", "[".repeat(24), "]".repeat(24));
        fs::write(&p, npy_raw("<f4", &nested, false, &[])).unwrap();
        let t = std::time::Instant::now();
        assert!(err_of(read_matrix(&p)).contains("nested"));
        assert!(t.elapsed().as_secs() < 5);
        // A bool that is neither 0 nor 1, an unparsable dtype, a negative dimension, an
        // unknown format version: errors naming the file.
        let full = npy_raw("<f4", "(2,)", false, &f32_bytes(&[1.0, 2.0]));
        for bytes in [
            npy_raw("|b1", "(2,)", false, &[1, 2]),
            npy_raw("<f3", "(1,)", false, &[0; 3]),
            npy_raw("<f4", "(-1,)", false, &[]),
            [b"\x93NUMPY\x04\x00".as_slice(), &full[8..]].concat(),
        ] {
            fs::write(&p, &bytes).unwrap();
            let e = err_of(read_matrix(&p));
            assert!(e.contains("g.npy") && !e.contains('\n'), "{e}");
        }
        // Members that are not .npy files are not arrays (as in np.load).
        let z = dir.path().join("g.npz");
        let npz = zip(&[("a.npy", full.clone(), true), ("notes.txt", vec![1], false)]);
        fs::write(&z, &npz).unwrap();
        assert_eq!(read_npz(&z).unwrap().keys().collect::<Vec<_>>(), vec!["a"]);
        // Random damage to an .npy and an .npz: always Ok or an error naming the file.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for (path, base) in [(&p, &full), (&z, &npz)] {
            for _ in 0..1500 {
                let mut b = base.clone();
                for _ in 0..1 + next(4) {
                    match next(3) {
                        0 => b.truncate(next(b.len() + 1)),
                        _ if b.is_empty() => {}
                        1 => {
                            let i = next(b.len());
                            b[i] = next(256) as u8;
                        }
                        _ => {
                            let i = next(b.len());
                            b[i] = b"([{'0\\\xff"[next(7)];
                        }
                    }
                }
                fs::write(path, &b).unwrap();
                let name = path.file_name().unwrap().to_str().unwrap();
                let r = if path == &p {
                    read_matrix(path).map(drop)
                } else {
                    read_npz(path).map(drop)
                };
                if let Err(e) = r {
                    assert!(e.to_string().contains(name), "{e}");
                }
            }
        }
    }
}
