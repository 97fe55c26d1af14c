//! The `train` flags on top of a run config: file → `--set` overrides → flags, checked whole.

use std::path::Path;

use siamese::error::{Result, SiameseError};
use siamese::optim::OptimizerConfig;

use super::TrainArgs;
use crate::config::{RunConfig, apply_sets, parse_table};

/// The run config from the file (if any) with every flag applied on top.
pub fn run_config(args: &TrainArgs) -> Result<RunConfig> {
    let c = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| SiameseError::io(path, e))?;
            let mut table = parse_table(&text, path)?;
            apply_sets(&mut table, &args.set)?;
            RunConfig::from_table(table, path, &text)?
        }
        None => {
            let (Some(source), Some(path)) = (args.source, args.data.clone()) else {
                return Err(SiameseError::config(
                    "data",
                    "give --config run.toml, or both --source and --data",
                ));
            };
            let text = format!(
                "[data]\nsource = {}\npath = {}\n",
                toml_value(&source)?,
                toml_value(&path)?
            );
            let mut table = parse_table(&text, Path::new("<flags>"))?;
            apply_sets(&mut table, &args.set)?;
            RunConfig::from_table(table, Path::new("<flags>"), &text)?
        }
    };
    apply_flags(c, args)
}

/// `run` with the `train` flags applied on top, checked again.
pub fn apply_flags(mut c: RunConfig, args: &TrainArgs) -> Result<RunConfig> {
    if !args.set.is_empty() && args.resume.is_some() {
        let mut table =
            toml::Table::try_from(&c).map_err(|e| SiameseError::config("--set", e.to_string()))?;
        apply_sets(&mut table, &args.set)?;
        c = RunConfig::from_table(table, Path::new("<checkpoint run>"), "")?;
    }
    let d = &mut c.data;
    set(&mut d.source, args.source);
    set(&mut d.path, args.data.clone());
    if let Some((w, h)) = args.image_size {
        d.image_width = w;
        d.image_height = h;
    }
    set(&mut d.invert, args.invert);
    set(&mut d.pairing, args.pairing);
    if args.eval_pairing.is_some() {
        d.eval_pairing = args.eval_pairing;
    }
    set(&mut d.num_pairs, args.num_pairs);
    set(&mut d.positive_ratio, args.positive_ratio);
    set(&mut d.split, args.split);
    set(&mut d.test_fraction, args.test_fraction);
    set(&mut d.validation_fraction, args.validation_fraction);
    if args.limit.is_some() {
        d.limit = args.limit;
    }
    set(&mut d.pair_labels, args.pair_labels);
    if args.test_path.is_some() {
        d.test_path = args.test_path.clone();
    }
    if args.folds.is_some() {
        d.folds = args.folds;
    }
    set(&mut d.fold, args.fold);
    let m = &mut c.model;
    set(&mut m.encoder.hidden, args.hidden.clone());
    set(&mut m.encoder.activation, args.activation);
    set(&mut m.encoder.dropout, args.dropout);
    set(&mut m.encoder.final_activation, args.final_activation);
    set(&mut m.distance, args.distance);
    set(&mut c.loss.kind, args.loss);
    set(&mut c.loss.margin, args.margin);
    if let Some(name) = &args.optimizer {
        c.optimizer = match name.to_ascii_lowercase().as_str() {
            "rmsprop" => OptimizerConfig::rmsprop(),
            "adam" => OptimizerConfig::adam(),
            "sgd" => OptimizerConfig::sgd(0.01, 0.0),
            other => {
                return Err(SiameseError::config(
                    "optimizer",
                    format!("unknown optimizer `{other}`; expected rmsprop, adam or sgd"),
                ));
            }
        };
    }
    if let Some(lr) = args.lr {
        match &mut c.optimizer {
            OptimizerConfig::Rmsprop { lr: l, .. }
            | OptimizerConfig::Adam { lr: l, .. }
            | OptimizerConfig::Sgd { lr: l, .. } => *l = lr,
        }
    }
    match &mut c.optimizer {
        OptimizerConfig::Rmsprop { rho, epsilon, .. } => {
            set(rho, args.rho);
            set(epsilon, args.epsilon);
        }
        OptimizerConfig::Adam { epsilon, .. } => set(epsilon, args.epsilon),
        OptimizerConfig::Sgd { momentum, .. } => set(momentum, args.momentum),
    }
    let given = |flag: &'static str, v: bool| v.then_some(flag);
    let misplaced = match c.optimizer {
        OptimizerConfig::Rmsprop { .. } => given("momentum", args.momentum.is_some()),
        OptimizerConfig::Adam { .. } => {
            given("rho", args.rho.is_some()).or(given("momentum", args.momentum.is_some()))
        }
        OptimizerConfig::Sgd { .. } => {
            given("rho", args.rho.is_some()).or(given("epsilon", args.epsilon.is_some()))
        }
    };
    if let Some(flag) = misplaced {
        return Err(SiameseError::config(
            flag,
            format!("does not apply to the {} optimizer", c.optimizer.name()),
        ));
    }
    set(&mut c.train.epochs, args.epochs);
    set(&mut c.train.shuffle, args.shuffle);
    set(&mut c.train.calibrate, args.calibrate.clone());
    set(&mut c.train.batch_size, args.batch_size);
    set(&mut c.train.seed, args.seed);
    set(&mut c.train.threshold, args.threshold);
    set(&mut c.output, args.output.clone());
    if args.checkpoint.is_some() {
        c.train.checkpoint = args.checkpoint.clone();
    }
    c.validate()?;
    Ok(c)
}

fn toml_value<T: serde::Serialize>(v: &T) -> Result<String> {
    let value =
        toml::Value::try_from(v).map_err(|e| SiameseError::config("flags", e.to_string()))?;
    Ok(value.to_string())
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}
