//! `.npz` archives: zip files of `.npy` members, stored or deflated.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use npyz::npz::{NpzArchive, array_name_from_file_name};

use super::header::{NpyInfo, parse_header};
use super::read::{NpyArray, parse_npy, read_file};
use crate::data::Matrix;
use crate::error::{Result, SiameseError};

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
pub(super) fn read_npz_arrays(path: &Path) -> Result<BTreeMap<String, NpyArray>> {
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
///
/// [`read_matrix`]: super::read_matrix
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
///
/// [`read_info`]: super::read_info
pub fn read_npz_info(path: &Path) -> Result<BTreeMap<String, NpyInfo>> {
    npz_members(path)?
        .into_iter()
        .map(|(key, member, data)| Ok((key, parse_header(&member, &data)?.info)))
        .collect()
}
