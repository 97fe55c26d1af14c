//! The deployment protocols of [`crate::eval::protocols`] on a model: closed-set
//! identification against a gallery and writer-dependent verification with references,
//! every distance from the model's own head (each sample embedded once).

use std::collections::HashMap;

use super::Siamese;
use crate::data::pairs::{IndexPair, forgery_groups};
use crate::data::{LabelledSamples, Matrix, PairData};
use crate::error::{Result, SiameseError};
use crate::eval::protocols::{
    Identification, ReferenceReport, ReferenceScore, gallery_split, identification,
    reference_verification,
};
use crate::fused::HostHead;
use crate::gallery::Scorer;

impl Siamese {
    /// The model's distance between two embeddings ([`Siamese::embed`] rows) as a host
    /// [`Scorer`]: what [`Siamese::predict`] gives for the two inputs, up to rounding. A
    /// gallery ([`crate::gallery`]) scores stored embeddings with it.
    ///
    /// ```
    /// use siamese::prelude::*;
    ///
    /// let (a, b, _) = siamese::synthetic::random_pairs(4, 8, 0);
    /// let model = Siamese::reference(8, 0).unwrap();
    /// let (ea, eb) = (model.embed(&a).unwrap(), model.embed(&b).unwrap());
    /// let scorer = model.scorer().unwrap();
    /// let d = model.predict(&a, &b).unwrap();
    /// for i in 0..4 {
    ///     assert!((scorer.distance(ea.row(i), eb.row(i)) - d[i]).abs() < 1e-5);
    /// }
    /// ```
    pub fn scorer(&self) -> Result<Scorer> {
        match HostHead::from_network(&self.network) {
            Some(HostHead::Distance(d)) => Ok(Scorer::Distance(d)),
            Some(HostHead::WeightedL1 { weight, bias }) => Ok(Scorer::WeightedL1 { weight, bias }),
            None => Err(SiameseError::Runtime(
                "the model's head could not be read to the host".into(),
            )),
        }
    }

    /// Closed-set identification of labelled `samples`: the first `per_class` samples of
    /// each identity are the gallery, the rest probes (see [`crate::eval::protocols`]).
    ///
    /// ```
    /// use siamese::prelude::*;
    ///
    /// let (a, _, _) = siamese::synthetic::random_pairs(12, 8, 0);
    /// let labels: Vec<usize> = (0..12).map(|i| i % 3).collect();
    /// let model = Siamese::reference(8, 0).unwrap();
    /// let r = model.identification(&a, &labels, 2).unwrap();
    /// assert_eq!((r.identities, r.probes), (3, 6));
    /// assert!(r.rank1 <= r.rank5);
    /// ```
    pub fn identification(
        &self,
        samples: &Matrix,
        labels: &[usize],
        per_class: usize,
    ) -> Result<Identification> {
        let (gallery, probes) = gallery_split(labels, per_class);
        let pairs = probes
            .iter()
            .flat_map(|&p| gallery.iter().map(move |&g| (p, g)))
            .collect();
        let d = self.distances_of(samples, pairs)?;
        identification(labels, per_class, |p, g| d[&(p, g)])
    }

    /// Writer-dependent verification of signatures with `references` genuine references
    /// per writer (see [`crate::eval::protocols`]): forgeries are the classes named
    /// `<writer><forgery_suffix>` (e.g. `049_forg` of writer `049`).
    pub fn reference_verification(
        &self,
        samples: &LabelledSamples,
        forgery_suffix: &str,
        references: usize,
        score: ReferenceScore,
    ) -> Result<ReferenceReport> {
        let groups = forgery_groups(&samples.class_names, forgery_suffix);
        let writer = |i: usize| groups.get(samples.labels[i]).copied();
        // Every sample against its writer's genuine samples (the references are among them).
        let n = samples.labels.len();
        let mut pairs = Vec::new();
        for q in 0..n {
            for r in 0..n {
                if let (Some((wq, _)), Some((wr, false))) = (writer(q), writer(r))
                    && wq == wr
                    && q != r
                {
                    pairs.push((q, r));
                }
            }
        }
        let d = self.distances_of(&samples.samples, pairs)?;
        reference_verification(&samples.labels, &groups, references, score, |q, r| {
            d[&(q, r)]
        })
    }

    /// The model's distance of every pair `(i, j)` of rows of `samples`.
    fn distances_of(
        &self,
        samples: &Matrix,
        pairs: Vec<(usize, usize)>,
    ) -> Result<HashMap<(usize, usize), f32>> {
        let index: Vec<IndexPair> = pairs
            .iter()
            .map(|&(i, j)| IndexPair { i, j, label: 0.0 })
            .collect();
        let d = self.predict_pairs(PairData::Indexed {
            samples,
            pairs: &index,
        })?;
        Ok(pairs.into_iter().zip(d).collect())
    }
}
