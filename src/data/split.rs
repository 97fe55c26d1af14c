//! How class-labelled samples are divided into train / validation / test parts: by sample, by
//! class, by group of classes (the classes' parent folder: Omniglot alphabets), or by class
//! name from a given one on; a writer's genuine and forged classes always stay together.

use crate::data::LabelledSamples;
use crate::data::pairs;
use crate::data::spec::{DataConfig, Pairing, SplitBy};
use crate::error::{Result, SiameseError};

/// The group of each class from its name's parent folder (`Greek/character01` → `Greek`);
/// returns `(group of each class, group names)` with groups numbered in order of first
/// appearance. Names without a `/` share the empty parent.
///
/// ```
/// use siamese::data::split::parent_groups;
///
/// let names = ["Greek/c1", "Greek/c2", "Latin/c1"].map(String::from);
/// let (groups, parents) = parent_groups(&names);
/// assert_eq!(groups, [0, 0, 1]);
/// assert_eq!(parents, ["Greek", "Latin"]);
/// ```
pub fn parent_groups(class_names: &[String]) -> (Vec<usize>, Vec<String>) {
    let mut names: Vec<String> = Vec::new();
    let groups = class_names
        .iter()
        .map(|n| {
            let parent = n.rsplit_once('/').map_or("", |(p, _)| p);
            match names.iter().position(|g| g == parent) {
                Some(g) => g,
                None => {
                    names.push(parent.to_string());
                    names.len() - 1
                }
            }
        })
        .collect();
    (groups, names)
}

/// The samples at `idx`, in that order, with every class name kept (labels keep their
/// meaning across parts).
pub(crate) fn subset(s: &LabelledSamples, idx: &[usize]) -> LabelledSamples {
    LabelledSamples {
        samples: s.samples.select_rows(idx),
        labels: idx.iter().map(|&i| s.labels[i]).collect(),
        class_names: s.class_names.clone(),
        paths: if s.paths.is_empty() {
            Vec::new()
        } else {
            idx.iter().map(|&i| s.paths[i].clone()).collect()
        },
        image_size: s.image_size,
    }
}

/// The label each split keeps whole, per sample: the class; with `pairing = "genuine-forgery"`
/// the writer (a writer's genuine and forged classes stay together); with `split = "group"`
/// the class's parent folder.
pub(crate) fn split_groups(config: &DataConfig, s: &LabelledSamples) -> Vec<usize> {
    if config.split == SplitBy::Group {
        let (groups, _) = parent_groups(&s.class_names);
        s.labels.iter().map(|&c| groups[c]).collect()
    } else if config.pairing == Pairing::GenuineForgery {
        let groups = pairs::forgery_groups(&s.class_names, &config.forgery_suffix);
        s.labels.iter().map(|&c| groups[c].0).collect()
    } else {
        s.labels.clone()
    }
}

/// `(train, test)` sample indices with the test part the classes (writers) named `from` or
/// later in string order (see [`DataConfig::test_classes_from`]).
pub(crate) fn split_from_class(
    config: &DataConfig,
    s: &LabelledSamples,
    from: &str,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let writer_name = |c: usize| -> &str {
        let name = s.class_names[c].as_str();
        match config.pairing {
            Pairing::GenuineForgery => name.strip_suffix(&config.forgery_suffix).unwrap_or(name),
            _ => name,
        }
    };
    let (train, test): (Vec<usize>, Vec<usize>) =
        (0..s.labels.len()).partition(|&i| writer_name(s.labels[i]) < from);
    if train.is_empty() || test.is_empty() {
        return Err(SiameseError::config(
            "data.test_classes_from",
            format!(
                "\"{from}\" leaves {} training and {} test samples; both parts need samples \
                 (class names run from \"{}\" to \"{}\")",
                train.len(),
                test.len(),
                s.class_names.first().map_or("", String::as_str),
                s.class_names.last().map_or("", String::as_str)
            ),
        ));
    }
    Ok((train, test))
}

/// `(kept, held out)` sample indices with about `fraction` of the samples, classes or groups
/// (per `config.split`) held out, drawn with `seed`.
pub(crate) fn split(
    config: &DataConfig,
    s: &LabelledSamples,
    fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let groups = split_groups(config, s);
    match config.split {
        SplitBy::Sample => pairs::split_by_sample(&groups, fraction, seed),
        SplitBy::Class => pairs::split_by_class(&groups, fraction, seed),
        SplitBy::Group => {
            let (_, parents) = parent_groups(&s.class_names);
            if parents.len() < 2 {
                return Err(SiameseError::config(
                    "data.split",
                    format!(
                        "\"group\" holds out whole parent folders of classes (Omniglot \
                         alphabets), but {} has {} (expected class folders nested like \
                         Alphabet/character01)",
                        config.path.display(),
                        match parents.as_slice() {
                            [p] if p.is_empty() => "none".to_string(),
                            _ => format!("only one, \"{}\"", parents[0]),
                        }
                    ),
                ));
            }
            pairs::split_by_class(&groups, fraction, seed)
        }
    }
}

/// Drops from `test` the classes whose name also names a class of `train`, returning the
/// dropped names.
pub(crate) fn drop_shared_classes(
    train: &LabelledSamples,
    test: LabelledSamples,
) -> (LabelledSamples, Vec<String>) {
    let shared: Vec<bool> = test
        .class_names
        .iter()
        .map(|n| train.class_names.contains(n))
        .collect();
    let keep: Vec<usize> = (0..test.labels.len())
        .filter(|&i| !shared[test.labels[i]])
        .collect();
    let mut dropped = Vec::new();
    let mut class_names = Vec::new();
    let mut new_label = vec![usize::MAX; test.class_names.len()];
    for (c, name) in test.class_names.iter().enumerate() {
        if shared[c] {
            dropped.push(name.clone());
        } else {
            new_label[c] = class_names.len();
            class_names.push(name.clone());
        }
    }
    let mut kept = subset(&test, &keep);
    kept.labels = kept.labels.iter().map(|&c| new_label[c]).collect();
    kept.class_names = class_names;
    dropped.sort();
    (kept, dropped)
}

/// `a`'s samples followed by `b`'s, `b`'s classes numbered after `a`'s (the caller drops
/// shared class names first: [`drop_shared_classes`]).
pub(crate) fn merge(a: LabelledSamples, b: LabelledSamples) -> Result<LabelledSamples> {
    if a.samples.cols() != b.samples.cols() {
        return Err(SiameseError::shape(
            "data.extra_paths",
            format!(
                "{} values per sample (as under data.path)",
                a.samples.cols()
            ),
            format!("{}", b.samples.cols()),
        ));
    }
    let offset = a.class_names.len();
    let paths = if a.paths.is_empty() || b.paths.is_empty() {
        Vec::new()
    } else {
        a.paths.into_iter().chain(b.paths).collect()
    };
    let mut data = a.samples.into_vec();
    data.extend(b.samples.as_slice());
    let cols = b.samples.cols();
    Ok(LabelledSamples {
        samples: crate::data::Matrix::new(data.len() / cols.max(1), cols, data)?,
        labels: a
            .labels
            .into_iter()
            .chain(b.labels.iter().map(|&c| c + offset))
            .collect(),
        class_names: a.class_names.into_iter().chain(b.class_names).collect(),
        paths,
        image_size: a.image_size.or(b.image_size),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Matrix;

    fn samples(names: &[&str], per_class: usize) -> LabelledSamples {
        let n = names.len() * per_class;
        LabelledSamples {
            samples: Matrix::new(n, 1, (0..n).map(|i| i as f32).collect()).unwrap(),
            labels: (0..n).map(|i| i / per_class).collect(),
            class_names: names.iter().map(|s| s.to_string()).collect(),
            paths: Vec::new(),
            image_size: None,
        }
    }

    fn config(split: SplitBy) -> DataConfig {
        let mut c: DataConfig = toml::from_str("source = \"images\"\npath = \"x\"").unwrap();
        c.split = split;
        c
    }

    #[test]
    fn a_group_split_holds_out_whole_parent_folders() {
        let names = [
            "s1/Greek/a",
            "s1/Greek/b",
            "s1/Latin/a",
            "s1/Latin/b",
            "s2/Runic/a",
            "s2/Runic/b",
            "s2/Runic/c",
            "s2/Tifinagh/a",
        ];
        let s = samples(&names, 3);
        let c = config(SplitBy::Group);
        for seed in 0..8 {
            let (kept, out) = split(&c, &s, 0.25, seed).unwrap();
            assert_eq!(kept.len() + out.len(), s.labels.len());
            let parent = |i: usize| names[s.labels[i]].rsplit_once('/').unwrap().0;
            let held: std::collections::BTreeSet<&str> = out.iter().map(|&i| parent(i)).collect();
            // round(4 groups × 0.25) = 1 whole alphabet, none of it left in training.
            assert_eq!(held.len(), 1, "seed {seed}: {held:?}");
            assert!(kept.iter().all(|&i| !held.contains(parent(i))));
        }
        // A class split of the same data mixes alphabets.
        let (_, out) = split(&config(SplitBy::Class), &s, 0.25, 0).unwrap();
        assert_eq!(out.len(), 2 * 3);
    }

    #[test]
    fn a_group_split_needs_two_parent_folders() {
        let s = samples(&["a", "b", "c"], 2);
        let e = split(&config(SplitBy::Group), &s, 0.3, 0).unwrap_err();
        assert!(e.to_string().contains("data.split"), "{e}");
        assert!(e.to_string().contains("none"), "{e}");
        let s = samples(&["G/a", "G/b"], 2);
        let e = split(&config(SplitBy::Group), &s, 0.3, 0).unwrap_err();
        assert!(e.to_string().contains("only one, \"G\""), "{e}");
    }
}
