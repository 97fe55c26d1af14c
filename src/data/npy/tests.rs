//! Tests of the `.npy` / `.npz` readers and writer, and helpers that build such files byte by
//! byte (shared with the tests of [`crate::data::info`]).

use std::fs;
use std::io::{Cursor, Write};

use super::header::MAGIC;
use super::{
    read_info, read_labels, read_matrix, read_npz, read_npz_info, read_pairs, write_matrix,
};
use crate::data::Matrix;
use crate::error::{Result, SiameseError};

/// The bytes of an `.npy` file with the given descr, shape text and raw data.
pub(crate) fn npy_raw(descr: &str, shape: &str, fortran: bool, data: &[u8]) -> Vec<u8> {
    let f = if fortran { "True" } else { "False" };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': {shape}, }}");
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
