//! The `siamese` command line (clap).
//!
//! ```text
//! siamese init [run.toml]                       write a commented run config (MNIST recipe)
//! siamese train --config run.toml [--flags]     data → pairs → model → fit → model directory
//! siamese predict --model DIR --a A --b B       distances (stdout, or --out .csv/.npy)
//! siamese evaluate --model DIR --data PAIRS     loss and pair accuracy
//! siamese embed --model DIR --input X --out E   embeddings (.npy or .csv)
//! siamese data info PATH                        what a dataset holds
//! siamese summary --model DIR | --input-dim N   Keras-style model table
//! ```
//!
//! Exit codes: 0 success, 2 bad usage or input (one `error:` line naming the file or field),
//! 1 failure while running.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::config::{DataSource, ModelConfig, PairLabels, Pairing, RunConfig, SplitBy};
use crate::data::Matrix;
use crate::data::prepare::{self, PairSet, Preprocessing};
use crate::distance::Distance;
use crate::encoder::Activation;
use crate::error::{Result, SiameseError};
use crate::eval::Objective;
use crate::model::Siamese;
use crate::report::{self, VerificationReport};
use crate::train::{FitOptions, PairData, Validation};
use burn::tensor::Device;

/// Train, evaluate and serve Siamese networks.
#[derive(Debug, Parser)]
#[command(name = "siamese", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented run config template (the MNIST recipe).
    Init {
        /// Where to write it.
        #[arg(default_value = "run.toml")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Train a model from a run config and/or flags; writes the model directory.
    Train(Box<TrainArgs>),
    /// Distances between pairs of inputs.
    Predict {
        /// Model directory.
        #[arg(long)]
        model: PathBuf,
        /// First inputs: .npy/.csv matrix, or an image file/folder for image models.
        #[arg(long)]
        a: PathBuf,
        /// Second inputs, same number of rows as `--a`.
        #[arg(long)]
        b: PathBuf,
        /// Write distances to a .csv or .npy file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also print `same` / `different` using the model's calibrated threshold.
        #[arg(long)]
        decide: bool,
    },
    /// Verification metrics (accuracy, precision, recall, F1, FAR/FRR, ROC AUC, EER,
    /// one-shot) with report.json and PNG plots.
    Evaluate(Box<EvaluateArgs>),
    /// Embeddings of inputs.
    Embed {
        /// Model directory.
        #[arg(long)]
        model: PathBuf,
        /// .npy/.csv matrix, or an image file/folder for image models.
        #[arg(long)]
        input: PathBuf,
        /// Output .npy or .csv.
        #[arg(long, default_value = "embeddings.npy")]
        out: PathBuf,
    },
    /// Inspect datasets.
    Data {
        /// What to do with the dataset.
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Print a Keras-style summary of a saved model or of the reference model.
    Summary {
        /// Model directory.
        #[arg(long, conflicts_with = "input_dim")]
        model: Option<PathBuf>,
        /// Features per input for the reference model.
        #[arg(long, default_value_t = 100)]
        input_dim: usize,
    },
}

/// Flags of `siamese evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled pairs: a folder with a.npy, b.npy, labels.npy, an .npz, or a pair-list CSV.
    /// Without it, the held-out test part of the model's own training run is rebuilt (same
    /// data, split and seed) and evaluated.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Decision threshold; default: the one calibrated on validation pairs at training.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Label convention of a pair-list CSV.
    #[arg(long, value_enum, default_value = "one-means-similar")]
    pub pair_labels: PairLabels,
    /// Also run N-way one-shot trials on the test samples (Koch et al. protocol).
    #[arg(long)]
    pub one_shot: Option<usize>,
    /// Number of one-shot trials.
    #[arg(long, default_value_t = 400)]
    pub trials: usize,
    /// Draw each one-shot trial's classes from one group: the classes' parent folder
    /// (Omniglot: within-alphabet trials).
    #[arg(long)]
    pub within_group: bool,
    /// Folder for report.json and the plots (default: MODEL/eval).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Skip the PNG plots.
    #[arg(long)]
    pub no_plots: bool,
}

/// `siamese data …`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Print what a dataset holds (classes, samples per class, image sizes, shapes).
    Info {
        /// Dataset file or folder (looked up under SIAMESE_DATA_DIR when relative and absent).
        path: PathBuf,
    },
}

/// Flags of `siamese train`; each overrides the same key of the config file.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Run config (TOML). Without it, `--source` and `--data` are required.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// data.source.
    #[arg(long, value_enum)]
    pub source: Option<DataSource>,
    /// data.path.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// data.image_width and data.image_height, as WxH (e.g. 46x56).
    #[arg(long, value_parser = parse_size)]
    pub image_size: Option<(usize, usize)>,
    /// data.invert.
    #[arg(long)]
    pub invert: Option<bool>,
    /// data.pairing.
    #[arg(long, value_enum)]
    pub pairing: Option<Pairing>,
    /// data.eval_pairing.
    #[arg(long, value_enum)]
    pub eval_pairing: Option<Pairing>,
    /// data.num_pairs.
    #[arg(long)]
    pub num_pairs: Option<usize>,
    /// data.positive_ratio.
    #[arg(long)]
    pub positive_ratio: Option<f64>,
    /// data.split.
    #[arg(long, value_enum)]
    pub split: Option<SplitBy>,
    /// data.test_fraction.
    #[arg(long)]
    pub test_fraction: Option<f64>,
    /// data.validation_fraction.
    #[arg(long)]
    pub validation_fraction: Option<f64>,
    /// data.limit.
    #[arg(long)]
    pub limit: Option<usize>,
    /// data.pair_labels.
    #[arg(long, value_enum)]
    pub pair_labels: Option<PairLabels>,
    /// data.test_path: a separate folder for the test part.
    #[arg(long)]
    pub test_path: Option<PathBuf>,
    /// data.folds: cross-validation by class (by writer for genuine-forgery pairing).
    #[arg(long)]
    pub folds: Option<usize>,
    /// data.fold: the fold tested (from 0).
    #[arg(long)]
    pub fold: Option<usize>,
    /// model.encoder.hidden, comma separated (e.g. 128,128,128).
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// model.encoder.activation.
    #[arg(long, value_parser = parse_activation)]
    pub activation: Option<Activation>,
    /// model.encoder.dropout.
    #[arg(long)]
    pub dropout: Option<f64>,
    /// model.encoder.final_activation.
    #[arg(long)]
    pub final_activation: Option<bool>,
    /// model.distance.
    #[arg(long)]
    pub distance: Option<Distance>,
    /// loss.type.
    #[arg(long, value_enum)]
    pub loss: Option<crate::loss::LossKind>,
    /// loss.margin.
    #[arg(long)]
    pub margin: Option<f32>,
    /// optimizer.type (rmsprop, adam, sgd), with its defaults.
    #[arg(long)]
    pub optimizer: Option<String>,
    /// optimizer.lr.
    #[arg(long)]
    pub lr: Option<f64>,
    /// optimizer.rho (RMSprop).
    #[arg(long)]
    pub rho: Option<f32>,
    /// optimizer.epsilon (RMSprop, Adam).
    #[arg(long)]
    pub epsilon: Option<f32>,
    /// optimizer.momentum (SGD).
    #[arg(long)]
    pub momentum: Option<f64>,
    /// train.epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// train.batch_size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// train.shuffle.
    #[arg(long)]
    pub shuffle: Option<bool>,
    /// train.seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// train.calibrate: accuracy, f1 or far=0.01.
    #[arg(long)]
    pub calibrate: Option<String>,
    /// train.threshold.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// output (model directory).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_size(s: &str) -> std::result::Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected WxH such as 46x56, got `{s}`"))?;
    let w = w
        .trim()
        .parse::<usize>()
        .map_err(|e| format!("width `{w}`: {e}"))?;
    let h = h
        .trim()
        .parse::<usize>()
        .map_err(|e| format!("height `{h}`: {e}"))?;
    if w == 0 || h == 0 {
        return Err("width and height must be at least 1".into());
    }
    Ok((w, h))
}

fn parse_activation(s: &str) -> std::result::Result<Activation, String> {
    serde_json::from_value(serde_json::Value::String(s.to_ascii_lowercase())).map_err(|_| {
        format!("unknown activation `{s}`; expected relu, tanh, sigmoid, gelu or linear")
    })
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            if e.is_input_error() { 2 } else { 1 }
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init { path, force } => init(&path, force),
        Command::Train(args) => train(*args),
        Command::Predict {
            model,
            a,
            b,
            out,
            decide,
        } => predict(&model, &a, &b, out.as_deref(), decide),
        Command::Evaluate(args) => evaluate(&args),
        Command::Embed { model, input, out } => embed(&model, &input, &out),
        Command::Data {
            command: DataCommand::Info { path },
        } => {
            let path = prepare::resolve_data_path(&path)?;
            println!("{}", crate::data::info::describe(&path)?);
            Ok(())
        }
        Command::Summary { model, input_dim } => {
            let model = match model {
                Some(dir) => Siamese::load(dir, &Device::flex())?,
                None => Siamese::new(ModelConfig::reference(input_dim), &Device::flex())?,
            };
            println!("{}", model.summary());
            Ok(())
        }
    }
}

fn init(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        return Err(SiameseError::invalid(
            path.display().to_string(),
            "already exists; pass --force to overwrite",
        ));
    }
    crate::io::write_file_atomic(path, crate::config::RUN_TEMPLATE.as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The run config from the file (if any) with every flag applied on top.
pub fn run_config(args: &TrainArgs) -> Result<RunConfig> {
    let mut c = match &args.config {
        Some(path) => RunConfig::load(path)?,
        None => {
            let (Some(source), Some(path)) = (args.source, args.data.clone()) else {
                return Err(SiameseError::config(
                    "data",
                    "give --config run.toml, or both --source and --data",
                ));
            };
            RunConfig::from_toml(
                &format!(
                    "[data]\nsource = {}\npath = {}\n",
                    toml_value(&source)?,
                    toml_value(&path)?
                ),
                Path::new("<flags>"),
            )?
        }
    };
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
            "rmsprop" => crate::optim::OptimizerConfig::rmsprop(),
            "adam" => crate::optim::OptimizerConfig::adam(),
            "sgd" => crate::optim::OptimizerConfig::sgd(0.01, 0.0),
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
            crate::optim::OptimizerConfig::Rmsprop { lr: l, .. }
            | crate::optim::OptimizerConfig::Adam { lr: l, .. }
            | crate::optim::OptimizerConfig::Sgd { lr: l, .. } => *l = lr,
        }
    }
    match &mut c.optimizer {
        crate::optim::OptimizerConfig::Rmsprop { rho, epsilon, .. } => {
            set(rho, args.rho);
            set(epsilon, args.epsilon);
        }
        crate::optim::OptimizerConfig::Adam { epsilon, .. } => set(epsilon, args.epsilon),
        crate::optim::OptimizerConfig::Sgd { momentum, .. } => set(momentum, args.momentum),
    }
    let given = |flag: &'static str, v: bool| v.then_some(flag);
    let misplaced = match c.optimizer {
        crate::optim::OptimizerConfig::Rmsprop { .. } => given("momentum", args.momentum.is_some()),
        crate::optim::OptimizerConfig::Adam { .. } => {
            given("rho", args.rho.is_some()).or(given("momentum", args.momentum.is_some()))
        }
        crate::optim::OptimizerConfig::Sgd { .. } => {
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

fn train(args: TrainArgs) -> Result<()> {
    let config = run_config(&args)?;
    let verbose = !args.quiet;
    let data = prepare::prepare(&config.data, config.train.seed)?;
    for line in &data.description {
        println!("{line}");
    }
    let mut model = Siamese::new(config.model_config(data.input_dim)?, &Device::flex())?;
    println!("{}\n", model.summary());
    let options = FitOptions {
        epochs: config.train.epochs,
        batch_size: config.train.batch_size,
        shuffle: config.train.shuffle,
        seed: config.train.seed,
        validation: data
            .validation
            .clone()
            .map_or(Validation::None, PairSet::into_validation),
        threshold: config.train.threshold,
        verbose,
        augment: match (&config.train.augment, &data.preprocessing.image) {
            (Some(a), Some(img)) => Some(crate::train::Augment {
                config: a.clone(),
                width: img.width,
                height: img.height,
            }),
            (Some(_), None) => {
                return Err(SiameseError::config(
                    "train.augment",
                    "augmentation needs an image source (images or pair-list)",
                ));
            }
            (None, _) => None,
        },
    };
    let started = std::time::Instant::now();
    let history = model.fit_pairs(data.train.data(), &options)?;
    let seconds = started.elapsed().as_secs_f64();
    let (threshold, source) = match &data.validation {
        Some(v) => {
            let objective: Objective = config.train.calibrate.parse()?;
            let d = model.predict_pairs(v.data())?;
            let t = crate::eval::calibrate(&d, &v.data().labels(), objective)?;
            (
                t,
                format!("calibrated on validation pairs: {}", config.train.calibrate),
            )
        }
        None => (
            config.train.threshold,
            "train.threshold (no validation part)".into(),
        ),
    };
    let report = verification_report(&model, data.test.data(), threshold, &source)?;
    println!("\ntest ({seconds:.1}s of training):\n{}", report.table());
    let extra = model.extra_mut();
    extra.insert("preprocessing".into(), json(&data.preprocessing)?);
    extra.insert("run".into(), json(&config)?);
    extra.insert(
        "threshold".into(),
        serde_json::json!({ "value": threshold, "source": source }),
    );
    extra.insert("train_seconds".into(), json(&seconds)?);
    let report_json =
        serde_json::to_vec_pretty(&report).map_err(|e| SiameseError::Runtime(e.to_string()))?;
    model.save_with(
        &config.output,
        &[
            ("history.csv", history.to_csv().into_bytes()),
            ("report.json", report_json),
        ],
    )?;
    println!(
        "wrote {} (config.json, model.safetensors, history.csv, report.json)",
        config.output.display()
    );
    Ok(())
}

/// Loss and every verification metric of `model` on `pairs` at `threshold`.
fn verification_report(
    model: &Siamese,
    pairs: PairData<'_>,
    threshold: f32,
    source: &str,
) -> Result<VerificationReport> {
    let d = model.predict_pairs(pairs)?;
    let loss = model.evaluate_pairs(pairs, threshold)?.loss;
    VerificationReport::new(&d, &pairs.labels(), loss, threshold, source)
}

/// The calibrated threshold stored with a model, and where it came from.
fn stored_threshold(model: &Siamese) -> Option<(f32, String)> {
    let t = model.extra().get("threshold")?;
    let value = t.get("value")?.as_f64()? as f32;
    let source = t
        .get("source")
        .and_then(|s| s.as_str())
        .unwrap_or("stored")
        .to_string();
    Some((value, source))
}

fn json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| SiameseError::Runtime(e.to_string()))
}

fn preprocessing(model: &Siamese) -> Option<Preprocessing> {
    model
        .extra()
        .get("preprocessing")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

fn predict(model_dir: &Path, a: &Path, b: &Path, out: Option<&Path>, decide: bool) -> Result<()> {
    let model = Siamese::load(model_dir, &Device::flex())?;
    let pre = preprocessing(&model);
    let (ma, _) = prepare::load_inputs(a, pre.as_ref())?;
    let (mb, _) = prepare::load_inputs(b, pre.as_ref())?;
    check_dim(&model, &ma, a)?;
    check_dim(&model, &mb, b)?;
    if ma.rows() != mb.rows() {
        return Err(SiameseError::shape(
            b.display().to_string(),
            format!("{} rows like {}", ma.rows(), a.display()),
            format!("{} rows", mb.rows()),
        ));
    }
    let threshold = if decide {
        Some(stored_threshold(&model).map(|(t, _)| t).ok_or_else(|| {
            SiameseError::invalid(
                model_dir.display().to_string(),
                "has no calibrated threshold (train it with a validation part)",
            )
        })?)
    } else {
        None
    };
    let d = model.predict(&ma, &mb)?;
    match out {
        Some(path) => {
            let m = Matrix::new(d.len(), 1, d)?;
            crate::data::table::write_matrix_any(path, &m, Some(&["distance".to_string()]))?;
            println!("wrote {} distances to {}", m.rows(), path.display());
        }
        None => {
            for v in d {
                match threshold {
                    Some(t) => println!("{v}\t{}", if v < t { "same" } else { "different" }),
                    None => println!("{v}"),
                }
            }
        }
    }
    Ok(())
}

fn check_dim(model: &Siamese, m: &Matrix, path: &Path) -> Result<()> {
    if m.cols() != model.input_dim() {
        return Err(SiameseError::shape(
            path.display().to_string(),
            format!(
                "{} features per row (the model's input_dim)",
                model.input_dim()
            ),
            format!("{} features", m.cols()),
        ));
    }
    Ok(())
}

fn load_pair_data(
    model: &Siamese,
    data: &Path,
    pair_labels: PairLabels,
) -> Result<crate::train::Pairs> {
    let data = prepare::resolve_data_path(data)?;
    let pairs = if data
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        let opts = preprocessing(model).and_then(|p| p.image).ok_or_else(|| {
            SiameseError::invalid(
                data.display().to_string(),
                "a pair list of images needs a model trained on images",
            )
        })?;
        prepare::load_pair_list(&data, pair_labels, &opts)?
    } else {
        crate::data::npy::read_pairs(&data)?
    };
    check_dim(model, &pairs.a, &data)?;
    Ok(pairs)
}

fn evaluate(args: &EvaluateArgs) -> Result<()> {
    let model = Siamese::load(&args.model, &Device::flex())?;
    // The pairs to evaluate and, for a rebuilt run, the labelled test samples.
    let test: PairSet = match &args.data {
        Some(path) => PairSet::Dense(load_pair_data(&model, path, args.pair_labels)?),
        None => {
            let run: RunConfig = model
                .extra()
                .get("run")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .ok_or_else(|| {
                    SiameseError::invalid(
                        args.model.display().to_string(),
                        "records no training run to rebuild the test split from; pass --data",
                    )
                })?;
            let data = prepare::prepare(&run.data, run.train.seed)?;
            data.test
        }
    };
    let (threshold, source) = match (args.threshold, stored_threshold(&model)) {
        (Some(t), _) => (t, "given with --threshold".to_string()),
        (None, Some(stored)) => stored,
        (None, None) => (
            0.5,
            "default 0.5 (the model has no calibrated threshold)".to_string(),
        ),
    };
    let pairs = test.data();
    let samples = test.samples();
    let mut report = verification_report(&model, pairs, threshold, &source)?;
    if let Some(ways) = args.one_shot {
        let s = samples.ok_or_else(|| {
            SiameseError::config("one-shot", "needs class-labelled test samples: evaluate a run of an image or MNIST source without --data")
        })?;
        let groups = args
            .within_group
            .then(|| crate::eval::parent_groups(&s.class_names));
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
        let trials = crate::eval::one_shot_trials_within(
            &s.labels,
            groups.as_ref().map(|(g, _)| g.as_slice()),
            ways,
            args.trials,
            7,
        )?;
        report.one_shot_groups = groups.map(|(_, names)| names);
        // Every (query, candidate) pair scored by the model's own head (the weighted-L1 head
        // included), with each test sample embedded once.
        let pairs: Vec<crate::data::pairs::IndexPair> = trials
            .iter()
            .flat_map(|t| {
                t.candidates.iter().map(|&c| crate::data::pairs::IndexPair {
                    i: t.query,
                    j: c,
                    label: 0.0,
                })
            })
            .collect();
        let d = model.predict_pairs(PairData::Indexed {
            samples: &s.samples,
            pairs: &pairs,
        })?;
        let mut lookup = std::collections::HashMap::new();
        for (p, &v) in pairs.iter().zip(&d) {
            lookup.insert((p.i, p.j), v);
        }
        let acc = crate::eval::one_shot_accuracy(&trials, |q, c| lookup[&(q, c)]);
        report.one_shot_accuracy = Some(acc);
        report.ways = Some(ways);
        report.one_shot_trials = Some(trials.len());
    }
    println!("{}", report.table());
    let out = args.out.clone().unwrap_or_else(|| args.model.join("eval"));
    std::fs::create_dir_all(&out).map_err(|e| SiameseError::io(&out, e))?;
    let json =
        serde_json::to_vec_pretty(&report).map_err(|e| SiameseError::Runtime(e.to_string()))?;
    crate::io::write_file_atomic(&out.join("report.json"), &json)?;
    let mut written = vec!["report.json"];
    if !args.no_plots {
        let d = model.predict_pairs(pairs)?;
        let labels = pairs.labels();
        report::plot_roc(&out.join("roc.png"), &d, &labels)?;
        report::plot_distances(&out.join("distances.png"), &d, &labels, threshold)?;
        written.extend(["roc.png", "distances.png"]);
        let history = args.model.join("history.csv");
        if history.exists() {
            report::plot_history(
                &out.join("history.png"),
                &report::read_history_csv(&history)?,
            )?;
            written.push("history.png");
        }
        if let Some(s) = samples {
            let emb = model.embed(&s.samples)?;
            report::plot_embeddings(&out.join("embeddings.png"), &emb, &s.labels, &s.class_names)?;
            written.push("embeddings.png");
        }
    }
    println!("wrote {} in {}", written.join(", "), out.display());
    Ok(())
}

fn embed(model_dir: &Path, input: &Path, out: &Path) -> Result<()> {
    let model = Siamese::load(model_dir, &Device::flex())?;
    let pre = preprocessing(&model);
    let (x, paths) = prepare::load_inputs(input, pre.as_ref())?;
    check_dim(&model, &x, input)?;
    let e = model.embed(&x)?;
    crate::data::table::write_matrix_any(out, &e, None)?;
    if !paths.is_empty() {
        let list: String = paths.iter().map(|p| format!("{}\n", p.display())).collect();
        let stem = out.with_extension("paths.txt");
        crate::io::write_file_atomic(&stem, list.as_bytes())?;
        println!(
            "wrote {} embeddings to {} (row names in {})",
            e.rows(),
            out.display(),
            stem.display()
        );
    } else {
        println!("wrote {} embeddings to {}", e.rows(), out.display());
    }
    Ok(())
}
