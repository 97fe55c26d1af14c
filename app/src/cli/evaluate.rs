//! `siamese evaluate`: verification metrics, one-shot trials, `report.json` and the plots.

use std::path::Path;

use siamese::burn::tensor::Device;
use siamese::data::prepare::{self, PairSet};
use siamese::data::{LabelConvention, PairData, Pairs};
use siamese::error::{Result, SiameseError};
use siamese::io::Threshold;
use siamese::model::Siamese;

use super::{EvaluateArgs, resolve};
use crate::config::RunConfig;
use crate::plots;

/// Labelled pairs from a folder of `.npy` files, an `.npz`, or a pair-list CSV of images.
fn load_pair_data(model: &Siamese, data: &Path, pair_labels: LabelConvention) -> Result<Pairs> {
    let data = resolve(data)?;
    let pairs = if data
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        let opts = model
            .preprocessing()
            .and_then(|p| p.image.clone())
            .ok_or_else(|| {
                SiameseError::invalid(
                    data.display().to_string(),
                    "a pair list of images needs a model trained on images",
                )
            })?;
        prepare::load_pair_list(&data, pair_labels, &opts)?
    } else {
        siamese::data::npy::read_pairs(&data)?
    };
    siamese::data::check_width(&pairs.a, model.input_dim(), &data.display().to_string())?;
    Ok(pairs)
}

/// The data of `model`'s training run `run`, rebuilt: the same data, split and seed, under
/// `SIAMESE_DATA_DIR`, with a pretrained encoder's rows made by its own tokenizer.
pub(super) fn rebuild_run(model: &Siamese, run: &RunConfig) -> Result<prepare::PreparedData> {
    let mut spec = run.data.clone();
    spec.data_root = super::data_root();
    let tokenizer = model.tokenizer().filter(|t| t.special_tokens()).cloned();
    prepare::prepare_with(&spec, run.train.seed, tokenizer)
}

/// `siamese evaluate`.
pub fn evaluate(args: &EvaluateArgs, device: &Device) -> Result<()> {
    let model = super::with_env(Siamese::load(&args.model, device)?);
    // The pairs to evaluate and, for a rebuilt run, the labelled test samples (and a text
    // source's gold scores).
    let mut text_scores = None;
    let test: PairSet = match (&args.data, &args.images) {
        (Some(path), _) => PairSet::Dense(load_pair_data(&model, path, args.pair_labels)?),
        (None, Some(dir)) => model.labelled_image_folder(resolve(dir)?)?,
        (None, None) => {
            let run = RunConfig::from_model(&model, &args.model).map_err(|_| {
                SiameseError::invalid(
                    args.model.display().to_string(),
                    "records no training run to rebuild the test split from; pass --data",
                )
            })?;
            let data = rebuild_run(&model, &run)?;
            if data.test.is_empty() {
                return Err(SiameseError::invalid(
                    args.model.display().to_string(),
                    "was trained without a test part (data.test_fraction = 0); evaluate it \
                     on other data with --images or --data",
                ));
            }
            text_scores = data.text.map(|t| t.test_scores);
            data.test
        }
    };
    let threshold = match (args.threshold, model.threshold()) {
        (Some(t), _) => Threshold {
            value: t,
            source: "given with --threshold".into(),
        },
        (None, Some(stored)) => stored.clone(),
        (None, None) => Threshold {
            value: 0.5,
            source: "default 0.5 (the model has no calibrated threshold)".into(),
        },
    };
    let pairs = test.data();
    let samples = test.samples();
    let mut report = super::train::verification_report(&model, pairs, &threshold)?;
    if let Some(gold) = &text_scores {
        super::train::add_correlations(&mut report, &model, pairs, gold)?;
    }
    if let Some(ways) = args.one_shot {
        let s = samples.ok_or_else(|| {
            SiameseError::config("one-shot", "needs class-labelled test samples: evaluate a run of an image or MNIST source without --data, or pass --images")
        })?;
        let groups = args
            .within_group
            .then(|| siamese::eval::parent_groups(&s.class_names));
        if let Some((_, names)) = &groups
            && names.len() == 1
            && names[0].is_empty()
        {
            return Err(SiameseError::config(
                "within-group",
                "the test classes have no parent folder to group by (expected class folders \
                 nested like Alphabet/character01)",
            ));
        }
        let trials = siamese::eval::one_shot_trials_within(
            &s.labels,
            groups.as_ref().map(|(g, _)| g.as_slice()),
            ways,
            args.trials,
            7,
        )?;
        report.one_shot_groups = groups.map(|(_, names)| names);
        // Every (query, candidate) pair scored by the model's own head (the weighted-L1 head
        // included), with each test sample embedded once.
        let pairs = siamese::eval::trial_pairs(&trials);
        let d = model.predict_pairs(PairData::Indexed {
            samples: &s.samples,
            pairs: &pairs,
        })?;
        let acc = siamese::eval::one_shot_accuracy_of(&trials, &d);
        report.one_shot_accuracy = Some(acc);
        report.ways = Some(ways);
        report.one_shot_trials = Some(trials.len());
    }
    if args.identify.is_some() || args.references.is_some() {
        let s = samples.ok_or_else(|| {
            SiameseError::config(
                "identify",
                "identification and references need class-labelled test samples: evaluate a \
                 run of an image or MNIST source without --data, or pass --images",
            )
        })?;
        if let Some(per_class) = args.identify {
            report.identification = Some(model.identification(&s.samples, &s.labels, per_class)?);
        }
        if let Some(references) = args.references {
            // The run's forgery suffix (a model with a rebuilt test part records its run).
            let suffix = RunConfig::from_model(&model, &args.model)
                .map(|run| run.data.forgery_suffix)
                .unwrap_or_else(|_| "_forg".into());
            report.references =
                Some(model.reference_verification(s, &suffix, references, args.reference_score)?);
        }
    }
    println!("{}", report.table());
    let out = args.out.clone().unwrap_or_else(|| args.model.join("eval"));
    std::fs::create_dir_all(&out).map_err(|e| SiameseError::io(&out, e))?;
    let json =
        serde_json::to_vec_pretty(&report).map_err(|e| SiameseError::Runtime(e.to_string()))?;
    siamese::atomic::write_file_atomic(&out.join("report.json"), &json)?;
    let mut written = vec!["report.json"];
    if !args.no_plots {
        let d = model.predict_pairs(pairs)?;
        let labels = pairs.labels();
        plots::plot_roc(&out.join("roc.png"), &d, &labels)?;
        plots::plot_distances(&out.join("distances.png"), &d, &labels, threshold.value)?;
        written.extend(["roc.png", "distances.png"]);
        let history = args.model.join("history.csv");
        if history.exists() {
            plots::plot_history(
                &out.join("history.png"),
                &siamese::report::read_history_csv(&history)?,
            )?;
            written.push("history.png");
        }
        if let Some(s) = samples {
            let emb = model.embed(&s.samples)?;
            plots::plot_embeddings(&out.join("embeddings.png"), &emb, &s.labels, &s.class_names)?;
            written.push("embeddings.png");
        }
    }
    println!("wrote {} in {}", written.join(", "), out.display());
    Ok(())
}
