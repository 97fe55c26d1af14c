//! Protocols that use a trained model the way a deployed system does, on class-labelled
//! test samples and any distance between two of them:
//!
//! - **closed-set identification** (faces): the first `g` samples of every identity are
//!   enrolled in a gallery, every other sample is a probe; an identity's score for a probe
//!   is its smallest distance to the identity's gallery samples, and the probe's rank is
//!   `1 + #{identities with a smaller score than the true one}`. Rank-k accuracy is the
//!   fraction of probes with rank ≤ k (the CMC curve at k).
//! - **writer-dependent verification with references** (signatures): per writer, the first
//!   `r` genuine signatures are the references; every other genuine signature and every
//!   skilled forgery of that writer is scored by its **mean** (or **min**) distance to the
//!   references, and the pooled scores give the EER and ROC AUC (genuine = positive).
//!
//! "First" is the samples' order (a folder's files in natural order), so a run is
//! reproducible and the enrolment is what a user would enrol: the earliest samples.
//!
//! ```
//! use siamese::eval::protocols::identification;
//!
//! // Two identities on a line: 0 at 0.0, 0.1, 0.2 and 1 at 1.0, 1.1, 0.45.
//! let x = [0.0f32, 0.1, 0.2, 1.0, 1.1, 0.45];
//! let labels = [0, 0, 0, 1, 1, 1];
//! let r = identification(&labels, 1, |p, g| (x[p] - x[g]).abs()).unwrap();
//! // Gallery {0, 3}; probes 1, 2, 4 are nearest their own identity, probe 5 (0.45) is not.
//! assert_eq!((r.identities, r.probes), (2, 4));
//! assert_eq!(r.rank1, 0.75);
//! assert_eq!(r.rank5, 1.0);
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Result, SiameseError};

/// What closed-set identification measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identification {
    /// Identities in the gallery.
    pub identities: usize,
    /// Gallery samples per identity.
    pub gallery_per_class: usize,
    /// Probes scored.
    pub probes: usize,
    /// Fraction of probes whose true identity ranks first.
    pub rank1: f64,
    /// Fraction of probes whose true identity ranks in the first five.
    pub rank5: f64,
}

/// The gallery (the first `per_class` samples of every class with more than `per_class`) and
/// the probes (the rest of those classes), as sample indices in order.
pub fn gallery_split(labels: &[usize], per_class: usize) -> (Vec<usize>, Vec<usize>) {
    let by_class = crate::data::pairs::indices_by_class(labels);
    let (mut gallery, mut probes) = (Vec::new(), Vec::new());
    for samples in by_class.iter().filter(|s| s.len() > per_class) {
        gallery.extend_from_slice(&samples[..per_class]);
        probes.extend_from_slice(&samples[per_class..]);
    }
    gallery.sort_unstable();
    probes.sort_unstable();
    (gallery, probes)
}

/// Closed-set identification of `labels`' samples (see the module's protocol) with
/// `distance(probe, gallery_sample)`.
///
/// # Errors
/// When `per_class` is 0 or fewer than two classes have more than `per_class` samples.
pub fn identification(
    labels: &[usize],
    per_class: usize,
    mut distance: impl FnMut(usize, usize) -> f32,
) -> Result<Identification> {
    if per_class == 0 {
        return Err(SiameseError::config(
            "identify",
            "enrol at least one gallery sample per identity",
        ));
    }
    let (gallery, probes) = gallery_split(labels, per_class);
    let mut classes: Vec<usize> = gallery.iter().map(|&g| labels[g]).collect();
    classes.dedup();
    classes.sort_unstable();
    classes.dedup();
    if classes.len() < 2 {
        return Err(SiameseError::invalid(
            "identification",
            format!(
                "{} identities have more than {per_class} samples; identification needs two \
                 or more (with probes left after enrolling {per_class} each)",
                classes.len()
            ),
        ));
    }
    let (mut rank1, mut rank5) = (0usize, 0usize);
    let mut score = vec![f32::INFINITY; classes.len()];
    for &p in &probes {
        score.fill(f32::INFINITY);
        for &g in &gallery {
            let c = classes.binary_search(&labels[g]).expect("a gallery class");
            score[c] = score[c].min(distance(p, g));
        }
        let truth = score[classes.binary_search(&labels[p]).expect("a gallery class")];
        // Ties count against the probe; a NaN distance ranks it last.
        let rank = if truth.is_nan() {
            classes.len()
        } else {
            score.iter().filter(|&&s| s <= truth).count()
        };
        rank1 += usize::from(rank == 1);
        rank5 += usize::from(rank <= 5);
    }
    let n = probes.len().max(1) as f64;
    Ok(Identification {
        identities: classes.len(),
        gallery_per_class: per_class,
        probes: probes.len(),
        rank1: rank1 as f64 / n,
        rank5: rank5 as f64 / n,
    })
}

/// How a query is scored against a writer's references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ReferenceScore {
    /// The mean distance to the references (the default: steadier than the minimum).
    #[default]
    Mean,
    /// The smallest distance to a reference.
    Min,
}

/// What writer-dependent verification with references measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceReport {
    /// Writers scored (those with more genuine samples than references).
    pub writers: usize,
    /// Genuine references per writer.
    pub references: usize,
    /// How queries were scored.
    pub score: ReferenceScore,
    /// Genuine queries scored.
    pub genuine: usize,
    /// Skilled forgeries scored.
    pub forgeries: usize,
    /// Equal error rate of the pooled scores.
    pub eer: f64,
    /// ROC AUC of the pooled scores.
    pub auc: f64,
}

/// Writer-dependent verification with `references` genuine references per writer (see the
/// module's protocol): `groups[c]` is class `c`'s `(writer, is_forgery)` (from
/// [`crate::data::pairs::forgery_groups`]), `distance(query, reference)`.
///
/// # Errors
/// When `references` is 0, or no writer has both more genuine samples than references and
/// at least one forgery.
pub fn reference_verification(
    labels: &[usize],
    groups: &[(usize, bool)],
    references: usize,
    score: ReferenceScore,
    mut distance: impl FnMut(usize, usize) -> f32,
) -> Result<ReferenceReport> {
    if references == 0 {
        return Err(SiameseError::config(
            "references",
            "enrol at least one reference",
        ));
    }
    let writers = groups.iter().map(|g| g.0 + 1).max().unwrap_or(0);
    let (mut genuine, mut forged) = (vec![Vec::new(); writers], vec![Vec::new(); writers]);
    for (i, &c) in labels.iter().enumerate() {
        let Some(&(w, forgery)) = groups.get(c) else {
            return Err(SiameseError::invalid(
                "reference verification",
                format!(
                    "sample {i} has class {c}, but only {} classes have a writer",
                    groups.len()
                ),
            ));
        };
        if forgery {
            forged[w].push(i);
        } else {
            genuine[w].push(i);
        }
    }
    let (mut d, mut y) = (Vec::new(), Vec::new());
    let (mut used, mut n_genuine, mut n_forged) = (0, 0, 0);
    for w in 0..writers {
        if genuine[w].len() <= references || forged[w].is_empty() {
            continue;
        }
        used += 1;
        let refs = &genuine[w][..references];
        let queries = genuine[w][references..]
            .iter()
            .map(|&q| (q, 1.0f32))
            .chain(forged[w].iter().map(|&q| (q, 0.0)));
        for (q, label) in queries {
            let ds = refs.iter().map(|&r| distance(q, r));
            let s = match score {
                ReferenceScore::Mean => ds.sum::<f32>() / references as f32,
                ReferenceScore::Min => ds.fold(f32::INFINITY, f32::min),
            };
            d.push(s);
            y.push(label);
            if label > 0.5 {
                n_genuine += 1;
            } else {
                n_forged += 1;
            }
        }
    }
    if used == 0 {
        return Err(SiameseError::invalid(
            "reference verification",
            format!("no writer has more than {references} genuine samples and a forgery to score"),
        ));
    }
    let roc = super::roc(&d, &y)?;
    Ok(ReferenceReport {
        writers: used,
        references,
        score,
        genuine: n_genuine,
        forgeries: n_forged,
        eer: roc.eer().rate,
        auc: roc.auc(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_count_ties_against_the_probe_and_need_two_identities() {
        // Three identities, two gallery samples each; probe 6 (class 0) is as close to class
        // 1 as to its own: rank 2.
        let x = [0.0f32, 0.2, 1.0, 1.2, 5.0, 5.2, 0.6, 1.1, 5.1, 2.9];
        let labels = [0, 0, 1, 1, 2, 2, 0, 1, 2, 2];
        let r = identification(&labels, 2, |p, g| (x[p] - x[g]).abs()).unwrap();
        assert_eq!((r.identities, r.probes, r.gallery_per_class), (3, 4, 2));
        // Probe 6: class 0 at 0.4, class 1 at 0.4 → rank 2; 7 → 1; 8 → 1; 9 (2.9, class 2):
        // class 1 at 1.7, class 2 at 2.1, class 0 at 2.7 → rank 2.
        assert_eq!(r.rank1, 0.5);
        assert_eq!(r.rank5, 1.0);
        let err = identification(&[0, 0, 1], 1, |_, _| 0.0).unwrap_err();
        assert!(err.to_string().contains("1 identities"), "{err}");
        assert!(identification(&labels, 0, |_, _| 0.0).is_err());
    }

    #[test]
    fn references_score_by_mean_or_min() {
        // Writer 0: genuine at 0, 0.2, 0.4 (class 0), forgeries at 1, 0.3 (class 1);
        // writer 1: genuine at 5, 5.5 (class 2), forgery at 9 (class 3).
        let x = [0.0f32, 0.2, 0.4, 1.0, 0.3, 5.0, 5.5, 9.0];
        let labels = [0, 0, 0, 1, 1, 2, 2, 3];
        let groups = [(0, false), (0, true), (1, false), (1, true)];
        let d = |q: usize, r: usize| (x[q] - x[r]).abs();
        let mean = reference_verification(&labels, &groups, 1, ReferenceScore::Mean, d).unwrap();
        // Writer 0 (ref 0): genuine 0.2, 0.4; forgeries 1.0, 0.3. Writer 1 (ref 5): genuine
        // 0.5; forgery 4. Scores: genuine {0.2, 0.4, 0.5}, forged {1.0, 0.3, 4.0}.
        assert_eq!((mean.writers, mean.genuine, mean.forgeries), (2, 3, 3));
        assert!((mean.auc - 7.0 / 9.0).abs() < 1e-9, "{}", mean.auc);
        let two = reference_verification(&labels, &groups, 2, ReferenceScore::Min, d).unwrap();
        // Only writer 0 has more than two genuine: refs 0, 0.2; genuine 0.4 → min 0.2;
        // forgeries 1.0 → 0.8, 0.3 → 0.1.
        assert_eq!((two.writers, two.genuine, two.forgeries), (1, 1, 2));
        assert!((two.auc - 0.5).abs() < 1e-9, "{}", two.auc);
        let none = reference_verification(&labels, &groups, 3, ReferenceScore::Mean, d);
        assert!(
            none.unwrap_err()
                .to_string()
                .contains("more than 3 genuine")
        );
    }
}
