//! The BERT encoder against the Python reference on `tests/fixtures/tiny_bert`: a tiny
//! random-weight sentence-transformers directory written by `tools/make_bert_fixture.py`,
//! with token ids, intermediate states and embeddings from `transformers` and
//! `sentence-transformers` in `reference.json`.

use std::path::{Path, PathBuf};

use serde_json::Value;
use siamese::burn::tensor::{Device, Tensor};
use siamese::encoder::bert::{BertPooling, load_pretrained};
use siamese::model::Siamese;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_bert")
}

fn reference() -> Value {
    serde_json::from_slice(&std::fs::read(fixture().join("reference.json")).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        other => panic!("not a number: {other}"),
    }
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Largest absolute difference, after checking the lengths agree.
fn max_diff(got: &[f32], want: &[f32], what: &str) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn sentences(r: &Value) -> Vec<&Value> {
    r["sentences"].as_array().unwrap().iter().collect()
}

#[test]
fn reads_the_directory_as_sentence_transformers_wrote_it() {
    let p = load_pretrained(fixture(), &Device::flex()).unwrap();
    let c = &p.config;
    assert_eq!(
        (c.vocab_size, c.hidden, c.layers, c.heads, c.intermediate),
        (400, 32, 2, 4, 64)
    );
    assert_eq!((c.max_position, c.max_len), (64, 16));
    assert_eq!(c.pooling, BertPooling::Mean);
    assert!(c.normalize, "modules.json has a Normalize module");
}

#[test]
fn token_ids_equal_the_reference_tokenizer() {
    let r = reference();
    let p = load_pretrained(fixture(), &Device::flex()).unwrap();
    for s in sentences(&r) {
        let text = s["text"].as_str().unwrap();
        let want = ids(&s["input_ids"]);
        let rows = p.tokenizer.encode(&[text]).unwrap();
        let row = rows.row(0);
        assert_eq!(row.len(), 16);
        let got: Vec<u32> = row
            .iter()
            .take_while(|&&v| v > 0.0)
            .map(|&v| v as u32 - 1)
            .collect();
        assert_eq!(got, want, "{text:?}");
        assert!(
            row[got.len()..].iter().all(|&v| v == 0.0),
            "{text:?}: padding"
        );
    }
}

#[test]
fn states_and_embeddings_equal_the_python_reference() {
    let r = reference();
    let device = Device::flex();
    let p = load_pretrained(fixture(), &device).unwrap();
    let mut worst = 0.0f32;
    for s in sentences(&r) {
        let text = s["text"].as_str().unwrap();
        let rows = p.tokenizer.encode(&[text]).unwrap();
        let x = Tensor::<1>::from_floats(rows.as_slice(), &device).reshape([1, 16]);
        let (last, mask, states) = p.encoder.trace(x.clone());
        let n = ids(&s["input_ids"]).len();
        assert_eq!(mask.dims(), [1, n], "{text:?}: cut to its own length");
        let check = |got: Tensor<3>, want: &Value, what: &str| {
            let d = max_diff(&values(got), &floats(want), &format!("{text:?} {what}"));
            assert!(d < 1e-5, "{text:?} {what}: max |Δ| {d}");
            d
        };
        worst = worst.max(check(
            states[0].clone(),
            &s["embeddings_output"],
            "embeddings",
        ));
        for layer in 0..2 {
            let a = &s["attention_outputs"][layer];
            worst = worst.max(check(states[1 + 2 * layer].clone(), a, "attention output"));
            let l = &s["layer_outputs"][layer];
            worst = worst.max(check(states[2 + 2 * layer].clone(), l, "layer output"));
        }
        worst = worst.max(check(last, &s["token_embeddings"], "token embeddings"));
        let e = values(p.encoder.forward(x));
        let d = max_diff(&e, &floats(&s["embedding"]), text);
        assert!(d < 1e-5, "{text:?} embedding: max |Δ| {d}");
    }
    eprintln!("largest difference from the Python reference: {worst:e}");
}

#[test]
fn a_padded_batch_embeds_like_single_sentences() {
    let r = reference();
    let device = Device::flex();
    let model = Siamese::from_pretrained(fixture(), &device).unwrap();
    let texts: Vec<&str> = sentences(&r)
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    let rows = model.encode_sentences(&texts).unwrap();
    let e = model.embed(&rows).unwrap();
    assert_eq!(e.shape(), [8, 32]);
    let d = max_diff(
        e.as_slice(),
        &floats(&r["padded_batch"]["embeddings"]),
        "batch",
    );
    assert!(d < 1e-5, "padded batch: max |Δ| {d}");
    // Siamese::load recognises the directory too, and cosine distances follow.
    let loaded = Siamese::load(fixture(), &device).unwrap();
    let d = loaded
        .predict(&rows.select_rows(&[5]), &rows.select_rows(&[6]))
        .unwrap()[0];
    let (a, b) = (e.row(5), e.row(6));
    let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    assert!((d - (1.0 - cos)).abs() < 1e-5, "{d} vs 1 − {cos}");
}

#[test]
fn a_saved_model_reloads_with_its_tokenizer() {
    let device = Device::flex();
    let model = Siamese::from_pretrained(fixture(), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path().join("m")).unwrap();
    let again = Siamese::load(dir.path().join("m"), &device).unwrap();
    let texts = ["A man is playing a guitar.", "ThE QuIcK BROWN fox Jumped"];
    let a = model
        .embed(&model.encode_sentences(&texts).unwrap())
        .unwrap();
    let rows = again.encode_sentences(&texts).unwrap();
    assert_eq!(
        rows.row(0)[0],
        3.0,
        "[CLS] (id 2) still added after reloading"
    );
    let b = again.embed(&rows).unwrap();
    assert_eq!(a.as_slice(), b.as_slice());
}

/// A copy of the fixture with `edit` applied, for the error cases.
fn broken(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                std::fs::create_dir(&target).unwrap();
                for f in std::fs::read_dir(entry.path()).unwrap() {
                    let f = f.unwrap();
                    std::fs::copy(f.path(), target.join(f.file_name())).unwrap();
                }
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    };
    copy(&fixture(), dir.path());
    edit(dir.path());
    dir
}

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn unsupported_or_broken_directories_are_named() {
    let device = Device::flex();
    let err = |dir: &Path| load_pretrained(dir, &device).unwrap_err().to_string();

    let d = broken(|d| std::fs::remove_file(d.join("model.safetensors")).unwrap());
    let e = err(d.path());
    assert!(
        e.contains("model.safetensors") && e.contains("missing"),
        "{e}"
    );

    let d = broken(|d| edit_json(&d.join("config.json"), |v| v["model_type"] = "gpt2".into()));
    let e = err(d.path());
    assert!(e.contains("gpt2") && e.contains("bert"), "{e}");

    let d = broken(|d| edit_json(&d.join("config.json"), |v| v["hidden_size"] = 48.into()));
    let e = err(d.path());
    assert!(
        e.contains("word_embeddings") && e.contains("48") && e.contains("32"),
        "{e}"
    );

    let d = broken(|d| {
        edit_json(&d.join("1_Pooling/config.json"), |v| {
            v["pooling_mode"] = "weightedmean".into()
        })
    });
    let e = err(d.path());
    assert!(e.contains("weightedmean") && e.contains("1_Pooling"), "{e}");

    let d = broken(|d| std::fs::remove_file(d.join("tokenizer.json")).unwrap());
    let e = err(d.path());
    assert!(e.contains("tokenizer.json"), "{e}");

    let d = broken(|d| std::fs::write(d.join("model.safetensors"), b"not weights").unwrap());
    let e = err(d.path());
    assert!(
        e.contains("model.safetensors") && e.contains("safetensors"),
        "{e}"
    );

    let e = err(Path::new("/no/such/model"));
    assert!(e.contains("/no/such/model"), "{e}");
}

/// Fine-tuning with the in-batch multiple-negatives ranking loss on pairs without scores
/// (all similar): the ranking loss falls, and afterwards each question's own answer is the
/// nearest of the batch's answers more often than before.
#[test]
fn multiple_negatives_ranking_fine_tunes_the_twin() {
    use siamese::loss::{LossConfig, LossKind};
    use siamese::model::PretrainedSetup;
    use siamese::optim::OptimizerConfig;
    use siamese::train::FitOptions;

    let device = Device::flex();
    let setup = PretrainedSetup {
        loss: LossConfig {
            kind: LossKind::MultipleNegativesRanking,
            ..LossConfig::default()
        },
        optimizer: OptimizerConfig::Adam {
            lr: 3e-3,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-6,
        },
        dropout: Some(0.0),
        ..PretrainedSetup::default()
    };
    let mut model = Siamese::from_pretrained_with(fixture(), &device, setup).unwrap();
    let questions = [
        "how do I reset my password",
        "where is the train station",
        "what time does the shop open",
        "can I pay by card",
        "is the museum free on sundays",
        "how far is the airport",
        "who wrote this book",
        "when does the film start",
    ];
    let answers = [
        "password reset link sent by mail",
        "station is next to the bridge",
        "shop opens at nine",
        "cards are accepted",
        "museum entry free sunday",
        "airport is twenty minutes away",
        "book written by an old author",
        "film starts at eight",
    ];
    let a = model.encode_sentences(&questions).unwrap();
    let b = model.encode_sentences(&answers).unwrap();
    // Nearest answer of each question, by cosine distance.
    let hits = |m: &Siamese| {
        let (ea, eb) = (m.embed(&a).unwrap(), m.embed(&b).unwrap());
        (0..questions.len())
            .filter(|&i| {
                let d = |j: usize| -> f32 {
                    let (x, y) = (ea.row(i), eb.row(j));
                    let dot: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
                    let n = |v: &[f32]| v.iter().map(|p| p * p).sum::<f32>().sqrt();
                    1.0 - dot / (n(x) * n(y))
                };
                (0..answers.len()).all(|j| j == i || d(i) < d(j))
            })
            .count()
    };
    let before = hits(&model);
    let labels = vec![1.0; questions.len()];
    let history = model.fit(&a, &b, &labels, &FitOptions::new(30, 8)).unwrap();
    let loss = history.loss();
    assert!(
        loss[loss.len() - 1] < 0.5 * loss[0],
        "ranking loss {} → {}",
        loss[0],
        loss[loss.len() - 1]
    );
    let after = hits(&model);
    assert!(
        after > before && after >= 6,
        "nearest answers right: {before} → {after}"
    );
}

/// Cosine-MSE fine-tuning (SBERT's STS objective) runs on the host BERT trainer: the same
/// losses and embeddings as burn's autodiff after two epochs of Adam (no dropout, so that
/// both paths compute the same function), and the weights moved.
#[test]
fn cosine_mse_fine_tuning_on_the_host_equals_burns() {
    use siamese::model::PretrainedSetup;
    use siamese::optim::OptimizerConfig;
    use siamese::train::FitOptions;

    let device = Device::flex();
    let setup = || PretrainedSetup {
        optimizer: OptimizerConfig::Adam {
            lr: 1e-3,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-6,
        },
        dropout: Some(0.0),
        ..PretrainedSetup::default()
    };
    let left = [
        "a man is playing a guitar",
        "the cat sleeps on the sofa",
        "two dogs run in the park",
        "a woman slices an onion",
        "the train leaves at noon",
        "children play football outside",
    ];
    let right = [
        "someone plays the guitar",
        "a dog barks at the mailman",
        "dogs are running on grass",
        "a person is cutting vegetables",
        "the market opens early",
        "kids are playing soccer",
    ];
    let scores = [0.9, 0.1, 0.85, 0.7, 0.05, 0.95];
    let mut host = Siamese::from_pretrained_with(fixture(), &device, setup()).unwrap();
    let mut burn = Siamese::from_pretrained_with(fixture(), &device, setup()).unwrap();
    burn.set_fused(false);
    let (a, b) = (
        host.encode_sentences(&left).unwrap(),
        host.encode_sentences(&right).unwrap(),
    );
    let before = host.embed(&a).unwrap();
    let options = FitOptions::new(2, 4);
    let lh = host.fit(&a, &b, &scores, &options).unwrap().loss();
    let lb = burn.fit(&a, &b, &scores, &options).unwrap().loss();
    for (h, w) in lh.iter().zip(&lb) {
        assert!(
            (h - w).abs() <= 1e-4 * w.abs().max(1e-3),
            "losses {lh:?} vs {lb:?}"
        );
    }
    burn.set_fused(true);
    let (eh, eb) = (host.embed(&a).unwrap(), burn.embed(&a).unwrap());
    let d = max_diff(eh.as_slice(), eb.as_slice(), "embeddings after fine-tuning");
    assert!(d < 1e-4, "embeddings after fine-tuning differ by {d}");
    let moved = eh
        .as_slice()
        .iter()
        .zip(before.as_slice())
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(moved > 1e-3, "fine-tuning moved the embeddings by {moved}");
}

/// A checkpoint of a fine-tuning run keeps the tokenizer and preprocessing: the model it
/// resumes makes the same rows and embeddings (the optimizer state travels as safetensors).
#[test]
fn a_fine_tuning_checkpoint_resumes_with_its_tokenizer() {
    use siamese::model::PretrainedSetup;
    use siamese::train::FitOptions;

    let device = Device::flex();
    let setup = PretrainedSetup {
        dropout: Some(0.0),
        ..PretrainedSetup::default()
    };
    let mut model = Siamese::from_pretrained_with(fixture(), &device, setup).unwrap();
    let texts = ["a man is playing a guitar", "the cat sleeps on the sofa"];
    let (a, b) = (
        model.encode_sentences(&texts).unwrap(),
        model
            .encode_sentences(&["someone plays music", "a dog barks"])
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let mut save = model.checkpoint(&ckpt).unwrap();
    model
        .fit_with(
            siamese::data::PairsRef {
                a: &a,
                b: &b,
                labels: &[0.8, 0.1],
            }
            .into(),
            &FitOptions::new(1, 2),
            vec![&mut save],
        )
        .unwrap();
    assert!(ckpt.join(siamese::io::TOKENIZER_FILE).exists());
    let (again, state) = Siamese::load_checkpoint(&ckpt, &device).unwrap();
    assert_eq!(state.epoch, 1);
    let rows = again.encode_sentences(&texts).unwrap();
    assert_eq!(rows.as_slice(), a.as_slice(), "same rows after resuming");
    let d = max_diff(
        again.embed(&rows).unwrap().as_slice(),
        model.embed(&a).unwrap().as_slice(),
        "embeddings",
    );
    assert!(d < 1e-6, "the checkpoint's weights differ by {d}");
}
