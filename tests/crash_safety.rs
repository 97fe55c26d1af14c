//! A model directory survives `kill -9` at any moment of a save: a child process saves two
//! different models over one directory in a loop; the parent kills it at random moments and
//! checks that the directory then loads as one of the two models, whole, and that the next
//! save or load removes every temporary directory the killed save left.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use siamese::prelude::*;

/// Set in the child: the model directory to save in a loop.
const CHILD_VAR: &str = "SIAMESE_CRASH_CHILD_DIR";

/// Two models of the same shape with different weights, and a probe pair.
fn models() -> (Siamese, Siamese, Matrix, Matrix) {
    let config = |seed| ModelConfig {
        seed,
        ..ModelConfig::reference(512)
    };
    let a = Siamese::new(config(1), &Device::flex()).unwrap();
    let b = Siamese::new(config(2), &Device::flex()).unwrap();
    let (x, y, _) = siamese::synthetic::random_pairs(4, 512, 9);
    (a, b, x, y)
}

/// The child: saves model A and model B alternately over the directory, forever.
#[test]
#[ignore = "run by crash_during_save_leaves_old_or_new_model as a child process"]
fn child_saves_forever() {
    let Some(dir) = std::env::var_os(CHILD_VAR) else {
        return;
    };
    let (a, b, _, _) = models();
    // A large extra file widens the window in which a kill lands inside a save.
    let padding = vec![7u8; 4 << 20];
    loop {
        for m in [&a, &b] {
            m.save_with(Path::new(&dir), &[("padding.bin", padding.clone())])
                .unwrap();
        }
    }
}

#[test]
fn crash_during_save_leaves_old_or_new_model() {
    let (a, b, x, y) = models();
    let (da, db) = (a.predict(&x, &y).unwrap(), b.predict(&x, &y).unwrap());
    assert_ne!(da, db);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("model");
    a.save(&dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seen_tmp = 0;
    for round in 0..12u64 {
        let mut child = Command::new(&exe)
            .args(["--ignored", "--exact", "child_saves_forever", "--nocapture"])
            .env(CHILD_VAR, &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill at a different moment of the save loop each round.
        std::thread::sleep(Duration::from_millis(300 + 37 * round));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let leftovers = std::fs::read_dir(root.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".model."))
            .count();
        seen_tmp += leftovers;
        let loaded = Siamese::load(&dir, &Device::flex())
            .unwrap_or_else(|e| panic!("round {round}: the directory does not load: {e}"));
        let d = loaded.predict(&x, &y).unwrap();
        assert!(
            d == da || d == db,
            "round {round}: the loaded model is neither the old nor the new one"
        );
        let names: Vec<String> = std::fs::read_dir(root.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec!["model".to_string()],
            "round {round}: the load did not clean up"
        );
    }
    println!("temporary directories left by killed saves and cleaned up: {seen_tmp}");
}
