//! Sentence-pair datasets: STS Benchmark, SICK and generic TSV/CSV pair tables.
//!
//! Each pair is two strings and a similarity score on the dataset's own scale (STS-B 0–5,
//! SICK relatedness 1–5, generic files as written); normalise it before using it as a label
//! in `[0, 1]` (e.g. `score / 5`).
//!
//! Lines may end in `\n` or `\r\n`; empty lines are skipped. Tab-separated files are split on
//! tabs with no quoting at all, because their sentences contain `"` characters.

use std::path::Path;

use super::table::read_text;
use crate::error::{Result, SiameseError};

/// Two sentences and their similarity score.
#[derive(Debug, Clone, PartialEq)]
pub struct TextPair {
    /// The first sentence.
    pub a: String,
    /// The second sentence.
    pub b: String,
    /// The similarity score, on the dataset's scale.
    pub score: f32,
}

/// `(1-based line number, line)` of the non-empty lines, without `\r`.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// Parses a finite score, naming file, line and column on failure.
fn score(path: &Path, line: usize, column: &str, field: &str) -> Result<f32> {
    match field.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(SiameseError::format(
            path,
            format!("line {line}: {column} `{field}` is not a finite number"),
        )),
    }
}

/// Reads an STS Benchmark file (`sts-train.csv`, `sts-dev.csv`, `sts-test.csv`).
///
/// Lines are tab-separated `genre, filename, year, id, score, sentence1, sentence2`, with no
/// header and no quoting; some lines carry extra trailing fields, which are ignored (the first
/// 7 are kept). The score is on the 0–5 scale.
///
/// # Errors
/// [`SiameseError::Io`] for a missing file; [`SiameseError::Format`] naming the file and line
/// for a line with fewer than 7 fields or a score that is not a number, or non-UTF-8 text;
/// [`SiameseError::Empty`] naming the file when it has no pair.
pub fn read_stsb(path: &Path) -> Result<Vec<TextPair>> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (line, l) in lines(&text) {
        let f: Vec<&str> = l.splitn(8, '\t').collect();
        let [_, _, _, _, s, a, b, ..] = f[..] else {
            return Err(SiameseError::format(
                path,
                format!(
                    "line {line} has {} tab-separated fields; STS-B lines need 7 \
                     (genre, file, year, id, score, sentence1, sentence2)",
                    f.len()
                ),
            ));
        };
        out.push(TextPair {
            a: a.to_string(),
            b: b.to_string(),
            score: score(path, line, "score (column 5)", s)?,
        });
    }
    if out.is_empty() {
        return Err(SiameseError::Empty(format!(
            "no sentence pairs in {}",
            path.display()
        )));
    }
    Ok(out)
}

/// The index of the first header name matching one of `names` (case-insensitive).
fn column(header: &[&str], names: &[&str]) -> Option<usize> {
    names
        .iter()
        .find_map(|n| header.iter().position(|h| h.trim().eq_ignore_ascii_case(n)))
}

/// The SICK `SemEval_set` values.
const SICK_SPLITS: &[&str] = &["TRAIN", "TRIAL", "TEST"];

/// Reads the SICK corpus (`SICK.txt`): tab-separated with a header row, columns found by name
/// (`sentence_A`, `sentence_B`, `relatedness_score` on the 1–5 scale, `SemEval_set`).
///
/// With `split` = `Some("TRAIN" | "TRIAL" | "TEST")` (case-insensitive) only that SemEval
/// split is kept.
///
/// # Errors
/// [`SiameseError::Config`] for an unknown split; [`SiameseError::Io`] for a missing file;
/// [`SiameseError::Format`] naming the file for a missing column, or the line of a short row
/// or a bad score; [`SiameseError::Empty`] when no pair remains.
pub fn read_sick(path: &Path, split: Option<&str>) -> Result<Vec<TextPair>> {
    let split = match split {
        None => None,
        Some(s) => match SICK_SPLITS
            .iter()
            .find(|k| k.eq_ignore_ascii_case(s.trim()))
        {
            Some(k) => Some(*k),
            None => {
                return Err(SiameseError::config(
                    "split",
                    format!("`{s}` is not a SICK split; use TRAIN, TRIAL or TEST"),
                ));
            }
        },
    };
    let text = read_text(path)?;
    let mut it = lines(&text);
    let Some((_, header)) = it.next() else {
        return Err(SiameseError::Empty(format!("{} is empty", path.display())));
    };
    let header: Vec<&str> = header.split('\t').collect();
    let need = |names: &[&str]| {
        column(&header, names).ok_or_else(|| {
            SiameseError::format(
                path,
                format!(
                    "no `{}` column in the header (SICK.txt has sentence_A, sentence_B, \
                     relatedness_score, SemEval_set)",
                    names[0]
                ),
            )
        })
    };
    let ca = need(&["sentence_A"])?;
    let cb = need(&["sentence_B"])?;
    let cs = need(&["relatedness_score"])?;
    let cset = if split.is_some() {
        Some(need(&["SemEval_set"])?)
    } else {
        None
    };
    let width = [ca, cb, cs, cset.unwrap_or(0)]
        .into_iter()
        .max()
        .unwrap_or(0)
        + 1;
    let mut out = Vec::new();
    for (line, l) in it {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() < width {
            return Err(SiameseError::format(
                path,
                format!(
                    "line {line} has {} tab-separated fields, the header has {}",
                    f.len(),
                    header.len()
                ),
            ));
        }
        if let (Some(c), Some(want)) = (cset, split)
            && !f[c].trim().eq_ignore_ascii_case(want)
        {
            continue;
        }
        out.push(TextPair {
            a: f[ca].to_string(),
            b: f[cb].to_string(),
            score: score(path, line, "relatedness_score", f[cs])?,
        });
    }
    if out.is_empty() {
        return Err(SiameseError::Empty(format!(
            "no sentence pairs in {}{}",
            path.display(),
            split.map(|s| format!(" for split {s}")).unwrap_or_default()
        )));
    }
    Ok(out)
}

/// Column names accepted by [`read_text_pairs`], in order of preference.
const A_NAMES: &[&str] = &["sentence_a", "sentence1", "text_a", "a"];
const B_NAMES: &[&str] = &["sentence_b", "sentence2", "text_b", "b"];
const SCORE_NAMES: &[&str] = &["score", "label", "similarity", "relatedness_score"];

/// Reads a generic sentence-pair table with a header naming its columns: `sentence_a`,
/// `sentence_b`, `score` (also `sentence1`/`sentence2`, `text_a`/`text_b`, `a`/`b`, and
/// `label`, `similarity` or `relatedness_score` for the score; case-insensitive). Other
/// columns are ignored.
///
/// `.tsv` files (and `.txt` files whose header has a tab) are tab-separated and read without
/// quoting; other files are CSV with standard `"` quoting.
///
/// # Errors
/// [`SiameseError::Io`] for a missing file; [`SiameseError::Format`] naming the file for a
/// header without the needed columns, or the line of a short row or a non-numeric score;
/// [`SiameseError::Empty`] when the file has no pair.
pub fn read_text_pairs(path: &Path) -> Result<Vec<TextPair>> {
    let text = read_text(path)?;
    let first = lines(&text).next().map_or("", |(_, l)| l);
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let tabs = ext == "tsv" || (ext != "csv" && first.contains('\t'));
    let mut rows: Vec<(u64, Vec<String>)> = Vec::new();
    if tabs {
        for (line, l) in lines(&text) {
            rows.push((line as u64, l.split('\t').map(str::to_string).collect()));
        }
    } else {
        let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(body.as_bytes());
        for rec in reader.records() {
            let rec = rec.map_err(|e| SiameseError::format(path, format!("bad CSV: {e}")))?;
            if rec.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            let line = rec.position().map_or(0, |p| p.line());
            rows.push((line, rec.iter().map(str::to_string).collect()));
        }
    }
    let mut rows = rows.into_iter();
    let Some((_, header)) = rows.next() else {
        return Err(SiameseError::Empty(format!("{} is empty", path.display())));
    };
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let find = |names: &[&str]| {
        column(&header, names).ok_or_else(|| {
            SiameseError::format(
                path,
                format!(
                    "the header ({}) has no {} column; expected sentence_a, sentence_b, score \
                     (or a, b, label)",
                    header.join(", "),
                    names.join("/")
                ),
            )
        })
    };
    let (ca, cb, cs) = (find(A_NAMES)?, find(B_NAMES)?, find(SCORE_NAMES)?);
    let mut out = Vec::new();
    for (line, f) in rows {
        let (Some(a), Some(b), Some(s)) = (f.get(ca), f.get(cb), f.get(cs)) else {
            return Err(SiameseError::format(
                path,
                format!(
                    "line {line} has {} fields, the header has {}",
                    f.len(),
                    header.len()
                ),
            ));
        };
        out.push(TextPair {
            a: a.clone(),
            b: b.clone(),
            score: score(path, line as usize, "score", s)?,
        });
    }
    if out.is_empty() {
        return Err(SiameseError::Empty(format!(
            "no sentence pairs in {}",
            path.display()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn stsb_lines_with_quotes_and_extra_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sts-dev.csv");
        fs::write(
            &p,
            "main-news\tx\t2012\t0001\t5.000\tA \"quoted\" one.\tAnother \"one.\n\
             main-forum\ty\t2014\t0002\t1.5\tB\tC\tsource\tlicence\n",
        )
        .unwrap();
        let v = read_stsb(&p).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].a, "A \"quoted\" one.");
        assert_eq!(v[0].b, "Another \"one.");
        assert_eq!((v[1].b.as_str(), v[1].score), ("C", 1.5));

        fs::write(&p, "g\tf\t2012\t1\t5.0\tA\tB\ng\tf\t2012\t2\tfive\tA\tB\n").unwrap();
        let e = read_stsb(&p).unwrap_err().to_string();
        assert!(
            e.contains("sts-dev.csv") && e.contains("line 2") && e.contains("five"),
            "{e}"
        );
        fs::write(&p, "g\tf\t2012\t1\t5.0\tA\n").unwrap();
        let e = read_stsb(&p).unwrap_err().to_string();
        assert!(e.contains("line 1 has 6"), "{e}");
        fs::write(&p, "\n").unwrap();
        assert!(matches!(read_stsb(&p).unwrap_err(), SiameseError::Empty(_)));
    }

    #[test]
    fn sick_with_crlf_and_splits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("SICK.txt");
        let header =
            "pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\tSemEval_set";
        fs::write(
            &p,
            format!(
                "{header}\r\n1\tA\tB\tNEUTRAL\t4.5\tTRAIN\r\n2\tC\tD\tENTAILMENT\t1\tTEST\r\n3\tE\tF\tNEUTRAL\t3.2\tTRAIN"
            ),
        )
        .unwrap();
        assert_eq!(read_sick(&p, None).unwrap().len(), 3);
        let train = read_sick(&p, Some("train")).unwrap();
        assert_eq!(train.len(), 2);
        assert_eq!(
            train[1],
            TextPair {
                a: "E".into(),
                b: "F".into(),
                score: 3.2
            }
        );
        assert_eq!(read_sick(&p, Some("TEST")).unwrap().len(), 1);
        assert!(matches!(
            read_sick(&p, Some("TRIAL")).unwrap_err(),
            SiameseError::Empty(_)
        ));
        let e = read_sick(&p, Some("dev")).unwrap_err();
        assert!(matches!(e, SiameseError::Config { .. }), "{e}");

        fs::write(&p, format!("{header}\r\n1\tA\tB\tNEUTRAL\r\n")).unwrap();
        let e = read_sick(&p, None).unwrap_err().to_string();
        assert!(e.contains("line 2 has 4"), "{e}");
        fs::write(&p, "pair_ID\tsentence_A\tsentence_B\n1\tA\tB\n").unwrap();
        let e = read_sick(&p, None).unwrap_err().to_string();
        assert!(e.contains("relatedness_score"), "{e}");
    }

    #[test]
    fn generic_text_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pairs.csv");
        fs::write(
            &p,
            "id,sentence_a,sentence_b,score\n1,\"Hi, there\",Hello,0.9\n2,x,y,0\n",
        )
        .unwrap();
        let v = read_text_pairs(&p).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].a, "Hi, there");
        assert_eq!(v[0].score, 0.9);
        let t = dir.path().join("pairs.tsv");
        fs::write(&t, "a\tb\tlabel\r\nSay \"hi\tyo\t1\r\n").unwrap();
        let v = read_text_pairs(&t).unwrap();
        assert_eq!((v[0].a.as_str(), v[0].score), ("Say \"hi", 1.0));

        fs::write(&p, "x,y,z\n1,2,3\n").unwrap();
        let e = read_text_pairs(&p).unwrap_err().to_string();
        assert!(e.contains("pairs.csv") && e.contains("sentence_a"), "{e}");
        fs::write(&p, "a,b,score\nx,y,high\n").unwrap();
        let e = read_text_pairs(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("high"), "{e}");
        fs::write(&p, "a,b,score\nx\n").unwrap();
        let e = read_text_pairs(&p).unwrap_err().to_string();
        assert!(e.contains("line 2 has 1"), "{e}");
        fs::write(&p, "a,b,score\n").unwrap();
        assert!(matches!(
            read_text_pairs(&p).unwrap_err(),
            SiameseError::Empty(_)
        ));
    }
}
