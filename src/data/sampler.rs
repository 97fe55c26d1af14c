//! Class-balanced batches: `P` classes × `K` samples of each (pytorch-metric-learning's
//! `MPerClassSampler`), the batches online mining needs (see [`crate::loss::mining`]).

use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

use crate::error::{Result, SiameseError};

/// Draws batches of `p` classes × `k` samples from class-labelled samples.
///
/// An epoch has `⌊S / (p·k)⌋` batches (at least one), `S` the samples of the classes that
/// take part (those with at least two samples, so that every sample has a positive): about
/// one pass over the samples. Classes come in a shuffled order, `p` distinct ones per batch,
/// and the order is reshuffled when it runs out; each class gives `k` of its samples drawn
/// without replacement, or all of them and then random repeats when it has fewer than `k`.
///
/// ```
/// use rand::SeedableRng;
/// use siamese::data::sampler::PerClassSampler;
///
/// let labels = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3];
/// let sampler = PerClassSampler::new(&labels, 2, 2).unwrap();
/// assert_eq!(sampler.batch_size(), 4);
/// // Class 3 has a single sample: 9 samples take part, 2 batches of 4.
/// assert_eq!(sampler.batches_per_epoch(), 2);
/// let epoch = sampler.epoch(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
/// assert_eq!(epoch.len(), 8);
/// for batch in epoch.chunks(4) {
///     assert_eq!(labels[batch[0]], labels[batch[1]]);
///     assert_ne!(labels[batch[0]], labels[batch[2]]);
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PerClassSampler {
    labels: Vec<usize>,
    /// Samples of every class with at least two.
    by_class: Vec<Vec<usize>>,
    p: usize,
    k: usize,
}

impl PerClassSampler {
    /// A sampler of `p` classes × `k` samples over samples with class `labels`.
    ///
    /// # Errors
    /// When `p` or `k` is below 2, or fewer than `p` classes have two samples or more.
    pub fn new(labels: &[usize], p: usize, k: usize) -> Result<Self> {
        Self::check_shape(p, k)?;
        let classes = labels.iter().max().map_or(0, |m| m + 1);
        let mut by_class = vec![Vec::new(); classes];
        for (i, &c) in labels.iter().enumerate() {
            by_class[c].push(i);
        }
        by_class.retain(|s| s.len() >= 2);
        if by_class.len() < p {
            return Err(SiameseError::config(
                "sampler.classes",
                format!(
                    "{p} classes per batch, but only {} of the {} training samples' classes \
                     have two samples or more",
                    by_class.len(),
                    labels.len()
                ),
            ));
        }
        Ok(Self {
            labels: labels.to_vec(),
            by_class,
            p,
            k,
        })
    }

    /// Checks a batch shape before any labels are seen: `p` and `k` at least 2.
    ///
    /// # Errors
    /// When `p` or `k` is below 2, naming the field.
    pub fn check_shape(p: usize, k: usize) -> Result<()> {
        if p < 2 {
            return Err(SiameseError::config(
                "sampler.classes",
                format!("a batch needs at least 2 classes (for negatives), got {p}"),
            ));
        }
        if k < 2 {
            return Err(SiameseError::config(
                "sampler.per_class",
                format!("a batch needs at least 2 samples per class (for positives), got {k}"),
            ));
        }
        Ok(())
    }

    /// Classes per batch.
    pub fn classes_per_batch(&self) -> usize {
        self.p
    }

    /// Samples per class in a batch.
    pub fn per_class(&self) -> usize {
        self.k
    }

    /// Samples per batch, `p·k`.
    pub fn batch_size(&self) -> usize {
        self.p * self.k
    }

    /// The class of every sample.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Batches per epoch (see the type's documentation).
    pub fn batches_per_epoch(&self) -> usize {
        let samples: usize = self.by_class.iter().map(Vec::len).sum();
        (samples / self.batch_size()).max(1)
    }

    /// One epoch's batches, concatenated: sample indices, `batch_size()` per batch, each
    /// batch `p` runs of `k` samples of one class.
    pub fn epoch<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.batches_per_epoch() * self.batch_size());
        let mut order: Vec<usize> = Vec::new();
        for _ in 0..self.batches_per_epoch() {
            if order.len() < self.p {
                // A new round of every class, shuffled, behind the classes left over from the
                // last round (`order` is a stack): those left over come first, the new round's
                // copies of them last, so no class is twice in a batch.
                let (mut fresh, mut again): (Vec<usize>, Vec<usize>) =
                    (0..self.by_class.len()).partition(|c| !order.contains(c));
                fresh.shuffle(rng);
                again.shuffle(rng);
                order = again.into_iter().chain(fresh).chain(order).collect();
            }
            for _ in 0..self.p {
                let c = order.pop().expect("at least p classes");
                let samples = &self.by_class[c];
                let mut picked = samples.clone();
                picked.shuffle(rng);
                picked.truncate(self.k);
                while picked.len() < self.k {
                    picked.push(samples[rng.random_range(0..samples.len())]);
                }
                out.extend(picked);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn batches_hold_p_distinct_classes_of_k_samples() {
        // 7 classes of 2..8 samples, and one class of one sample (left out).
        let mut labels = Vec::new();
        for c in 0..7 {
            labels.extend(std::iter::repeat_n(c, 2 + c));
        }
        labels.push(7);
        let sampler = PerClassSampler::new(&labels, 3, 4).unwrap();
        assert_eq!(sampler.batches_per_epoch(), 35 / 12);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut seen = vec![0usize; 8];
        for _ in 0..50 {
            let epoch = sampler.epoch(&mut rng);
            assert_eq!(epoch.len(), 2 * 12);
            let mut this_epoch = vec![0usize; 8];
            for batch in epoch.chunks(12) {
                let classes: Vec<usize> = batch.chunks(4).map(|run| labels[run[0]]).collect();
                for run in batch.chunks(4) {
                    assert!(run.iter().all(|&i| labels[i] == labels[run[0]]));
                    // Without replacement where the class has k samples.
                    let mut distinct = run.to_vec();
                    distinct.sort_unstable();
                    distinct.dedup();
                    assert_eq!(distinct.len(), 4.min(labels[run[0]] + 2));
                }
                for c in classes {
                    this_epoch[c] += 1;
                }
            }
            // 6 classes of 7 per epoch, each at most once (one round of the classes).
            assert!(this_epoch.iter().all(|&k| k <= 1), "{this_epoch:?}");
            for (s, k) in seen.iter_mut().zip(this_epoch) {
                *s += k;
            }
        }
        // The single-sample class never comes; the others about 300/7 ≈ 43 times each.
        assert_eq!(seen[7], 0);
        assert!(
            seen[..7].iter().all(|&k| (33..=50).contains(&k)),
            "{seen:?}"
        );
        // Seeded: the same epochs again.
        let a = sampler.epoch(&mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(a, sampler.epoch(&mut ChaCha8Rng::seed_from_u64(9)));
    }

    #[test]
    fn too_few_classes_or_samples_are_named() {
        let err = PerClassSampler::new(&[0, 0, 1], 2, 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("only 1 of the 3"), "{err}");
        let err = PerClassSampler::new(&[0, 0, 1, 1], 2, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("per_class") && err.contains("got 1"), "{err}");
        let err = PerClassSampler::new(&[0, 0, 1, 1], 1, 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 2 classes"), "{err}");
    }
}
