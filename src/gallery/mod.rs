//! An enrolment gallery: identities with enrolled samples, stored durably, searched by a
//! model's own distance.
//!
//! This is how a trained Siamese model is used in a system: a bank checks a signature
//! against the ones on file (1:1 [`Gallery::verify`] against an identity's references), a
//! door recognises enrolled staff (1:N [`Gallery::identify`], open set: "unknown" when no one
//! is close enough).
//!
//! - Samples are stored as embeddings (and optionally as the input itself) in a
//!   [`GalleryStore`]; the embedded default is [`SqliteStore`] (WAL, every write durable when
//!   it returns).
//! - Search is exact by default ([`ExactIndex`], one vectorised pass over every sample);
//!   [`IndexKind::Hnsw`] shortlists identities with an approximate HNSW graph first.
//! - A gallery is bound to the model that made its embeddings ([`Binding`],
//!   [`model_fingerprint`]) and refuses another one.
//!
//! An identity's score against a probe `q` with references `r₁ … r_k` is
//! `mean_j d(q, r_j)` ([`ReferenceScore::Mean`], the default) or `min_j d(q, r_j)`
//! ([`ReferenceScore::Min`]); "same" means score `<` threshold, the model's calibrated
//! pair threshold unless the caller gives another.
//!
//! ```
//! use siamese::gallery::{Gallery, IndexKind, NewSample, Scorer, SqliteStore};
//! use siamese::eval::protocols::ReferenceScore;
//! use siamese::prelude::*;
//!
//! let store = SqliteStore::open(":memory:")?;
//! let scorer = Scorer::Distance(Distance::Euclidean);
//! let mut g = Gallery::open(Box::new(store), "my-model", 2, scorer, IndexKind::Exact)?;
//! g.put_identity("alice", &serde_json::json!({"desk": 4}))?;
//! g.enrol("alice", vec![NewSample::new(vec![0.0, 0.0], b"photo 1", false)])?;
//! g.put_identity("bob", &serde_json::json!({}))?;
//! g.enrol("bob", vec![NewSample::new(vec![3.0, 4.0], b"photo 2", false)])?;
//!
//! let v = g.verify("alice", &[0.0, 0.1], ReferenceScore::Mean, 0.5)?;
//! assert!(v.same);
//! let found = g.identify(&[2.9, 4.0], 1, ReferenceScore::Min, 0.5)?;
//! assert_eq!(found.matches[0].identity, "bob");
//! assert!(!found.unknown);
//! # Ok::<(), SiameseError>(())
//! ```

mod hnsw;
mod search;
mod store;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub use hnsw::HnswIndex;
pub use search::{ExactIndex, Scorer};
pub use store::{Binding, GalleryStore, Identity, NewSample, SqliteStore, StoredSample};

use crate::error::{Result, SiameseError};
pub use crate::eval::protocols::ReferenceScore;

/// Longest identity id, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Largest identity metadata, in bytes of JSON.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// How a gallery searches for the identities nearest to a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// Every sample scored: exact.
    #[default]
    Exact,
    /// An HNSW graph proposes candidate samples; their identities are then scored exactly.
    Hnsw,
}

/// The fingerprint of a model directory: SHA-256 of its `config.json` and weights, so a
/// gallery can tell whether its embeddings came from this model.
pub fn model_fingerprint(dir: impl AsRef<Path>) -> Result<String> {
    use sha2::Digest;
    let dir = dir.as_ref();
    let mut h = sha2::Sha256::new();
    for name in [crate::io::CONFIG_FILE, crate::io::WEIGHTS_FILE] {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| SiameseError::io(&path, e))?;
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks an identity id: 1–128 bytes of letters, digits and `. _ - : @`.
pub fn check_id(id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-:@".contains(c);
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.chars().all(ok_char) {
        return Err(SiameseError::invalid(
            "identity id",
            format!(
                "`{}` must be 1–{MAX_ID_LEN} characters of letters, digits and . _ - : @",
                id.chars().take(MAX_ID_LEN + 8).collect::<String>()
            ),
        ));
    }
    Ok(())
}

/// 1:1 verification of a probe against an identity's references.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verification {
    /// The identity.
    pub identity: String,
    /// The probe's score against its references (see [`ReferenceScore`]).
    pub distance: f32,
    /// References scored.
    pub references: usize,
    /// `distance < threshold`.
    pub same: bool,
    /// The threshold used.
    pub threshold: f32,
}

/// One candidate identity of an identification.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Match {
    /// The identity.
    pub identity: String,
    /// The probe's score against its samples.
    pub distance: f32,
    /// `distance < threshold`.
    pub same: bool,
}

/// 1:N identification: the nearest identities, nearest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Identified {
    /// Up to `k` identities, by increasing score.
    pub matches: Vec<Match>,
    /// No identity is within the threshold (open set).
    pub unknown: bool,
    /// The threshold used.
    pub threshold: f32,
}

/// Identities and samples in a [`GalleryStore`], with a search index kept in memory.
///
/// Reads take `&self` and writes `&mut self`, so a service shares it behind a read–write
/// lock. Every write goes to the store first; the index changes only once the store has it.
pub struct Gallery {
    store: Box<dyn GalleryStore>,
    scorer: Scorer,
    dim: usize,
    exact: ExactIndex,
    hnsw: Option<HnswIndex>,
    owner: HashMap<i64, Arc<str>>,
    members: HashMap<Arc<str>, Vec<i64>>,
    /// Identity → slot (the tag of its samples in the exact index); `names[slot]`; free slots.
    slots: HashMap<Arc<str>, u32>,
    names: Vec<Option<Arc<str>>>,
    free: Vec<u32>,
}

impl std::fmt::Debug for Gallery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gallery")
            .field("dim", &self.dim)
            .field("samples", &self.exact.len())
            .field("identities_with_samples", &self.members.len())
            .field("hnsw", &self.hnsw.is_some())
            .finish()
    }
}

impl Gallery {
    /// Opens the gallery in `store` for embeddings of width `dim` made by the model
    /// `model` (a fingerprint, see [`model_fingerprint`]), scored by `scorer`. An empty store
    /// is bound to this model; a store bound to another model or width is refused.
    pub fn open(
        store: Box<dyn GalleryStore>,
        model: &str,
        dim: usize,
        scorer: Scorer,
        index: IndexKind,
    ) -> Result<Self> {
        scorer.check_dim(dim)?;
        let binding = Binding {
            model: model.to_string(),
            dim,
        };
        match store.binding()? {
            None => store.set_binding(&binding)?,
            Some(b) if b == binding => {}
            Some(b) => {
                return Err(SiameseError::config(
                    "gallery",
                    format!(
                        "was built with model {} ({}-wide embeddings), not this model {} \
                         ({dim}-wide): use a new gallery file, or the model it was built with",
                        b.model, b.dim, model
                    ),
                ));
            }
        }
        let mut g = Self {
            hnsw: (index == IndexKind::Hnsw).then(|| HnswIndex::new(dim, &scorer)),
            store,
            scorer,
            dim,
            exact: ExactIndex::new(dim),
            owner: HashMap::new(),
            members: HashMap::new(),
            slots: HashMap::new(),
            names: Vec::new(),
            free: Vec::new(),
        };
        let hnsw = g.hnsw.take();
        for s in g.store.all_samples()? {
            g.index_sample(s.sample_id, &s.identity, &s.embedding)?;
        }
        // One parallel build instead of one insertion per stored sample.
        g.hnsw = hnsw.map(|mut h| {
            h.rebuild(&g.exact);
            h
        });
        Ok(g)
    }

    /// Embedding width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The model's distance on embeddings.
    pub fn scorer(&self) -> &Scorer {
        &self.scorer
    }

    /// Enrolled samples.
    pub fn sample_count(&self) -> usize {
        self.exact.len()
    }

    /// Identities that have at least one sample.
    pub fn identities_with_samples(&self) -> usize {
        self.members.len()
    }

    /// The store underneath.
    pub fn store(&self) -> &dyn GalleryStore {
        self.store.as_ref()
    }

    fn index_sample(&mut self, sample_id: i64, identity: &str, embedding: &[f32]) -> Result<()> {
        let name: Arc<str> = match self.members.get_key_value(identity) {
            Some((k, _)) => k.clone(),
            None => Arc::from(identity),
        };
        let slot = match self.slots.get(&name) {
            Some(&s) => s,
            None => {
                let s = match self.free.pop() {
                    Some(s) => s,
                    None => {
                        self.names.push(None);
                        (self.names.len() - 1) as u32
                    }
                };
                self.names[s as usize] = Some(name.clone());
                self.slots.insert(name.clone(), s);
                s
            }
        };
        self.exact.insert(sample_id, slot, embedding)?;
        if let Some(h) = &mut self.hnsw {
            h.insert(sample_id, embedding);
        }
        self.owner.insert(sample_id, name.clone());
        self.members.entry(name).or_default().push(sample_id);
        Ok(())
    }

    fn unindex_sample(&mut self, sample_id: i64) {
        self.exact.remove(sample_id);
        if let Some(h) = &mut self.hnsw {
            h.remove(sample_id, &self.exact);
        }
        if let Some(name) = self.owner.remove(&sample_id)
            && let Some(list) = self.members.get_mut(&name)
        {
            list.retain(|&s| s != sample_id);
            if list.is_empty() {
                self.members.remove(&name);
                if let Some(slot) = self.slots.remove(&name) {
                    self.names[slot as usize] = None;
                    self.free.push(slot);
                }
            }
        }
    }

    /// Creates identity `id` or replaces its metadata (a JSON object of at most
    /// [`MAX_METADATA_BYTES`]); whether it was created.
    pub fn put_identity(&mut self, id: &str, metadata: &serde_json::Value) -> Result<bool> {
        check_id(id)?;
        if !metadata.is_object() {
            return Err(SiameseError::invalid(
                "metadata",
                "must be a JSON object such as {\"name\": \"Ada\"}",
            ));
        }
        let len = metadata.to_string().len();
        if len > MAX_METADATA_BYTES {
            return Err(SiameseError::invalid(
                "metadata",
                format!("is {len} bytes of JSON; at most {MAX_METADATA_BYTES} are allowed"),
            ));
        }
        self.store.put_identity(id, metadata)
    }

    /// Identity `id`.
    pub fn identity(&self, id: &str) -> Result<Identity> {
        check_id(id)?;
        self.store
            .identity(id)?
            .ok_or_else(|| SiameseError::NotFound(format!("identity `{id}`")))
    }

    /// Identities in id order, `limit` of them from `offset`.
    pub fn identities(&self, offset: usize, limit: usize) -> Result<Vec<Identity>> {
        self.store.identities(offset, limit)
    }

    /// The samples of identity `id`.
    pub fn samples(&self, id: &str) -> Result<Vec<StoredSample>> {
        check_id(id)?;
        self.store.samples(id)
    }

    /// Deletes identity `id` and its samples; how many samples went with it.
    pub fn delete_identity(&mut self, id: &str) -> Result<usize> {
        check_id(id)?;
        let removed = self.store.delete_identity(id)?;
        for &s in &removed {
            self.unindex_sample(s);
        }
        Ok(removed.len())
    }

    /// Enrols `samples` under identity `id` (which must exist), all or none; their ids.
    pub fn enrol(&mut self, id: &str, samples: Vec<NewSample>) -> Result<Vec<i64>> {
        check_id(id)?;
        if samples.is_empty() {
            return Err(SiameseError::invalid("samples", "none given"));
        }
        for (k, s) in samples.iter().enumerate() {
            self.check_embedding(&format!("samples[{k}]"), &s.embedding)?;
        }
        let ids = self.store.add_samples(id, &samples)?;
        for (sid, s) in ids.iter().zip(&samples) {
            self.index_sample(*sid, id, &s.embedding)?;
        }
        Ok(ids)
    }

    /// Deletes sample `sample_id` of identity `id`.
    pub fn delete_sample(&mut self, id: &str, sample_id: i64) -> Result<()> {
        check_id(id)?;
        self.store.delete_sample(id, sample_id)?;
        self.unindex_sample(sample_id);
        Ok(())
    }

    fn check_embedding(&self, what: &str, e: &[f32]) -> Result<()> {
        if e.len() != self.dim {
            return Err(SiameseError::shape(
                what,
                format!("{} values (the model's embedding width)", self.dim),
                format!("{} values", e.len()),
            ));
        }
        if let Some(i) = e.iter().position(|v| !v.is_finite()) {
            return Err(SiameseError::invalid(
                what,
                format!("value {i} is {} (NaN and ±∞ cannot be scored)", e[i]),
            ));
        }
        Ok(())
    }

    fn score(&self, probe: &[f32], samples: &[i64], how: ReferenceScore) -> f32 {
        let d = samples
            .iter()
            .filter_map(|s| self.exact.get(*s))
            .map(|e| self.scorer.distance(probe, e));
        match how {
            ReferenceScore::Mean => {
                let (sum, n) = d.fold((0.0f64, 0usize), |(s, n), x| (s + x as f64, n + 1));
                (sum / n.max(1) as f64) as f32
            }
            ReferenceScore::Min => d.fold(f32::INFINITY, f32::min),
        }
    }

    /// 1:1: the probe's score against identity `id`'s enrolled references.
    pub fn verify(
        &self,
        id: &str,
        probe: &[f32],
        how: ReferenceScore,
        threshold: f32,
    ) -> Result<Verification> {
        check_id(id)?;
        self.check_embedding("probe", probe)?;
        let refs = match self.members.get(id) {
            Some(r) => r,
            None if self.store.identity(id)?.is_some() => {
                return Err(SiameseError::invalid(
                    format!("identity `{id}`"),
                    "has no enrolled samples to verify against",
                ));
            }
            None => return Err(SiameseError::NotFound(format!("identity `{id}`"))),
        };
        let distance = self.score(probe, refs, how);
        Ok(Verification {
            identity: id.to_string(),
            distance,
            references: refs.len(),
            same: distance < threshold,
            threshold,
        })
    }

    /// 1:N: the `k` identities whose scores against the probe are smallest; `unknown` when
    /// none is below `threshold`. With an HNSW index the candidates are the identities of the
    /// probe's `max(10·k, 50)` approximate nearest samples, scored exactly.
    pub fn identify(
        &self,
        probe: &[f32],
        k: usize,
        how: ReferenceScore,
        threshold: f32,
    ) -> Result<Identified> {
        self.check_embedding("probe", probe)?;
        if k == 0 {
            return Err(SiameseError::invalid("k", "must be at least 1"));
        }
        let mut scored: Vec<(f32, &Arc<str>)> = match &self.hnsw {
            Some(h) => {
                let near = h.search(probe, (10 * k).max(50));
                let mut names: Vec<&Arc<str>> =
                    near.iter().filter_map(|s| self.owner.get(s)).collect();
                names.sort();
                names.dedup();
                names
                    .into_iter()
                    .map(|n| (self.score(probe, &self.members[n], how), n))
                    .collect()
            }
            None => self.score_all(probe, how)?,
        };
        let k = k.min(scored.len());
        if k > 0 {
            scored.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
        }
        scored.truncate(k);
        scored.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        let matches: Vec<Match> = scored
            .into_iter()
            .map(|(distance, name)| Match {
                identity: name.to_string(),
                distance,
                same: distance < threshold,
            })
            .collect();
        Ok(Identified {
            unknown: !matches.first().is_some_and(|m| m.same),
            matches,
            threshold,
        })
    }

    /// Every identity's score, from one pass over all samples.
    fn score_all(&self, probe: &[f32], how: ReferenceScore) -> Result<Vec<(f32, &Arc<str>)>> {
        let d = self.exact.distances(&self.scorer, probe)?;
        let init = match how {
            ReferenceScore::Mean => 0.0,
            ReferenceScore::Min => f64::INFINITY,
        };
        let mut acc = vec![(init, 0usize); self.names.len()];
        for (&slot, d) in self.exact.tags().iter().zip(d) {
            let e = &mut acc[slot as usize];
            match how {
                ReferenceScore::Mean => e.0 += d as f64,
                ReferenceScore::Min => e.0 = e.0.min(d as f64),
            }
            e.1 += 1;
        }
        Ok(acc
            .into_iter()
            .zip(&self.names)
            .filter_map(|((s, n), name)| {
                let name = name.as_ref().filter(|_| n > 0)?;
                let v = match how {
                    ReferenceScore::Mean => s / n as f64,
                    ReferenceScore::Min => s,
                };
                Some((v as f32, name))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
