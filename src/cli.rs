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
    /// Device: cpu (flex, the default), or gpu / wgpu / vulkan / cuda in a build with that
    /// feature.
    #[arg(long, global = true, default_value = "cpu", env = "SIAMESE_DEVICE")]
    pub device: String,
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
        /// First inputs: .npy/.csv matrix, an image file/folder for image models, or a text
        /// file with one sentence per line for text models.
        #[arg(long, required_unless_present = "text_a", conflicts_with = "text_a")]
        a: Option<PathBuf>,
        /// Second inputs, same number of rows as `--a`.
        #[arg(long, required_unless_present = "text_b", conflicts_with = "text_b")]
        b: Option<PathBuf>,
        /// Text models: the first sentence, given on the command line.
        #[arg(long, requires = "text_b")]
        text_a: Option<String>,
        /// Text models: the second sentence.
        #[arg(long, requires = "text_a")]
        text_b: Option<String>,
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
        /// .npy/.csv matrix, an image file/folder for image models, or a text file with one
        /// sentence per line for text models.
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
    let device = cli
        .device
        .parse::<crate::device::DeviceChoice>()?
        .device()?;
    let device = &device;
    match cli.command {
        Command::Init { path, force } => init(&path, force),
        Command::Train(args) => train(*args, device),
        Command::Predict {
            model,
            a,
            b,
            text_a,
            text_b,
            out,
            decide,
        } => {
            let inputs = match (a, b, text_a, text_b) {
                (Some(a), Some(b), _, _) => Inputs::Files(a, b),
                (_, _, Some(a), Some(b)) => Inputs::Sentences(a, b),
                _ => {
                    return Err(SiameseError::config(
                        "predict",
                        "give --a and --b, or --text-a and --text-b",
                    ));
                }
            };
            predict(&model, &inputs, out.as_deref(), decide, device)
        }
        Command::Evaluate(args) => evaluate(&args, device),
        Command::Embed { model, input, out } => embed(&model, &input, &out, device),
        Command::Data {
            command: DataCommand::Info { path },
        } => {
            let path = prepare::resolve_data_path(&path)?;
            println!("{}", crate::data::info::describe(&path)?);
            Ok(())
        }
        Command::Summary { model, input_dim } => {
            let model = match model {
                Some(dir) => Siamese::load(dir, device)?,
                None => Siamese::new(ModelConfig::reference(input_dim), device)?,
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

fn train(args: TrainArgs, device: &Device) -> Result<()> {
    let config = run_config(&args)?;
    let verbose = !args.quiet;
    let data = prepare::prepare(&config.data, config.train.seed)?;
    for line in &data.description {
        println!("{line}");
    }
    let text_vocab = data.preprocessing.text.as_ref().map(|t| t.vocab_size);
    let mut model = Siamese::new(
        config.model_config_with(data.input_dim, text_vocab)?,
        device,
    )?;
    if let Some(vectors) = &config.model.encoder.pretrained {
        load_pretrained(&mut model, &data, vectors, config.train.seed)?;
    }
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
    let (history, selection) = match &data.text {
        Some(text) => {
            let validation = data.validation.as_ref().ok_or_else(|| {
                SiameseError::Runtime("a text source always has a validation part".into())
            })?;
            let (h, s) = fit_choosing_epoch(
                &mut model,
                data.train.data(),
                validation.data(),
                &text.validation_scores,
                &options,
            )?;
            (h, Some(s))
        }
        None => (model.fit_pairs(data.train.data(), &options)?, None),
    };
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
    let mut report = verification_report(&model, data.test.data(), threshold, &source)?;
    if let Some(text) = &data.text {
        let (p, s) = correlations(&model, data.test.data(), &text.test_scores)?;
        report.pearson = Some(p);
        report.spearman = Some(s);
    }
    println!("\ntest ({seconds:.1}s of training):\n{}", report.table());
    let mut files = vec![
        ("history.csv", history.to_csv().into_bytes()),
        (
            "report.json",
            serde_json::to_vec_pretty(&report).map_err(|e| SiameseError::Runtime(e.to_string()))?,
        ),
    ];
    if let Some(text) = &data.text {
        files.push(("tokenizer.json", text.tokenizer.to_bytes()?));
    }
    let extra = model.extra_mut();
    if let Some(s) = selection {
        extra.insert("epoch_selection".into(), s);
    }
    extra.insert("preprocessing".into(), json(&data.preprocessing)?);
    extra.insert("run".into(), json(&config)?);
    extra.insert(
        "threshold".into(),
        serde_json::json!({ "value": threshold, "source": source }),
    );
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

/// Pearson and Spearman correlation of the model's similarity (see
/// [`crate::loss::LossKind::similarity`]) with gold scores.
fn correlations(model: &Siamese, pairs: PairData<'_>, gold: &[f32]) -> Result<(f64, f64)> {
    let kind = model.config().loss.kind;
    let sim: Vec<f64> = model
        .predict_pairs(pairs)?
        .iter()
        .map(|&d| kind.similarity(d))
        .collect();
    let gold: Vec<f64> = gold.iter().map(|&g| g as f64).collect();
    Ok((
        crate::eval::pearson(&sim, &gold),
        crate::eval::spearman(&sim, &gold),
    ))
}

/// Trains one epoch at a time and keeps the weights of the epoch with the best validation
/// Spearman correlation (the STS protocol: choose the epoch on dev). Returns the history of
/// every epoch and a JSON note of the choice.
fn fit_choosing_epoch(
    model: &mut Siamese,
    train: PairData<'_>,
    validation: PairData<'_>,
    validation_scores: &[f32],
    options: &FitOptions,
) -> Result<(crate::train::History, serde_json::Value)> {
    let mut history = crate::train::History::default();
    let mut best: Option<(usize, f64, crate::siamese::SiameseNetwork)> = None;
    let mut per_epoch = Vec::new();
    for epoch in 1..=options.epochs {
        let one = FitOptions {
            epochs: 1,
            seed: options.seed.wrapping_add(epoch as u64 - 1),
            verbose: false,
            ..options.clone()
        };
        let h = model.fit_pairs(train, &one)?;
        let (_, spearman) = correlations(model, validation, validation_scores)?;
        per_epoch.push(spearman);
        for mut log in h.epochs {
            log.epoch = epoch;
            if options.verbose {
                println!(
                    "{} - val_spearman: {:.2}",
                    crate::train::epoch_line(
                        &log,
                        options.epochs,
                        train.len().div_ceil(options.batch_size)
                    ),
                    spearman * 100.0
                );
            }
            history.epochs.push(log);
        }
        if best.as_ref().is_none_or(|b| spearman > b.1) {
            best = Some((epoch, spearman, model.network().clone()));
        }
    }
    let Some((epoch, spearman, network)) = best else {
        return Err(SiameseError::config("train.epochs", "must be at least 1"));
    };
    model.set_network(network);
    println!(
        "kept epoch {epoch} of {} (best validation Spearman {:.2})",
        options.epochs,
        spearman * 100.0
    );
    Ok((
        history,
        serde_json::json!({ "epoch": epoch, "val_spearman": per_epoch }),
    ))
}

/// Sets a text encoder's token embeddings from a word-vector file.
fn load_pretrained(
    model: &mut Siamese,
    data: &prepare::PreparedData,
    vectors: &Path,
    seed: u64,
) -> Result<()> {
    let text = data.text.as_ref().ok_or_else(|| {
        SiameseError::config(
            "model.encoder.pretrained",
            "word vectors need a text source (stsb, sick)",
        )
    })?;
    let mut network = model.network().clone();
    let crate::encoder::Encoder::Text(encoder) = &mut network.encoder else {
        return Err(SiameseError::config(
            "model.encoder.pretrained",
            "word vectors need model.encoder.type = \"text\"",
        ));
    };
    let dim = encoder.embedding.weight.dims()[1];
    let path = prepare::resolve_data_path(vectors)?;
    let (values, found) =
        crate::data::tokenize::load_word_vectors(&path, &text.tokenizer, dim, seed)?;
    encoder.set_embeddings(values)?;
    println!(
        "pretrained vectors: {found} of {} tokens found in {}",
        text.tokenizer.vocab_size() - 1,
        path.display()
    );
    model.set_network(network);
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

/// What `predict` compares.
enum Inputs {
    /// Two files of inputs (matrices, images, or sentences one per line).
    Files(PathBuf, PathBuf),
    /// Two sentences from the command line.
    Sentences(String, String),
}

/// The tokenizer saved with a text model.
fn model_tokenizer(
    model_dir: &Path,
    pre: Option<&Preprocessing>,
) -> Result<Option<crate::data::tokenize::TextTokenizer>> {
    match pre.and_then(|p| p.text.as_ref()) {
        None => Ok(None),
        Some(t) => Ok(Some(crate::data::tokenize::TextTokenizer::from_file(
            &model_dir.join("tokenizer.json"),
            t.max_len,
        )?)),
    }
}

/// Rows for `path`: sentences (one per line) for a text model, else a matrix or images.
fn load_model_inputs(
    model_dir: &Path,
    pre: Option<&Preprocessing>,
    path: &Path,
) -> Result<(Matrix, Vec<PathBuf>)> {
    match model_tokenizer(model_dir, pre)? {
        Some(tok) => {
            let text = crate::data::table::read_text(path)?;
            let lines: Vec<&str> = text
                .lines()
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| !l.trim().is_empty())
                .collect();
            if lines.is_empty() {
                return Err(SiameseError::Empty(format!(
                    "{} holds no sentence (one per line expected)",
                    path.display()
                )));
            }
            Ok((tok.encode(&lines)?, Vec::new()))
        }
        None => prepare::load_inputs(path, pre),
    }
}

fn predict(
    model_dir: &Path,
    inputs: &Inputs,
    out: Option<&Path>,
    decide: bool,
    device: &Device,
) -> Result<()> {
    let model = Siamese::load(model_dir, device)?;
    let pre = preprocessing(&model);
    let (ma, mb, a, b) = match inputs {
        Inputs::Files(a, b) => {
            let (ma, _) = load_model_inputs(model_dir, pre.as_ref(), a)?;
            let (mb, _) = load_model_inputs(model_dir, pre.as_ref(), b)?;
            (ma, mb, a.clone(), b.clone())
        }
        Inputs::Sentences(a, b) => {
            let tok = model_tokenizer(model_dir, pre.as_ref())?.ok_or_else(|| {
                SiameseError::invalid(
                    model_dir.display().to_string(),
                    "--text-a/--text-b need a text model (trained on stsb or sick)",
                )
            })?;
            (
                tok.encode(&[a])?,
                tok.encode(&[b])?,
                PathBuf::from("--text-a"),
                PathBuf::from("--text-b"),
            )
        }
    };
    let (a, b) = (a.as_path(), b.as_path());
    check_dim(&model, &ma, a)?;
    check_dim(&model, &mb, b)?;
    if ma.rows() != mb.rows() {
        return Err(SiameseError::shape(
            b.display().to_string(),
            format!("{} rows like {}", ma.rows(), a.display()),
            format!("{} rows", mb.rows()),
        ));
    }
    let text_model = pre.as_ref().is_some_and(|p| p.text.is_some());
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
            let kind = model.config().loss.kind;
            if text_model {
                println!("similarity\tdistance");
            }
            for v in d {
                let decision = match threshold {
                    Some(t) => format!("\t{}", if v < t { "same" } else { "different" }),
                    None => String::new(),
                };
                if text_model {
                    println!("{:.4}\t{v}{decision}", kind.similarity(v));
                } else {
                    println!("{v}{decision}");
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

fn evaluate(args: &EvaluateArgs, device: &Device) -> Result<()> {
    let model = Siamese::load(&args.model, device)?;
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

fn embed(model_dir: &Path, input: &Path, out: &Path, device: &Device) -> Result<()> {
    let model = Siamese::load(model_dir, device)?;
    let pre = preprocessing(&model);
    let (x, paths) = load_model_inputs(model_dir, pre.as_ref(), input)?;
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
