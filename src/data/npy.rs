//! NumPy `.npy` and `.npz` files: matrices, label vectors and ready-made pairs.
//!
//! The `.npy` format is a 10- or 12-byte preamble (`\x93NUMPY`, version, header length), an
//! ASCII Python dict literal such as `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`
//! and the raw array bytes. An array of shape `(d0, d1, …, dk)` becomes a [`Matrix`] of
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
//! (`np.savez_compressed`); they are read without any extra dependency and every member's CRC
//! is checked.
//!
//! Every error is a [`SiameseError`] naming the file: a missing file is
//! [`SiameseError::Io`], a malformed one [`SiameseError::Format`] (a short file says
//! `truncated`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::Matrix;
use crate::error::{Result, SiameseError};
use crate::train::Pairs;

/// The `.npy` magic string.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Largest header length accepted (NumPy itself refuses headers over 10 000 bytes by default).
const MAX_HEADER_LEN: usize = 1 << 20;

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
        match Scalar::parse(&self.descr) {
            Some((s, _)) => s.name().to_string(),
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

/// The element types we can convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    F32,
    F64,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    Bool,
}

impl Scalar {
    /// Parses a descr such as `<f4` into the type and whether it is big-endian.
    fn parse(descr: &str) -> Option<(Self, bool)> {
        let (order, code) = match descr.as_bytes().first()? {
            b'<' | b'=' | b'|' => (false, descr.get(1..)?),
            b'>' => (true, descr.get(1..)?),
            _ => (false, descr),
        };
        let scalar = match code {
            "f4" => Self::F32,
            "f8" => Self::F64,
            "u1" | "B" => Self::U8,
            "i1" | "b" => Self::I8,
            "u2" => Self::U16,
            "i2" => Self::I16,
            "u4" => Self::U32,
            "i4" => Self::I32,
            "u8" => Self::U64,
            "i8" => Self::I64,
            "b1" | "?" => Self::Bool,
            _ => return None,
        };
        Some((scalar, order))
    }

    /// Bytes per element.
    fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 | Self::Bool => 1,
            Self::U16 | Self::I16 => 2,
            Self::F32 | Self::U32 | Self::I32 => 4,
            Self::F64 | Self::U64 | Self::I64 => 8,
        }
    }

    /// NumPy's name for the type.
    fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F64 => "float64",
            Self::U8 => "uint8",
            Self::I8 => "int8",
            Self::U16 => "uint16",
            Self::I16 => "int16",
            Self::U32 => "uint32",
            Self::I32 => "int32",
            Self::U64 => "uint64",
            Self::I64 => "int64",
            Self::Bool => "bool",
        }
    }

    /// Converts `bytes` (a whole number of elements) to `f32`.
    fn convert(self, big_endian: bool, bytes: &[u8]) -> Vec<f32> {
        macro_rules! conv {
            ($t:ty, $n:expr) => {
                bytes
                    .chunks_exact($n)
                    .map(|c| {
                        let mut a = [0u8; $n];
                        a.copy_from_slice(c);
                        (if big_endian {
                            <$t>::from_be_bytes(a)
                        } else {
                            <$t>::from_le_bytes(a)
                        }) as f32
                    })
                    .collect()
            };
        }
        match self {
            Self::U8 => bytes.iter().map(|&b| f32::from(b)).collect(),
            Self::I8 => bytes.iter().map(|&b| f32::from(b as i8)).collect(),
            Self::Bool => bytes.iter().map(|&b| f32::from(u8::from(b != 0))).collect(),
            Self::U16 => conv!(u16, 2),
            Self::I16 => conv!(i16, 2),
            Self::F32 => conv!(f32, 4),
            Self::U32 => conv!(u32, 4),
            Self::I32 => conv!(i32, 4),
            Self::F64 => conv!(f64, 8),
            Self::U64 => conv!(u64, 8),
            Self::I64 => conv!(i64, 8),
        }
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

/// Writes `bytes` to `path` atomically: first `path.tmp-<pid>`, then a rename over `path`.
///
/// Readers never see a half-written file; on failure the temporary file is removed.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    if let Err(e) = fs::write(&tmp, bytes) {
        let _ = fs::remove_file(&tmp);
        return Err(SiameseError::io(path, e));
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        SiameseError::io(path, e)
    })
}

// ---------------------------------------------------------------------------------------------
// Header parsing
// ---------------------------------------------------------------------------------------------

/// A value of the header's Python literal (only what `.npy` headers use).
#[derive(Debug, Clone, PartialEq)]
enum PyValue {
    Str(String),
    Bool(bool),
    Int(u64),
    Tuple(Vec<PyValue>),
    /// A list (structured dtypes) or anything else we do not interpret.
    Other(String),
}

/// A tiny recursive-descent parser for the header dict.
struct Literal<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Literal<'a> {
    fn skip_ws(&mut self) {
        while self
            .s
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        match self.peek() {
            Some(x) if x == c => {
                self.pos += 1;
                Ok(())
            }
            Some(x) => Err(format!(
                "expected `{}` at byte {} of the header, found `{}`",
                c as char, self.pos, x as char
            )),
            None => Err(format!("expected `{}` but the header ended", c as char)),
        }
    }

    fn dict(&mut self) -> std::result::Result<Vec<(String, PyValue)>, String> {
        self.expect(b'{')?;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(items);
            }
            let key = match self.value(0)? {
                PyValue::Str(k) => k,
                other => return Err(format!("header dict key {other:?} is not a string")),
            };
            self.expect(b':')?;
            let value = self.value(0)?;
            items.push((key, value));
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err("header dict is not closed by `}`".into()),
            }
        }
    }

    fn value(&mut self, depth: usize) -> std::result::Result<PyValue, String> {
        if depth > 32 {
            return Err("header literal is nested too deeply".into());
        }
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.pos += 1;
                let start = self.pos;
                while self.s.get(self.pos).is_some_and(|&c| c != q) {
                    self.pos += 1;
                }
                let text = self
                    .s
                    .get(start..self.pos)
                    .ok_or("unterminated string in header")?;
                if self.s.get(self.pos).is_none() {
                    return Err("unterminated string in header".into());
                }
                self.pos += 1;
                Ok(PyValue::Str(String::from_utf8_lossy(text).into_owned()))
            }
            Some(open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(c) if c == close => {}
                        _ => return Err("unterminated tuple or list in header".into()),
                    }
                }
                Ok(if open == b'(' {
                    PyValue::Tuple(items)
                } else {
                    PyValue::Other(format!("a list of {} items", items.len()))
                })
            }
            Some(c) if c.is_ascii_alphanumeric() || c == b'-' => {
                let start = self.pos;
                while self
                    .s
                    .get(self.pos)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
                {
                    self.pos += 1;
                }
                let word = String::from_utf8_lossy(self.s.get(start..self.pos).unwrap_or(&[]))
                    .into_owned();
                Ok(match word.as_str() {
                    "True" => PyValue::Bool(true),
                    "False" => PyValue::Bool(false),
                    w => match w.trim_end_matches('L').parse::<u64>() {
                        Ok(n) => PyValue::Int(n),
                        Err(_) => PyValue::Other(w.to_string()),
                    },
                })
            }
            Some(c) => Err(format!(
                "unexpected `{}` at byte {} of the header",
                c as char, self.pos
            )),
            None => Err("the header ended inside a value".into()),
        }
    }
}

/// Parses the preamble and header of `bytes`; returns the header and the data offset.
fn parse_header(path: &Path, bytes: &[u8]) -> Result<(NpyInfo, usize)> {
    let fmt = |m: String| SiameseError::format(path, m);
    if bytes.len() < 10 {
        return Err(
            if bytes.starts_with(&MAGIC[..bytes.len().min(6)]) && !bytes.is_empty() {
                fmt(format!(
                    "truncated .npy file: {} bytes, shorter than the 10-byte preamble",
                    bytes.len()
                ))
            } else {
                fmt(format!(
                    "not a .npy file ({} bytes, no `\\x93NUMPY` magic)",
                    bytes.len()
                ))
            },
        );
    }
    if !bytes.starts_with(MAGIC) {
        return Err(fmt(
            "not a .npy file: it does not start with the `\\x93NUMPY` magic".into(),
        ));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => match bytes.get(8..12) {
            Some(b) => (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12),
            None => {
                return Err(fmt(
                    "truncated .npy file: the preamble ends before the header length".into(),
                ));
            }
        },
        v => {
            return Err(fmt(format!(
                "unsupported .npy format version {v}.{} (supported: 1.0, 2.0, 3.0)",
                bytes[7]
            )));
        }
    };
    if header_len > MAX_HEADER_LEN {
        return Err(fmt(format!(
            "the .npy header claims {header_len} bytes, more than the {MAX_HEADER_LEN}-byte limit; \
             the file is corrupt"
        )));
    }
    let end = start + header_len;
    let header = bytes.get(start..end).ok_or_else(|| {
        fmt(format!(
            "truncated .npy file: the header needs {header_len} bytes but only {} follow the preamble",
            bytes.len() - start
        ))
    })?;
    let items = Literal { s: header, pos: 0 }
        .dict()
        .map_err(|m| fmt(format!("malformed .npy header: {m}")))?;
    let get = |key: &str| {
        items
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| fmt(format!("malformed .npy header: no '{key}' entry")))
    };
    let descr = match get("descr")? {
        PyValue::Str(s) => s.clone(),
        other => {
            let what = match other {
                PyValue::Other(o) => o.clone(),
                v => format!("{v:?}"),
            };
            return Err(fmt(format!(
                "unsupported dtype: a structured dtype ({what}); supported: {SUPPORTED}"
            )));
        }
    };
    let fortran_order = match get("fortran_order")? {
        PyValue::Bool(b) => *b,
        other => {
            return Err(fmt(format!(
                "malformed .npy header: 'fortran_order' is {other:?}, not True or False"
            )));
        }
    };
    let shape = match get("shape")? {
        PyValue::Tuple(dims) => dims
            .iter()
            .map(|d| match d {
                PyValue::Int(n) => usize::try_from(*n)
                    .map_err(|_| fmt(format!("malformed .npy header: dimension {n} is too large"))),
                other => Err(fmt(format!(
                    "malformed .npy header: shape entry {other:?} is not an integer"
                ))),
            })
            .collect::<Result<Vec<_>>>()?,
        other => {
            return Err(fmt(format!(
                "malformed .npy header: 'shape' is {other:?}, not a tuple"
            )));
        }
    };
    Ok((
        NpyInfo {
            descr,
            shape,
            fortran_order,
        },
        end,
    ))
}

/// Decodes a complete `.npy` image held in `bytes`; `path` names it in errors.
fn parse_npy(path: &Path, bytes: &[u8]) -> Result<NpyArray> {
    let (info, offset) = parse_header(path, bytes)?;
    let fmt = |m: String| SiameseError::format(path, m);
    let (scalar, big_endian) = Scalar::parse(&info.descr).ok_or_else(|| {
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
    let count = info
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(scalar.size()).map(|b| (n, b)));
    let Some((count, nbytes)) = count else {
        return Err(fmt(format!(
            "the shape {} is too large to hold in memory; the header is corrupt",
            info.shape_string()
        )));
    };
    let data = bytes.get(offset..).unwrap_or(&[]);
    if data.len() < nbytes {
        return Err(fmt(format!(
            "truncated .npy file: shape {} of {} needs {nbytes} data bytes but only {} are present",
            info.shape_string(),
            scalar.name(),
            data.len()
        )));
    }
    if data.len() > nbytes {
        return Err(fmt(format!(
            "{} unexpected bytes after the data of shape {} ({}); the file is corrupt",
            data.len() - nbytes,
            info.shape_string(),
            scalar.name()
        )));
    }
    let values = scalar.convert(big_endian, data);
    debug_assert_eq!(values.len(), count);
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
    parse_header(path, &head).map(|(info, _)| info)
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
/// Values are not range-checked here (see [`crate::loss::check_labels`]).
///
/// # Errors
/// As [`read_matrix`], plus a [`SiameseError::Format`] naming the shape for any other shape.
pub fn read_labels(path: &Path) -> Result<Vec<f32>> {
    parse_npy(path, &read_file(path)?)?.into_labels(path)
}

/// Writes `m` as a 2-D C-order `float32` `.npy` file (format 1.0), atomically.
///
/// The file is first written to `path.tmp-<pid>` and then renamed over `path`.
///
/// # Errors
/// [`SiameseError::Io`] if the file cannot be written.
pub fn write_matrix(path: &Path, m: &Matrix) -> Result<()> {
    write_atomic(path, &npy_bytes(m))
}

/// The bytes of a 2-D `<f4` `.npy` file holding `m` (header padded to 64 bytes as NumPy does).
pub(crate) fn npy_bytes(m: &Matrix) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        m.rows(),
        m.cols()
    );
    // preamble (10) + header + '\n' must be a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * m.as_slice().len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    // The header is at most ~100 bytes, so it always fits in u16.
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in m.as_slice() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// .npz (zip) reading
// ---------------------------------------------------------------------------------------------

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at.checked_add(2)?)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// One member of a zip archive, as the central directory describes it.
struct ZipEntry {
    name: String,
    method: u16,
    flags: u16,
    crc: u32,
    compressed: u64,
    uncompressed: u64,
    local_offset: u64,
}

/// Lists the members of the zip archive in `bytes`.
fn zip_entries(path: &Path, bytes: &[u8]) -> Result<Vec<ZipEntry>> {
    let fmt = |m: &str| SiameseError::format(path, format!("not a valid .npz (zip) file: {m}"));
    let trunc = || fmt("truncated central directory");
    // End of central directory record: 22 bytes + a comment of up to 65 535 bytes.
    let lowest = bytes.len().saturating_sub(22 + 65_535);
    let eocd = (lowest..=bytes.len().saturating_sub(22))
        .rev()
        .find(|&i| u32_at(bytes, i) == Some(0x0605_4b50))
        .ok_or_else(|| {
            if bytes.starts_with(b"PK\x03\x04") {
                fmt("truncated: no end-of-central-directory record")
            } else {
                fmt("no zip signature")
            }
        })?;
    let mut count = u64::from(u16_at(bytes, eocd + 10).ok_or_else(trunc)?);
    let mut cd_offset = u64::from(u32_at(bytes, eocd + 16).ok_or_else(trunc)?);
    if count == 0xFFFF || cd_offset == 0xFFFF_FFFF {
        // Zip64: the locator sits just before the EOCD record.
        let loc = eocd.checked_sub(20).ok_or_else(trunc)?;
        if u32_at(bytes, loc) != Some(0x0706_4b50) {
            return Err(fmt("zip64 archive without a zip64 locator"));
        }
        let z = usize::try_from(u64_at(bytes, loc + 8).ok_or_else(trunc)?).map_err(|_| trunc())?;
        if u32_at(bytes, z) != Some(0x0606_4b50) {
            return Err(fmt("bad zip64 end-of-central-directory record"));
        }
        count = u64_at(bytes, z + 32).ok_or_else(trunc)?;
        cd_offset = u64_at(bytes, z + 48).ok_or_else(trunc)?;
    }
    let mut pos = usize::try_from(cd_offset).map_err(|_| trunc())?;
    let mut entries = Vec::new();
    for _ in 0..count {
        if u32_at(bytes, pos) != Some(0x0201_4b50) {
            return Err(fmt("bad or truncated central directory entry"));
        }
        let flags = u16_at(bytes, pos + 8).ok_or_else(trunc)?;
        let method = u16_at(bytes, pos + 10).ok_or_else(trunc)?;
        let crc = u32_at(bytes, pos + 16).ok_or_else(trunc)?;
        let mut compressed = u64::from(u32_at(bytes, pos + 20).ok_or_else(trunc)?);
        let mut uncompressed = u64::from(u32_at(bytes, pos + 24).ok_or_else(trunc)?);
        let name_len = usize::from(u16_at(bytes, pos + 28).ok_or_else(trunc)?);
        let extra_len = usize::from(u16_at(bytes, pos + 30).ok_or_else(trunc)?);
        let comment_len = usize::from(u16_at(bytes, pos + 32).ok_or_else(trunc)?);
        let mut local_offset = u64::from(u32_at(bytes, pos + 42).ok_or_else(trunc)?);
        let name_start = pos + 46;
        let name = bytes
            .get(name_start..name_start + name_len)
            .ok_or_else(trunc)?;
        let extra = bytes
            .get(name_start + name_len..name_start + name_len + extra_len)
            .ok_or_else(trunc)?;
        // Zip64 extended information: the 0xFFFFFFFF fields, in this order.
        let mut e = 0;
        while let (Some(id), Some(len)) = (u16_at(extra, e), u16_at(extra, e + 2)) {
            let body = extra.get(e + 4..e + 4 + usize::from(len)).unwrap_or(&[]);
            if id == 1 {
                let mut at = 0;
                for field in [&mut uncompressed, &mut compressed, &mut local_offset] {
                    if *field == 0xFFFF_FFFF {
                        *field = u64_at(body, at).ok_or_else(|| fmt("bad zip64 extra field"))?;
                        at += 8;
                    }
                }
            }
            e += 4 + usize::from(len);
        }
        entries.push(ZipEntry {
            name: String::from_utf8_lossy(name).into_owned(),
            method,
            flags,
            crc,
            compressed,
            uncompressed,
            local_offset,
        });
        pos = name_start + name_len + extra_len + comment_len;
    }
    Ok(entries)
}

/// Extracts one member's bytes, checking its size and CRC.
fn zip_extract(path: &Path, bytes: &[u8], entry: &ZipEntry) -> Result<Vec<u8>> {
    let fmt = |m: String| SiameseError::format(path, format!("member '{}': {m}", entry.name));
    let trunc = || fmt("truncated zip data".into());
    if entry.flags & 1 != 0 {
        return Err(fmt("encrypted zip members are not supported".into()));
    }
    let local = usize::try_from(entry.local_offset).map_err(|_| trunc())?;
    if u32_at(bytes, local) != Some(0x0403_4b50) {
        return Err(fmt(
            "bad local file header (truncated or corrupt zip)".into()
        ));
    }
    let name_len = usize::from(u16_at(bytes, local + 26).ok_or_else(trunc)?);
    let extra_len = usize::from(u16_at(bytes, local + 28).ok_or_else(trunc)?);
    let start = local + 30 + name_len + extra_len;
    let len = usize::try_from(entry.compressed).map_err(|_| trunc())?;
    let raw = start
        .checked_add(len)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(trunc)?;
    let data = match entry.method {
        0 => raw.to_vec(),
        8 => {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(raw)
                // One byte more than declared, to detect a lying size without a zip bomb.
                .take(entry.uncompressed.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| fmt(format!("corrupt deflate data: {e}")))?;
            out
        }
        m => {
            return Err(fmt(format!(
                "compression method {m} is not supported (only stored and deflate, as NumPy writes)"
            )));
        }
    };
    if data.len() as u64 != entry.uncompressed {
        return Err(fmt(format!(
            "truncated or corrupt: {} bytes decoded, the directory says {}",
            data.len(),
            entry.uncompressed
        )));
    }
    let mut crc = flate2::Crc::new();
    crc.update(&data);
    if crc.sum() != entry.crc {
        return Err(fmt("CRC mismatch; the archive is corrupt".into()));
    }
    Ok(data)
}

/// Reads every `.npy` member of an `.npz` archive, keeping headers and values.
fn read_npz_arrays(path: &Path) -> Result<BTreeMap<String, NpyArray>> {
    let bytes = read_file(path)?;
    let mut out = BTreeMap::new();
    for entry in zip_entries(path, &bytes)? {
        if entry.name.ends_with('/') {
            continue;
        }
        let data = zip_extract(path, &bytes, &entry)?;
        let key = entry
            .name
            .strip_suffix(".npy")
            .unwrap_or(&entry.name)
            .to_string();
        let member = PathBuf::from(format!("{}[{}]", path.display(), entry.name));
        out.insert(key, parse_npy(&member, &data)?);
    }
    Ok(out)
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

/// Headers of every member of an `.npz` archive, keyed by member name without `.npy`.
///
/// # Errors
/// As [`read_npz`].
pub fn read_npz_info(path: &Path) -> Result<BTreeMap<String, NpyInfo>> {
    Ok(read_npz_arrays(path)?
        .into_iter()
        .map(|(k, a)| (k, a.info))
        .collect())
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
    crate::loss::check_labels(&names[2], &labels)?;
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
    /// write it (the first member uses a zip64 local header like NumPy's `force_zip64`).
    pub(crate) fn zip(members: &[(&str, Vec<u8>, bool)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (i, (name, data, deflate)) in members.iter().enumerate() {
            let body = if *deflate {
                let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            } else {
                data.clone()
            };
            let mut crc = flate2::Crc::new();
            crc.update(data);
            let method: u16 = if *deflate { 8 } else { 0 };
            let offset = out.len() as u32;
            let zip64 = i == 0;
            let extra: Vec<u8> = if zip64 {
                let mut x = vec![1, 0, 16, 0];
                x.extend_from_slice(&(data.len() as u64).to_le_bytes());
                x.extend_from_slice(&(body.len() as u64).to_le_bytes());
                x
            } else {
                Vec::new()
            };
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            out.extend_from_slice(&[45, 0, 0, 0]);
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&crc.sum().to_le_bytes());
            let (cs, us) = if zip64 {
                (u32::MAX, u32::MAX)
            } else {
                (body.len() as u32, data.len() as u32)
            };
            out.extend_from_slice(&cs.to_le_bytes());
            out.extend_from_slice(&us.to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&extra);
            out.extend_from_slice(&body);

            central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            central.extend_from_slice(&[45, 3, 20, 0, 0, 0]);
            central.extend_from_slice(&method.to_le_bytes());
            central.extend_from_slice(&[0; 4]);
            central.extend_from_slice(&crc.sum().to_le_bytes());
            central.extend_from_slice(&(body.len() as u32).to_le_bytes());
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 4]); // extra, comment
            central.extend_from_slice(&[0; 8]); // disk, attrs
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        let n = members.len() as u16;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&[0; 2]);
        out
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
}
