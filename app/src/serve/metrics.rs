//! `GET /metrics`: Prometheus text exposition (the `prometheus-client` crate).
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `siamese_requests_total` | counter | `route`, `method`, `status` |
//! | `siamese_request_duration_seconds` | histogram | `route` |
//! | `siamese_inference_batch_rows` | histogram | |
//! | `siamese_gallery_identities`, `siamese_gallery_samples` | gauge | |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's pattern (e.g. `/v1/identities/{id}`), or `unmatched`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Status code.
    pub status: u16,
}

/// Labels of a latency observation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's pattern.
    pub route: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 27 s.
    Histogram::new(exponential_buckets(5e-5, 2.0, 20))
}

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Latency by route.
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Rows per inference batch.
    pub batch_rows: Histogram,
    /// Identities in the gallery.
    pub identities: Gauge,
    /// Samples in the gallery.
    pub samples: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let batch_rows = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        let identities = Gauge::default();
        let samples = Gauge::default();
        registry.register(
            "siamese_requests",
            "HTTP requests answered",
            requests.clone(),
        );
        registry.register(
            "siamese_request_duration_seconds",
            "Time to answer a request",
            latency.clone(),
        );
        registry.register(
            "siamese_inference_batch_rows",
            "Inputs embedded together in one model call",
            batch_rows.clone(),
        );
        registry.register(
            "siamese_gallery_identities",
            "Identities with at least one enrolled sample",
            identities.clone(),
        );
        registry.register(
            "siamese_gallery_samples",
            "Enrolled samples",
            samples.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            batch_rows,
            identities,
            samples,
        }
    }
}

impl Metrics {
    /// Records a finished request.
    pub fn record(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
