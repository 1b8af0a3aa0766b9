//! inferkit-serve: a model server speaking the KServe v2 / Open Inference Protocol over HTTP
//! and gRPC, as a library an application embeds and as the `inferkit-serve` binary.
//!
//! Each model version is served by a [`pipeline`](inferkit_pipeline) of its own: a bounded
//! queue ordered by Triton's `priority`, a batcher (`max_batch` requests or `max_delay`,
//! whichever comes first) and one inference thread, never the async runtime's threads.
//! Versions live in `infer_core`'s `Registry`; A/B routes spread requests that name no
//! version over versions by weight, sticky by a header. A full queue answers 503 with
//! `Retry-After`, a passed deadline 504, and a client that disconnects cancels its queued
//! request.
//!
//! ```no_run
//! use std::path::Path;
//! use axum::serve::ListenerExt;
//! use inferkit_serve::{App, Config, load_model, router};
//!
//! # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
//! let app = App::new(Config::default().with_threads(2));
//! app.load(load_model("efficientnet-lite0", Path::new("efficientnet-lite0.pth"), None, 2)?);
//! // TCP_NODELAY, as the binary sets it: small answers are not held back by Nagle's
//! // algorithm (40 ms a request against a client's delayed ACK)
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000")
//!     .await?
//!     .tap_io(|tcp| {
//!         let _ = tcp.set_nodelay(true);
//!     });
//! axum::serve(listener, router(app.clone())).await?;
//! app.shutdown(); // answers what is queued, joins every model thread
//! # Ok(())
//! # }
//! ```
//!
//! Endpoints (HTTP): `GET /v2/health/live`, `GET /v2/health/ready`, `GET
//! /v2/models/{name}[/versions/{v}]` (metadata), `GET …/ready`, `POST …/infer` (JSON tensors
//! and the binary tensor data extension; `parameters.timeout` in µs and
//! `parameters.priority` as Triton defines them), `POST /v2/repository/models/{name}/load`
//! and `…/unload`, `GET /metrics` (Prometheus text by `prometheus-client`: the
//! server's requests, latencies, batch sizes, queue depth and streams, and each model
//! version's pipeline — its stages' counters, queue depths and latencies — through
//! [`inferkit_pipeline::Collector`], labelled `model` and `version`). gRPC: [`grpc`] (`ModelInfer`,
//! `ModelStreamInfer` and the health and metadata methods of
//! `inference.GRPCInferenceService`), through
//! [`grpc_router`] on the same port or another.
//!
//! Raw inputs: a [`Servable`] with a `BYTES` input takes encoded photos (decoded and
//! transformed on the server by `inferkit-preprocess`) or texts (the model's tokenizer);
//! outputs requested with `classification: k` come back as Triton's `"score:index:label"`
//! strings. [`repository`] reads a model repository in Triton's layout and `config.pbtxt`
//! into `Servable`s (the binary's `--model-repository`).
//!
//! Traces: every request is an `infer` span continuing its caller's W3C trace, with
//! `queue`, `batch` and `run` spans carrying the model, version and A/B variant;
//! [`telemetry::Otlp`] exports them over OTLP.

mod app;
pub mod grpc;
mod grpc_request;
pub mod repository;
mod request;
mod servable;
pub mod telemetry;

pub use app::{App, Config, Route, load_model, parse_version, router};
pub use grpc::{grpc_router, grpc_service};
pub use servable::Servable;

/// What can go wrong setting a server up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A version that is not `MAJOR[.MINOR[.PATCH]]`.
    #[error("version `{version}`: {source}")]
    Version {
        /// The text given.
        version: String,
        /// Why it is not a version.
        source: semver::Error,
    },
    /// A model whose served interface does not fit it (an image input for a model that does
    /// not take images, labels for an output it does not have, …).
    #[error("model `{model}`: {problem}")]
    Interface {
        /// The model's name.
        model: String,
        /// What does not fit.
        problem: String,
    },
    /// A model repository, or one model's configuration in it, that cannot be served.
    #[error("{}: {problem}", path.display())]
    Repository {
        /// The file or directory at fault.
        path: std::path::PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Traces that cannot be exported (see [`telemetry::Otlp`]).
    #[error("OTLP export to `{endpoint}`: {problem}")]
    Otlp {
        /// The collector's endpoint.
        endpoint: String,
        /// What is wrong.
        problem: String,
    },
    /// A model that could not be loaded or prepared.
    #[error("{}: {source}", path.display())]
    Model {
        /// Where it was loaded from.
        path: std::path::PathBuf,
        /// The backend's error.
        source: Box<inferkit_infer_core::Error>,
    },
}
