//! `siamese average`: the mean of trained models' weights, its calibration, and the runs it
//! refuses.

mod common;
use common::{assert_input_error, pairs_dir, siamese, stderr, train_pairs};

/// `siamese average`: two runs on the same split average into a model that evaluates; a run
/// on another split (another seed) or of another architecture is refused, naming it.
#[test]
fn average_of_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = pairs_dir(dir, "pairs", 200, 8);
    let val = ["--validation-fraction", "0.2"];
    for (out, extra) in [
        ("m0", vec!["--lr", "0.001"]),
        ("m1", vec!["--lr", "0.002"]),
        ("seed1", vec!["--seed", "1"]),
        ("wide", vec!["--hidden", "16,16"]),
    ] {
        let mut args = val.to_vec();
        args.extend(extra);
        let o = train_pairs(dir, &data, out, &args);
        assert!(o.status.success(), "{out}: {}", stderr(&o));
    }
    let o = siamese(
        &["average", "--model", "m0", "--model", "m1", "--out", "soup"],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("validation of the average"), "{out}");
    let config = std::fs::read_to_string(dir.join("soup/config.json")).unwrap();
    assert!(
        config.contains("averaged_from") && config.contains("calibrated on validation"),
        "{config}"
    );
    let o = siamese(&["evaluate", "--model", "soup", "--no-plots"], dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = siamese(
        &[
            "average", "--model", "m0", "--model", "seed1", "--out", "bad",
        ],
        dir,
    );
    assert_input_error(&o, &["seed1", "other pairs"]);
    let o = siamese(
        &[
            "average", "--model", "m0", "--model", "wide", "--out", "bad",
        ],
        dir,
    );
    assert_input_error(&o, &["wide", "network configuration"]);
    let o = siamese(&["average", "--model", "m0", "--out", "bad"], dir);
    assert_input_error(&o, &["at least two"]);
    assert!(!dir.join("bad").exists());
}
