//! Training that stops and resumes: a run interrupted after some epochs and resumed from its
//! checkpoint gives the same history and weights, bit for bit on one thread, as the same run
//! uninterrupted — on the fused CPU path and on burn's path, with dropout and validation.

use siamese::io::Checkpoint;
use siamese::prelude::*;
use siamese::train::{Control, EpochContext, EpochLog};

/// Stops training after `epoch`.
struct StopAfter(usize);

impl Callback for StopAfter {
    fn on_epoch_end(&mut self, log: &EpochLog, _ctx: &mut EpochContext<'_>) -> Result<Control> {
        Ok(if log.epoch >= self.0 {
            Control::Stop
        } else {
            Control::Continue
        })
    }
}

fn config() -> ModelConfig {
    let mut c = ModelConfig::reference(12);
    c.seed = 5;
    c.optimizer = OptimizerConfig::adam();
    if let EncoderConfig::Mlp(m) = &mut c.network.encoder {
        m.dropout = 0.2;
        m.hidden = vec![16, 8];
    }
    c
}

/// One epoch's metrics without the wall time.
type Metrics = (usize, f32, f32, Option<f32>, Option<f32>);

/// Every epoch's metrics without the wall time.
fn metrics(h: &History) -> Vec<Metrics> {
    h.epochs
        .iter()
        .map(|e| (e.epoch, e.loss, e.accuracy, e.val_loss, e.val_accuracy))
        .collect()
}

fn interrupted_equals_uninterrupted(fused: bool) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let (a, b, y) = siamese::synthetic::random_pairs(90, 12, 3);
        let (pa, pb, _) = siamese::synthetic::random_pairs(7, 12, 4);
        let data = PairsRef {
            a: &a,
            b: &b,
            labels: &y,
        };
        let options = FitOptions {
            validation: Validation::Split(0.2),
            seed: 11,
            ..FitOptions::new(6, 16)
        };
        let mut whole = Siamese::new(config(), &Device::flex()).unwrap();
        whole.set_fused(fused);
        let full = whole.fit_pairs(data.into(), &options).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("ckpt");
        let mut first = Siamese::new(config(), &Device::flex()).unwrap();
        first.set_fused(fused);
        let mut stop = StopAfter(2);
        let mut save = Checkpoint::new(&ckpt);
        let part = first
            .fit_with(data.into(), &options, vec![&mut stop, &mut save])
            .unwrap();
        assert_eq!(part.epochs.len(), 2);
        assert_eq!(save.saved(), Some(2));
        drop(first); // the interrupted process is gone

        let (mut again, state) = Siamese::load_checkpoint(&ckpt, &Device::flex()).unwrap();
        again.set_fused(fused);
        assert_eq!(state.epoch, 2);
        let resumed = again
            .resume(data.into(), &options, state, Vec::new())
            .unwrap();
        assert_eq!(metrics(&resumed), metrics(&full), "fused: {fused}");
        assert_eq!(
            again.predict(&pa, &pb).unwrap(),
            whole.predict(&pa, &pb).unwrap(),
            "fused: {fused}: the weights differ"
        );
    });
}

#[test]
fn resumed_run_matches_uninterrupted_run_on_the_fused_path() {
    interrupted_equals_uninterrupted(true);
}

#[test]
fn resumed_run_matches_uninterrupted_run_on_burns_path() {
    interrupted_equals_uninterrupted(false);
}

/// Trains one epoch of `config()` on `data` with a checkpoint in `ckpt`.
fn one_epoch_checkpoint(data: PairsRef<'_>, ckpt: &std::path::Path) {
    let mut m = Siamese::new(config(), &Device::flex()).unwrap();
    let mut save = Checkpoint::new(ckpt);
    m.fit_with(data.into(), &FitOptions::new(1, 8), vec![&mut save])
        .unwrap();
}

#[test]
fn resume_refuses_a_different_seed_or_data() {
    let (a, b, y) = siamese::synthetic::random_pairs(40, 12, 3);
    let data = PairsRef {
        a: &a,
        b: &b,
        labels: &y,
    };
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    one_epoch_checkpoint(data, &ckpt);
    let (mut again, state) = Siamese::load_checkpoint(&ckpt, &Device::flex()).unwrap();
    let other_seed = FitOptions {
        seed: 99,
        ..FitOptions::new(3, 8)
    };
    let err = again
        .resume(data.into(), &other_seed, state.clone(), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("seed"), "{err}");
    let fewer = PairsRef {
        a: &a.slice_rows(0, 30),
        b: &b.slice_rows(0, 30),
        labels: &y[..30],
    };
    let err = again
        .resume(fewer.into(), &FitOptions::new(3, 8), state, Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("training items"), "{err}");
}

/// The optimizer state is a binary `optimizer.safetensors`; a checkpoint written before
/// (its state as `optimizer.json`) still loads to the same state.
#[test]
fn older_checkpoints_with_a_json_optimizer_state_still_load() {
    use siamese::io::{OPTIMIZER_FILE, OPTIMIZER_JSON_FILE};
    use siamese::train::OptimizerSnapshot;
    let (a, b, y) = siamese::synthetic::random_pairs(40, 12, 3);
    let data = PairsRef {
        a: &a,
        b: &b,
        labels: &y,
    };
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    one_epoch_checkpoint(data, &ckpt);
    let (_, _, state) = siamese::io::load_checkpoint(&ckpt, &Device::flex()).unwrap();
    let binary = ckpt.join(OPTIMIZER_FILE);
    let bytes = std::fs::read(&binary).unwrap();
    let snapshot = OptimizerSnapshot::from_safetensors(&bytes, &binary).unwrap();
    assert!(state.optimizer.as_ref() == Some(&snapshot));
    std::fs::write(
        ckpt.join(OPTIMIZER_JSON_FILE),
        serde_json::to_vec(&snapshot).unwrap(),
    )
    .unwrap();
    std::fs::remove_file(&binary).unwrap();
    let (_, _, old) = siamese::io::load_checkpoint(&ckpt, &Device::flex()).unwrap();
    assert!(old.optimizer.is_some() && old.optimizer == state.optimizer);
    // And the model resumes from it.
    assert!(Siamese::load_checkpoint(&ckpt, &Device::flex()).is_ok());
}
