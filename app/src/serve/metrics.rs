//! `GET /metrics`: Prometheus text exposition (the `prometheus-client` crate).
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `siamese_requests_total` | counter | `route`, `method`, `status` |
//! | `siamese_request_duration_seconds` | histogram | `route` |
//! | `siamese_inference_batch_rows` | histogram | |
//! | `siamese_gallery_identities`, `siamese_gallery_samples` | gauge | |
//! | `siamese_process_resident_bytes` | gauge (Linux: `/proc/self/statm`) | |
//! | `siamese_heap_in_use_bytes` | gauge (glibc: `mallinfo2`, bytes handed out by `malloc`) | |
//!
//! The two memory gauges tell a leak (bytes in use grow) from an allocator that keeps freed
//! pages (resident grows, in use does not; see [`super::memory`]).

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
    /// Resident set size of the process.
    pub resident: Gauge,
    /// Bytes allocated by `malloc` and not freed.
    pub heap_in_use: Gauge,
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
        let resident = Gauge::default();
        let heap_in_use = Gauge::default();
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
        registry.register(
            "siamese_process_resident_bytes",
            "Resident set size of the server process (Linux only)",
            resident.clone(),
        );
        registry.register(
            "siamese_heap_in_use_bytes",
            "Bytes handed out by malloc and not yet freed (glibc only)",
            heap_in_use.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            batch_rows,
            identities,
            samples,
            resident,
            heap_in_use,
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

    /// Reads the process's memory into the two memory gauges (left unchanged where the
    /// platform has no such figure).
    pub fn update_memory(&self) {
        if let Some(bytes) = super::memory::resident_bytes() {
            self.resident.set(bytes);
        }
        if let Some(bytes) = super::memory::heap_in_use_bytes() {
            self.heap_in_use.set(bytes);
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_gauges_read_the_process() {
        let m = Metrics::default();
        m.update_memory();
        let text = m.encode();
        assert!(text.contains("siamese_process_resident_bytes"), "{text}");
        if cfg!(target_os = "linux") {
            // A running test process has more than a megabyte resident.
            assert!(m.resident.get() > 1 << 20, "{}", m.resident.get());
        }
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            let before = m.heap_in_use.get();
            let block = std::hint::black_box(vec![1u8; 64 << 20]);
            m.update_memory();
            assert!(
                m.heap_in_use.get() >= before + (60 << 20),
                "{before} → {}",
                m.heap_in_use.get()
            );
            drop(block);
        }
    }
}
