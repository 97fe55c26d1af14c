//! Learning on the real datasets in `SIAMESE_DATA_DIR` (skipped, with a message, without it).

use std::path::PathBuf;

use siamese::config::RunConfig;
use siamese::data::prepare::prepare;
use siamese::prelude::*;

fn data_dir() -> Option<PathBuf> {
    match std::env::var_os("SIAMESE_DATA_DIR") {
        Some(d) if PathBuf::from(&d).join("mnist").is_dir() => Some(PathBuf::from(d)),
        _ => {
            eprintln!("skipping: SIAMESE_DATA_DIR not set or has no mnist/ folder");
            None
        }
    }
}

/// A short version of the Keras mnist_siamese recipe (configs/mnist.toml with 6 epochs):
/// 8,000 / 2,000 images split by image, per-class pairs, accuracy at d < 0.5 on the test pairs
/// of unseen images.
#[test]
fn mnist_recipe_short_learns() {
    let Some(_) = data_dir() else { return };
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/mnist.toml"))
        .unwrap();
    let mut run = RunConfig::from_toml(&text, "configs/mnist.toml".as_ref()).unwrap();
    run.train.epochs = 6;
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
