//! The KServe v2 / Open Inference Protocol over gRPC (tonic): the `inference.GRPCInferenceService`
//! of `proto/inference.proto`, on the same [`App`] as the HTTP routes — the same models,
//! queues, batches and A/B routes, one code path from a checked request to its outputs.
//! `ModelInfer` answers with `raw_output_contents`, as Triton does; requests may carry
//! typed contents or `raw_input_contents`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::app::{
    ApiError, App, Ticket, answers, bad, load_version, model_inputs, platform, run_request,
    unload_versions,
};
use crate::grpc_request::{Parsed, parse};
use crate::request::datatype;

/// The protocol's messages and the generated service (server and client).
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all
)]
pub mod proto {
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::model_infer_response::InferOutputTensor;
use proto::model_metadata_response::TensorMetadata;
use proto::*;

/// The gRPC services as axum routes (`/inference.GRPCInferenceService/…` and the standard
/// health service `grpc.health.v1.Health`, whose status follows the models served), to serve
/// alone or
/// merged with [`router`](crate::router) on one port: axum serves HTTP/1.1 and HTTP/2 (gRPC's
/// prior-knowledge h2c) side by side. This is how the binary serves it: a request whose
/// deadline (`grpc-timeout`) passes gets DEADLINE_EXCEEDED from the server (tonic's own
/// transport server would answer CANCELLED first).
///
/// ```no_run
/// # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
/// use inferkit_serve::{App, Config, grpc_router, router};
/// let app = App::new(Config::default());
/// let both = router(app.clone()).merge(grpc_router(app.clone()));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8001").await?;
/// axum::serve(listener, both).await?;
/// # Ok(())
/// # }
/// ```
pub fn grpc_router(app: Arc<App>) -> axum::Router {
    let (reporter, health) = tonic_health::server::health_reporter();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(report_health(
            Arc::downgrade(&app),
            Arc::clone(&app.changed),
            reporter,
        ));
    }
    tonic::service::Routes::new(grpc_service(app))
        .add_service(health)
        .into_axum_router()
}

/// Keeps `grpc.health.v1` true to `app`: the server ("") is SERVING while it lives, and
/// `inference.GRPCInferenceService` is SERVING while at least one model is served,
/// NOT_SERVING otherwise. Ends when the app is dropped.
async fn report_health(
    app: std::sync::Weak<App>,
    changed: Arc<tokio::sync::Notify>,
    reporter: tonic_health::server::HealthReporter,
) {
    loop {
        let Some(ready) = app.upgrade().map(|a| a.serving()) else {
            return;
        };
        if ready {
            reporter
                .set_serving::<GrpcInferenceServiceServer<Grpc>>()
                .await;
        } else {
            reporter
                .set_not_serving::<GrpcInferenceServiceServer<Grpc>>()
                .await;
        }
        // a load or unload, or now and then to notice the app is gone
        let _ = tokio::time::timeout(Duration::from_secs(5), changed.notified()).await;
    }
}

/// The gRPC service over `app`, for a `tonic::transport::Server` or other tower stacks.
/// Messages up to `app`'s `max_body` bytes are accepted both ways.
pub fn grpc_service(app: Arc<App>) -> GrpcInferenceServiceServer<Grpc> {
    let limit = app.config.max_body;
    GrpcInferenceServiceServer::new(Grpc { app })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit)
}

/// The gRPC service's handler: see [`grpc_service`].
#[derive(Debug, Clone)]
pub struct Grpc {
    app: Arc<App>,
}

fn some(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// `grpc-timeout`: digits and a unit (H, M, S, m, u, n).
fn grpc_timeout<T>(r: &Request<T>) -> Option<Duration> {
    let v = r.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (n, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A repository request's string parameter `key`.
fn repo_param(
    params: &std::collections::HashMap<String, ModelRepositoryParameter>,
    key: &str,
) -> Result<Option<String>, ApiError> {
    use proto::model_repository_parameter::ParameterChoice as P;
    match params.get(key).and_then(|p| p.parameter_choice.as_ref()) {
        None => Ok(None),
        Some(P::StringParam(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(format!("parameter `{key}`: {other:?} is not a string"))),
    }
}

/// Responses a ModelStreamInfer stream holds for a client that reads slowly; past them the
/// stream's requests wait (and so does reading more of them), never a model's worker.
pub const STREAM_BUFFER: usize = 16;
/// Requests of one stream in flight at once (queued, running or waiting to be sent); the
/// stream reads no more until one is sent. A default batch's worth: one stream can fill a
/// batch but not, alone, a model's queue.
pub const STREAM_IN_FLIGHT: usize = 32;

/// Counts an open stream for as long as it lives.
struct StreamOpen(Arc<App>);

impl StreamOpen {
    fn new(app: Arc<App>) -> Self {
        app.stats.streams.inc();
        StreamOpen(app)
    }
}

impl Drop for StreamOpen {
    fn drop(&mut self) {
        self.0.stats.streams.dec();
    }
}

/// Serves one ModelStreamInfer stream: reads its requests, runs each as a unary ModelInfer
/// (at most [`STREAM_IN_FLIGHT`] at once), sends each answer as it finishes into a channel of
/// [`STREAM_BUFFER`]. The stream ends, and every request of it still queued or running is
/// cancelled, when the client goes away, when the stream's `grpc-timeout` passes, or when the
/// client ends its side and every answer was sent.
async fn stream(
    grpc: Grpc,
    mut requests: tonic::Streaming<ModelInferRequest>,
    metadata: tonic::metadata::MetadataMap,
    deadline: Option<tokio::time::Instant>,
    tx: tokio::sync::mpsc::Sender<Result<ModelStreamInferResponse, Status>>,
) {
    let _open = StreamOpen::new(Arc::clone(&grpc.app));
    let slots = Arc::new(tokio::sync::Semaphore::new(STREAM_IN_FLIGHT));
    // dropped with this function: aborts every request of the stream still in flight
    let mut running = tokio::task::JoinSet::new();
    let expired = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    let mut reading = true;
    loop {
        if !reading && running.is_empty() {
            return; // the client's side ended and every answer was sent
        }
        tokio::select! {
            // the client went away (its response stream was dropped)
            () = tx.closed() => return,
            () = &mut expired => {
                let _ = tx.try_send(Err(Status::deadline_exceeded("the stream's deadline passed")));
                return;
            }
            Some(done) = running.join_next(), if !running.is_empty() => {
                if done.is_err() {
                    return; // a request's task panicked: end the stream
                }
            }
            permit = Arc::clone(&slots).acquire_owned(), if reading => {
                let Ok(permit) = permit else { return };
                let next = tokio::select! {
                    () = tx.closed() => return,
                    () = &mut expired => {
                        let _ = tx.try_send(Err(Status::deadline_exceeded("the stream's deadline passed")));
                        return;
                    }
                    m = requests.message() => m,
                };
                match next {
                    Ok(Some(r)) => {
                        let (grpc, tx) = (grpc.clone(), tx.clone());
                        let mut request = Request::new(r);
                        *request.metadata_mut() = metadata.clone();
                        running.spawn(async move {
                            let answer = match grpc.infer_counted(request).await {
                                Ok(r) => ModelStreamInferResponse {
                                    error_message: String::new(),
                                    infer_response: Some(r),
                                },
                                Err(e) => ModelStreamInferResponse {
                                    error_message: e.message().to_owned(),
                                    infer_response: None,
                                },
                            };
                            // waits while a slow client's buffer is full
                            let _ = tx.send(Ok(answer)).await;
                            drop(permit);
                        });
                    }
                    Ok(None) => reading = false,
                    Err(status) => {
                        let _ = tx.try_send(Err(status));
                        return;
                    }
                }
            }
        }
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Grpc {
    type ModelStreamInferStream = tonic::codegen::BoxStream<ModelStreamInferResponse>;

    async fn repository_index(
        &self,
        _: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        let models = self
            .app
            .index()
            .into_iter()
            .map(
                |(name, version)| proto::repository_index_response::ModelIndex {
                    name,
                    version,
                    state: "READY".into(),
                    reason: String::new(),
                },
            )
            .collect();
        Ok(Response::new(RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        r: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        let r = r.into_inner();
        let path = repo_param(&r.parameters, "path")?
            .ok_or_else(|| bad("load needs the string parameter `path`"))?;
        let version = repo_param(&r.parameters, "version")?;
        load_version(&self.app, &r.model_name, path, version).await?;
        Ok(Response::new(RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        r: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        let r = r.into_inner();
        let version = repo_param(&r.parameters, "version")?;
        unload_versions(&self.app, &r.model_name, version.as_deref()).await?;
        Ok(Response::new(RepositoryModelUnloadResponse {}))
    }

    async fn model_stream_infer(
        &self,
        request: Request<tonic::Streaming<ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        let deadline = grpc_timeout(&request).map(|t| tokio::time::Instant::now() + t);
        let (metadata, _, requests) = request.into_parts();
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        tokio::spawn(stream(self.clone(), requests, metadata, deadline, tx));
        Ok(Response::new(Box::pin(
            tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.app.serving(),
        }))
    }

    async fn model_ready(
        &self,
        r: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let r = r.into_inner();
        let ready = self.app.worker(&r.name, some(&r.version)).is_ok();
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "inferkit-serve".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: vec![
                "model_repository".into(),
                "schedule_policy".into(),
                "binary_tensor_data".into(),
            ],
        }))
    }

    async fn model_metadata(
        &self,
        r: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let r = r.into_inner();
        let w = self.app.worker(&r.name, some(&r.version))?;
        let d = w.model.descriptor();
        let spec = |s: &inferkit_infer_core::TensorSpec| TensorMetadata {
            name: s.name.clone(),
            datatype: datatype(s.dtype).into(),
            shape: crate::app::shape_json(&s.shape),
        };
        Ok(Response::new(ModelMetadataResponse {
            name: d.name.clone(),
            versions: self.app.versions(&d.name),
            platform: platform(d),
            inputs: w
                .inputs()
                .into_iter()
                .map(|(name, datatype, shape)| TensorMetadata {
                    name,
                    datatype,
                    shape,
                })
                .collect(),
            outputs: d.outputs.iter().map(spec).collect(),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        Ok(Response::new(self.infer_counted(request).await?))
    }
}

impl Grpc {
    /// [`Grpc::infer`], counted in `/metrics` and logged like an HTTP request.
    async fn infer_counted(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<ModelInferResponse, Status> {
        let name = request.get_ref().model_name.clone();
        let span = crate::telemetry::request_span("grpc", &name, request.metadata().as_ref());
        async move {
            let started = std::time::Instant::now();
            let asked = request.get_ref().model_version.clone();
            let result = self.infer(request).await;
            let (status, version) = match &result {
                Ok(r) => (axum::http::StatusCode::OK, r.model_version.clone()),
                Err(e) => (e.0, asked),
            };
            // the same counters and access log as HTTP (the code: HTTP's, or its equivalent)
            self.app.stats.response(&name, &version, status);
            crate::telemetry::record_status(status);
            tracing::info!(
                target: "serve::access",
                protocol = "grpc",
                model = %name,
                version = %version,
                status = status.as_u16(),
                latency_us = started.elapsed().as_micros() as u64,
                "infer"
            );
            Ok(result?)
        }
        .instrument(span)
        .await
    }

    async fn infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<ModelInferResponse, ApiError> {
        let app = &self.app;
        let deadline = grpc_timeout(&request);
        let sticky = request
            .metadata()
            .get(app.config.sticky_header.as_str())
            .map(|v| v.as_bytes().to_vec());
        let r = request.into_inner();
        let name = r.model_name.clone();
        let (worker, variant) = app.resolve(&name, some(&r.model_version), sticky.as_deref())?;
        let d = worker.model.descriptor();
        let bytes_input = worker.preprocess.as_ref().map(|(n, _)| n.as_str());
        let Parsed {
            inputs: args,
            timeout,
            priority,
            wanted,
        } = parse(d, bytes_input, &r).map_err(bad)?;
        // the sooner of the client's deadline and Triton's `timeout` parameter
        let timeout = [deadline, timeout]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(app.config.default_timeout);
        crate::app::check_outputs(d, wanted.as_deref())?;
        // the message (megabytes of photos) is not kept while the request waits
        let id = r.id;
        drop(r.raw_input_contents);
        drop(r.inputs);
        let admitted = model_inputs(app, &name, &worker, args).await?;
        let ticket = Ticket {
            timeout,
            priority,
            variant,
        };
        let outputs = run_request(app, &name, &worker, admitted, ticket).await?;
        let answers = answers(&worker, outputs, wanted.as_deref(), true)?;
        let mut tensors = Vec::new();
        let mut raw = Vec::new();
        for (n, a, _) in &answers {
            let mut bytes = Vec::new();
            a.binary(&mut bytes);
            raw.push(Bytes::from(bytes));
            tensors.push(InferOutputTensor {
                name: n.clone(),
                datatype: a.datatype().into(),
                shape: a.shape().iter().map(|&d| d as i64).collect(),
                parameters: Default::default(),
                contents: None,
            });
        }
        Ok(ModelInferResponse {
            model_name: d.name.clone(),
            model_version: d.version.to_string(),
            id,
            parameters: Default::default(),
            outputs: tensors,
            raw_output_contents: raw,
        })
    }
}
