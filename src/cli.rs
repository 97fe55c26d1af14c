//! The `siamese` command line (clap).

use clap::{Parser, Subcommand};

use crate::config::ModelConfig;
use crate::model::Siamese;

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
    /// Print the summary of the reference model for an input size.
    Summary {
        /// Features per input sample.
        #[arg(long, default_value_t = 100)]
        input_dim: usize,
    },
}

/// Runs the command line; returns the process exit code (0 ok, 1 runtime failure, 2 bad input).
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

fn run(cli: Cli) -> crate::error::Result<()> {
    match cli.command {
        Command::Summary { input_dim } => {
            let model = Siamese::new(
                ModelConfig::reference(input_dim),
                &burn::tensor::Device::flex(),
            )?;
            println!("{}", model.summary());
            Ok(())
        }
    }
}
