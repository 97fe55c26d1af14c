//! The `siamese` binary: happy paths and every malformed input named by the data/CLI issue.
//! Each bad case must print one `error:` line naming the file or field, exit with 2, and
//! leave no model directory behind.

use std::path::Path;
use std::process::Command;

use siamese::data::Matrix;
use siamese::data::npy::write_matrix;

mod common;
use common::{assert_input_error, pairs_dir, siamese, stderr, train_pairs};

/// Writes a raw .npy file with the given header dict and payload.
fn raw_npy(path: &Path, descr: &str, shape: &str, payload: &[u8]) {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(payload);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn train_predict_evaluate_embed_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = pairs_dir(dir, "pairs", 200, 8);
    let o = train_pairs(dir, &data, "model", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Total params") && out.contains("test:"),
        "{out}"
    );
    for f in ["config.json", "model.safetensors", "history.csv"] {
        assert!(dir.join("model").join(f).exists(), "{f}");
    }
    let history = std::fs::read_to_string(dir.join("model/history.csv")).unwrap();
    assert_eq!(history.lines().count(), 3, "{history}");

    let o = siamese(
        &[
            "predict",
            "--model",
            "model",
            "--a",
            "pairs/a.npy",
            "--b",
            "pairs/b.npy",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 200);
    let o = siamese(
        &[
            "predict",
            "--model",
            "model",
            "--a",
            "pairs/a.npy",
            "--b",
            "pairs/b.npy",
            "--out",
            "d.npy",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let d = siamese::data::npy::read_matrix(&dir.join("d.npy")).unwrap();
    assert_eq!(d.shape(), [200, 1]);
    let o = siamese(
        &[
            "predict",
            "--model",
            "model",
            "--a",
            "pairs/a.npy",
            "--b",
            "pairs/b.npy",
            "--out",
            "d.csv",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let o = siamese(&["evaluate", "--model", "model", "--data", "pairs"], dir);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("accuracy"));

    let o = siamese(
        &[
            "embed",
            "--model",
            "model",
            "--input",
            "pairs/a.npy",
            "--out",
            "e.npy",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let e = siamese::data::npy::read_matrix(&dir.join("e.npy")).unwrap();
    assert_eq!(e.shape(), [200, 128]);

    // Verification report on the rebuilt test split, with plots.
    let o = siamese(&["evaluate", "--model", "model"], dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("model/eval/report.json")).unwrap())
            .unwrap();
    for key in ["accuracy", "auc", "eer", "threshold", "far", "frr", "f1"] {
        assert!(report[key].is_number(), "{key} missing from {report}");
    }
    assert!(
        report["threshold_source"]
            .as_str()
            .unwrap()
            .contains("validation")
    );
    for f in ["roc.png", "distances.png", "history.png"] {
        assert!(dir.join("model/eval").join(f).exists(), "{f}");
    }
    let o = siamese(
        &[
            "predict",
            "--model",
            "model",
            "--a",
            "pairs/a.npy",
            "--b",
            "pairs/b.npy",
            "--decide",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .all(|l| l.ends_with("\tsame") || l.ends_with("\tdifferent")),
        "{out}"
    );

    let o = siamese(&["summary", "--model", "model"], dir);
    assert!(String::from_utf8_lossy(&o.stdout).contains("Total params: 34,176"));
}

#[test]
fn init_writes_a_template_that_train_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let o = siamese(&["init", "run.toml"], tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(tmp.path().join("run.toml")).unwrap();
    siamese_app::config::RunConfig::from_toml(&text, Path::new("run.toml")).unwrap();
    // Refuses to overwrite.
    assert_input_error(
        &siamese(&["init", "run.toml"], tmp.path()),
        &["run.toml", "--force"],
    );
}

#[test]
fn missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let o = train_pairs(tmp.path(), Path::new("nowhere"), "model", &[]);
    assert_input_error(&o, &["nowhere"]);
    assert!(!tmp.path().join("model").exists());
    let o = siamese(
        &[
            "predict", "--model", "nomodel", "--a", "x.npy", "--b", "y.npy",
        ],
        tmp.path(),
    );
    assert_input_error(&o, &["nomodel"]);
}

#[test]
fn wrong_dtype() {
    let tmp = tempfile::tempdir().unwrap();
    let data = pairs_dir(tmp.path(), "pairs", 20, 4);
    raw_npy(&data.join("a.npy"), "<c8", "(20, 4)", &[0u8; 20 * 4 * 8]);
    let o = train_pairs(tmp.path(), &data, "model", &[]);
    assert_input_error(&o, &["a.npy", "c8"]);
    assert!(!tmp.path().join("model").exists());
}

#[test]
fn shape_mismatch_between_a_and_b() {
    let tmp = tempfile::tempdir().unwrap();
    let data = pairs_dir(tmp.path(), "pairs", 20, 4);
    write_matrix(&data.join("b.npy"), &Matrix::zeros(20, 5)).unwrap();
    assert_input_error(
        &train_pairs(tmp.path(), &data, "model", &[]),
        &["b.npy", "[20, 5]"],
    );
    assert!(!tmp.path().join("model").exists());
}

#[test]
fn label_count_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let data = pairs_dir(tmp.path(), "pairs", 20, 4);
    write_matrix(&data.join("labels.npy"), &Matrix::zeros(19, 1)).unwrap();
    assert_input_error(
        &train_pairs(tmp.path(), &data, "model", &[]),
        &["labels", "19"],
    );
}

#[test]
fn labels_outside_unit_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let data = pairs_dir(tmp.path(), "pairs", 20, 4);
    let mut y = vec![0.0; 20];
    y[7] = 3.0;
    write_matrix(&data.join("labels.npy"), &Matrix::new(20, 1, y).unwrap()).unwrap();
    assert_input_error(
        &train_pairs(tmp.path(), &data, "model", &[]),
        &["labels.npy", "label 7 is 3"],
    );
}

#[test]
fn nan_or_inf_in_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = pairs_dir(tmp.path(), "pairs", 20, 4);
    let mut v = vec![0.5; 80];
    v[9] = f32::NAN;
    write_matrix(&data.join("a.npy"), &Matrix::new(20, 4, v).unwrap()).unwrap();
    assert_input_error(
        &train_pairs(tmp.path(), &data, "model", &[]),
        &["a.npy", "row 2, column 1"],
    );
}

#[test]
fn empty_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("faces")).unwrap();
    let o = siamese(
        &[
            "train", "--source", "images", "--data", "faces", "--output", "model", "--quiet",
        ],
        tmp.path(),
    );
    assert_input_error(&o, &["faces"]);
    assert!(!tmp.path().join("model").exists());
}

fn write_png(path: &Path, seed: u8) {
    let img = image::GrayImage::from_fn(8, 8, |x, y| {
        image::Luma([(x as u8 * 16).wrapping_add(y as u8 * seed)])
    });
    img.save(path).unwrap();
}

#[test]
fn class_with_a_single_sample() {
    let tmp = tempfile::tempdir().unwrap();
    for (class, n) in [("alice", 3), ("bob", 3), ("carol", 1)] {
        let d = tmp.path().join("faces").join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            write_png(&d.join(format!("{i}.png")), i as u8 + 1);
        }
    }
    let o = siamese(
        &[
            "train",
            "--source",
            "images",
            "--data",
            "faces",
            "--image-size",
            "8x8",
            "--split",
            "sample",
            "--test-fraction",
            "0.34",
            "--validation-fraction",
            "0.0",
            "--output",
            "model",
            "--quiet",
        ],
        tmp.path(),
    );
    assert_input_error(&o, &["`carol`", "single sample"]);
    assert!(!tmp.path().join("model").exists());
}

#[test]
fn corrupt_image() {
    let tmp = tempfile::tempdir().unwrap();
    for class in ["alice", "bob"] {
        let d = tmp.path().join("faces").join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..3 {
            write_png(&d.join(format!("{i}.png")), i as u8 + 1);
        }
    }
    let bad = tmp.path().join("faces/bob/1.png");
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let o = siamese(
        &[
            "train",
            "--source",
            "images",
            "--data",
            "faces",
            "--image-size",
            "8x8",
            "--output",
            "model",
            "--quiet",
        ],
        tmp.path(),
    );
    assert_input_error(&o, &["1.png"]);
    assert!(!tmp.path().join("model").exists());
}

#[test]
fn truncated_npy_and_idx() {
    let tmp = tempfile::tempdir().unwrap();
    let data = pairs_dir(tmp.path(), "pairs", 20, 4);
    let bytes = std::fs::read(data.join("a.npy")).unwrap();
    std::fs::write(data.join("a.npy"), &bytes[..bytes.len() - 7]).unwrap();
    assert_input_error(
        &train_pairs(tmp.path(), &data, "model", &[]),
        &["a.npy", "truncated"],
    );

    let mnist = tmp.path().join("mnist");
    std::fs::create_dir(&mnist).unwrap();
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28];
    images.extend(vec![7u8; 28 * 28 * 3]); // 3 of the 10 images announced
    std::fs::write(mnist.join("t10k-images-idx3-ubyte"), images).unwrap();
    let mut labels = vec![0, 0, 8, 1, 0, 0, 0, 10];
    labels.extend(0..10u8);
    std::fs::write(mnist.join("t10k-labels-idx1-ubyte"), labels).unwrap();
    let o = siamese(
        &[
            "train", "--source", "mnist", "--data", "mnist", "--output", "model", "--quiet",
        ],
        tmp.path(),
    );
    assert_input_error(&o, &["t10k-images-idx3-ubyte", "truncated"]);
    assert!(!tmp.path().join("model").exists());
}

#[test]
fn unknown_config_key() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("run.toml"),
        "[data]\nsource = \"pairs\"\npath = \"p\"\n\n[train]\nepochz = 3\n",
    )
    .unwrap();
    let o = siamese(&["train", "--config", "run.toml"], tmp.path());
    assert_input_error(&o, &["run.toml", "epochz"]);
}

#[test]
fn input_dim_not_matching_a_loaded_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = pairs_dir(tmp.path(), "pairs", 40, 8);
    let o = train_pairs(tmp.path(), &data, "model", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    write_matrix(&tmp.path().join("x.npy"), &Matrix::zeros(3, 5)).unwrap();
    let o = siamese(
        &[
            "predict", "--model", "model", "--a", "x.npy", "--b", "x.npy",
        ],
        tmp.path(),
    );
    assert_input_error(&o, &["x.npy", "8 features", "5 features"]);
    let o = siamese(
        &[
            "embed", "--model", "model", "--input", "x.npy", "--out", "e.npy",
        ],
        tmp.path(),
    );
    assert_input_error(&o, &["x.npy", "8 features"]);
}

#[test]
fn bad_flags_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let o = siamese(&["train", "--image-size", "12"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let o = siamese(&["train", "--output", "m"], tmp.path());
    assert_input_error(&o, &["--source"]);
    let o = siamese(
        &[
            "train",
            "--source",
            "pairs",
            "--data",
            "p",
            "--momentum",
            "0.9",
        ],
        tmp.path(),
    );
    assert_input_error(&o, &["momentum", "rmsprop"]);
}

#[test]
fn image_folder_train_evaluate_one_shot_and_embed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for c in 0..6u8 {
        let d = dir.join("faces").join(format!("person{c}"));
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..8u8 {
            // Each class is a different brightness gradient, each sample a small variation.
            let img = image::GrayImage::from_fn(8, 8, |x, y| {
                image::Luma([
                    (c as u32 * 40 + x * 3 + y * (c as u32 + 1) + i as u32 * 2).min(255) as u8,
                ])
            });
            img.save(d.join(format!("{i}.png"))).unwrap();
        }
    }
    let o = siamese(
        &[
            "train",
            "--source",
            "images",
            "--data",
            "faces",
            "--image-size",
            "8x8",
            "--split",
            "sample",
            "--test-fraction",
            "0.5",
            "--validation-fraction",
            "0.5",
            "--pairing",
            "random",
            "--num-pairs",
            "200",
            "--epochs",
            "2",
            "--output",
            "model",
            "--quiet",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = siamese(
        &[
            "evaluate",
            "--model",
            "model",
            "--one-shot",
            "3",
            "--trials",
            "30",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("model/eval/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["ways"], 3);
    let acc = report["one_shot_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    assert!(dir.join("model/eval/embeddings.png").exists());

    // No test part: the validation part is reported, and evaluate asks for other data.
    let o = siamese(
        &[
            "train",
            "--source",
            "images",
            "--data",
            "faces",
            "--image-size",
            "8x8",
            "--split",
            "class",
            "--test-fraction",
            "0",
            "--validation-fraction",
            "0.4",
            "--pairing",
            "random",
            "--num-pairs",
            "100",
            "--epochs",
            "1",
            "--output",
            "no_test",
            "--quiet",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("test: none (data.test_fraction = 0)"), "{out}");
    assert!(out.contains("validation (no test part)"), "{out}");
    assert!(dir.join("no_test/validation_report.json").exists());
    assert!(!dir.join("no_test/report.json").exists());
    let o = siamese(&["evaluate", "--model", "no_test"], dir);
    assert_input_error(&o, &["no_test", "data.test_fraction = 0", "--images"]);

    // Cross-dataset: a flat folder of extension-less 12×10 images named `subject.condition`
    // (the Yale layout), resized to the model's 8×8 and paired exhaustively.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    for c in 0..3u32 {
        for (i, cond) in ["happy", "sad", "wink"].iter().enumerate() {
            let img = image::GrayImage::from_fn(12, 10, |x, y| {
                image::Luma([(c * 60 + x * 2 + y + i as u32 * 5).min(255) as u8])
            });
            let path = other.join(format!("subject{c:02}.{cond}"));
            img.save_with_format(&path, image::ImageFormat::Png)
                .unwrap();
        }
    }
    let o = siamese(
        &[
            "evaluate",
            "--model",
            "model",
            "--images",
            "other",
            "--identify",
            "1",
            "--out",
            "cross",
            "--no-plots",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cross/report.json")).unwrap()).unwrap();
    assert_eq!(report["pairs"], 36, "9 images, every pair once");
    assert_eq!(report["similar"], 9, "3 genuine pairs per subject");
    assert_eq!(report["identification"]["identities"], 3);
    assert_eq!(report["identification"]["probes"], 6);
    let o = siamese(
        &["evaluate", "--model", "model", "--images", "no-such-folder"],
        dir,
    );
    assert_input_error(&o, &["no-such-folder"]);

    let o = siamese(
        &[
            "embed", "--model", "model", "--input", "faces", "--out", "emb.npy",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let e = siamese::data::npy::read_matrix(&dir.join("emb.npy")).unwrap();
    assert_eq!(e.shape(), [48, 128]);
    let names = std::fs::read_to_string(dir.join("emb.paths.txt")).unwrap();
    assert_eq!(names.lines().count(), 48);
    assert!(names.lines().next().unwrap().ends_with(".png"));
    // One image file works too.
    let o = siamese(
        &[
            "embed",
            "--model",
            "model",
            "--input",
            "faces/person2/1.png",
            "--out",
            "one.csv",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn text_flags_and_losses_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = pairs_dir(dir, "pairs", 60, 4);
    // cosine-mse regresses a cosine similarity: another distance is a config error.
    let o = train_pairs(dir, &data, "m1", &["--loss", "cosine-mse"]);
    assert_input_error(&o, &["loss.type", "cosine"]);
    assert!(!dir.join("m1").exists());
    // Triplets need sample identities: dense pairs have none.
    let o = train_pairs(dir, &data, "m2", &["--loss", "triplet"]);
    assert_input_error(&o, &["loss.type", "triplet"]);
    // Cross-validation folds split class-labelled samples, not ready-made pairs.
    let o = siamese(
        &[
            "train", "--source", "pairs", "--data", "pairs", "--folds", "3", "--output", "m3",
        ],
        dir,
    );
    assert_input_error(&o, &["data.folds"]);
    // --text-a on a model that is not a text model.
    let o = train_pairs(dir, &data, "m4", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = siamese(
        &[
            "predict", "--model", "m4", "--text-a", "a b", "--text-b", "c",
        ],
        dir,
    );
    assert_input_error(&o, &["m4", "text model"]);
    // --text-a without --text-b is a usage error.
    let o = siamese(&["predict", "--model", "m4", "--text-a", "a b"], dir);
    assert_eq!(o.status.code(), Some(2));
}

/// Every column of a history.csv but the wall time (`seconds`, the sixth), which differs
/// run to run.
fn history_metrics(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 8, "{l}");
            f.remove(5);
            f.join(",")
        })
        .collect()
}

#[test]
fn resume_continues_a_checkpointed_run_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = pairs_dir(dir, "pairs", 120, 8);
    let one_thread = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_siamese"))
            .args(args)
            .current_dir(dir)
            .env_remove("SIAMESE_DATA_DIR")
            .env("RAYON_NUM_THREADS", "1")
            .output()
            .unwrap()
    };
    let base = [
        "train",
        "--source",
        "pairs",
        "--data",
        data.to_str().unwrap(),
        "--batch-size",
        "16",
        "--quiet",
    ];
    let mut whole = base.to_vec();
    whole.extend(["--epochs", "4", "--output", "whole"]);
    let o = one_thread(&whole);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut first = base.to_vec();
    first.extend(["--epochs", "2", "--output", "first", "--checkpoint", "ckpt"]);
    let o = one_thread(&first);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.join("ckpt/train_state.json").exists());
    let o = one_thread(&[
        "train", "--resume", "ckpt", "--epochs", "4", "--output", "resumed", "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("resuming after epoch 2"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(
        history_metrics(&dir.join("resumed/history.csv")),
        history_metrics(&dir.join("whole/history.csv"))
    );
    let predict = |model: &str| {
        let o = one_thread(&[
            "predict",
            "--model",
            model,
            "--a",
            "pairs/a.npy",
            "--b",
            "pairs/b.npy",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        o.stdout
    };
    assert_eq!(predict("resumed"), predict("whole"));
}

#[test]
fn set_overrides_any_key_and_config_errors_come_before_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = pairs_dir(dir, "pairs", 60, 8);
    // A bad value anywhere is reported before any data is read or epoch runs.
    let o = train_pairs(dir, &data, "m", &["--set", "train.calibrate=\"best\""]);
    assert_input_error(&o, &["train.calibrate", "best"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("pairs"));
    let o = train_pairs(dir, &data, "m", &["--set", "train.batch=3"]);
    assert_input_error(&o, &["batch"]);
    let o = train_pairs(dir, &data, "m", &["--set", "data.fold=5", "--folds", "3"]);
    assert_input_error(&o, &["data.fold"]);
    assert!(!dir.join("m").exists());
    // A good one takes effect: 3 epochs in the history.
    let o = train_pairs(
        dir,
        &data,
        "m",
        &[
            "--set",
            "train.epochs=3",
            "--set",
            "model.encoder.hidden=[16, 4]",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let history = std::fs::read_to_string(dir.join("m/history.csv")).unwrap();
    // train_pairs passes --epochs 2 after --set: the flag wins, as documented.
    assert_eq!(history.lines().count(), 3, "{history}");
    let config = std::fs::read_to_string(dir.join("m/config.json")).unwrap();
    assert!(
        config.contains("\"hidden\": [\n") && config.contains("16"),
        "{config}"
    );
}
