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
use crate::data::prepare::{self, Preprocessing};
use crate::distance::Distance;
use crate::encoder::Activation;
use crate::error::{Result, SiameseError};
use crate::model::Siamese;
use crate::train::{FitOptions, Validation};
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
    },
    /// Loss and pair accuracy of a model on labelled pairs.
    Evaluate {
        /// Model directory.
        #[arg(long)]
        model: PathBuf,
        /// Pairs: a folder with a.npy, b.npy, labels.npy, or an .npz, or a pair-list CSV.
        #[arg(long)]
        data: PathBuf,
        /// Distance under which a pair counts as similar.
        #[arg(long, default_value_t = 0.5)]
        threshold: f32,
        /// Label convention of a pair-list CSV.
        #[arg(long, value_enum, default_value = "one-means-similar")]
        pair_labels: PairLabels,
    },
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
    /// model.encoder.hidden, comma separated (e.g. 128,128,128).
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// model.encoder.activation.
    #[arg(long, value_parser = parse_activation)]
    pub activation: Option<Activation>,
    /// model.encoder.dropout.
    #[arg(long)]
    pub dropout: Option<f64>,
    /// model.distance.
    #[arg(long)]
    pub distance: Option<Distance>,
    /// loss.margin.
    #[arg(long)]
    pub margin: Option<f32>,
    /// optimizer.type (rmsprop, adam, sgd), with its defaults.
    #[arg(long)]
    pub optimizer: Option<String>,
    /// optimizer.lr.
    #[arg(long)]
    pub lr: Option<f64>,
    /// train.epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// train.batch_size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// train.seed.
    #[arg(long)]
    pub seed: Option<u64>,
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
        Command::Predict { model, a, b, out } => predict(&model, &a, &b, out.as_deref()),
        Command::Evaluate {
            model,
            data,
            threshold,
            pair_labels,
        } => evaluate(&model, &data, threshold, pair_labels),
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
    set(&mut d.num_pairs, args.num_pairs);
    set(&mut d.positive_ratio, args.positive_ratio);
    set(&mut d.split, args.split);
    set(&mut d.test_fraction, args.test_fraction);
    set(&mut d.validation_fraction, args.validation_fraction);
    if args.limit.is_some() {
        d.limit = args.limit;
    }
    set(&mut d.pair_labels, args.pair_labels);
    let m = &mut c.model;
    set(&mut m.encoder.hidden, args.hidden.clone());
    set(&mut m.encoder.activation, args.activation);
    set(&mut m.encoder.dropout, args.dropout);
    set(&mut m.distance, args.distance);
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
    set(&mut c.train.epochs, args.epochs);
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
    let mut model = Siamese::new(config.model_config(data.input_dim), &Device::flex())?;
    println!("{}\n", model.summary());
    let options = FitOptions {
        epochs: config.train.epochs,
        batch_size: config.train.batch_size,
        shuffle: config.train.shuffle,
        seed: config.train.seed,
        validation: data
            .validation
            .clone()
            .map_or(Validation::None, Validation::Data),
        threshold: config.train.threshold,
        verbose,
    };
    let started = std::time::Instant::now();
    let history = model.fit(&data.train.a, &data.train.b, &data.train.labels, &options)?;
    let seconds = started.elapsed().as_secs_f64();
    let test = model.evaluate(
        &data.test.a,
        &data.test.b,
        &data.test.labels,
        config.train.threshold,
    )?;
    println!(
        "\ntest: {} pairs, loss {:.4}, accuracy {:.2}% (d < {}) — trained in {seconds:.1}s",
        data.test.labels.len(),
        test.loss,
        test.accuracy * 100.0,
        config.train.threshold
    );
    let extra = model.extra_mut();
    extra.insert("preprocessing".into(), json(&data.preprocessing)?);
    extra.insert("run".into(), json(&config)?);
    extra.insert(
        "test".into(),
        serde_json::json!({
            "pairs": data.test.labels.len(),
            "loss": test.loss,
            "accuracy": test.accuracy,
            "threshold": config.train.threshold,
            "train_seconds": seconds,
        }),
    );
    model.save_with(
        &config.output,
        &[("history.csv", history.to_csv().into_bytes())],
    )?;
    println!(
        "wrote {} (config.json, model.safetensors, history.csv)",
        config.output.display()
    );
    Ok(())
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

fn predict(model_dir: &Path, a: &Path, b: &Path, out: Option<&Path>) -> Result<()> {
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
    let d = model.predict(&ma, &mb)?;
    match out {
        Some(path) => {
            let m = Matrix::new(d.len(), 1, d)?;
            crate::data::table::write_matrix_any(path, &m, Some(&["distance".to_string()]))?;
            println!("wrote {} distances to {}", m.rows(), path.display());
        }
        None => {
            for v in d {
                println!("{v}");
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

fn evaluate(model_dir: &Path, data: &Path, threshold: f32, pair_labels: PairLabels) -> Result<()> {
    let model = Siamese::load(model_dir, &Device::flex())?;
    let data = prepare::resolve_data_path(data)?;
    let pairs = if data
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        let convention = match pair_labels {
            PairLabels::OneMeansSimilar => crate::data::pairlist::LabelConvention::OneMeansSimilar,
            PairLabels::OneMeansDifferent => {
                crate::data::pairlist::LabelConvention::OneMeansDifferent
            }
        };
        let list = crate::data::pairlist::read_pair_list_with(&data, convention)?;
        let opts = preprocessing(&model).and_then(|p| p.image).ok_or_else(|| {
            SiameseError::invalid(
                data.display().to_string(),
                "a pair list of images needs a model trained on images",
            )
        })?;
        crate::data::pairlist::load_pair_images(&list, &opts)?
    } else {
        crate::data::npy::read_pairs(&data)?
    };
    check_dim(&model, &pairs.a, &data)?;
    let e = model.evaluate(&pairs.a, &pairs.b, &pairs.labels, threshold)?;
    println!("pairs     {}", pairs.labels.len());
    println!("loss      {:.6}", e.loss);
    println!("accuracy  {:.4} (d < {threshold} ⇒ similar)", e.accuracy);
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
