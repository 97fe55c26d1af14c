//! Numeric text tables (CSV, TSV, whitespace-separated) and extension-based dispatch between
//! them and `.npy`.
//!
//! A table holds one sample per line and one feature per column. The delimiter is taken from
//! the first non-empty line: `,` if it has one, else tab, else `;`, else runs of whitespace
//! (as `np.savetxt` writes). The first row is a header when any of its fields is not a
//! number. Empty lines are skipped; `nan` and `inf` parse (reject them later with
//! [`Matrix::check_finite`]).

use std::path::Path;

use super::{Matrix, npy};
use crate::error::{Result, SiameseError};

/// The field separator of a text table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delimiter {
    Byte(u8),
    Whitespace,
}

fn sniff_delimiter(text: &str) -> Delimiter {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if first.contains(',') {
        Delimiter::Byte(b',')
    } else if first.contains('\t') {
        Delimiter::Byte(b'\t')
    } else if first.contains(';') {
        Delimiter::Byte(b';')
    } else {
        Delimiter::Whitespace
    }
}

/// Splits `text` into `(1-based line number, fields)` records, skipping empty lines.
fn records(path: &Path, text: &str, delim: Delimiter) -> Result<Vec<(u64, Vec<String>)>> {
    match delim {
        Delimiter::Whitespace => Ok(text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                (
                    i as u64 + 1,
                    l.split_whitespace().map(str::to_string).collect(),
                )
            })
            .collect()),
        Delimiter::Byte(b) => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .delimiter(b)
                .trim(csv::Trim::All)
                .from_reader(text.as_bytes());
            let mut out = Vec::new();
            for rec in reader.records() {
                let rec = rec.map_err(|e| SiameseError::format(path, format!("bad CSV: {e}")))?;
                let line = rec.position().map_or(0, |p| p.line());
                if rec.iter().all(str::is_empty) {
                    continue;
                }
                out.push((line, rec.iter().map(str::to_string).collect()));
            }
            Ok(out)
        }
    }
}

/// Reads a text file as UTF-8, naming it in errors.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = npy::read_file(path)?;
    String::from_utf8(bytes).map_err(|e| {
        SiameseError::format(
            path,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Reads a numeric CSV (or TSV / whitespace-separated text) as a matrix, one row per line.
///
/// An optional header row is detected: the first row is a header when any field is not a
/// number. See the [module docs](self) for the delimiter rules.
///
/// # Errors
/// [`SiameseError::Io`] for a missing file; [`SiameseError::Format`] naming the file, line and
/// column of a non-number, the line of a row whose field count differs from the first row's
/// (ragged rows), or no data rows at all.
pub fn read_csv_matrix(path: &Path) -> Result<Matrix> {
    let text = read_text(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let recs = records(path, text, sniff_delimiter(text))?;
    let mut rows = recs.iter();
    let header = recs
        .first()
        .is_some_and(|(_, r)| r.iter().any(|f| f.parse::<f32>().is_err()));
    if header {
        rows.next();
    }
    let mut cols = None;
    let mut data = Vec::new();
    let mut n = 0;
    for (line, fields) in rows {
        let expected = *cols.get_or_insert(fields.len());
        if fields.len() != expected {
            return Err(SiameseError::format(
                path,
                format!(
                    "line {line} has {} fields but the first data row has {expected} (ragged rows)",
                    fields.len()
                ),
            ));
        }
        for (c, f) in fields.iter().enumerate() {
            let v = f.parse::<f32>().map_err(|_| {
                SiameseError::format(
                    path,
                    format!("line {line}, column {}: `{f}` is not a number", c + 1),
                )
            })?;
            data.push(v);
        }
        n += 1;
    }
    let Some(cols) = cols else {
        return Err(SiameseError::format(
            path,
            if header {
                "only a header row, no data rows"
            } else {
                "no data rows"
            },
        ));
    };
    Matrix::new(n, cols, data)
}

/// Serialises `m` as delimited text with an optional header.
fn table_bytes(path: &Path, m: &Matrix, header: Option<&[String]>, delim: u8) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delim)
        .from_writer(Vec::new());
    let err = |e: csv::Error| SiameseError::format(path, format!("cannot write CSV: {e}"));
    if let Some(h) = header {
        if h.len() != m.cols() {
            return Err(SiameseError::shape(
                format!("header of {}", path.display()),
                format!("one name per column ({})", m.cols()),
                format!("{} names", h.len()),
            ));
        }
        w.write_record(h).map_err(err)?;
    }
    for i in 0..m.rows() {
        w.write_record(m.row(i).iter().map(f32::to_string))
            .map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| SiameseError::format(path, format!("cannot write CSV: {e}")))
}

/// Writes `m` as CSV (`,`-separated, shortest round-trip float formatting), with an optional
/// header row, atomically (a temporary sibling, then a rename).
///
/// # Errors
/// [`SiameseError::Shape`] if the header does not have one name per column;
/// [`SiameseError::Io`] if the file cannot be written.
pub fn write_csv(path: &Path, m: &Matrix, header: Option<&[String]>) -> Result<()> {
    crate::atomic::write_file_atomic(path, &table_bytes(path, m, header, b',')?)
}

/// The lower-cased extension of `path`.
fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Reads a matrix from `.npy`, `.npz` (exactly one array), `.csv`, `.tsv` or `.txt`, chosen by
/// the extension (case-insensitive).
///
/// # Errors
/// Those of [`npy::read_matrix`], [`npy::read_npz`] and [`read_csv_matrix`];
/// [`SiameseError::Format`] listing the accepted extensions for any other, or listing the
/// members of an `.npz` holding more than one array.
pub fn read_matrix_any(path: &Path) -> Result<Matrix> {
    match extension(path).as_str() {
        "npy" => npy::read_matrix(path),
        "npz" => {
            let mut arrays = npy::read_npz(path)?;
            if arrays.len() == 1
                && let Some((_, m)) = arrays.pop_first()
            {
                return Ok(m);
            }
            Err(SiameseError::format(
                path,
                format!(
                    "expected exactly one array in the .npz, found {}: {}",
                    arrays.len(),
                    arrays.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ))
        }
        "csv" | "tsv" | "txt" => read_csv_matrix(path),
        other => Err(SiameseError::format(
            path,
            format!(
                "unsupported matrix file extension `{other}`; accepted: .npy, .npz (one array), \
                 .csv, .tsv, .txt"
            ),
        )),
    }
}

/// Writes a matrix as `.npy` (`float32`; `header` is ignored), `.csv`/`.txt` (comma) or
/// `.tsv` (tab), chosen by the extension, atomically.
///
/// # Errors
/// [`SiameseError::Format`] listing the accepted extensions for any other; those of
/// [`npy::write_matrix`] and [`write_csv`].
pub fn write_matrix_any(path: &Path, m: &Matrix, header: Option<&[String]>) -> Result<()> {
    match extension(path).as_str() {
        "npy" => npy::write_matrix(path, m),
        "csv" | "txt" => write_csv(path, m, header),
        "tsv" => crate::atomic::write_file_atomic(path, &table_bytes(path, m, header, b'\t')?),
        other => Err(SiameseError::format(
            path,
            format!(
                "unsupported matrix file extension `{other}`; accepted: .npy, .csv, .tsv, .txt"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn reads_csv_with_and_without_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        fs::write(&p, "x,y,z\n1,2,3\n\n4.5, -5 ,6e1\n").unwrap();
        let m = read_csv_matrix(&p).unwrap();
        assert_eq!(m.shape(), [2, 3]);
        assert_eq!(m.as_slice(), &[1.0, 2.0, 3.0, 4.5, -5.0, 60.0]);
        fs::write(&p, "1,2\r\n3,4\r\n").unwrap();
        assert_eq!(
            read_csv_matrix(&p).unwrap().as_slice(),
            &[1.0, 2.0, 3.0, 4.0]
        );
        let t = dir.path().join("m.txt");
        fs::write(&t, "1 2  3\n4 5 6\n").unwrap();
        assert_eq!(read_csv_matrix(&t).unwrap().shape(), [2, 3]);
        fs::write(&t, "a\tb\n1\t2\n").unwrap();
        assert_eq!(read_csv_matrix(&t).unwrap().shape(), [1, 2]);
    }

    #[test]
    fn bad_csv_names_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.csv");
        fs::write(&p, "a,b\n1,2\n3,oops\n").unwrap();
        let e = read_csv_matrix(&p).unwrap_err().to_string();
        assert!(
            e.contains("bad.csv") && e.contains("line 3, column 2") && e.contains("oops"),
            "{e}"
        );
        fs::write(&p, "1,2\n3,4,5\n").unwrap();
        let e = read_csv_matrix(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("ragged"), "{e}");
        fs::write(&p, "a,b\n").unwrap();
        assert!(
            read_csv_matrix(&p)
                .unwrap_err()
                .to_string()
                .contains("no data")
        );
        fs::write(&p, "").unwrap();
        assert!(
            read_csv_matrix(&p)
                .unwrap_err()
                .to_string()
                .contains("no data")
        );
        fs::write(&p, [0xff, 0xfe, 0x31]).unwrap();
        assert!(
            read_csv_matrix(&p)
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
        let e = read_csv_matrix(&dir.path().join("none.csv")).unwrap_err();
        assert!(matches!(e, SiameseError::Io { .. }));
    }

    #[test]
    fn write_and_dispatch_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let m = Matrix::from_rows(&[vec![0.1, 2.0], vec![-3.25, 1e-7]]).unwrap();
        let header = vec!["a".to_string(), "b".to_string()];
        for name in ["m.csv", "m.tsv", "m.txt", "m.npy"] {
            let p = dir.path().join(name);
            write_matrix_any(&p, &m, Some(&header)).unwrap();
            assert_eq!(read_matrix_any(&p).unwrap(), m, "{name}");
        }
        let text = fs::read_to_string(dir.path().join("m.csv")).unwrap();
        assert!(text.starts_with("a,b\n0.1,2\n"), "{text}");
        // Wrong header length, unknown extension.
        let e = write_csv(&dir.path().join("h.csv"), &m, Some(&header[..1])).unwrap_err();
        assert!(e.to_string().contains("1 names"), "{e}");
        let e = read_matrix_any(&dir.path().join("m.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(".npy") && e.contains(".csv") && e.contains("json"),
            "{e}"
        );
        let e = write_matrix_any(&dir.path().join("m.xls"), &m, None).unwrap_err();
        assert!(e.to_string().contains("accepted"), "{e}");
        // Only the final files exist: no temporaries left.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 4);
    }
}
