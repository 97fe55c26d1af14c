//! `siamese serve`: a trained model as an HTTP/JSON service with an enrolment gallery.
//!
//! ```text
//! siamese keygen --api-keys keys.txt --name ops        prints a new key once, stores its hash
//! siamese serve --model DIR --gallery gallery.sqlite --api-keys keys.txt [--bind 127.0.0.1:8080]
//! ```
//!
//! | route | what | key |
//! |---|---|---|
//! | `GET /` | a page to try verify, enrol and identify | — |
//! | `GET /healthz`, `GET /metrics` | liveness; Prometheus text | — |
//! | `GET /v1/model` | what the model takes (vector, image, text) and its threshold | read |
//! | `POST /v1/verify` | `{"a": IN, "b": IN}` → distance, same, threshold | read |
//! | `POST /v1/embed` | `{"inputs": [IN…]}` → embeddings | read |
//! | `PUT /v1/identities/{id}` | `{"metadata": {…}}`: create or update | write |
//! | `GET`, `DELETE /v1/identities/{id}` | the identity and its samples; delete both | read / write |
//! | `GET /v1/identities?offset&limit` | list | read |
//! | `POST /v1/identities/{id}/samples` | `{"inputs": [IN…], "keep_raw": false}`: enrol | write |
//! | `GET`, `DELETE /v1/identities/{id}/samples/{sample}` | the stored input (base64, when kept); remove one sample | read / write |
//! | `POST /v1/identities/{id}/verify` | `{"probe": IN, "score": "mean"}`: 1:1 against the references | read |
//! | `POST /v1/identify` | `{"probe": IN, "k": 5}`: 1:N, open set (`unknown`) | read |
//!
//! `IN` is `{"vector": […]}`, `{"text": "…"}` or `{"image": "<base64>"}` as the model takes
//! (see [`api`]). The model is loaded once; inputs are decoded on blocking threads and
//! embedded on one inference thread that batches what arrives together ([`engine`]). The
//! gallery is SQLite in WAL mode: an enrolment is on disk before its response is sent.
//!
//! Security: write routes need an API key (`--api-keys`; hashes at rest, constant-time
//! comparison, [`auth`]); `--keyed-reads` keys the read routes too. Without a key file the
//! server binds only to loopback. Bodies, images, inputs per request, sentence length and
//! request time are limited; every bad request gets a 4xx JSON error.
//!
//! Memory: decoding and storage run on a bounded pool of blocking threads, and glibc's
//! allocator is held to one arena and trimmed every few seconds ([`memory`]), so a long
//! overload does not creep up the resident set.

pub mod api;
pub mod auth;
pub mod engine;
pub mod memory;
pub mod metrics;
pub mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use clap::Args;
use siamese::error::{Result, SiameseError};
use siamese::gallery::{Gallery, IndexKind, SqliteStore};
use siamese::prelude::Device;

/// Flags of `siamese serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Model directory (a `siamese train` output or a sentence-transformers directory).
    #[arg(long)]
    pub model: PathBuf,
    /// Gallery database (SQLite, created if absent). Without it the gallery lives in memory
    /// and is lost when the server stops.
    #[arg(long)]
    pub gallery: Option<PathBuf>,
    /// Address to listen on. Anything but loopback needs `--api-keys`.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// API key file (`siamese keygen` writes it): write routes need one of its keys.
    #[arg(long)]
    pub api_keys: Option<PathBuf>,
    /// Read routes (verify, embed, identify, listings) need a key too.
    #[arg(long, requires = "api_keys")]
    pub keyed_reads: bool,
    /// Gallery search: exact (every sample scored) or hnsw (approximate shortlist, for
    /// galleries of hundreds of thousands of samples).
    #[arg(long, default_value = "exact", value_parser = parse_index)]
    pub index: IndexKind,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = 8 << 20)]
    pub max_body_bytes: usize,
    /// Largest image width or height, pixels.
    #[arg(long, default_value_t = 4096)]
    pub max_image_side: u32,
    /// Inputs per request at most.
    #[arg(long, default_value_t = 64)]
    pub max_inputs: usize,
    /// Time limit of a request, milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Threads answering HTTP (decoding and storage run on blocking threads besides).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Threads for decoding and storage work at most (tokio's blocking pool; more requests
    /// than this wait for one). Bounded so that an overload cannot grow the process by a
    /// thread stack and an allocator arena per waiting request.
    #[arg(long, default_value_t = 8)]
    pub blocking_threads: usize,
    /// glibc `malloc` arenas at most (`serve::memory`; 0: glibc's default of 8 per core).
    #[arg(long, default_value_t = 1)]
    pub malloc_arenas: usize,
    /// Hand freed memory back to the system every this many seconds (glibc's
    /// `malloc_trim`, see `serve::memory`); 0 never does.
    #[arg(long, default_value_t = 10)]
    pub trim_memory_secs: u64,
}

fn parse_index(s: &str) -> std::result::Result<IndexKind, String> {
    match s {
        "exact" => Ok(IndexKind::Exact),
        "hnsw" => Ok(IndexKind::Hnsw),
        _ => Err(format!("unknown index `{s}`; expected exact or hnsw")),
    }
}

/// The state and router of a service, ready to listen.
pub fn build(args: &ServeArgs, device: &Device) -> Result<(axum::Router, Arc<routes::AppState>)> {
    let keys = args
        .api_keys
        .as_deref()
        .map(auth::ApiKeys::load)
        .transpose()?;
    if keys.is_none() && !args.bind.ip().is_loopback() {
        return Err(SiameseError::config(
            "--bind",
            format!(
                "{} is not a loopback address; serving beyond this machine needs --api-keys \
                 (create one with `siamese keygen --api-keys FILE`)",
                args.bind
            ),
        ));
    }
    let metrics = metrics::Metrics::default();
    let (engine, info) = engine::Engine::start(&args.model, device, metrics.batch_rows.clone())?;
    let gallery_path = args
        .gallery
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| ":memory:".into());
    let store = SqliteStore::open(&gallery_path)?;
    let gallery = Gallery::open(
        Box::new(store),
        &info.fingerprint,
        info.dim,
        info.scorer.clone(),
        args.index,
    )?;
    let state = Arc::new(routes::AppState {
        engine,
        info,
        gallery: Arc::new(RwLock::new(gallery)),
        gallery_path,
        keys,
        keyed_reads: args.keyed_reads,
        metrics,
        limits: api::InputLimits {
            max_inputs: args.max_inputs,
            max_side: args.max_image_side,
            max_chars: 10_000,
        },
        max_body: args.max_body_bytes,
        timeout: Duration::from_millis(args.timeout_ms),
    });
    Ok((routes::router(state.clone()), state))
}

/// Runs `siamese serve` until Ctrl-C.
pub fn serve(args: &ServeArgs, device: &Device) -> Result<()> {
    // Before the runtime's threads exist, so that they share the limited arenas.
    memory::limit_arenas(args.malloc_arenas);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .max_blocking_threads(args.blocking_threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| SiameseError::Runtime(format!("cannot start the async runtime: {e}")))?;
    let (app, state) = build(args, device)?;
    memory::spawn_trimmer(Duration::from_secs(args.trim_memory_secs))
        .map_err(|e| SiameseError::Runtime(format!("cannot start the memory trimmer: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .map_err(|e| SiameseError::config("--bind", format!("{}: {e}", args.bind)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| SiameseError::Runtime(e.to_string()))?;
        {
            let g = state.gallery.read().unwrap_or_else(|p| p.into_inner());
            eprintln!(
                "model {} ({:?} inputs, {}-wide embeddings, threshold {}); gallery {} ({} samples); \
                 writes {}",
                state.info.dir,
                state.info.encoder.kind(),
                state.info.dim,
                state
                    .info
                    .threshold
                    .map_or("none".to_string(), |t| t.to_string()),
                state.gallery_path,
                g.sample_count(),
                if state.keys.is_some() { "need an API key" } else { "open (loopback only)" },
            );
        }
        // Scripts and tests wait for this line (the port, when --bind asked for port 0).
        println!("listening on http://{addr}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        routes::run(listener, app)
            .await
            .map_err(|e| SiameseError::Runtime(format!("server: {e}")))
    })
}
