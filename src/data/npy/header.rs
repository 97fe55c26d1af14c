//! The `.npy` preamble and header: dtype, shape and memory order, checked before `npyz` parses
//! them, and the dtypes that can be converted to `f32`.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use npyz::{DType, NpyHeader, Order, TypeChar, TypeStr};

use crate::error::{Result, SiameseError};

/// The `.npy` magic string.
pub(super) const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Largest header length accepted: NumPy's own default `max_header_size`. The header is a
/// Python literal, and parsing one costs far more per byte than reading data.
const MAX_HEADER_LEN: usize = 10_000;

/// Deepest bracket nesting accepted in a header. A plain array's header nests 2 deep (the dict
/// and the shape tuple), a structured dtype's 4 or 5. The literal parser `npyz` relies on takes
/// time exponential in the nesting of malformed input, so deeper headers are refused up front.
const MAX_NESTING: usize = 6;

/// The dtypes [`read_matrix`](super::read_matrix) accepts, for error messages.
pub(super) const SUPPORTED: &str = "float32 (<f4), float64 (<f8), uint8 (|u1), int8 (|i1), \
                                    uint16 (<u2), int16 (<i2), uint32 (<u4), int32 (<i4), \
                                    uint64 (<u8), int64 (<i8), bool (|b1), in either byte order";

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

/// NumPy's name for a supported element type; `None` for the ones we cannot convert.
pub(super) fn numpy_name(ty: &TypeStr) -> Option<&'static str> {
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

/// `(3, 4)`, `(5,)`, `()`.
pub(super) fn shape_string(shape: &[usize]) -> String {
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
pub(super) struct Parsed<'a> {
    pub(super) info: NpyInfo,
    pub(super) ty: TypeStr,
    pub(super) header: NpyHeader,
    pub(super) data: &'a [u8],
}

/// Parses the preamble and header of `bytes` with `npyz`.
pub(super) fn parse_header<'a>(path: &Path, bytes: &'a [u8]) -> Result<Parsed<'a>> {
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
