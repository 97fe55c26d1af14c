//! Approximate nearest samples for large galleries: an HNSW graph (Malkov & Yashunin, 2018;
//! the `hnsw_rs` crate) over the model's own distance.
//!
//! HNSW only compares distances, so any [`Scorer`] works, including the weighted-L1 head.
//! The graph cannot delete points: a deleted sample is filtered out of the search, and the
//! graph is rebuilt from the live samples once as many are deleted as are live.

use std::collections::HashSet;

use hnsw_rs::anndists::dist::DistFn;
use hnsw_rs::hnsw::Hnsw;

use super::search::{ExactIndex, Scorer};

/// Neighbours kept per point and layer (`M`).
const CONNECTIONS: usize = 24;
/// Candidates explored while inserting (`ef_construction`).
const EF_CONSTRUCTION: usize = 200;
/// Layers at most.
const LAYERS: usize = 16;

/// An HNSW graph of sample embeddings.
pub struct HnswIndex {
    dim: usize,
    scorer: Scorer,
    graph: Hnsw<'static, f32, DistFn<f32>>,
    live: HashSet<usize>,
    dead: usize,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("dim", &self.dim)
            .field("live", &self.live.len())
            .field("dead", &self.dead)
            .finish()
    }
}

fn graph(scorer: &Scorer, capacity: usize) -> Hnsw<'static, f32, DistFn<f32>> {
    let s = scorer.clone();
    let dist = DistFn::new(Box::new(move |a: &[f32], b: &[f32]| s.distance(a, b)));
    Hnsw::new(
        CONNECTIONS,
        capacity.max(1024),
        LAYERS,
        EF_CONSTRUCTION,
        dist,
    )
}

impl HnswIndex {
    /// An empty graph of `dim`-wide embeddings compared by `scorer`.
    pub fn new(dim: usize, scorer: &Scorer) -> Self {
        Self {
            dim,
            scorer: scorer.clone(),
            graph: graph(scorer, 0),
            live: HashSet::new(),
            dead: 0,
        }
    }

    /// Live samples.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no sample is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Adds sample `id` (ids are positive, as SQLite's are).
    pub fn insert(&mut self, id: i64, embedding: &[f32]) {
        debug_assert_eq!(embedding.len(), self.dim);
        let id = id as usize;
        if self.live.insert(id) {
            self.graph.insert_slice((embedding, id));
        }
    }

    /// Removes sample `id`; the graph is rebuilt from `exact` (which no longer holds it) once
    /// as many samples are dead as live.
    pub fn remove(&mut self, id: i64, exact: &ExactIndex) {
        if self.live.remove(&(id as usize)) {
            self.dead += 1;
        }
        if self.dead > self.live.len().max(64) {
            self.rebuild(exact);
        }
    }

    /// Rebuilds the graph from every embedding of `exact`.
    pub fn rebuild(&mut self, exact: &ExactIndex) {
        self.graph = graph(&self.scorer, exact.len());
        let rows: Vec<(&[f32], usize)> = exact
            .ids()
            .iter()
            .map(|&id| (exact.get(id).unwrap_or(&[]), id as usize))
            .collect();
        self.graph.parallel_insert_slice(&rows);
        self.live = exact.ids().iter().map(|&id| id as usize).collect();
        self.dead = 0;
    }

    /// The ids of (about) the `k` live samples nearest to `query`, nearest first.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<i64> {
        let ef = (2 * k).max(64);
        let filter = |id: &usize| self.live.contains(id);
        let found = if self.dead == 0 {
            self.graph.search(query, k, ef)
        } else {
            self.graph.search_filter(query, k, ef, Some(&filter))
        };
        found.into_iter().map(|n| n.d_id as i64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::Distance;

    #[test]
    fn finds_the_exact_neighbours_of_a_small_set_and_forgets_deleted_ones() {
        let scorer = Scorer::Distance(Distance::Euclidean);
        let mut exact = ExactIndex::new(4);
        let mut h = HnswIndex::new(4, &scorer);
        for i in 1..=300i64 {
            let v = [i as f32, (i % 7) as f32, (i % 3) as f32, 0.5];
            exact.insert(i, 0, &v).unwrap();
            h.insert(i, &v);
        }
        let near = h.search(&[150.2, 3.0, 0.0, 0.5], 3);
        assert_eq!(near[0], 150);
        exact.remove(150);
        h.remove(150, &exact);
        let near = h.search(&[150.2, 3.0, 0.0, 0.5], 3);
        assert!(!near.contains(&150), "{near:?}");
        assert!(near.contains(&151) && near.contains(&149), "{near:?}");
        // Deleting most samples rebuilds the graph from the live ones.
        for i in 1..=250 {
            exact.remove(i);
            h.remove(i, &exact);
        }
        assert_eq!(h.len(), 50);
        assert!(h.dead < 64, "rebuilt: {}", h.dead);
        assert_eq!(h.search(&[0.0, 0.0, 0.0, 0.5], 1), vec![251]);
    }
}
