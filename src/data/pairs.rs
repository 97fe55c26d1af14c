//! Pair building and identity-respecting splits.
//!
//! Pairs are [`IndexPair`]s: two indices into one sample store plus a label (1 = same class),
//! so building pairs never copies pixels; [`materialize`] gathers them into [`Pairs`] when a
//! dense copy is wanted.
//!
//! Two schemes build pairs from class-labelled samples:
//!
//! - [`keras_pairs`]: the Keras `mnist_siamese` scheme. With `m = min_c |class c| − 1`, for
//!   every class `c` and `i < m`: a positive `(c[i], c[i+1])` and a negative `(c[i], c'[i])`
//!   with `c' = (c + k) mod C`, `k` uniform in `1..C`. Balanced, `2·C·m` pairs.
//! - [`random_pairs`]: `n` pairs, a fraction `positive_ratio` of them positive, both samples
//!   drawn uniformly (positives from one class, negatives from two different classes).
//!
//! Splits never put one sample in two parts: [`split_by_sample`] divides samples (each class
//! keeps its share), [`split_by_class`] divides whole classes (unseen identities at test
//! time, as for faces, signatures and Omniglot).

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::Matrix;
use crate::data::Pairs;
use crate::error::{Result, SiameseError};

/// Two samples, by index into a sample store, and their label (1 = similar).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexPair {
    /// Index of the first sample.
    pub i: usize,
    /// Index of the second sample.
    pub j: usize,
    /// 1 when both samples belong to the same class, else 0.
    pub label: f32,
}

/// Sample indices grouped by class: `result[c]` lists the samples of class `c`, in order.
pub fn indices_by_class(labels: &[usize]) -> Vec<Vec<usize>> {
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut by_class = vec![Vec::new(); classes];
    for (i, &c) in labels.iter().enumerate() {
        by_class[c].push(i);
    }
    by_class
}

/// Classes that have at least one sample.
fn populated(by_class: &[Vec<usize>]) -> Vec<usize> {
    (0..by_class.len())
        .filter(|&c| !by_class[c].is_empty())
        .collect()
}

fn class_name(names: Option<&[String]>, c: usize) -> String {
    names
        .and_then(|n| n.get(c))
        .map_or_else(|| c.to_string(), |n| format!("`{n}`"))
}

/// The Keras `mnist_siamese` pairs (see the module docs) over the classes present in
/// `labels`. Errors if fewer than two classes are present or a class has fewer than two
/// samples (positives need two).
pub fn keras_pairs(
    labels: &[usize],
    class_names: Option<&[String]>,
    seed: u64,
) -> Result<Vec<IndexPair>> {
    let by_class = indices_by_class(labels);
    let classes = populated(&by_class);
    check_classes(&by_class, &classes, class_names)?;
    let m = classes
        .iter()
        .map(|&c| by_class[c].len())
        .min()
        .unwrap_or(0)
        - 1;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = classes.len();
    let mut pairs = Vec::with_capacity(2 * k * m);
    for (ci, &c) in classes.iter().enumerate() {
        for i in 0..m {
            pairs.push(IndexPair {
                i: by_class[c][i],
                j: by_class[c][i + 1],
                label: 1.0,
            });
            let other = classes[(ci + rng.random_range(1..k)) % k];
            pairs.push(IndexPair {
                i: by_class[c][i],
                j: by_class[other][i],
                label: 0.0,
            });
        }
    }
    Ok(pairs)
}

fn check_classes(
    by_class: &[Vec<usize>],
    classes: &[usize],
    names: Option<&[String]>,
) -> Result<()> {
    if classes.len() < 2 {
        return Err(SiameseError::invalid(
            "pairs",
            format!(
                "{} class(es) present; negative pairs need at least two classes",
                classes.len()
            ),
        ));
    }
    if let Some(&c) = classes.iter().find(|&&c| by_class[c].len() < 2) {
        return Err(SiameseError::invalid(
            "pairs",
            format!(
                "class {} has a single sample; positive pairs need at least two per class",
                class_name(names, c)
            ),
        ));
    }
    Ok(())
}

/// `n` random pairs, `round(n · positive_ratio)` of them positive (listed first, then
/// shuffled together). Positives pick a class with at least two samples, then two distinct
/// samples of it; negatives pick two distinct classes, then one sample of each.
pub fn random_pairs(
    labels: &[usize],
    n: usize,
    positive_ratio: f64,
    seed: u64,
) -> Result<Vec<IndexPair>> {
    if !(0.0..=1.0).contains(&positive_ratio) {
        return Err(SiameseError::config(
            "data.positive_ratio",
            format!("must be in [0, 1], got {positive_ratio}"),
        ));
    }
    let by_class = indices_by_class(labels);
    let classes = populated(&by_class);
    let n_pos = (n as f64 * positive_ratio).round() as usize;
    let multi: Vec<usize> = classes
        .iter()
        .copied()
        .filter(|&c| by_class[c].len() >= 2)
        .collect();
    if n_pos > 0 && multi.is_empty() {
        return Err(SiameseError::invalid(
            "pairs",
            "every class has a single sample; positive pairs need at least two per class",
        ));
    }
    if n > n_pos && classes.len() < 2 {
        return Err(SiameseError::invalid(
            "pairs",
            "negative pairs need at least two classes",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n_pos {
        let members = &by_class[multi[rng.random_range(0..multi.len())]];
        let x = rng.random_range(0..members.len());
        let y = (x + rng.random_range(1..members.len())) % members.len();
        pairs.push(IndexPair {
            i: members[x],
            j: members[y],
            label: 1.0,
        });
    }
    for _ in n_pos..n {
        let x = rng.random_range(0..classes.len());
        let y = (x + rng.random_range(1..classes.len())) % classes.len();
        let (ca, cb) = (&by_class[classes[x]], &by_class[classes[y]]);
        pairs.push(IndexPair {
            i: ca[rng.random_range(0..ca.len())],
            j: cb[rng.random_range(0..cb.len())],
            label: 0.0,
        });
    }
    pairs.shuffle(&mut rng);
    Ok(pairs)
}

/// Every unordered pair of distinct samples, `n(n−1)/2` of them: the exhaustive protocol for
/// small held-out sets (no pair repeated, every genuine pair present).
pub fn all_pairs(labels: &[usize]) -> Vec<IndexPair> {
    let n = labels.len();
    let mut pairs = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            pairs.push(IndexPair {
                i,
                j,
                label: if labels[i] == labels[j] { 1.0 } else { 0.0 },
            });
        }
    }
    pairs
}

/// Gathers index pairs into dense [`Pairs`] (`samples` rows are looked up by index).
pub fn materialize(samples: &Matrix, pairs: &[IndexPair]) -> Pairs {
    let i: Vec<usize> = pairs.iter().map(|p| p.i).collect();
    let j: Vec<usize> = pairs.iter().map(|p| p.j).collect();
    Pairs {
        a: samples.select_rows(&i),
        b: samples.select_rows(&j),
        labels: pairs.iter().map(|p| p.label).collect(),
    }
}

/// Divides sample indices `0..labels.len()` into `(train, test)`: each class gives
/// `round(|class| · test_fraction)` randomly chosen samples to the test part. No sample is in
/// both parts; every class appears in both when it has enough samples.
pub fn split_by_sample(
    labels: &[usize],
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    check_fraction("test_fraction", test_fraction)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for mut members in indices_by_class(labels) {
        members.shuffle(&mut rng);
        let k = (members.len() as f64 * test_fraction).round() as usize;
        test.extend_from_slice(&members[..k]);
        train.extend_from_slice(&members[k..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok((train, test))
}

/// Divides sample indices into `(train, test)` by whole classes: `round(C · test_fraction)`
/// randomly chosen classes (at least one, at most `C − 1`) go to the test part, so test
/// identities are unseen in training.
pub fn split_by_class(
    labels: &[usize],
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    check_fraction("test_fraction", test_fraction)?;
    let by_class = indices_by_class(labels);
    let mut classes = populated(&by_class);
    if classes.len() < 2 {
        return Err(SiameseError::invalid(
            "split",
            format!(
                "a split by class needs at least two classes, found {}",
                classes.len()
            ),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    classes.shuffle(&mut rng);
    let k = ((classes.len() as f64 * test_fraction).round() as usize).clamp(1, classes.len() - 1);
    let mut test: Vec<usize> = classes[..k]
        .iter()
        .flat_map(|&c| by_class[c].clone())
        .collect();
    let mut train: Vec<usize> = classes[k..]
        .iter()
        .flat_map(|&c| by_class[c].clone())
        .collect();
    train.sort_unstable();
    test.sort_unstable();
    Ok((train, test))
}

/// Divides sample indices into `(train, test)` for fold `fold` of `folds`-fold cross-validation
/// by class: the populated classes are shuffled with `seed` and dealt round-robin into
/// `folds` folds; the test part is fold `fold`. Running every `fold` with the same seed tests
/// every class exactly once.
pub fn split_fold(
    labels: &[usize],
    folds: usize,
    fold: usize,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let by_class = indices_by_class(labels);
    let mut classes = populated(&by_class);
    if folds < 2 || folds > classes.len() {
        return Err(SiameseError::config(
            "folds",
            format!(
                "must be between 2 and the number of classes (groups), {}; got {folds}",
                classes.len()
            ),
        ));
    }
    if fold >= folds {
        return Err(SiameseError::config(
            "fold",
            format!("must be below folds = {folds}; got {fold}"),
        ));
    }
    classes.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (k, &c) in classes.iter().enumerate() {
        if k % folds == fold {
            test.extend_from_slice(&by_class[c]);
        } else {
            train.extend_from_slice(&by_class[c]);
        }
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok((train, test))
}

/// Writer of each class when forgeries sit in classes named `<writer><suffix>` (the
/// signatures layout `049/` genuine, `049_forg/` forged): returns, per class, `(writer
/// group, is_forgery)`. Writer groups are numbered in order of first appearance.
pub fn forgery_groups(class_names: &[String], suffix: &str) -> Vec<(usize, bool)> {
    let mut writers: Vec<&str> = Vec::new();
    class_names
        .iter()
        .map(|name| {
            let (writer, forged) = match name.strip_suffix(suffix) {
                Some(w) if !suffix.is_empty() => (w, true),
                _ => (name.as_str(), false),
            };
            let g = match writers.iter().position(|&w| w == writer) {
                Some(g) => g,
                None => {
                    writers.push(writer);
                    writers.len() - 1
                }
            };
            (g, forged)
        })
        .collect()
}

/// Signature-verification pairs within each writer: every pair of two **genuine** samples of a
/// writer is similar (1); every genuine sample with every **skilled forgery** of the same
/// writer is dissimilar (0). `groups[c]` is class `c`'s `(writer, is_forgery)` (see
/// [`forgery_groups`]). Forgeries are never paired with each other.
pub fn genuine_forgery_pairs(labels: &[usize], groups: &[(usize, bool)]) -> Vec<IndexPair> {
    let writers = groups.iter().map(|g| g.0 + 1).max().unwrap_or(0);
    let mut genuine = vec![Vec::new(); writers];
    let mut forged = vec![Vec::new(); writers];
    for (i, &c) in labels.iter().enumerate() {
        let (w, f) = groups[c];
        if f {
            forged[w].push(i);
        } else {
            genuine[w].push(i);
        }
    }
    let mut out = Vec::new();
    for w in 0..writers {
        for (x, &i) in genuine[w].iter().enumerate() {
            for &j in &genuine[w][x + 1..] {
                out.push(IndexPair { i, j, label: 1.0 });
            }
            for &j in &forged[w] {
                out.push(IndexPair { i, j, label: 0.0 });
            }
        }
    }
    out
}

/// Divides `0..n` into `(first, last)` at random, `round(n · fraction)` in the last part.
pub fn split_indices(n: usize, fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    check_fraction("fraction", fraction)?;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let k = (n as f64 * fraction).round() as usize;
    let mut test = idx[..k].to_vec();
    let mut train = idx[k..].to_vec();
    train.sort_unstable();
    test.sort_unstable();
    Ok((train, test))
}

fn check_fraction(field: &str, f: f64) -> Result<()> {
    if f > 0.0 && f < 1.0 {
        Ok(())
    } else {
        Err(SiameseError::config(
            field,
            format!("must be in (0, 1), got {f}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_cover_every_class_once() {
        let labels: Vec<usize> = (0..40).map(|i| i / 5).collect(); // 8 classes × 5
        let mut seen = vec![0usize; 40];
        for fold in 0..4 {
            let (train, test) = split_fold(&labels, 4, fold, 3).unwrap();
            assert_eq!(train.len() + test.len(), 40);
            assert_eq!(test.len(), 10); // two classes per fold
            for &i in &test {
                seen[i] += 1;
                // Whole classes: no class in both parts.
                assert!(train.iter().all(|&t| labels[t] != labels[i]));
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
        assert!(split_fold(&labels, 9, 0, 3).is_err());
        assert!(split_fold(&labels, 4, 4, 3).is_err());
    }

    #[test]
    fn genuine_forgery_pairs_stay_within_writers() {
        let names: Vec<String> = ["049", "049_forg", "050", "050_forg"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let groups = forgery_groups(&names, "_forg");
        assert_eq!(groups, vec![(0, false), (0, true), (1, false), (1, true)]);
        // writer 049: 3 genuine, 2 forged; writer 050: 2 genuine, 1 forged.
        let labels = vec![0, 0, 0, 1, 1, 2, 2, 3];
        let pairs = genuine_forgery_pairs(&labels, &groups);
        let pos = pairs.iter().filter(|p| p.label == 1.0).count();
        let neg = pairs.len() - pos;
        assert_eq!(pos, 3 + 1); // C(3,2) + C(2,2)
        assert_eq!(neg, 3 * 2 + 2); // genuine × forged per writer
        for p in &pairs {
            assert_eq!(groups[labels[p.i]].0, groups[labels[p.j]].0);
            assert!(!groups[labels[p.i]].1, "the first of a pair is genuine");
            assert_eq!(groups[labels[p.j]].1, p.label == 0.0);
        }
    }

    fn labels() -> Vec<usize> {
        // 3 classes: 4, 3 and 5 samples, interleaved.
        vec![0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 2, 2]
    }

    #[test]
    fn keras_pairs_are_balanced_and_correct() {
        let l = labels();
        let pairs = keras_pairs(&l, None, 1).unwrap();
        // m = min(4, 3, 5) − 1 = 2; 2 · 3 classes · 2 = 12 pairs.
        assert_eq!(pairs.len(), 12);
        assert_eq!(pairs.iter().filter(|p| p.label == 1.0).count(), 6);
        for p in &pairs {
            assert_eq!(p.label == 1.0, l[p.i] == l[p.j], "{p:?}");
            assert_ne!(p.i, p.j);
        }
        // Positives are consecutive members: class 0 = [0, 3, 6, 9] → (0, 3), (3, 6).
        assert_eq!((pairs[0].i, pairs[0].j), (0, 3));
        assert_eq!((pairs[2].i, pairs[2].j), (3, 6));
        assert_eq!(pairs, keras_pairs(&l, None, 1).unwrap());
    }

    #[test]
    fn single_sample_class_is_an_error() {
        let names: Vec<String> = ["a", "b", "lonely"].iter().map(|s| s.to_string()).collect();
        let err = keras_pairs(&[0, 0, 1, 1, 2], Some(&names), 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`lonely`") && err.contains("single sample"),
            "{err}"
        );
        assert!(keras_pairs(&[0, 0, 0], None, 0).is_err());
    }

    #[test]
    fn random_pairs_respect_ratio_and_labels() {
        let l = labels();
        let pairs = random_pairs(&l, 100, 0.3, 5).unwrap();
        assert_eq!(pairs.len(), 100);
        assert_eq!(pairs.iter().filter(|p| p.label == 1.0).count(), 30);
        for p in &pairs {
            assert_eq!(p.label == 1.0, l[p.i] == l[p.j]);
            assert_ne!(p.i, p.j);
        }
        assert!(random_pairs(&l, 10, 1.5, 0).is_err());
        assert!(random_pairs(&[0, 1, 2], 10, 0.5, 0).is_err());
    }

    #[test]
    fn splits_are_disjoint_and_cover_everything() {
        let l: Vec<usize> = (0..100).map(|i| i % 10).collect();
        let (train, test) = split_by_sample(&l, 0.2, 3).unwrap();
        assert_eq!(test.len(), 20);
        assert_eq!(train.len() + test.len(), 100);
        assert!(train.iter().all(|i| !test.contains(i)));
        for c in 0..10 {
            assert_eq!(test.iter().filter(|&&i| l[i] == c).count(), 2);
        }
        let (train, test) = split_by_class(&l, 0.3, 3).unwrap();
        let test_classes: std::collections::BTreeSet<usize> = test.iter().map(|&i| l[i]).collect();
        assert_eq!(test_classes.len(), 3);
        assert!(train.iter().all(|&i| !test_classes.contains(&l[i])));
        assert_eq!(train.len() + test.len(), 100);
        assert!(split_by_class(&[0, 0], 0.5, 0).is_err());
        assert!(split_by_sample(&l, 1.0, 0).is_err());
    }

    #[test]
    fn all_pairs_enumerates_each_pair_once() {
        let l = labels();
        let pairs = all_pairs(&l);
        assert_eq!(pairs.len(), 12 * 11 / 2);
        // Positives: C(4,2) + C(3,2) + C(5,2) = 6 + 3 + 10.
        assert_eq!(pairs.iter().filter(|p| p.label == 1.0).count(), 19);
        assert!(pairs.iter().all(|p| p.i < p.j));
    }

    #[test]
    fn materialize_gathers_rows() {
        let m = Matrix::new(3, 1, vec![10.0, 11.0, 12.0]).unwrap();
        let p = materialize(
            &m,
            &[IndexPair {
                i: 2,
                j: 0,
                label: 0.0,
            }],
        );
        assert_eq!(p.a.as_slice(), &[12.0]);
        assert_eq!(p.b.as_slice(), &[10.0]);
        assert_eq!(p.labels, vec![0.0]);
    }
}
