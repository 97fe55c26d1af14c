//! [`ProgressBars`]: an indicatif progress bar per epoch and one Keras-like line after it, as
//! a training callback (the library itself prints nothing).

use indicatif::{ProgressBar, ProgressStyle};
use siamese::error::Result;
use siamese::train::{Callback, Control, EpochContext, EpochLog, epoch_line};

/// Progress bars and per-epoch lines on the terminal; silent when not `verbose`.
#[derive(Debug)]
pub struct ProgressBars {
    verbose: bool,
    bar: Option<ProgressBar>,
    epochs: usize,
    steps: usize,
}

impl ProgressBars {
    /// Shows progress when `verbose`.
    pub fn new(verbose: bool) -> Self {
        Self {
            verbose,
            bar: None,
            epochs: 0,
            steps: 0,
        }
    }

    fn bar(&mut self, epoch: usize) -> Option<&ProgressBar> {
        if !self.verbose {
            return None;
        }
        let (steps, epochs) = (self.steps as u64, self.epochs);
        Some(self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(steps);
            bar.set_style(
                ProgressStyle::with_template(
                    "Epoch {prefix} {bar:30} {pos}/{len} [{elapsed}<{eta}]",
                )
                .expect("static template is valid"),
            );
            bar.set_prefix(format!("{epoch}/{epochs}"));
            bar
        }))
    }
}

impl Callback for ProgressBars {
    fn on_train_begin(&mut self, _first: usize, epochs: usize, steps: usize) -> Result<()> {
        self.epochs = epochs;
        self.steps = steps;
        Ok(())
    }

    fn on_batch_end(&mut self, epoch: usize, _step: usize, _steps: usize) {
        if let Some(bar) = self.bar(epoch) {
            bar.inc(1);
        }
    }

    fn on_epoch_end(&mut self, log: &EpochLog, _ctx: &mut EpochContext<'_>) -> Result<Control> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.verbose {
            println!("{}", epoch_line(log, self.epochs, self.steps));
        }
        Ok(Control::Continue)
    }
}
