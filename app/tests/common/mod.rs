//! What the command-line test files share: running the binary, reading its errors, and a
//! small labelled-pairs dataset to train on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use siamese::data::Matrix;
use siamese::data::npy::write_matrix;

/// Runs the `siamese` binary in `dir` (without `SIAMESE_DATA_DIR`).
pub fn siamese(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siamese"))
        .args(args)
        .current_dir(dir)
        .env_remove("SIAMESE_DATA_DIR")
        .output()
        .expect("the binary runs")
}

/// The standard error of a finished run, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean input error: exit code 2 and one `error:` line containing every `needle`.
pub fn assert_input_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "stderr: {err}\nstdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected, got: {err}");
    assert!(lines[0].starts_with("error:"), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "`{n}` missing from: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// A labelled-pairs folder (a.npy, b.npy, labels.npy) of `n` pairs of `dim` features from two
/// well-separated classes.
pub fn pairs_dir(root: &Path, name: &str, n: usize, dim: usize) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let task = siamese::synthetic::ClassTask::new(3, dim, 0.2, 1);
    let (a, b, y) = task.pairs(n, 2);
    write_matrix(&dir.join("a.npy"), &a).unwrap();
    write_matrix(&dir.join("b.npy"), &b).unwrap();
    write_matrix(&dir.join("labels.npy"), &Matrix::new(n, 1, y).unwrap()).unwrap();
    dir
}

/// Trains the reference MLP on `data` for 2 epochs into `dir/out`, quietly, with `extra` flags.
pub fn train_pairs(dir: &Path, data: &Path, out: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--source",
        "pairs",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--output",
        out,
        "--quiet",
    ];
    args.extend_from_slice(extra);
    siamese(&args, dir)
}
