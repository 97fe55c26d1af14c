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
//! siamese serve --model DIR [--gallery DB]      HTTP service with an enrolment gallery
//! siamese keygen --api-keys FILE                a new API key for `serve`
//! ```
//!
//! Exit codes: 0 success, 2 bad usage or input (one `error:` line naming the file or field),
//! 1 failure while running.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use siamese::config::ModelConfig;
use siamese::data::{DataSource, LabelConvention, Pairing, SplitBy};
use siamese::distance::Distance;
use siamese::encoder::Activation;
use siamese::error::{Result, SiameseError};
use siamese::loss::LossKind;
use siamese::model::Siamese;

mod average;
mod evaluate;
mod flags;
mod predict;
mod train;

/// Environment variable naming the folder where named datasets are looked up.
pub const DATA_DIR_VAR: &str = "SIAMESE_DATA_DIR";

/// The data folder named by `SIAMESE_DATA_DIR`, if set.
pub fn data_root() -> Option<PathBuf> {
    std::env::var_os(DATA_DIR_VAR).map(PathBuf::from)
}

/// `path`, or `$SIAMESE_DATA_DIR/path` (see [`siamese::data::prepare::resolve_data_path`]).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    siamese::data::prepare::resolve_data_path(path, data_root().as_deref())
}

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
    /// Serve a model over HTTP: verify, embed, and an enrolment gallery (identify, 1:1
    /// against references).
    Serve(Box<crate::serve::ServeArgs>),
    /// Create an API key for `siamese serve`: prints it once, appends its hash to the file.
    Keygen {
        /// Key file (created if absent).
        #[arg(long)]
        api_keys: PathBuf,
        /// A name for the key (who holds it).
        #[arg(long, default_value = "key")]
        name: String,
    },
    /// Average the weights of trained models of one architecture (a uniform model soup of
    /// runs from one start, or checkpoint averaging), recalibrate the threshold on the first
    /// model's validation part, and save the result as a model directory.
    Average {
        /// A model directory; give it twice or more.
        #[arg(long = "model", required = true)]
        models: Vec<PathBuf>,
        /// Where to write the averaged model.
        #[arg(long)]
        out: PathBuf,
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
    #[arg(long, conflicts_with = "images")]
    pub data: Option<PathBuf>,
    /// A class-labelled image folder (one sub-folder per class, or files named
    /// `class.condition` like the Yale faces) read with the model's image preprocessing;
    /// every pair of its images is evaluated, and one-shot, identification and references
    /// run on its samples: the cross-dataset check.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Decision threshold; default: the one calibrated on validation pairs at training.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Label convention of a pair-list CSV.
    #[arg(long, value_parser = parse_kebab::<LabelConvention>, default_value = "one-means-similar")]
    pub pair_labels: LabelConvention,
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
    /// Also run closed-set identification on the test samples: enrol the first N samples
    /// of each identity in a gallery, rank the rest (rank-1 / rank-5 accuracy).
    #[arg(long)]
    pub identify: Option<usize>,
    /// Also run writer-dependent verification on the test samples (signatures): the first N
    /// genuine signatures of each writer are references, every other genuine one and every
    /// forgery is scored against them (EER, AUC).
    #[arg(long)]
    pub references: Option<usize>,
    /// How a query is scored against its writer's references: mean or min distance.
    #[arg(long, value_parser = parse_kebab::<siamese::eval::protocols::ReferenceScore>, default_value = "mean")]
    pub reference_score: siamese::eval::protocols::ReferenceScore,
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
    /// Continue the run whose checkpoint directory this is (written with --checkpoint or
    /// train.checkpoint): its run config is used, with the flags given here on top (e.g. a
    /// larger --epochs).
    #[arg(long, conflicts_with = "config")]
    pub resume: Option<PathBuf>,
    /// Any key of the run config, `section.key=value` with a TOML value (e.g.
    /// `--set train.calibrate=\"eer\"`, `--set model.encoder.hidden=[64,64]`; a bare word is a
    /// string). Applied after the file, before the other flags. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// data.source.
    #[arg(long, value_parser = parse_kebab::<DataSource>)]
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
    #[arg(long, value_parser = parse_kebab::<Pairing>)]
    pub pairing: Option<Pairing>,
    /// data.eval_pairing.
    #[arg(long, value_parser = parse_kebab::<Pairing>)]
    pub eval_pairing: Option<Pairing>,
    /// data.num_pairs.
    #[arg(long)]
    pub num_pairs: Option<usize>,
    /// data.positive_ratio.
    #[arg(long)]
    pub positive_ratio: Option<f64>,
    /// data.split.
    #[arg(long, value_parser = parse_kebab::<SplitBy>)]
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
    #[arg(long, value_parser = parse_kebab::<LabelConvention>)]
    pub pair_labels: Option<LabelConvention>,
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
    #[arg(long, value_parser = parse_kebab::<LossKind>)]
    pub loss: Option<LossKind>,
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
    /// train.checkpoint: a directory for a resumable checkpoint after every epoch.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
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

/// Parses a value the way the run config does (kebab-case names): `--pairing genuine-forgery`.
fn parse_kebab<T: serde::de::DeserializeOwned>(s: &str) -> std::result::Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|e| e.to_string().replace("variant", "value"))
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
        .parse::<siamese::device::DeviceChoice>()?
        .device()?;
    let device = &device;
    match cli.command {
        Command::Init { path, force } => init(&path, force),
        Command::Train(args) => train::train(*args, device),
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
                (Some(a), Some(b), _, _) => predict::Inputs::Files(a, b),
                (_, _, Some(a), Some(b)) => predict::Inputs::Sentences(a, b),
                _ => {
                    return Err(SiameseError::config(
                        "predict",
                        "give --a and --b, or --text-a and --text-b",
                    ));
                }
            };
            predict::predict(&model, &inputs, out.as_deref(), decide, device)
        }
        Command::Evaluate(args) => evaluate::evaluate(&args, device),
        Command::Embed { model, input, out } => predict::embed(&model, &input, &out, device),
        Command::Data {
            command: DataCommand::Info { path },
        } => {
            let path = resolve(&path)?;
            println!("{}", siamese::data::info::describe(&path)?);
            Ok(())
        }
        Command::Serve(args) => crate::serve::serve(&args, device),
        Command::Keygen { api_keys, name } => {
            let key = crate::serve::auth::keygen(&api_keys, &name)?;
            eprintln!(
                "added key `{name}` to {} (only its hash is stored; keep the key now):",
                api_keys.display()
            );
            println!("{key}");
            Ok(())
        }
        Command::Average { models, out } => average::average(&models, &out, device),
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
    siamese::atomic::write_file_atomic(path, crate::config::RUN_TEMPLATE.as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}

/// `model` with the binary's environment applied: `SIAMESE_FUSED=0` (or `off`, `false`) runs
/// it through burn alone instead of the host paths.
pub fn with_env(mut model: Siamese) -> Siamese {
    if matches!(
        std::env::var("SIAMESE_FUSED").as_deref(),
        Ok("0" | "off" | "false")
    ) {
        model.set_fused(false);
    }
    model
}

/// A serialisable value as JSON.
fn json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| SiameseError::Runtime(e.to_string()))
}
