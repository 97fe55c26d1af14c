//! The model, loaded once and run on one inference thread that batches the requests that
//! arrive together.
//!
//! Handlers turn raw inputs into rows themselves (in parallel, with the model's
//! [`InputEncoder`]) and queue them. The inference thread takes the first queued job and
//! every job already waiting behind it, up to [`MAX_BATCH_ROWS`] rows, and embeds them in
//! one call: a lone request waits for nothing, and under load one product serves many
//! requests. A batch that fails (a bad row) is retried job by job, so one bad request never
//! fails the others.

use std::path::Path;
use std::sync::mpsc;

use siamese::data::Matrix;
use siamese::error::{Result, SiameseError};
use siamese::gallery::Scorer;
use siamese::model::{InputEncoder, Siamese};
use siamese::prelude::Device;
use tokio::sync::oneshot;

/// Rows embedded in one call at most.
pub const MAX_BATCH_ROWS: usize = 256;

/// Jobs waiting at most; a full queue answers 503 instead of growing memory.
const QUEUE: usize = 1024;

struct Job {
    rows: Matrix,
    reply: oneshot::Sender<Result<Matrix>>,
}

/// What the service needs to know about the model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Model directory.
    pub dir: String,
    /// Fingerprint of the directory (see [`siamese::gallery::model_fingerprint`]).
    pub fingerprint: String,
    /// Raw inputs → rows.
    pub encoder: InputEncoder,
    /// Distance between embeddings.
    pub scorer: Scorer,
    /// Embedding width.
    pub dim: usize,
    /// The calibrated threshold, if any.
    pub threshold: Option<f32>,
}

/// A handle on the inference thread.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::SyncSender<Job>,
}

impl Engine {
    /// Loads the model in `dir` on a new inference thread and returns its handle.
    pub fn start(
        dir: &Path,
        device: &Device,
        batches: prometheus_client::metrics::histogram::Histogram,
    ) -> Result<(Self, ModelInfo)> {
        let model = crate::cli::with_env(Siamese::load(dir, device)?);
        let fingerprint = siamese::gallery::model_fingerprint(dir)?;
        let encoder = model.input_encoder();
        let dim = model.config().network.encoder.output_dim();
        let info = ModelInfo {
            dir: dir.display().to_string(),
            fingerprint,
            encoder,
            scorer: model.scorer()?,
            dim,
            threshold: model.threshold().map(|t| t.value),
        };
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("siamese-infer".into())
            .spawn(move || run(model, rx, batches))
            .map_err(|e| {
                SiameseError::Runtime(format!("cannot start the inference thread: {e}"))
            })?;
        Ok((Self { tx }, info))
    }

    /// Embeddings of `rows` (checked rows of the model's width).
    pub async fn embed(&self, rows: Matrix) -> Result<Matrix> {
        let (reply, rx) = oneshot::channel();
        self.tx.try_send(Job { rows, reply }).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => {
                SiameseError::Runtime("busy: the inference queue is full, retry later".into())
            }
            mpsc::TrySendError::Disconnected(_) => {
                SiameseError::Runtime("the inference thread has stopped".into())
            }
        })?;
        rx.await
            .map_err(|_| SiameseError::Runtime("the inference thread has stopped".into()))?
    }
}

fn run(
    model: Siamese,
    rx: mpsc::Receiver<Job>,
    batches: prometheus_client::metrics::histogram::Histogram,
) {
    let mut pending: Option<Job> = None;
    loop {
        let first = match pending.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let mut total = first.rows.rows();
        let mut jobs = vec![first];
        while total < MAX_BATCH_ROWS {
            match rx.try_recv() {
                Ok(j) if total + j.rows.rows() > MAX_BATCH_ROWS => {
                    pending = Some(j);
                    break;
                }
                Ok(j) => {
                    total += j.rows.rows();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        batches.observe(total as f64);
        if jobs.len() == 1 {
            let j = jobs.pop().expect("one job");
            let _ = j.reply.send(model.embed(&j.rows));
            continue;
        }
        let cols = jobs[0].rows.cols();
        let mut data = Vec::with_capacity(total * cols);
        for j in &jobs {
            data.extend_from_slice(j.rows.as_slice());
        }
        let all = Matrix::new(total, cols, data).and_then(|m| model.embed(&m));
        match all {
            Ok(e) => {
                let mut start = 0;
                for j in jobs {
                    let end = start + j.rows.rows();
                    let _ = j.reply.send(Ok(e.slice_rows(start, end)));
                    start = end;
                }
            }
            Err(_) => {
                for j in jobs {
                    let _ = j.reply.send(model.embed(&j.rows));
                }
            }
        }
    }
}
