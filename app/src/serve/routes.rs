//! The HTTP routes of `siamese serve` (see the module documentation of [`super`]).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use siamese::gallery::Gallery;

use super::api::{
    self, ApiError, EmbedBody, IdentityBody, InputLimits, ProbeBody, SamplesBody, VerifyBody, json,
};
use super::auth::{Access, ApiKeys};
use super::engine::{Engine, ModelInfo};
use super::metrics::Metrics;

/// Everything a request handler reads.
pub struct AppState {
    /// The inference thread.
    pub engine: Engine,
    /// The model.
    pub info: ModelInfo,
    /// The enrolment gallery.
    pub gallery: Arc<RwLock<Gallery>>,
    /// Where the gallery lives (`:memory:` when not durable).
    pub gallery_path: String,
    /// Accepted API keys; none: writes are open (loopback only, checked at start).
    pub keys: Option<ApiKeys>,
    /// Reads need a key too.
    pub keyed_reads: bool,
    /// Metrics.
    pub metrics: Metrics,
    /// Input limits.
    pub limits: InputLimits,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Time limit of one request.
    pub timeout: Duration,
}

type Shared = Arc<AppState>;

/// The service's router.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/model", get(model))
        .route("/v1/verify", post(verify))
        .route("/v1/embed", post(embed))
        .route("/v1/identify", post(identify))
        .route("/v1/identities", get(list_identities))
        .route(
            "/v1/identities/{id}",
            put(put_identity).get(get_identity).delete(delete_identity),
        )
        .route("/v1/identities/{id}/samples", post(enrol).get(list_samples))
        .route(
            "/v1/identities/{id}/samples/{sample}",
            get(get_sample).delete(delete_sample),
        )
        .route("/v1/identities/{id}/verify", post(verify_identity))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "no such route; see GET /",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Times every request, applies the time limit and records metrics.
async fn observe(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let response = match tokio::time::timeout(s.timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} ms", s.timeout.as_millis()),
        )
        .into_response(),
    };
    let status = response.status().as_u16();
    s.metrics
        .record(&route, &method, status, start.elapsed().as_secs_f64());
    response
}

impl AppState {
    fn presented_key(headers: &HeaderMap) -> Option<&str> {
        if let Some(v) = headers.get("x-api-key") {
            return v.to_str().ok();
        }
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
    }

    fn authorize(&self, headers: &HeaderMap, write: bool) -> Result<(), ApiError> {
        let Some(keys) = &self.keys else {
            return Ok(());
        };
        if !write && !self.keyed_reads {
            return Ok(());
        }
        match keys.check(Self::presented_key(headers)) {
            Access::Key(_) => Ok(()),
            Access::Missing => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this route needs an API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`",
            )),
            Access::Wrong => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the API key is not valid",
            )),
        }
    }

    /// Reads the body (at most `max_body` bytes) and parses it as JSON or multipart.
    async fn body<T: serde::de::DeserializeOwned>(&self, req: Request) -> Result<T, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = read_body(req, self.max_body).await?;
        if content_type.starts_with("multipart/form-data") {
            let boundary = multer::parse_boundary(&content_type)
                .map_err(|e| ApiError::bad(format!("Content-Type: {e}")))?;
            return api::parse_multipart(boundary, bytes).await;
        }
        api::parse_json(&bytes)
    }

    /// Inputs → rows (on a blocking thread) → embeddings (on the inference thread).
    async fn embed_inputs(
        self: &Arc<Self>,
        inputs: Vec<api::Input>,
        what: &'static str,
    ) -> Result<(api::Prepared, siamese::data::Matrix), ApiError> {
        let s = self.clone();
        let prepared =
            blocking(move || api::prepare(inputs, what, &s.info.encoder, &s.limits)).await?;
        let e = self.engine.embed(prepared.rows.clone()).await?;
        Ok((prepared, e))
    }

    fn threshold(&self, given: Option<f32>) -> Result<f32, ApiError> {
        given.or(self.info.threshold).ok_or_else(|| {
            ApiError::bad("threshold: the model has no calibrated threshold; give one")
        })
    }

    /// Runs `f` on the gallery under the read lock, on a blocking thread.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Gallery) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let s = self.clone();
        blocking(move || f(&s.gallery.read().unwrap_or_else(|p| p.into_inner()))).await
    }

    /// Runs `f` on the gallery under the write lock, on a blocking thread.
    async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Gallery) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let s = self.clone();
        blocking(move || f(&mut s.gallery.write().unwrap_or_else(|p| p.into_inner()))).await
    }

    fn update_gauges(&self, g: &Gallery) {
        self.metrics.samples.set(g.sample_count() as i64);
        self.metrics
            .identities
            .set(g.identities_with_samples() as i64);
    }
}

async fn read_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            let too_big = std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit");
            if too_big {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("request body over {limit} bytes"),
                )
            } else {
                ApiError::bad(format!("request body: {e}"))
            }
        })
}

fn sample_id(sample: &str) -> Result<i64, ApiError> {
    sample
        .parse()
        .map_err(|_| ApiError::bad(format!("sample id `{sample}` is not an integer")))
}

/// Runs CPU-bound or blocking work (decoding, SQLite) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("worker failed: {e}"),
        )
    })?
}

fn check_threshold(t: Option<f32>) -> Result<Option<f32>, ApiError> {
    match t {
        Some(v) if !v.is_finite() => Err(ApiError::bad(format!(
            "threshold: {v} is not a finite number"
        ))),
        t => Ok(t),
    }
}

async fn page() -> Html<&'static str> {
    Html(include_str!("../../assets/serve_page.html"))
}

async fn healthz(State(s): State<Shared>) -> Response {
    let g = s.gallery.read().unwrap_or_else(|p| p.into_inner());
    json(
        StatusCode::OK,
        &serde_json::json!({
            "status": "ok",
            "model": s.info.fingerprint,
            "gallery": s.gallery_path,
            "samples": g.sample_count(),
        }),
    )
}

async fn metrics(State(s): State<Shared>) -> Response {
    {
        let g = s.gallery.read().unwrap_or_else(|p| p.into_inner());
        s.update_gauges(&g);
    }
    s.metrics.update_memory();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn model(State(s): State<Shared>) -> Response {
    let enc = &s.info.encoder;
    json(
        StatusCode::OK,
        &serde_json::json!({
            "dir": s.info.dir,
            "fingerprint": s.info.fingerprint,
            "input": enc.kind(),
            "input_example": api::kind_name(enc),
            "input_dim": enc.input_dim(),
            "image": enc.image_options().map(|o| serde_json::json!({"width": o.width, "height": o.height})),
            "embedding_dim": s.info.dim,
            "threshold": s.info.threshold,
            "writes_need_key": s.keys.is_some(),
            "reads_need_key": s.keys.is_some() && s.keyed_reads,
        }),
    )
}

async fn verify(State(s): State<Shared>, req: Request) -> Result<Response, ApiError> {
    s.authorize(req.headers(), false)?;
    let body: VerifyBody = s.body(req).await?;
    let threshold = check_threshold(body.threshold)?.or(s.info.threshold);
    let (_, e) = s.embed_inputs(vec![body.a, body.b], "a, b").await?;
    let distance = s.info.scorer.distance(e.row(0), e.row(1));
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "distance": distance,
            "same": threshold.map(|t| distance < t),
            "threshold": threshold,
        }),
    ))
}

async fn embed(State(s): State<Shared>, req: Request) -> Result<Response, ApiError> {
    s.authorize(req.headers(), false)?;
    let body: EmbedBody = s.body(req).await?;
    let (_, e) = s.embed_inputs(body.inputs, "inputs").await?;
    let rows: Vec<&[f32]> = (0..e.rows()).map(|i| e.row(i)).collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"dim": e.cols(), "embeddings": rows}),
    ))
}

async fn identify(State(s): State<Shared>, req: Request) -> Result<Response, ApiError> {
    s.authorize(req.headers(), false)?;
    let body: ProbeBody = s.body(req).await?;
    let threshold = s.threshold(check_threshold(body.threshold)?)?;
    let k = body.k.unwrap_or(5);
    if k == 0 || k > 100 {
        return Err(ApiError::bad(format!(
            "k: {k}; 1 to 100 identities can be asked for"
        )));
    }
    let (_, e) = s.embed_inputs(vec![body.probe], "probe").await?;
    let found = s
        .read(move |g| Ok(g.identify(e.row(0), k, body.score, threshold)?))
        .await?;
    Ok(json(StatusCode::OK, &found))
}

async fn verify_identity(
    State(s): State<Shared>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    s.authorize(req.headers(), false)?;
    let body: ProbeBody = s.body(req).await?;
    if body.k.is_some() {
        return Err(ApiError::bad("k: only identify takes k"));
    }
    let threshold = s.threshold(check_threshold(body.threshold)?)?;
    let (_, e) = s.embed_inputs(vec![body.probe], "probe").await?;
    let v = s
        .read(move |g| Ok(g.verify(&id, e.row(0), body.score, threshold)?))
        .await?;
    Ok(json(StatusCode::OK, &v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

async fn list_identities(
    State(s): State<Shared>,
    headers: HeaderMap,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    s.authorize(&headers, false)?;
    let Query(page) = page.map_err(|e| ApiError::bad(format!("query: {}", e.body_text())))?;
    let limit = page.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad(format!("limit: {limit}; 1 to 1000")));
    }
    let list = s
        .read(move |g| Ok(g.identities(page.offset, limit)?))
        .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"identities": list, "offset": page.offset}),
    ))
}

async fn put_identity(
    State(s): State<Shared>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    s.authorize(req.headers(), true)?;
    let bytes = read_body(req, s.max_body).await?;
    let body: IdentityBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        IdentityBody::default()
    } else {
        api::parse_json(&bytes)?
    };
    let metadata = body.metadata.unwrap_or_else(|| serde_json::json!({}));
    let (created, identity) = s
        .write(move |g| {
            let created = g.put_identity(&id, &metadata)?;
            Ok((created, g.identity(&id)?))
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &identity))
}

async fn get_identity(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    s.authorize(&headers, false)?;
    let (identity, samples) = s
        .read(move |g| Ok((g.identity(&id)?, g.samples(&id)?)))
        .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"identity": identity, "samples": samples}),
    ))
}

async fn list_samples(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    s.authorize(&headers, false)?;
    let samples = s.read(move |g| Ok(g.samples(&id)?)).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"samples": samples}),
    ))
}

async fn delete_identity(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    s.authorize(&headers, true)?;
    let id2 = id.clone();
    let removed = s.write(move |g| Ok(g.delete_identity(&id2)?)).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"deleted": id, "samples": removed}),
    ))
}

async fn enrol(
    State(s): State<Shared>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    s.authorize(req.headers(), true)?;
    siamese::gallery::check_id(&id)?;
    let body: SamplesBody = s.body(req).await?;
    let (prepared, e) = s.embed_inputs(body.inputs, "inputs").await?;
    let samples = prepared.samples(&e, body.keep_raw);
    let ids = s.write(move |g| Ok(g.enrol(&id, samples)?)).await?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({"sample_ids": ids}),
    ))
}

async fn get_sample(
    State(s): State<Shared>,
    Path((id, sample)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    use base64::Engine as _;
    s.authorize(&headers, false)?;
    let sample_id = sample_id(&sample)?;
    let raw = s
        .read(move |g| {
            siamese::gallery::check_id(&id)?;
            Ok(g.store().raw_sample(&id, sample_id)?)
        })
        .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "sample_id": sample_id,
            "raw_base64": raw.map(|r| base64::engine::general_purpose::STANDARD.encode(r)),
        }),
    ))
}

async fn delete_sample(
    State(s): State<Shared>,
    Path((id, sample)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    s.authorize(&headers, true)?;
    let sample_id = sample_id(&sample)?;
    s.write(move |g| Ok(g.delete_sample(&id, sample_id)?))
        .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"deleted": sample_id}),
    ))
}

/// Serves `router` on `listener` until Ctrl-C.
pub async fn run(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
