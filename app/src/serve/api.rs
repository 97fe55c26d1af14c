//! The JSON the service reads and writes, and how request bodies become model rows.
//!
//! One input is `{"image": "<base64 PNG/JPEG/GIF/PGM>"}`, `{"text": "..."}` or
//! `{"vector": [numbers]}`, whichever the model takes (`GET /v1/model` says). Image
//! endpoints also take `multipart/form-data`: file fields named `a`, `b`, `probe` or `inputs`
//! (repeatable), other fields (`threshold`, `k`, `score`, `keep_raw`) as text.
//!
//! Every error is `{"error": {"code": "...", "message": "..."}}` with a 4xx status naming
//! the field and what was expected, or 5xx for a failure of the server itself.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use siamese::data::Matrix;
use siamese::error::SiameseError;
use siamese::gallery::{NewSample, ReferenceScore};
use siamese::model::InputEncoder;

/// Standard base64, with or without padding.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// One raw input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Input {
    /// An encoded image, base64 (standard alphabet, padding optional).
    Image(String),
    /// A sentence.
    Text(String),
    /// A feature vector.
    Vector(Vec<f32>),
}

/// `POST /v1/verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// First input.
    pub a: Input,
    /// Second input.
    pub b: Input,
    /// Threshold instead of the model's calibrated one.
    pub threshold: Option<f32>,
}

/// `POST /v1/embed`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedBody {
    /// Inputs.
    pub inputs: Vec<Input>,
}

/// `PUT /v1/identities/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityBody {
    /// A JSON object stored with the identity.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// `POST /v1/identities/{id}/samples`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplesBody {
    /// The samples' inputs.
    pub inputs: Vec<Input>,
    /// Also store the inputs themselves.
    #[serde(default)]
    pub keep_raw: bool,
}

/// `POST /v1/identify` and `POST /v1/identities/{id}/verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeBody {
    /// The input to look for.
    pub probe: Input,
    /// Mean (default) or min distance to an identity's samples.
    #[serde(default)]
    pub score: ReferenceScore,
    /// Threshold instead of the model's calibrated one.
    pub threshold: Option<f32>,
    /// Identities to return (identify; default 5).
    pub k: Option<usize>,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// What was wrong and what was expected.
    pub message: String,
}

impl ApiError {
    /// A 400 naming the problem.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// Any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<SiameseError> for ApiError {
    fn from(e: SiameseError) -> Self {
        let (status, code) = match &e {
            SiameseError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            SiameseError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            SiameseError::Storage { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
            SiameseError::Runtime(m) if m.starts_with("busy") => {
                (StatusCode::SERVICE_UNAVAILABLE, "busy")
            }
            SiameseError::Runtime(_) | SiameseError::Io { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        json(self.status, &body)
    }
}

/// A JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Parses a JSON body into `T`, naming the field that is wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad(
            "request body: empty; a JSON object was expected",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        ApiError::bad(format!("request body{at}: {}", e.into_inner()))
    })
}

/// Parses a `multipart/form-data` body into `T`: file fields become `{"image": base64}`
/// inputs (`inputs` collects every field of that name), other fields are read as JSON
/// values when they parse and as strings otherwise.
pub async fn parse_multipart<T: serde::de::DeserializeOwned>(
    boundary: String,
    bytes: axum::body::Bytes,
) -> Result<T, ApiError> {
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut obj = serde_json::Map::new();
    let mut inputs = Vec::new();
    let bad = |e: multer::Error| ApiError::bad(format!("multipart body: {e}"));
    while let Some(field) = mp.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_string();
        let is_file = field.file_name().is_some()
            || field
                .content_type()
                .is_some_and(|m| m.type_() == "image" || m.subtype() == "octet-stream");
        let data = field.bytes().await.map_err(bad)?;
        let value = if is_file {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
            serde_json::json!({ "image": b64 })
        } else {
            let text = String::from_utf8_lossy(&data).to_string();
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        if name == "inputs" {
            inputs.push(value);
        } else {
            obj.insert(name, value);
        }
    }
    if !inputs.is_empty() {
        obj.insert("inputs".into(), serde_json::Value::Array(inputs));
    }
    serde_path_to_error::deserialize(serde_json::Value::Object(obj)).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad(format!("multipart field `{path}`: {}", e.into_inner()))
    })
}

/// Inputs turned into rows, with the bytes that identify each (for duplicate checks).
pub struct Prepared {
    /// One row per input.
    pub rows: Matrix,
    /// The input bytes of each row.
    pub raw: Vec<Vec<u8>>,
}

impl Prepared {
    /// Samples to enrol from these rows' embeddings.
    pub fn samples(self, embeddings: &Matrix, keep_raw: bool) -> Vec<NewSample> {
        self.raw
            .iter()
            .enumerate()
            .map(|(i, raw)| NewSample::new(embeddings.row(i).to_vec(), raw, keep_raw))
            .collect()
    }
}

/// Limits on what one request may hold.
#[derive(Debug, Clone)]
pub struct InputLimits {
    /// Inputs per request.
    pub max_inputs: usize,
    /// Image width and height, pixels.
    pub max_side: u32,
    /// Characters per sentence.
    pub max_chars: usize,
}

/// Decodes `inputs` (named `what[i]` in errors) into the model's rows; CPU-bound (image
/// decoding), so callers run it on a blocking thread.
pub fn prepare(
    inputs: Vec<Input>,
    what: &str,
    enc: &InputEncoder,
    limits: &InputLimits,
) -> Result<Prepared, ApiError> {
    if inputs.is_empty() {
        return Err(ApiError::bad(format!("{what}: no input given")));
    }
    if inputs.len() > limits.max_inputs {
        return Err(ApiError::bad(format!(
            "{what}: {} inputs; at most {} per request",
            inputs.len(),
            limits.max_inputs
        )));
    }
    let mut images = Vec::new();
    let mut texts = Vec::new();
    let mut vectors = Vec::new();
    let mut raw = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let name = format!("{what}[{i}]");
        match input {
            Input::Image(b64) => {
                let bytes = BASE64
                    .decode(b64.trim())
                    .map_err(|e| ApiError::bad(format!("{name}.image: not base64: {e}")))?;
                images.push(siamese::data::images::decode_image(
                    &bytes,
                    limits.max_side,
                    &name,
                )?);
                raw.push(bytes);
            }
            Input::Text(t) => {
                let chars = t.chars().count();
                if chars > limits.max_chars {
                    return Err(ApiError::bad(format!(
                        "{name}.text: {chars} characters; at most {} are accepted",
                        limits.max_chars
                    )));
                }
                raw.push(t.as_bytes().to_vec());
                texts.push(t);
            }
            Input::Vector(v) => {
                raw.push(v.iter().flat_map(|x| x.to_le_bytes()).collect());
                vectors.push(v);
            }
        }
    }
    let kinds = [!images.is_empty(), !texts.is_empty(), !vectors.is_empty()];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err(ApiError::bad(format!(
            "{what}: inputs of different kinds; this model takes {}",
            kind_name(enc)
        )));
    }
    let rows = if !images.is_empty() {
        enc.images(&images, what)?
    } else if !texts.is_empty() {
        enc.sentences(&texts, what)?
    } else {
        enc.vectors(&vectors, what)?
    };
    Ok(Prepared { rows, raw })
}

/// What the model takes, in words.
pub fn kind_name(enc: &InputEncoder) -> String {
    match enc.kind() {
        siamese::model::InputKind::Vector => {
            format!("{{\"vector\": [{} numbers]}}", enc.input_dim())
        }
        siamese::model::InputKind::Image => "{\"image\": \"<base64>\"}".to_string(),
        siamese::model::InputKind::Text => "{\"text\": \"...\"}".to_string(),
    }
}
