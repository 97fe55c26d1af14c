//! Lists of image pairs: CSV lines `path_a,path_b,label`, and loading the images they name.
//!
//! Paths are relative to the CSV file's folder (absolute paths are kept). An optional header
//! row is recognised by a third field that is not a number.
//!
//! # Label conventions
//!
//! This crate's convention is **1 = similar, 0 = dissimilar** (the contrastive loss pulls
//! label-1 pairs together). Some datasets use the opposite: in the SigComp2011 signature
//! pairs (`signatures_sigcomp2011_dutch/test_pairs_subset.csv`), label 1 means *image2 is a
//! forgery* of image1's writer and 0 means both are genuine — so 1 means **different**. Read
//! such files with [`read_pair_list_with`] and [`LabelConvention::OneMeansDifferent`], which
//! returns `1 − label`, i.e. our convention.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::images::{ImageOptions, load_many};
use super::table::read_text;
use crate::data::Pairs;
use crate::error::{Result, SiameseError};

/// What label 1 means in a pair file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelConvention {
    /// 1 = similar / same class (this crate's convention); labels are kept as they are.
    #[default]
    OneMeansSimilar,
    /// 1 = different / forged (e.g. SigComp2011 signature pairs); labels become `1 − label`.
    OneMeansDifferent,
}

/// One pair from a pair list: both image paths (resolved) and the label in our convention.
pub type PairEntry = (PathBuf, PathBuf, f32);

/// Reads a pair list `path_a,path_b,label` whose label 1 means similar.
///
/// Equivalent to [`read_pair_list_with`]`(path, LabelConvention::OneMeansSimilar)`.
///
/// # Errors
/// As [`read_pair_list_with`].
pub fn read_pair_list(path: &Path) -> Result<Vec<PairEntry>> {
    read_pair_list_with(path, LabelConvention::OneMeansSimilar)
}

/// Reads a pair list `path_a,path_b,label` and converts labels to this crate's convention
/// (1 = similar) according to `convention`.
///
/// Fields are comma-separated (CSV quoting allowed) and trimmed; a tab-separated file is
/// accepted too. Extra columns after the third are ignored. Relative paths are resolved
/// against the CSV's folder. Labels must be numbers in `[0, 1]` (usually 0 or 1).
///
/// # Errors
/// [`SiameseError::Io`] for a missing file; [`SiameseError::Format`] naming the file and line
/// for a line with fewer than 3 fields, an empty path, or a label that is not a number in
/// `[0, 1]`; [`SiameseError::Empty`] naming the file when it lists no pair.
pub fn read_pair_list_with(path: &Path, convention: LabelConvention) -> Result<Vec<PairEntry>> {
    let text = read_text(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let first = text.lines().next().unwrap_or("");
    let delim = if !first.contains(',') && first.contains('\t') {
        b'\t'
    } else {
        b','
    };
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delim)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| SiameseError::format(path, format!("bad CSV: {e}")))?;
        let line = rec.position().map_or(i as u64 + 1, |p| p.line());
        if rec.iter().all(str::is_empty) {
            continue;
        }
        let bad = |m: String| SiameseError::format(path, format!("line {line}: {m}"));
        let (Some(a), Some(b), Some(label)) = (rec.get(0), rec.get(1), rec.get(2)) else {
            return Err(bad(format!(
                "expected `path_a,path_b,label`, found {} field(s)",
                rec.len()
            )));
        };
        let Ok(y) = label.parse::<f32>() else {
            if out.is_empty() && i == 0 {
                continue; // header row
            }
            return Err(bad(format!("label `{label}` is not a number")));
        };
        if !(y.is_finite() && (0.0..=1.0).contains(&y)) {
            return Err(bad(format!("label {label} is outside [0, 1]")));
        }
        if a.is_empty() || b.is_empty() {
            return Err(bad("empty image path".into()));
        }
        let y = match convention {
            LabelConvention::OneMeansSimilar => y,
            LabelConvention::OneMeansDifferent => 1.0 - y,
        };
        out.push((base.join(a), base.join(b), y));
    }
    if out.is_empty() {
        return Err(SiameseError::Empty(format!(
            "no pairs listed in {}",
            path.display()
        )));
    }
    Ok(out)
}

/// Loads the images of a pair list into [`Pairs`]: row `i` of `a` and `b` are the two images
/// of pair `i` (`width · height` values each, see [`super::images::load_image`]), `labels[i]`
/// its label.
///
/// Each distinct image is decoded once, on all cores.
///
/// # Errors
/// [`SiameseError::Empty`] for an empty list; the errors of
/// [`super::images::load_image`] naming the first image that fails.
pub fn load_pair_images(list: &[PairEntry], opts: &ImageOptions) -> Result<Pairs> {
    opts.validate()?;
    if list.is_empty() {
        return Err(SiameseError::Empty("the pair list is empty".into()));
    }
    let mut index: HashMap<&Path, usize> = HashMap::new();
    let mut unique: Vec<PathBuf> = Vec::new();
    for (a, b, _) in list {
        for p in [a, b] {
            index.entry(p.as_path()).or_insert_with(|| {
                unique.push(p.clone());
                unique.len() - 1
            });
        }
    }
    let images = load_many(&unique, opts)?;
    let rows = |pick: fn(&PairEntry) -> &PathBuf| -> Vec<usize> {
        list.iter()
            .map(|e| index.get(pick(e).as_path()).copied().unwrap_or(0))
            .collect()
    };
    let a = images.select_rows(&rows(|e| &e.0));
    let b = images.select_rows(&rows(|e| &e.1));
    let labels = list.iter().map(|e| e.2).collect();
    Ok(Pairs { a, b, labels })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::images::tests::write_gray;
    use std::fs;

    #[test]
    fn reads_pairs_and_converts_labels() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_gray(&d.join("049/01_049.png"), 4, 4, None, |_, _| 255);
        write_gray(&d.join("049_forg/01_0114049.PNG"), 6, 3, None, |_, _| 0);
        let p = d.join("pairs.csv");
        fs::write(
            &p,
            "049/01_049.png,049_forg/01_0114049.PNG,1\n049/01_049.png,049/01_049.png,0\n",
        )
        .unwrap();
        let list = read_pair_list(&p).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].0, d.join("049/01_049.png"));
        assert_eq!(list[0].2, 1.0);
        let conv = read_pair_list_with(&p, LabelConvention::OneMeansDifferent).unwrap();
        assert_eq!(conv.iter().map(|e| e.2).collect::<Vec<_>>(), vec![0.0, 1.0]);

        let pairs = load_pair_images(&conv, &ImageOptions::new(2, 2)).unwrap();
        assert_eq!(pairs.a.shape(), [2, 4]);
        assert_eq!(pairs.a.row(0), &[1.0; 4]);
        assert_eq!(pairs.b.row(0), &[0.0; 4]);
        assert_eq!(pairs.b.row(1), &[1.0; 4]);
        assert_eq!(pairs.labels, vec![0.0, 1.0]);

        // Header row, tabs and extra columns.
        fs::write(
            &p,
            "image1\timage2\tlabel\textra\n049/01_049.png\t049/01_049.png\t0.5\tx\n",
        )
        .unwrap();
        assert_eq!(read_pair_list(&p).unwrap()[0].2, 0.5);
    }

    #[test]
    fn bad_pair_lists_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.csv");
        fs::write(&p, "a.png,b.png,1\na.png,b.png,2\n").unwrap();
        let e = read_pair_list(&p).unwrap_err().to_string();
        assert!(
            e.contains("bad.csv") && e.contains("line 2") && e.contains("[0, 1]"),
            "{e}"
        );
        fs::write(&p, "a.png,b.png,1\na.png,b.png,yes\n").unwrap();
        let e = read_pair_list(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("`yes`"), "{e}");
        fs::write(&p, "a.png,b.png,1\na.png,b.png\n").unwrap();
        let e = read_pair_list(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("2 field"), "{e}");
        fs::write(&p, "a.png,,1\n").unwrap();
        assert!(
            read_pair_list(&p)
                .unwrap_err()
                .to_string()
                .contains("empty image path")
        );
        fs::write(&p, "image1,image2,label\n").unwrap();
        let e = read_pair_list(&p).unwrap_err();
        assert!(matches!(e, SiameseError::Empty(_)) && e.to_string().contains("bad.csv"));
        // Images that do not exist name the image.
        fs::write(&p, "a.png,b.png,1\n").unwrap();
        let list = read_pair_list(&p).unwrap();
        let e = load_pair_images(&list, &ImageOptions::new(2, 2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.png") || e.contains("b.png"), "{e}");
        assert!(load_pair_images(&[], &ImageOptions::new(2, 2)).is_err());
    }
}
