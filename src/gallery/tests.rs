use rand::{RngExt, SeedableRng};
use serde_json::json;

use super::*;
use crate::distance::Distance;

fn open(path: &str, kind: IndexKind) -> Gallery {
    let store = SqliteStore::open(path).unwrap();
    Gallery::open(
        Box::new(store),
        "m1",
        2,
        Scorer::Distance(Distance::Euclidean),
        kind,
    )
    .unwrap()
}

fn sample(x: f32, y: f32) -> NewSample {
    NewSample::new(vec![x, y], format!("{x},{y}").as_bytes(), false)
}

#[test]
fn verify_and_identify_score_references_by_mean_or_min() {
    for kind in [IndexKind::Exact, IndexKind::Hnsw] {
        let mut g = open(":memory:", kind);
        g.put_identity("a", &json!({})).unwrap();
        g.put_identity("b", &json!({})).unwrap();
        g.enrol("a", vec![sample(0.0, 0.0), sample(0.0, 2.0)])
            .unwrap();
        g.enrol("b", vec![sample(10.0, 0.0)]).unwrap();
        // Probe (0, 0): distances 0 and 2 to a's references.
        let mean = g
            .verify("a", &[0.0, 0.0], ReferenceScore::Mean, 1.5)
            .unwrap();
        assert!((mean.distance - 1.0).abs() < 1e-3 && mean.same && mean.references == 2);
        let min = g
            .verify("a", &[0.0, 0.0], ReferenceScore::Min, 1.5)
            .unwrap();
        assert!(min.distance.abs() < 1e-3, "{min:?}");
        let far = g
            .verify("b", &[0.0, 0.0], ReferenceScore::Mean, 1.5)
            .unwrap();
        assert!(!far.same && (far.distance - 10.0).abs() < 1e-5);

        let found = g
            .identify(&[9.0, 0.0], 5, ReferenceScore::Mean, 1.5)
            .unwrap();
        let names: Vec<&str> = found.matches.iter().map(|m| m.identity.as_str()).collect();
        assert_eq!(names, ["b", "a"], "{kind:?}");
        assert!(!found.unknown && found.matches[0].same && !found.matches[1].same);
        let nobody = g
            .identify(&[5.0, 5.0], 1, ReferenceScore::Min, 1.5)
            .unwrap();
        assert!(nobody.unknown && nobody.matches.len() == 1);

        // Deleting b leaves only a.
        assert_eq!(g.delete_identity("b").unwrap(), 1);
        let found = g
            .identify(&[9.0, 0.0], 5, ReferenceScore::Mean, 1.5)
            .unwrap();
        assert_eq!(found.matches.len(), 1);
        assert_eq!(g.sample_count(), 2);
    }
}

#[test]
fn bad_requests_are_named_and_change_nothing() {
    let mut g = open(":memory:", IndexKind::Exact);
    let err = |e: SiameseError| e.to_string();
    assert!(err(g.put_identity("", &json!({})).unwrap_err()).contains("identity id"));
    assert!(err(g.put_identity("a b", &json!({})).unwrap_err()).contains("`a b`"));
    assert!(err(g.put_identity("a", &json!([1])).unwrap_err()).contains("JSON object"));
    let big = json!({ "x": "y".repeat(MAX_METADATA_BYTES) });
    assert!(err(g.put_identity("a", &big).unwrap_err()).contains("bytes of JSON"));
    assert!(matches!(
        g.enrol("ghost", vec![sample(1.0, 1.0)]).unwrap_err(),
        SiameseError::NotFound(_)
    ));
    g.put_identity("a", &json!({})).unwrap();
    let e = g
        .enrol("a", vec![NewSample::new(vec![1.0; 3], b"x", false)])
        .unwrap_err();
    assert!(err(e).contains("expected 2 values"));
    let e = g
        .enrol("a", vec![NewSample::new(vec![1.0, f32::NAN], b"x", false)])
        .unwrap_err();
    assert!(err(e).contains("NaN"));
    g.enrol("a", vec![sample(1.0, 1.0)]).unwrap();
    let dup = g
        .enrol("a", vec![sample(2.0, 2.0), sample(1.0, 1.0)])
        .unwrap_err();
    assert!(matches!(dup, SiameseError::Conflict { .. }), "{dup}");
    assert_eq!(g.sample_count(), 1, "the conflicting call added nothing");
    g.put_identity("empty", &json!({})).unwrap();
    let e = g
        .verify("empty", &[0.0, 0.0], ReferenceScore::Mean, 1.0)
        .unwrap_err();
    assert!(err(e).contains("no enrolled samples"));
    let e = g
        .verify("nobody", &[0.0, 0.0], ReferenceScore::Mean, 1.0)
        .unwrap_err();
    assert!(matches!(e, SiameseError::NotFound(_)));
    let e = g
        .identify(&[0.0, 0.0, 1.0], 1, ReferenceScore::Mean, 1.0)
        .unwrap_err();
    assert!(err(e).contains("probe"));
}

#[test]
fn a_gallery_reopens_with_its_samples_and_refuses_another_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.sqlite");
    let path = path.to_str().unwrap();
    {
        let mut g = open(path, IndexKind::Exact);
        g.put_identity("a", &json!({"n": 1})).unwrap();
        g.enrol("a", vec![sample(3.0, 4.0)]).unwrap();
    }
    let g = open(path, IndexKind::Hnsw);
    assert_eq!(g.sample_count(), 1);
    let v = g
        .verify("a", &[0.0, 0.0], ReferenceScore::Mean, 1.0)
        .unwrap();
    assert!((v.distance - 5.0).abs() < 1e-5);
    let other = Gallery::open(
        Box::new(SqliteStore::open(path).unwrap()),
        "m2",
        2,
        Scorer::Distance(Distance::Euclidean),
        IndexKind::Exact,
    )
    .unwrap_err()
    .to_string();
    assert!(other.contains("was built with model m1"), "{other}");
}

#[test]
fn hnsw_identification_agrees_with_exact_search() {
    // 300 identities × 3 samples around random centres in 16 dimensions.
    let dim = 16;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let scorer = Scorer::Distance(Distance::Euclidean);
    let mut exact = Gallery::open(
        Box::new(SqliteStore::open(":memory:").unwrap()),
        "m",
        dim,
        scorer.clone(),
        IndexKind::Exact,
    )
    .unwrap();
    let mut centres = Vec::new();
    for i in 0..300 {
        let c: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let id = format!("p{i}");
        exact.put_identity(&id, &json!({})).unwrap();
        let samples = (0..3)
            .map(|k| {
                let e = c.iter().map(|v| v + rng.random_range(-0.1..0.1)).collect();
                NewSample::new(e, format!("{i}-{k}").as_bytes(), false)
            })
            .collect();
        exact.enrol(&id, samples).unwrap();
        centres.push(c);
    }
    let mut approx = Gallery::open(
        Box::new(SqliteStore::open(":memory:").unwrap()),
        "m",
        dim,
        scorer,
        IndexKind::Hnsw,
    )
    .unwrap();
    for s in exact.store().all_samples().unwrap() {
        approx.put_identity(&s.identity, &json!({})).unwrap();
        approx
            .enrol(
                &s.identity,
                vec![NewSample::new(
                    s.embedding.clone(),
                    &s.sample_id.to_le_bytes(),
                    false,
                )],
            )
            .unwrap();
    }
    let (mut hits, mut total) = (0, 0);
    for c in centres.iter().take(100) {
        let probe: Vec<f32> = c.iter().map(|v| v + rng.random_range(-0.1..0.1)).collect();
        let want = exact
            .identify(&probe, 10, ReferenceScore::Mean, 0.5)
            .unwrap();
        let got = approx
            .identify(&probe, 10, ReferenceScore::Mean, 0.5)
            .unwrap();
        assert_eq!(got.matches[0], want.matches[0]);
        total += want.matches.len();
        hits += want
            .matches
            .iter()
            .filter(|m| got.matches.contains(m))
            .count();
    }
    let recall = hits as f64 / total as f64;
    assert!(recall > 0.95, "recall@10 {recall}");
}
