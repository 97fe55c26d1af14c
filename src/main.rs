//! The `siamese` command line.

fn main() {
    std::process::exit(siamese::cli::main());
}
