//! `siamese average`: the element-wise mean of trained models' weights (a uniform model
//! soup, or checkpoint averaging), recalibrated on the first model's validation part and
//! saved as a new model directory.

use std::path::{Path, PathBuf};

use siamese::burn::tensor::Device;
use siamese::data::prepare;
use siamese::error::{Result, SiameseError};
use siamese::eval::Objective;
use siamese::model::Siamese;

use super::evaluate::rebuild_run;
use super::json;
use crate::config::RunConfig;

/// `siamese average --model A --model B [...] --out DIR`.
pub fn average(models: &[PathBuf], out: &Path, device: &Device) -> Result<()> {
    if models.len() < 2 {
        return Err(SiameseError::config(
            "model",
            format!(
                "give at least two model directories to average (got {})",
                models.len()
            ),
        ));
    }
    let mut first = super::with_env(Siamese::load(&models[0], device)?);
    let others = models[1..]
        .iter()
        .map(|m| Siamese::load(m, device))
        .collect::<Result<Vec<_>>>()?;
    for (m, dir) in others.iter().zip(&models[1..]) {
        if let Some(why) = first.averaging_mismatch(m) {
            return Err(SiameseError::invalid(dir.display().to_string(), why));
        }
    }
    let refs: Vec<&Siamese> = others.iter().collect();
    first.average_weights(&refs)?;
    println!("averaged the weights of {} models", models.len());
    // Recalibrate on the validation part of the first model's run (same data, split, seed);
    // every run must have had the same parts, or a model would have trained on the pairs the
    // average is calibrated or tested on.
    let run = RunConfig::from_model(&first, &models[0]).ok();
    match &run {
        Some(run) => {
            let data = rebuild_run(&first, run)?;
            let parts = fingerprint(&data);
            for (m, dir) in others.iter().zip(&models[1..]) {
                let other = RunConfig::from_model(m, dir)?;
                if fingerprint(&rebuild_run(m, &other)?) != parts {
                    return Err(SiameseError::invalid(
                        dir.display().to_string(),
                        format!(
                            "was trained, validated or tested on other pairs than {} (another \
                             data section, or a seed that draws another split): an average of \
                             the two would be calibrated or tested on pairs one of them \
                             trained on",
                            models[0].display()
                        ),
                    ));
                }
            }
            match &data.validation {
                Some(v) => {
                    let objective: Objective = run.train.calibrate.parse()?;
                    first.calibrate(v.data(), objective)?;
                    let threshold = first.threshold().cloned().ok_or_else(|| {
                        SiameseError::Runtime("calibration left no threshold".into())
                    })?;
                    let mut report =
                        super::train::verification_report(&first, v.data(), &threshold)?;
                    if let Some(text) = &data.text {
                        super::train::add_correlations(
                            &mut report,
                            &first,
                            v.data(),
                            &text.validation_scores,
                        )?;
                    }
                    println!("\nvalidation of the average:\n{}", report.table());
                }
                None => println!(
                    "the first model's run has no validation part: the average has no \
                     calibrated threshold (pass --threshold to evaluate and predict)"
                ),
            }
        }
        None => println!(
            "{} records no training run: the average has no calibrated threshold",
            models[0].display()
        ),
    }
    let sources: Vec<String> = models.iter().map(|m| m.display().to_string()).collect();
    first
        .extra_mut()
        .insert("averaged_from".into(), json(&sources)?);
    first.save(out)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// A hash of every pair (both inputs and the label) of the training, validation and test
/// parts, one per part.
fn fingerprint(data: &prepare::PreparedData) -> [u64; 3] {
    let part = |p: Option<&prepare::PairSet>| -> u64 {
        let Some(p) = p else { return 0 };
        let pairs = p.data();
        // FNV-1a over the bits of every value.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |v: f32| {
            for b in v.to_bits().to_le_bytes() {
                h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
            }
        };
        for k in 0..pairs.len() {
            pairs.input(k, 0).iter().for_each(|&v| eat(v));
            pairs.input(k, 1).iter().for_each(|&v| eat(v));
            eat(pairs.label(k));
        }
        h
    };
    [
        part(Some(&data.train)),
        part(data.validation.as_ref()),
        part(Some(&data.test)),
    ]
}
