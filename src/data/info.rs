//! Human-readable descriptions of dataset paths, for `siamese info`-style commands.
//!
//! [`describe`] recognises, by content rather than by name wherever possible:
//!
//! | path | description |
//! |---|---|
//! | image folder (class folders or Yale-style flat files) | classes, samples, min/median/max per class, image sizes and formats (headers only, nothing decoded) |
//! | MNIST folder, IDX file (gzipped or not) | counts, shape, per-digit counts |
//! | `.npy`, `.npz`, folder with `a.npy`/`b.npy`/`labels.npy` | arrays, dtypes, shapes |
//! | STS-B, SICK, generic sentence-pair tables | pair count, score range (SICK: per split) |
//! | pair list `path_a,path_b,label` | pair count, label balance, missing images |
//! | numeric CSV | rows × columns |
//!
//! A folder that is none of these is described file by file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::Path;

use super::images::{natural_path_cmp, scan_image_folder, sniff_image};
use super::{idx, npy, pairlist, table, text};
use crate::error::{Result, SiameseError};

/// Describes what the dataset at `path` holds, in a few human-readable lines.
///
/// See the [module docs](self) for what is recognised. Image folders are described from file
/// headers only, so even large folders are quick.
///
/// # Errors
/// [`SiameseError::Io`] for a missing path; the loaders' [`SiameseError::Format`] errors for a
/// corrupt file; [`SiameseError::Format`] for a file of no known kind; [`SiameseError::Empty`]
/// for a folder holding nothing recognisable.
pub fn describe(path: &Path) -> Result<String> {
    let meta = fs::metadata(path).map_err(|e| SiameseError::io(path, e))?;
    if meta.is_dir() {
        describe_dir(path)
    } else {
        describe_file(path)
    }
}

fn describe_dir(dir: &Path) -> Result<String> {
    let mut out = String::new();
    if idx::is_mnist_dir(dir) {
        let ds = idx::load_mnist(dir)?;
        let (w, h) = ds.image_size.unwrap_or((0, 0));
        let _ = writeln!(
            out,
            "{}: MNIST test set, {} images of {w}×{h} (u8, scaled to [0, 1]), 10 classes",
            dir.display(),
            ds.samples.rows()
        );
        let counts = ds.samples_per_class();
        let _ = writeln!(
            out,
            "  per digit: {}",
            counts
                .iter()
                .enumerate()
                .map(|(d, n)| format!("{d}:{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        return Ok(out);
    }
    if ["a.npy", "b.npy", "labels.npy"]
        .iter()
        .all(|f| dir.join(f).is_file())
    {
        let pairs = npy::read_pairs(dir)?;
        let _ = writeln!(
            out,
            "{}: {} pairs of {} features ({} labelled similar)",
            dir.display(),
            pairs.labels.len(),
            pairs.a.cols(),
            pairs.labels.iter().filter(|&&y| y >= 0.5).count()
        );
        for f in ["a.npy", "b.npy", "labels.npy"] {
            let info = npy::read_info(&dir.join(f))?;
            let _ = writeln!(out, "  {f}: {} {}", info.dtype_name(), info.shape_string());
        }
        return Ok(out);
    }
    let classes = scan_image_folder(dir)?;
    let mut other: Vec<_> = fs::read_dir(dir)
        .map_err(|e| SiameseError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && sniff_image(p).is_none())
        .collect();
    other.sort_by(|a, b| natural_path_cmp(a, b));
    if !classes.is_empty() {
        out.push_str(&describe_classes(dir, &classes));
    }
    let mut described = 0;
    for f in &other {
        if let Ok(d) = describe_file(f) {
            for (i, line) in d.lines().enumerate() {
                let indent = match (classes.is_empty(), i) {
                    (true, _) => "",
                    (false, 0) => "  also ",
                    (false, _) => "       ",
                };
                let _ = writeln!(out, "{indent}{line}");
            }
            described += 1;
        }
    }
    if classes.is_empty() && described == 0 {
        return Err(SiameseError::Empty(format!(
            "{} holds no images, MNIST files, arrays or pair tables",
            dir.display()
        )));
    }
    Ok(out)
}

/// Classes, counts, sizes and formats of a scanned image folder (headers only).
fn describe_classes(dir: &Path, classes: &[(String, Vec<std::path::PathBuf>)]) -> String {
    let mut counts: Vec<usize> = classes.iter().map(|(_, f)| f.len()).collect();
    let total: usize = counts.iter().sum();
    counts.sort_unstable();
    let (min, med, max) = (
        counts.first().copied().unwrap_or(0),
        counts.get(counts.len() / 2).copied().unwrap_or(0),
        counts.last().copied().unwrap_or(0),
    );
    let mut sizes: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    let mut formats: BTreeMap<String, usize> = BTreeMap::new();
    let mut unreadable = 0;
    for (_, files) in classes {
        for f in files {
            let dims = image::ImageReader::open(f)
                .ok()
                .and_then(|r| r.with_guessed_format().ok())
                .and_then(|r| {
                    let fmt = r.format();
                    r.into_dimensions().ok().map(|d| (d, fmt))
                });
            match dims {
                Some((d, fmt)) => {
                    *sizes.entry(d).or_default() += 1;
                    let name = fmt.map_or("unknown".to_string(), |f| format!("{f:?}"));
                    *formats.entry(name.to_uppercase()).or_default() += 1;
                }
                None => unreadable += 1,
            }
        }
    }
    let names: Vec<&str> = classes.iter().map(|(c, _)| c.as_str()).collect();
    let shown = if names.len() > 6 {
        format!(
            "{}, …, {}",
            names[..3].join(", "),
            names[names.len() - 2..].join(", ")
        )
    } else {
        names.join(", ")
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: image folder, {} classes, {total} images",
        dir.display(),
        classes.len()
    );
    let _ = writeln!(out, "  classes: {shown}");
    let _ = writeln!(
        out,
        "  images per class: min {min}, median {med}, max {max}"
    );
    let size_text = if sizes.len() <= 4 {
        sizes
            .iter()
            .map(|((w, h), n)| format!("{w}×{h} ({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        let ws = sizes.keys().map(|k| k.0);
        let hs = sizes.keys().map(|k| k.1);
        format!(
            "{} different, width {}–{}, height {}–{}",
            sizes.len(),
            ws.clone().min().unwrap_or(0),
            ws.max().unwrap_or(0),
            hs.clone().min().unwrap_or(0),
            hs.max().unwrap_or(0)
        )
    };
    let _ = writeln!(out, "  sizes (width×height): {size_text}");
    let _ = writeln!(
        out,
        "  formats: {}",
        formats
            .iter()
            .map(|(f, n)| format!("{f} ({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if unreadable > 0 {
        let _ = writeln!(out, "  unreadable image headers: {unreadable}");
    }
    out
}

/// The first `n` bytes of a file.
fn head(path: &Path, n: u64) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(n).read_to_end(&mut buf))
        .map_err(|e| SiameseError::io(path, e))?;
    Ok(buf)
}

/// `min–max` of the scores.
fn range(scores: impl Iterator<Item = f32>) -> String {
    let (lo, hi) = scores.fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), s| {
        (l.min(s), h.max(s))
    });
    format!("{lo}–{hi}")
}

fn describe_file(path: &Path) -> Result<String> {
    let name = path.display();
    let bytes = head(path, 4096)?;
    // Binary formats first, by magic bytes.
    if bytes.starts_with(&[0x1f, 0x8b])
        || (bytes.len() >= 4 && bytes[..2] == [0, 0] && bytes[3] > 0)
    {
        let info = idx::read_idx_info(path)?;
        let mut s = format!(
            "{name}: IDX{}, magic 0x{:08x}, {} array of shape {:?}",
            if info.gzipped { " (gzip)" } else { "" },
            info.magic,
            info.dtype,
            info.dims
        );
        if info.magic == idx::LABELS_MAGIC {
            let labels = idx::read_idx_labels(path)?;
            let mut counts = BTreeMap::new();
            for l in labels {
                *counts.entry(l).or_insert(0usize) += 1;
            }
            let _ = write!(
                s,
                "\n  label counts: {}",
                counts
                    .iter()
                    .map(|(l, n)| format!("{l}:{n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        return Ok(s + "\n");
    }
    if bytes.starts_with(b"\x93NUMPY") {
        let info = npy::read_info(path)?;
        return Ok(format!(
            "{name}: .npy array, dtype {} ({}), shape {}{}\n",
            info.dtype_name(),
            info.descr,
            info.shape_string(),
            if info.fortran_order {
                ", Fortran order"
            } else {
                ""
            }
        ));
    }
    if bytes.starts_with(b"PK") {
        let members = npy::read_npz_info(path)?;
        let mut s = format!("{name}: .npz archive, {} arrays\n", members.len());
        for (k, info) in members {
            let _ = writeln!(
                s,
                "  {k}: dtype {}, shape {}",
                info.dtype_name(),
                info.shape_string()
            );
        }
        return Ok(s);
    }
    if let Some(format) = sniff_image(path) {
        let dims = image::ImageReader::open(path)
            .map_err(|e| SiameseError::io(path, e))?
            .with_guessed_format()
            .map_err(|e| SiameseError::io(path, e))?
            .into_dimensions()
            .map_err(|e| SiameseError::format(path, format!("cannot read image header: {e}")))?;
        return Ok(format!(
            "{name}: {} image, {}×{} (width×height)\n",
            format!("{format:?}").to_uppercase(),
            dims.0,
            dims.1
        ));
    }
    describe_text(path, &bytes)
}

fn describe_text(path: &Path, head: &[u8]) -> Result<String> {
    let name = path.display();
    let text = String::from_utf8_lossy(head);
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    let lower = first.to_ascii_lowercase();
    if lower.contains("relatedness_score") && lower.contains("semeval_set") {
        let all = text::read_sick(path, None)?;
        let mut s = format!(
            "{name}: SICK sentence pairs, {} pairs, relatedness {}\n",
            all.len(),
            range(all.iter().map(|p| p.score))
        );
        let splits: Vec<String> = ["TRAIN", "TRIAL", "TEST"]
            .iter()
            .map(|k| {
                let n = text::read_sick(path, Some(k)).map_or(0, |v| v.len());
                format!("{k} {n}")
            })
            .collect();
        let _ = writeln!(s, "  SemEval_set: {}", splits.join(", "));
        return Ok(s);
    }
    let tabs: Vec<&str> = first.split('\t').collect();
    if tabs.len() >= 7 && tabs.get(4).is_some_and(|s| s.trim().parse::<f32>().is_ok()) {
        let v = text::read_stsb(path)?;
        return Ok(format!(
            "{name}: STS Benchmark sentence pairs, {} pairs, score {}\n",
            v.len(),
            range(v.iter().map(|p| p.score))
        ));
    }
    if let Ok(v) = text::read_text_pairs(path) {
        return Ok(format!(
            "{name}: sentence pairs, {} pairs, score {}\n",
            v.len(),
            range(v.iter().map(|p| p.score))
        ));
    }
    if let Ok(m) = table::read_csv_matrix(path) {
        return Ok(format!(
            "{name}: numeric table, {} rows × {} columns\n",
            m.rows(),
            m.cols()
        ));
    }
    let fields: Vec<&str> = first.split([',', '\t']).collect();
    if fields.len() >= 3 {
        let list = pairlist::read_pair_list(path)?;
        let ones = list.iter().filter(|e| e.2 == 1.0).count();
        let zeros = list.iter().filter(|e| e.2 == 0.0).count();
        let missing = list
            .iter()
            .flat_map(|e| [&e.0, &e.1])
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|p| !p.is_file())
            .count();
        let mut s = format!(
            "{name}: pair list, {} pairs, label 1: {ones}, label 0: {zeros}",
            list.len()
        );
        let other = list.len() - ones - zeros;
        if other > 0 {
            let _ = write!(s, ", fractional: {other}");
        }
        let _ = write!(
            s,
            "\n  (label as written; check the dataset's convention for what 1 means)"
        );
        if missing > 0 {
            let _ = write!(s, "\n  missing image files: {missing}");
        }
        return Ok(s + "\n");
    }
    Err(SiameseError::format(
        path,
        "not a dataset file this crate recognises (images, IDX, .npy/.npz, STS-B, SICK, \
         sentence pairs, pair lists, numeric CSV)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::tests::{gz, idx};
    use crate::data::images::tests::write_gray;
    use crate::data::npy::tests::{f32_bytes, npy_raw, zip};

    #[test]
    fn describes_image_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (class, n) in [("s1", 2), ("s2", 3), ("s3", 1)] {
            for i in 0..n {
                write_gray(
                    &root.join(class).join(format!("{i}.pgm")),
                    9,
                    7,
                    None,
                    |_, _| 0,
                );
            }
        }
        write_gray(&root.join("s3/x.png"), 4, 4, None, |_, _| 0);
        fs::write(
            root.join("pairs.csv"),
            "s1/0.pgm,s2/0.pgm,1\ns1/0.pgm,s1/1.pgm,0\n",
        )
        .unwrap();
        fs::write(root.join("README"), "about").unwrap();
        let d = describe(root).unwrap();
        assert!(d.contains("3 classes, 7 images"), "{d}");
        assert!(d.contains("min 2, median 2, max 3"), "{d}");
        assert!(d.contains("9×7 (6)") && d.contains("4×4 (1)"), "{d}");
        assert!(d.contains("PNM (6)") && d.contains("PNG (1)"), "{d}");
        assert!(
            d.contains("pair list, 2 pairs, label 1: 1, label 0: 1"),
            "{d}"
        );
        let d = describe(&root.join("s3/x.png")).unwrap();
        assert!(d.contains("PNG image, 4×4"), "{d}");
    }

    #[test]
    fn describes_arrays_idx_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let p = d.join("x.npy");
        fs::write(&p, npy_raw("<f8", "(2, 3)", false, &[0; 48])).unwrap();
        let s = describe(&p).unwrap();
        assert!(s.contains("float64") && s.contains("(2, 3)"), "{s}");
        let z = d.join("x.npz");
        fs::write(
            &z,
            zip(&[(
                "emb.npy",
                npy_raw("<f4", "(2,)", false, &f32_bytes(&[1.0, 2.0])),
                false,
            )]),
        )
        .unwrap();
        let s = describe(&z).unwrap();
        assert!(
            s.contains("1 arrays") && s.contains("emb: dtype float32, shape (2,)"),
            "{s}"
        );

        let m = d.join("mnist");
        fs::create_dir(&m).unwrap();
        fs::write(
            m.join("t10k-images-idx3-ubyte.gz"),
            gz(&idx(idx::IMAGES_MAGIC, &[3, 28, 28], &[0; 3 * 784])),
        )
        .unwrap();
        fs::write(
            m.join("t10k-labels-idx1-ubyte.gz"),
            gz(&idx(idx::LABELS_MAGIC, &[3], &[1, 1, 7])),
        )
        .unwrap();
        let s = describe(&m).unwrap();
        assert!(
            s.contains("3 images of 28×28") && s.contains("1:2") && s.contains("7:1"),
            "{s}"
        );
        let s = describe(&m.join("t10k-labels-idx1-ubyte.gz")).unwrap();
        assert!(
            s.contains("gzip") && s.contains("[3]") && s.contains("1:2"),
            "{s}"
        );

        let sts = d.join("sts-dev.csv");
        fs::write(&sts, "g\tf\t2012\t1\t5.0\tA\tB\ng\tf\t2012\t2\t0.5\tC\tD\n").unwrap();
        let s = describe(&sts).unwrap();
        assert!(
            s.contains("STS Benchmark") && s.contains("2 pairs") && s.contains("0.5–5"),
            "{s}"
        );
        let sick = d.join("SICK.txt");
        fs::write(&sick, "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tSemEval_set\r\n1\tA\tB\t4.5\tTRAIN\r\n2\tA\tB\t1\tTEST\r\n").unwrap();
        let s = describe(&sick).unwrap();
        assert!(
            s.contains("SICK") && s.contains("TRAIN 1, TRIAL 0, TEST 1"),
            "{s}"
        );
        let tp = d.join("tp.csv");
        fs::write(&tp, "sentence_a,sentence_b,score\nx,y,0.25\n").unwrap();
        assert!(describe(&tp).unwrap().contains("sentence pairs, 1 pairs"));
        let num = d.join("num.csv");
        fs::write(&num, "1,2\n3,4\n5,6\n").unwrap();
        assert!(describe(&num).unwrap().contains("3 rows × 2 columns"));

        // Folders of text files are described file by file.
        let s = describe(d).unwrap();
        assert!(s.contains("STS Benchmark") && s.contains("SICK"), "{s}");
    }

    #[test]
    fn describe_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(matches!(
            describe(&d.join("nope")).unwrap_err(),
            SiameseError::Io { .. }
        ));
        let e = describe(d).unwrap_err();
        assert!(matches!(e, SiameseError::Empty(_)), "{e}");
        let t = d.join("notes.md");
        fs::write(&t, "# just prose\n").unwrap();
        let e = describe(&t).unwrap_err().to_string();
        assert!(e.contains("notes.md") && e.contains("recognises"), "{e}");
        let n = d.join("bad.npy");
        fs::write(&n, b"\x93NUMPY\x01\x00\xff\x00{'descr'").unwrap();
        let e = describe(&n).unwrap_err().to_string();
        assert!(e.contains("bad.npy") && e.contains("truncated"), "{e}");
    }
}
