//! Learning on the real datasets in `SIAMESE_DATA_DIR`: skipped, with a message, when it is
//! not set; a failure when it is set and the dataset is missing.

use std::path::PathBuf;

use siamese::data::prepare::prepare;
use siamese::prelude::*;
use siamese_app::config::RunConfig;

/// `$SIAMESE_DATA_DIR` holding `dataset`; `None` (skip) only when the variable is unset.
fn data_dir(dataset: &str) -> Option<PathBuf> {
    let Some(d) = std::env::var_os("SIAMESE_DATA_DIR") else {
        eprintln!("skipping: SIAMESE_DATA_DIR not set");
        return None;
    };
    let d = PathBuf::from(d);
    assert!(
        d.join(dataset).is_dir(),
        "SIAMESE_DATA_DIR is set but {} is missing",
        d.join(dataset).display()
    );
    Some(d)
}

/// Runs the `siamese` binary with `SIAMESE_DATA_DIR = dir`; its stdout, after checking that
/// it succeeded.
fn run_binary(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_siamese"))
        .args(args)
        .env("SIAMESE_DATA_DIR", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Trains `configs/<config>` for `epochs` epochs through the binary into a temporary
/// directory: the directory (kept alive by the caller), the model's path and the stdout.
fn train_recipe(
    dir: &std::path::Path,
    config: &str,
    epochs: usize,
) -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    let config = format!("{}/../configs/{config}", env!("CARGO_MANIFEST_DIR"));
    let epochs = epochs.to_string();
    let stdout = run_binary(
        dir,
        &[
            "train",
            "--config",
            &config,
            "--epochs",
            &epochs,
            "--output",
            model.to_str().unwrap(),
            "--quiet",
        ],
    );
    (tmp, model, stdout)
}

/// A short version of the Keras mnist_siamese recipe (configs/mnist.toml with 6 epochs):
/// 8,000 / 2,000 images split by image, per-class pairs, accuracy at d < 0.5 on the test pairs
/// of unseen images.
#[test]
fn mnist_recipe_short_learns() {
    let Some(dir) = data_dir("mnist") else { return };
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/mnist.toml"
    ))
    .unwrap();
    let mut run = RunConfig::from_toml(&text, "configs/mnist.toml".as_ref()).unwrap();
    run.train.epochs = 6;
    run.data.data_root = Some(dir);
    let data = prepare(&run.data, run.train.seed).unwrap();
    assert_eq!(data.input_dim, 784);
    let total = data.train.len() + data.test.len();
    assert!(total > 10_000, "{total} pairs");
    let mut model =
        Siamese::new(run.model_config(data.input_dim).unwrap(), &Device::flex()).unwrap();
    let before = model.evaluate_pairs(data.test.data(), 0.5).unwrap();
    let options = FitOptions {
        verbose: false,
        seed: run.train.seed,
        ..FitOptions::new(run.train.epochs, run.train.batch_size)
    };
    model.fit_pairs(data.train.data(), &options).unwrap();
    let after = model.evaluate_pairs(data.test.data(), 0.5).unwrap();
    eprintln!(
        "MNIST short recipe: test accuracy {:.4} (untrained {:.4})",
        after.accuracy, before.accuracy
    );
    assert!(after.accuracy >= 0.90, "test accuracy {}", after.accuracy);
    assert!(
        before.accuracy < 0.75,
        "untrained accuracy {}",
        before.accuracy
    );
}

/// STS-B end to end through the binary, with the fast bag-of-embeddings encoder (configs/
/// stsb.toml without the BiLSTM, 3 epochs): the epoch is chosen on dev, test Pearson and
/// Spearman land in report.json; `predict --text-a/--text-b` and `embed` on a text file work
/// on the saved model, tokenizer included.
#[test]
fn stsb_text_model_end_to_end() {
    let Some(dir) = data_dir("sts_benchmark") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let config =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/stsb.toml"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("body ="))
            .collect::<Vec<_>>()
            .join("\n");
    // A tiny word-vector file in GloVe format (128 values per word, as embed_dim).
    let vectors = tmp.path().join("vectors.txt");
    let line = |w: &str, v: f32| format!("{w} {}\n", vec![v.to_string(); 128].join(" "));
    std::fs::write(
        &vectors,
        line("man", 0.1) + &line("guitar", -0.2) + &line("zzqx", 0.3),
    )
    .unwrap();
    let config = config.replace(
        "type = \"text\"",
        &format!(
            "type = \"text\"\npretrained = {:?}",
            vectors.to_str().unwrap()
        ),
    );
    let config_path = tmp.path().join("stsb.toml");
    std::fs::write(&config_path, config).unwrap();
    let model = tmp.path().join("model");
    let run = |args: &[&str]| run_binary(&dir, args);
    let model_arg = model.to_str().unwrap();
    let stdout = run(&[
        "train",
        "--config",
        config_path.to_str().unwrap(),
        "--epochs",
        "3",
        "--output",
        model_arg,
        "--quiet",
    ]);
    assert!(stdout.contains("kept epoch"), "{stdout}");
    // Two of the three words are in the trained vocabulary.
    assert!(stdout.contains("pretrained vectors: 2 of"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("report.json")).unwrap()).unwrap();
    let spearman = report["spearman"].as_f64().unwrap();
    let pearson = report["pearson"].as_f64().unwrap();
    eprintln!(
        "STS-B bag of embeddings, 3 epochs: test Pearson {pearson:.3}, Spearman {spearman:.3}"
    );
    assert!(spearman > 0.45 && pearson > 0.45, "{report}");
    let out = run(&[
        "predict",
        "--model",
        model_arg,
        "--text-a",
        "A man is playing a guitar.",
        "--text-b",
        "A man plays the guitar.",
    ]);
    let similarity: f64 = out
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((-1.0..=1.0).contains(&similarity), "{out}");
    let sentences = tmp.path().join("s.txt");
    std::fs::write(&sentences, "A dog runs.\n\nA cat sleeps on the sofa.\r\n").unwrap();
    let emb = tmp.path().join("e.npy");
    run(&[
        "embed",
        "--model",
        model_arg,
        "--input",
        sentences.to_str().unwrap(),
        "--out",
        emb.to_str().unwrap(),
    ]);
    let m = siamese::data::npy::read_matrix(&emb).unwrap();
    assert_eq!(m.shape(), [2, 128]);
}

/// The AT&T faces recipe with online mining (configs/att_mined.toml: P × K batches,
/// batch-hard triplets, flips, a warm-up + cosine schedule, the epoch kept by validation EER)
/// through the binary, shortened to 15 epochs: the test subjects are unseen, and EER, the
/// history's rates and validation EER, and rank-1 identification against a one-image gallery
/// must be far better than chance (EER 50%, rank-1 10%).
#[test]
fn att_faces_mined_recipe_short() {
    att_faces_recipe_short("att_mined.toml", "kept epoch");
}

/// The same for configs/att_swa.toml, whose weights are the mean over the second half of the
/// run (after 7.5 of the 15 epochs here) instead of a kept epoch.
#[test]
fn att_faces_swa_recipe_short() {
    att_faces_recipe_short(
        "att_swa.toml",
        "weights averaged after 7.50 of 15 epochs, every 6 steps (uniform mean)",
    );
}

fn att_faces_recipe_short(config: &str, says: &str) {
    let Some(dir) = data_dir("att_faces") else {
        return;
    };
    let (_tmp, model, stdout) = train_recipe(&dir, config, 15);
    let model_arg = model.to_str().unwrap();
    let run = |args: &[&str]| run_binary(&dir, args);
    assert!(stdout.contains(says), "{stdout}");
    let history = std::fs::read_to_string(model.join("history.csv")).unwrap();
    let rows: Vec<Vec<&str>> = history
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 15);
    // Warm-up then cosine decay: the last epoch's rate is far below the peak.
    let lr: Vec<f64> = rows.iter().map(|r| r[6].parse().unwrap()).collect();
    let peak = lr.iter().cloned().fold(0.0, f64::max);
    assert!(lr[14] < 0.2 * peak && lr[0] < peak, "{lr:?}");
    assert!(
        rows.iter().all(|r| r[7].parse::<f64>().is_ok()),
        "{history}"
    );
    let out = run(&[
        "evaluate",
        "--model",
        model_arg,
        "--identify",
        "1",
        "--no-plots",
    ]);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("eval/report.json")).unwrap()).unwrap();
    let eer = report["eer"].as_f64().unwrap();
    let rank1 = report["identification"]["rank1"].as_f64().unwrap();
    eprintln!("AT&T {config}, 15 epochs: test EER {eer:.4}, rank-1 {rank1:.4}\n{out}");
    assert!(eer < 0.25, "{report}");
    assert!(rank1 > 0.6, "{report}");
    assert_eq!(report["identification"]["identities"], 10);
}

/// A short version of configs/omniglot_mined.toml (8 epochs instead of 100): the epoch kept
/// by validation one-shot accuracy (recorded per epoch in the saved config), then 20-way
/// within-alphabet one-shot on small2's unseen alphabets well above chance (5%).
#[test]
fn omniglot_mined_recipe_short() {
    let Some(dir) = data_dir("omniglot") else {
        return;
    };
    let (_tmp, model, stdout) = train_recipe(&dir, "omniglot_mined.toml", 8);
    let model_arg = model.to_str().unwrap();
    let run = |args: &[&str]| run_binary(&dir, args);
    assert!(stdout.contains("best val_one_shot"), "{stdout}");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    let selection = saved
        .pointer("/extra/epoch_selection")
        .or_else(|| saved.get("epoch_selection"))
        .unwrap_or_else(|| panic!("no epoch_selection in {saved}"));
    assert_eq!(selection["monitor"], "val_one_shot");
    let values = selection["values"].as_array().unwrap();
    assert_eq!(values.len(), 8);
    // 10-way on the validation characters: every epoch far above chance (10%).
    assert!(
        values.iter().all(|v| v.as_f64().unwrap() > 0.3),
        "{selection}"
    );
    let out = run(&[
        "evaluate",
        "--model",
        model_arg,
        "--one-shot",
        "20",
        "--within-group",
        "--trials",
        "200",
        "--no-plots",
    ]);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("eval/report.json")).unwrap()).unwrap();
    let acc = report["one_shot_accuracy"].as_f64().unwrap();
    eprintln!("Omniglot mined recipe, 8 epochs: 20-way within-alphabet one-shot {acc:.4}\n{out}");
    assert!(acc > 0.25, "{report}");
}

/// `signatures_sign_data_64` split as configs/signatures64.toml asks: the 21 writers 049–069
/// (and their forgeries) are the test part, validation writers come from 001–048, no writer
/// is in two parts; the reference protocol scores every test writer.
#[test]
fn sign_data_64_writer_split_and_references() {
    let Some(dir) = data_dir("signatures_sign_data_64") else {
        return;
    };
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/signatures64.toml"
    ))
    .unwrap();
    let mut run = RunConfig::from_toml(&text, "configs/signatures64.toml".as_ref()).unwrap();
    run.data.data_root = Some(dir);
    let data = prepare(&run.data, run.train.seed).unwrap();
    let writers = |part: &siamese::data::prepare::PairSet| -> Vec<String> {
        let s = part.samples().unwrap();
        let mut w: Vec<String> = s
            .labels
            .iter()
            .map(|&c| s.class_names[c].trim_end_matches("_forg").to_string())
            .collect();
        w.sort();
        w.dedup();
        w
    };
    let test = writers(&data.test);
    let train = writers(&data.train);
    let val = writers(data.validation.as_ref().unwrap());
    assert_eq!(test.len(), 21, "{test:?}");
    assert_eq!((test[0].as_str(), test[20].as_str()), ("049", "069"));
    assert_eq!(train.len() + val.len(), 43);
    assert!(train.iter().chain(&val).all(|w| w.as_str() < "049"));
    assert!(val.iter().all(|w| !train.contains(w)));
    // Genuine–genuine and genuine–forgery pairs within each test writer only.
    let model = Siamese::new(run.model_config(data.input_dim).unwrap(), &Device::flex()).unwrap();
    let samples = data.test.samples().unwrap();
    let r = model
        .reference_verification(samples, "_forg", 5, Default::default())
        .unwrap();
    assert_eq!(r.writers, 21);
    assert!(r.genuine > 21 * 6 && r.forgeries > 21 * 7, "{r:?}");
    assert!((0.0..=1.0).contains(&r.eer) && (0.0..=1.0).contains(&r.auc));
}
