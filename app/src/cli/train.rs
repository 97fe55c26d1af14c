//! `siamese train`: run config → data → model → fit (with callbacks) → calibrated threshold →
//! test report → model directory; `--resume` continues a checkpointed run.

use std::path::Path;

use siamese::burn::tensor::Device;
use siamese::data::PairData;
use siamese::data::prepare;
use siamese::data::sampler::PerClassSampler;
use siamese::error::{Result, SiameseError};
use siamese::eval::Objective;
use siamese::io::Threshold;
use siamese::model::{PretrainedSetup, Siamese};
use siamese::report::VerificationReport;
use siamese::train::{
    Augment, Callback, EarlyStopping, FitOptions, KeepBest, Monitor, TrainState, Validation,
};

use super::{TrainArgs, json, resolve};
use crate::config::{EncoderKind, RunConfig};
use crate::progress::ProgressBars;

/// `siamese train`.
pub fn train(args: TrainArgs, device: &Device) -> Result<()> {
    let (config, resume) = match &args.resume {
        Some(dir) => {
            let (model, state) = Siamese::load_checkpoint(dir, device)?;
            let run = RunConfig::from_model(&model, dir)?;
            (
                super::flags::apply_flags(run, &args)?,
                Some((model, state, dir.clone())),
            )
        }
        None => (super::flags::run_config(&args)?, None),
    };
    let verbose = !args.quiet;
    let mut data_config = config.data.clone();
    data_config.data_root = super::data_root();
    // A pretrained encoder is read first: its tokenizer makes the rows.
    let mut pretrained = match (&resume, &config.model.encoder.path) {
        (None, Some(dir)) if config.model.encoder.kind == EncoderKind::Pretrained => {
            let dir = resolve(dir)?;
            let enc = &config.model.encoder;
            let model = Siamese::from_pretrained_with(
                &dir,
                device,
                PretrainedSetup {
                    distance: config.model.distance,
                    loss: config.loss,
                    optimizer: config.optimizer.clone(),
                    seed: config.train.seed,
                    dropout: (enc.dropout > 0.0).then_some(enc.dropout),
                },
            )?;
            println!("pretrained encoder: {}", dir.display());
            Some(model)
        }
        _ => None,
    };
    let tokenizer = match (&pretrained, &resume) {
        (Some(m), _) | (None, Some((m, _, _))) => {
            m.tokenizer().filter(|t| t.special_tokens()).cloned()
        }
        (None, None) => None,
    };
    let data = prepare::prepare_with(&data_config, config.train.seed, tokenizer)?;
    for line in &data.description {
        println!("{line}");
    }
    let (model, state, checkpoint_dir) = match resume {
        Some((model, state, dir)) => {
            println!(
                "resuming after epoch {} from {}",
                state.epoch,
                dir.display()
            );
            (model, Some(state), Some(dir))
        }
        None if pretrained.is_some() => (
            pretrained.take().expect("checked"),
            None,
            config.train.checkpoint.clone(),
        ),
        None => {
            let text_vocab = data.preprocessing.text.as_ref().map(|t| t.vocab_size);
            let model = Siamese::new(
                config.model_config_with(data.input_dim, text_vocab)?,
                device,
            )?;
            (model, None, config.train.checkpoint.clone())
        }
    };
    let mut model = super::with_env(model);
    model.set_preprocessing(
        data.preprocessing.clone(),
        data.text.as_ref().map(|t| t.tokenizer.clone()),
    )?;
    if state.is_none()
        && let Some(vectors) = &config.model.encoder.pretrained
    {
        let path = resolve(vectors)?;
        let found = model.load_word_vectors(&path, config.train.seed)?;
        let total = model.tokenizer().map_or(0, |t| t.vocab_size() - 1);
        println!(
            "pretrained vectors: {found} of {total} tokens found in {}",
            path.display()
        );
    }
    println!("{}\n", model.summary());
    let options = fit_options(&config, &data)?;
    let started = std::time::Instant::now();
    // Zero epochs: a pretrained encoder evaluated as it is.
    let history = if options.epochs == 0 {
        siamese::train::History::default()
    } else {
        fit(
            &mut model,
            &config,
            &data,
            &options,
            state,
            checkpoint_dir.as_deref(),
            verbose,
        )?
    };
    let seconds = started.elapsed().as_secs_f64();
    match &data.validation {
        Some(v) => {
            let objective: Objective = config.train.calibrate.parse()?;
            model.calibrate(v.data(), objective)?;
        }
        None => model.set_threshold(Threshold {
            value: config.train.threshold,
            source: "train.threshold (no validation part)".into(),
        }),
    }
    let threshold = model
        .threshold()
        .cloned()
        .ok_or_else(|| SiameseError::Runtime("the model has no threshold".into()))?;
    // Without a test part (data.test_fraction = 0) the validation part is reported instead,
    // as validation_report.json.
    let (part, pairs, name) = match (&data.validation, data.test.is_empty()) {
        (Some(v), true) => (
            "validation (no test part)",
            v.data(),
            "validation_report.json",
        ),
        _ => ("test", data.test.data(), "report.json"),
    };
    let mut files = vec![("history.csv", history.to_csv().into_bytes())];
    if pairs.is_empty() {
        println!("\nno test or validation part ({seconds:.1}s of training)");
    } else {
        let mut report = verification_report(&model, pairs, &threshold)?;
        if let Some(text) = &data.text {
            add_correlations(&mut report, &model, data.test.data(), &text.test_scores)?;
        }
        println!("\n{part} ({seconds:.1}s of training):\n{}", report.table());
        files.push((
            name,
            serde_json::to_vec_pretty(&report).map_err(|e| SiameseError::Runtime(e.to_string()))?,
        ));
    }
    let extra = model.extra_mut();
    extra.insert("run".into(), json(&config)?);
    extra.insert("train_seconds".into(), json(&seconds)?);
    let names: Vec<&str> = files.iter().map(|f| f.0).collect();
    println!(
        "wrote {} (config.json, model.safetensors, {})",
        config.output.display(),
        names.join(", ")
    );
    model.save_with(&config.output, &files)?;
    Ok(())
}

/// `fit`'s options from the run config.
fn fit_options(config: &RunConfig, data: &prepare::PreparedData) -> Result<FitOptions> {
    Ok(FitOptions {
        epochs: config.train.epochs,
        batch_size: config.train.batch_size,
        shuffle: config.train.shuffle,
        seed: config.train.seed,
        validation: data
            .validation
            .clone()
            .map_or(Validation::None, Validation::from),
        threshold: config.train.threshold,
        verbose: false,
        augment: match (config.train.augment_config()?, data.image_size()) {
            (Some(a), Some((width, height))) => Some(Augment {
                config: a,
                width,
                height,
            }),
            (Some(_), None) => {
                return Err(SiameseError::config(
                    "train.augment",
                    "augmentation needs image samples (an images, mnist or pair-list source)",
                ));
            }
            (None, _) => None,
        },
        schedule: config.train.schedule,
        average: config.train.average,
        sampler: match config.train.sampler {
            None => None,
            Some(s) => {
                let samples = data.train.samples().ok_or_else(|| {
                    SiameseError::config(
                        "train.sampler",
                        "class-balanced batches need a class-labelled source (an image folder, \
                         MNIST or a pair list)",
                    )
                })?;
                Some(PerClassSampler::new(
                    &samples.labels,
                    s.classes,
                    s.per_class,
                )?)
            }
        },
    })
}

/// Trains with the progress bars, the epoch choice of text sources (best validation
/// Spearman, the STS protocol) and the per-epoch checkpoint, resuming `state` if given.
fn fit(
    model: &mut Siamese,
    config: &RunConfig,
    data: &prepare::PreparedData,
    options: &FitOptions,
    state: Option<TrainState>,
    checkpoint_dir: Option<&Path>,
    verbose: bool,
) -> Result<siamese::train::History> {
    let mut bars = ProgressBars::new(verbose);
    let mut callbacks: Vec<&mut dyn Callback> = vec![&mut bars];
    let validation_samples = data.validation.as_ref().and_then(|v| v.samples());
    let mut keep_best = match (&data.text, config.train.keep_best) {
        (_, Some(name)) => Some(KeepBest::new(name.monitor(
            &config.train.one_shot,
            validation_samples,
            config.train.seed,
        )?)),
        (Some(text), None) => {
            let gold: Vec<f64> = text.validation_scores.iter().map(|&g| g as f64).collect();
            let kind = model.config().loss.kind;
            Some(KeepBest::new(Monitor::Score {
                name: "val_spearman".into(),
                score: Box::new(move |d: &[f32]| {
                    let sim: Vec<f64> = d.iter().map(|&v| kind.similarity(v)).collect();
                    Ok(siamese::eval::spearman(&sim, &gold))
                }),
            }))
        }
        (None, None) => None,
    };
    if let Some(k) = &mut keep_best {
        callbacks.push(k);
    }
    let mut early = match config.train.early_stopping {
        Some(e) => {
            let monitor = e.monitor.monitor(
                &config.train.one_shot,
                validation_samples,
                config.train.seed,
            )?;
            let mut stop = EarlyStopping::new(monitor, e.patience);
            stop.min_delta = e.min_delta;
            Some(stop)
        }
        None => None,
    };
    if let Some(e) = &mut early {
        callbacks.push(e);
    }
    let mut checkpoint = match checkpoint_dir {
        Some(dir) => {
            let mut extra = siamese::io::Extra::new();
            extra.insert("run".into(), json(config)?);
            Some(model.checkpoint(dir)?.with_extra(extra))
        }
        None => None,
    };
    if let Some(c) = &mut checkpoint {
        callbacks.push(c);
    }
    let data_pairs: PairData<'_> = data.train.data();
    let history = match state {
        Some(state) => model.resume(data_pairs, options, state, callbacks)?,
        None => model.fit_with(data_pairs, options, callbacks)?,
    };
    if let Some(e) = &early
        && let Some(epoch) = e.stopped_at()
    {
        println!(
            "stopped early after epoch {epoch} ({} unimproved)",
            e.monitor().name()
        );
    }
    if let Some(k) = &keep_best
        && let Some((epoch, value)) = k.best()
    {
        let name = k.monitor().name();
        // Values are oriented higher-is-better: a loss or an error rate is negated.
        let shown = match name.as_str() {
            "val_spearman" => format!("{:.2}", value * 100.0),
            "val_eer" => format!("{:.2}%", -value * 100.0),
            "val_loss" => format!("{:.4}", -value),
            "val_one_shot" => format!("{:.2}%", value * 100.0),
            _ => format!("{:.4}", value),
        };
        println!(
            "kept epoch {epoch} of {} (best {name} {shown})",
            history.epochs.len()
        );
        if let Some(a) = &options.average {
            let start = a.start(options.epochs);
            if (epoch as f64) <= start {
                println!("  (before weight averaging began: the weights as trained then)");
            } else {
                println!(
                    "  (the weights averaged since epoch {start:.2}, every {} steps)",
                    a.every_steps
                );
            }
        }
        let per_epoch: Vec<f64> = k.values().to_vec();
        model.extra_mut().insert(
            "epoch_selection".into(),
            serde_json::json!({ "epoch": epoch, "monitor": name, "values": per_epoch }),
        );
    }
    if keep_best.is_none()
        && let Some(a) = &options.average
    {
        println!(
            "weights averaged after {:.2} of {} epochs, every {} steps ({})",
            a.start(options.epochs),
            history.epochs.len(),
            a.every_steps,
            a.decay
                .map_or("uniform mean".to_string(), |d| format!("EMA, decay {d}"))
        );
    }
    Ok(history)
}

/// Adds the Pearson and Spearman correlations (×100) of `model`'s similarities on `pairs`
/// with their `gold` scores to `report` (text sources).
pub(super) fn add_correlations(
    report: &mut VerificationReport,
    model: &Siamese,
    pairs: PairData<'_>,
    gold: &[f32],
) -> Result<()> {
    let (p, s) = model.correlations(pairs, gold)?;
    report.pearson = Some(p);
    report.spearman = Some(s);
    Ok(())
}

/// Loss and every verification metric of `model` on `pairs` at `threshold`.
pub(super) fn verification_report(
    model: &Siamese,
    pairs: PairData<'_>,
    threshold: &Threshold,
) -> Result<VerificationReport> {
    let d = model.predict_pairs(pairs)?;
    let loss = model.evaluate_pairs(pairs, threshold.value)?.loss;
    VerificationReport::new(
        &d,
        &pairs.labels(),
        loss,
        threshold.value,
        &threshold.source,
    )
}
