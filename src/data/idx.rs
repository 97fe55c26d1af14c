//! MNIST's IDX files, gzipped or not.
//!
//! An IDX file is a big-endian header — two zero bytes, a type byte (`0x08` = `u8`) and the
//! number of dimensions `k` — followed by `k` big-endian `u32` sizes and the data in C order.
//! Images are magic `0x00000803` (`n × rows × cols` bytes), labels `0x00000801` (`n` bytes).
//! Gzip is detected from the magic bytes `1f 8b`, not from the file name.
//!
//! Pixels are scaled to `[0, 1]` by dividing by 255; each image becomes one row of
//! `rows · cols` values, row-major.

use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::Matrix;
use super::images::LabelledSamples;
use crate::error::{Result, SiameseError};

/// Magic number of an IDX file of `u8` images (3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of `u8` labels (1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// What an IDX header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxInfo {
    /// The 4-byte magic number, e.g. `0x00000803`.
    pub magic: u32,
    /// The element type in words (`u8`, `i8`, `i16`, `i32`, `f32`, `f64`).
    pub dtype: &'static str,
    /// The dimensions, e.g. `[10000, 28, 28]`.
    pub dims: Vec<usize>,
    /// Whether the file is gzip-compressed.
    pub gzipped: bool,
}

/// Opens `path` as a byte stream, transparently un-gzipping it when it starts with `1f 8b`.
fn open(path: &Path) -> Result<(Box<dyn Read>, bool)> {
    let file = fs::File::open(path).map_err(|e| SiameseError::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 2];
    let mut n = 0;
    while n < 2 {
        match reader.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(SiameseError::io(path, e)),
        }
    }
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let chained = head.chain(reader);
    if magic[..n] == [0x1f, 0x8b] {
        Ok((Box::new(flate2::read::MultiGzDecoder::new(chained)), true))
    } else {
        Ok((Box::new(chained), false))
    }
}

/// Reads exactly `buf.len()` bytes, or says how many were there.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads and checks the header; leaves the reader at the first data byte.
fn read_header(path: &Path, r: &mut dyn Read, gzipped: bool) -> Result<IdxInfo> {
    let io = |e: std::io::Error| {
        if gzipped {
            SiameseError::format(path, format!("corrupt gzip data: {e}"))
        } else {
            SiameseError::io(path, e)
        }
    };
    let mut head = [0u8; 4];
    let n = read_full(r, &mut head).map_err(io)?;
    if n < 4 {
        return Err(SiameseError::format(
            path,
            format!("truncated IDX file: {n} bytes, shorter than the 4-byte magic number"),
        ));
    }
    let magic = u32::from_be_bytes(head);
    let dtype = match head[2] {
        0x08 => "u8",
        0x09 => "i8",
        0x0B => "i16",
        0x0C => "i32",
        0x0D => "f32",
        0x0E => "f64",
        _ => "",
    };
    if head[0] != 0 || head[1] != 0 || dtype.is_empty() || head[3] == 0 {
        return Err(SiameseError::format(
            path,
            format!(
                "not an IDX file: magic number 0x{magic:08x} (MNIST images are 0x00000803, labels 0x00000801)"
            ),
        ));
    }
    let mut dims = Vec::with_capacity(usize::from(head[3]));
    for i in 0..head[3] {
        let mut d = [0u8; 4];
        if read_full(r, &mut d).map_err(io)? < 4 {
            return Err(SiameseError::format(
                path,
                format!(
                    "truncated IDX header: it ends before dimension {} of {}",
                    i + 1,
                    head[3]
                ),
            ));
        }
        dims.push(u32::from_be_bytes(d) as usize);
    }
    Ok(IdxInfo {
        magic,
        dtype,
        dims,
        gzipped,
    })
}

/// Reads the header of an IDX file (gzipped or not) without reading its data.
///
/// # Errors
/// [`SiameseError::Io`] for an unreadable file; [`SiameseError::Format`] naming the file for a
/// bad magic number or a truncated header.
pub fn read_idx_info(path: &Path) -> Result<IdxInfo> {
    let (mut r, gz) = open(path)?;
    read_header(path, &mut r, gz)
}

/// Opens an IDX file whose magic must be `magic`; returns its header and the `u8` data.
fn read_u8_idx(path: &Path, magic: u32, what: &str) -> Result<(IdxInfo, Vec<u8>)> {
    let (mut r, gz) = open(path)?;
    let info = read_header(path, &mut r, gz)?;
    if info.magic != magic {
        let hint = match info.magic {
            IMAGES_MAGIC => " (this is an IDX images file)",
            LABELS_MAGIC => " (this is an IDX labels file)",
            _ => "",
        };
        return Err(SiameseError::format(
            path,
            format!(
                "magic number 0x{:08x}{hint}, expected 0x{magic:08x} for IDX {what}",
                info.magic
            ),
        ));
    }
    let total = info
        .dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| {
            SiameseError::format(
                path,
                format!("IDX dimensions {:?} are too large", info.dims),
            )
        })?;
    let mut data = Vec::new();
    // Read at most what the header declares (plus one byte to spot trailing data); memory
    // grows with the bytes actually present, never with what a corrupt header claims.
    (&mut r)
        .take((total as u64).saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| {
            if gz {
                SiameseError::format(path, format!("corrupt or truncated gzip data: {e}"))
            } else {
                SiameseError::io(path, e)
            }
        })?;
    if data.len() < total {
        return Err(SiameseError::format(
            path,
            format!(
                "truncated IDX data: dimensions {:?} need {total} bytes but only {} are present",
                info.dims,
                data.len()
            ),
        ));
    }
    if data.len() > total {
        return Err(SiameseError::format(
            path,
            format!(
                "unexpected bytes after the {total} data bytes that dimensions {:?} declare",
                info.dims
            ),
        ));
    }
    Ok((info, data))
}

/// Reads IDX `u8` images (magic `0x00000803`) as an `n × (rows · cols)` matrix in `[0, 1]`
/// (pixel / 255), plus `rows` and `cols`.
///
/// # Errors
/// [`SiameseError::Io`] for an unreadable file; [`SiameseError::Format`] naming the file for a
/// wrong magic number, or data shorter than the header says (`truncated`) or longer.
pub fn read_idx_images(path: &Path) -> Result<(Matrix, usize, usize)> {
    let (info, data) = read_u8_idx(path, IMAGES_MAGIC, "images")?;
    let [n, rows, cols] = info.dims[..] else {
        return Err(SiameseError::format(
            path,
            "IDX images must have 3 dimensions",
        ));
    };
    let values = data.iter().map(|&p| f32::from(p) / 255.0).collect();
    Ok((Matrix::new(n, rows * cols, values)?, rows, cols))
}

/// Reads IDX `u8` labels (magic `0x00000801`).
///
/// # Errors
/// As [`read_idx_images`].
pub fn read_idx_labels(path: &Path) -> Result<Vec<usize>> {
    let (_, data) = read_u8_idx(path, LABELS_MAGIC, "labels")?;
    Ok(data.into_iter().map(usize::from).collect())
}

/// The first of `names` (with or without `.gz`) that exists in `dir`.
fn find(dir: &Path, names: &[&str]) -> Result<PathBuf> {
    for name in names {
        for candidate in [format!("{name}.gz"), (*name).to_string()] {
            let p = dir.join(candidate);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(SiameseError::io(
        dir.join(names.first().copied().unwrap_or_default()),
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "MNIST file not found (looked for it with and without .gz)",
        ),
    ))
}

/// File names of the MNIST test images, in the order they are looked for.
pub(crate) const TEST_IMAGES: &[&str] = &["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"];
/// File names of the MNIST test labels.
pub(crate) const TEST_LABELS: &[&str] = &["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"];

/// Whether `dir` holds the MNIST test images.
pub(crate) fn is_mnist_dir(dir: &Path) -> bool {
    find(dir, TEST_IMAGES).is_ok()
}

/// Loads the MNIST test set from `dir`: `t10k-images-idx3-ubyte(.gz)` and
/// `t10k-labels-idx1-ubyte(.gz)` (the training images are not used: the shared copy lacks
/// them), as `n × 784` samples in `[0, 1]`, classes `"0"` … `"9"`, `image_size` `(28, 28)`.
///
/// # Errors
/// [`SiameseError::Io`] naming a missing file; [`SiameseError::Format`] for a corrupt file, a
/// label above 9, or image and label counts that differ (both named).
pub fn load_mnist(dir: &Path) -> Result<LabelledSamples> {
    let images = find(dir, TEST_IMAGES)?;
    let labels_path = find(dir, TEST_LABELS)?;
    let (samples, rows, cols) = read_idx_images(&images)?;
    let labels = read_idx_labels(&labels_path)?;
    if labels.len() != samples.rows() {
        return Err(SiameseError::format(
            &labels_path,
            format!(
                "{} labels, but {} holds {} images",
                labels.len(),
                images.display(),
                samples.rows()
            ),
        ));
    }
    if let Some(i) = labels.iter().position(|&l| l > 9) {
        return Err(SiameseError::format(
            &labels_path,
            format!("label {i} is {}; MNIST labels are digits 0-9", labels[i]),
        ));
    }
    Ok(LabelledSamples {
        samples,
        labels,
        class_names: (0..10).map(|d| d.to_string()).collect(),
        paths: Vec::new(),
        image_size: Some((cols, rows)),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// An IDX file of u8 data with the given magic and dimensions.
    pub(crate) fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    pub(crate) fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_plain_and_gzipped_idx() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..12).map(|i| (i * 20) as u8).collect();
        let images = idx(IMAGES_MAGIC, &[3, 2, 2], &pixels);
        let plain = dir.path().join("imgs");
        fs::write(&plain, &images).unwrap();
        // Gzip is detected by content even without a .gz name.
        let zipped = dir.path().join("imgs-no-suffix");
        fs::write(&zipped, gz(&images)).unwrap();
        for p in [&plain, &zipped] {
            let (m, r, c) = read_idx_images(p).unwrap();
            assert_eq!((m.shape(), r, c), ([3, 4], 2, 2));
            assert_eq!(m.row(1)[0], 80.0 / 255.0);
        }
        assert!(read_idx_info(&zipped).unwrap().gzipped);
        let labels = dir.path().join("labels");
        fs::write(&labels, idx(LABELS_MAGIC, &[3], &[7, 2, 1])).unwrap();
        assert_eq!(read_idx_labels(&labels).unwrap(), vec![7, 2, 1]);
    }

    #[test]
    fn bad_idx_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad-idx");
        // Truncated data, plain and gzipped.
        let short = idx(IMAGES_MAGIC, &[3, 2, 2], &[0; 10]);
        fs::write(&p, &short).unwrap();
        let e = read_idx_images(&p).unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("bad-idx"), "{e}");
        fs::write(&p, gz(&short)).unwrap();
        assert!(
            read_idx_images(&p)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        // A cut gzip stream.
        let g = gz(&idx(IMAGES_MAGIC, &[3, 2, 2], &[0; 12]));
        fs::write(&p, &g[..g.len() - 10]).unwrap();
        let e = read_idx_images(&p).unwrap_err().to_string();
        assert!(e.contains("bad-idx"), "{e}");
        // Truncated header.
        fs::write(&p, &short[..9]).unwrap();
        assert!(
            read_idx_images(&p)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        // Wrong magic: labels given as images and vice versa.
        fs::write(&p, idx(LABELS_MAGIC, &[2], &[1, 2])).unwrap();
        let e = read_idx_images(&p).unwrap_err().to_string();
        assert!(e.contains("0x00000801") && e.contains("labels file"), "{e}");
        fs::write(&p, idx(IMAGES_MAGIC, &[1, 1, 1], &[1])).unwrap();
        assert!(
            read_idx_labels(&p)
                .unwrap_err()
                .to_string()
                .contains("0x00000803")
        );
        fs::write(&p, b"hello world").unwrap();
        assert!(
            read_idx_images(&p)
                .unwrap_err()
                .to_string()
                .contains("not an IDX")
        );
        // Huge dimensions do not allocate: they are simply truncated.
        fs::write(&p, idx(IMAGES_MAGIC, &[u32::MAX, 1000, 2], &[0; 4])).unwrap();
        assert!(
            read_idx_images(&p)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        fs::write(&p, idx(IMAGES_MAGIC, &[u32::MAX, u32::MAX, 2], &[0; 4])).unwrap();
        assert!(
            read_idx_images(&p)
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
        // Trailing data.
        fs::write(&p, idx(LABELS_MAGIC, &[2], &[1, 2, 3])).unwrap();
        assert!(
            read_idx_labels(&p)
                .unwrap_err()
                .to_string()
                .contains("unexpected bytes")
        );
        // Missing file.
        let e = read_idx_labels(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(e, SiameseError::Io { .. }));
    }

    #[test]
    fn mnist_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let e = load_mnist(d).unwrap_err().to_string();
        assert!(e.contains("t10k-images-idx3-ubyte"), "{e}");
        fs::write(
            d.join("t10k-images-idx3-ubyte.gz"),
            gz(&idx(IMAGES_MAGIC, &[2, 28, 28], &[255; 2 * 784])),
        )
        .unwrap();
        fs::write(
            d.join("t10k-labels-idx1-ubyte"),
            idx(LABELS_MAGIC, &[2], &[3, 9]),
        )
        .unwrap();
        let ds = load_mnist(d).unwrap();
        assert_eq!(ds.samples.shape(), [2, 784]);
        assert_eq!(ds.labels, vec![3, 9]);
        assert_eq!(ds.num_classes(), 10);
        assert_eq!(ds.samples_per_class()[3], 1);
        assert_eq!(ds.image_size, Some((28, 28)));
        assert!(is_mnist_dir(d));
        // Count mismatch names both files.
        fs::write(
            d.join("t10k-labels-idx1-ubyte"),
            idx(LABELS_MAGIC, &[1], &[3]),
        )
        .unwrap();
        let e = load_mnist(d).unwrap_err().to_string();
        assert!(e.contains("1 labels") && e.contains("2 images"), "{e}");
        // Out-of-range label.
        fs::write(
            d.join("t10k-labels-idx1-ubyte"),
            idx(LABELS_MAGIC, &[2], &[3, 12]),
        )
        .unwrap();
        assert!(
            load_mnist(d)
                .unwrap_err()
                .to_string()
                .contains("label 1 is 12")
        );
    }
}
