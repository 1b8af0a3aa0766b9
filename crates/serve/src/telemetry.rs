//! Traces: each inference request is a span that continues its caller's W3C trace
//! (`traceparent`/`tracestate` from HTTP headers or gRPC metadata), with child spans for its
//! wait in the queue (`queue`), the batch it ran in (`batch`) and the model's run (`run`),
//! each carrying `model.name`, `model.version` and `ab.variant` (the A/B route's pick, empty
//! for a request not routed). They are `tracing` spans: any subscriber sees them, and with
//! [`Otlp`]'s layer they are exported over OTLP/gRPC (the binary's `--otlp-endpoint`).
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! # async fn run() -> Result<(), inferkit_serve::Error> {
//! // inside a Tokio runtime: the exporter's channel lives on it
//! let otlp = inferkit_serve::telemetry::Otlp::new("http://127.0.0.1:4317", "my-gateway")?;
//! let subscriber = tracing_subscriber::registry().with(otlp.layer());
//! tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
//! // … serve …
//! otlp.shutdown()?; // sends what is buffered
//! # Ok(())
//! # }
//! ```

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

use crate::Error;

/// The span of one inference request, named `infer` (an OpenTelemetry server span):
/// `protocol` and `model.name`; `model.version` and `ab.variant` are recorded where the
/// request is resolved (the variant by the library's `Router` when an A/B route picks the
/// version), `otel.status_code` when it fails on the server's side. When `headers` carry a
/// valid W3C `traceparent`, the span continues that trace as a child of the caller's span;
/// otherwise it starts a trace.
pub(crate) fn request_span(
    protocol: &'static str,
    model: &str,
    headers: &axum::http::HeaderMap,
) -> Span {
    let span = tracing::info_span!(
        "infer",
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        protocol,
        model.name = %model,
        model.version = tracing::field::Empty,
        ab.variant = tracing::field::Empty,
    );
    if headers.contains_key("traceparent") {
        let caller = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        // (an error only where no OpenTelemetry layer is installed: nothing to continue)
        let _ = span.set_parent(caller);
    }
    span
}

/// Marks the current request span failed when the server is at fault (an HTTP-equivalent
/// code of 500 or more: an error running the model, a full queue, a passed deadline), as
/// OpenTelemetry's conventions for server spans have it; a client's error (4xx) is not.
pub(crate) fn record_status(code: axum::http::StatusCode) {
    if code.is_server_error() {
        Span::current().record("otel.status_code", "ERROR");
    }
}

/// One stage of a request inside the server, a child of `$parent`: `queue`, `batch` or
/// `run`, with the model's name and version and the request's A/B variant (when a route
/// picked the version), plus any other fields given.
macro_rules! stage_span {
    ($name:literal, $parent:expr, $model:expr, $variant:expr $(, $($field:tt)*)?) => {{
        let d = $model.descriptor();
        let span = tracing::info_span!(
            parent: $parent,
            $name,
            model.name = %d.name,
            model.version = %d.version,
            ab.variant = tracing::field::Empty
            $(, $($field)*)?
        );
        if let Some(variant) = $variant {
            span.record("ab.variant", variant);
        }
        span
    }};
}
pub(crate) use stage_span;

/// Exports the server's spans over OTLP/gRPC (to an OpenTelemetry Collector, Jaeger, Tempo,
/// …) in batches, from a thread of its own.
#[derive(Debug)]
pub struct Otlp {
    provider: SdkTracerProvider,
    endpoint: String,
}

impl Otlp {
    /// An exporter to the OTLP/gRPC `endpoint` (`http://host:4317`) whose spans name
    /// `service` as `service.name` (the `OTEL_SERVICE_NAME` environment variable, when set,
    /// wins, as in every OpenTelemetry SDK). Call it inside a Tokio runtime: the exporter's
    /// channel runs on it. Nothing is sent until the first spans end; a collector that is
    /// down loses spans (reported by the SDK), never requests.
    ///
    /// # Errors
    /// [`Error::Otlp`] for an endpoint that is not a URL, or outside a Tokio runtime.
    pub fn new(endpoint: &str, service: &str) -> Result<Otlp, Error> {
        let fail = |problem: String| Error::Otlp {
            endpoint: endpoint.to_owned(),
            problem,
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(fail("must be set up inside a Tokio runtime".into()));
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(service.to_owned());
        }
        let provider = SdkTracerProvider::builder()
            .with_resource(resource.build())
            .with_batch_exporter(exporter)
            .build();
        Ok(Otlp {
            provider,
            endpoint: endpoint.to_owned(),
        })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans for this exporter.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, SdkTracer>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("inferkit-serve"))
    }

    /// Sends the spans still buffered and stops the exporter (blocks until sent or timed
    /// out; call it from outside the async runtime's threads, while the runtime lives).
    ///
    /// # Errors
    /// [`Error::Otlp`] when the last spans could not be sent.
    pub fn shutdown(self) -> Result<(), Error> {
        self.provider.shutdown().map_err(|e| Error::Otlp {
            endpoint: self.endpoint,
            problem: e.to_string(),
        })
    }
}
