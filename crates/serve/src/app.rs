//! The server: the KServe v2 / Open Inference Protocol over HTTP (axum), each model version
//! behind a `pipeline` (bounded queue → batcher → one inference thread).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use inferkit_infer_core::Router as AbRouter;
use inferkit_infer_core::cpu::CpuBackend;
use inferkit_infer_core::onnx::OnnxBackend;
use inferkit_infer_core::{
    Backend, Device, Dim, Model, ModelDescriptor, ModelSource, Plan, Registry, Tensor, TensorView,
    Variant,
};
use inferkit_pipeline::{BatchOptions, Input, Pipeline, PrioritySubmitter, Run, SubmitError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tracing::Instrument;

use crate::Error;
use crate::request::{Arg, BytesKind, HEADER_LENGTH, Wanted, check_inputs, datatype, parse};
use crate::servable::{Preprocess, Servable, bytes_binary, classify, served_inputs, tensors};
use crate::telemetry::{record_status, request_span, stage_span};

/// Batching, queueing and deadline settings, per model version.
///
/// ```
/// use std::time::Duration;
/// let config = inferkit_serve::Config::default()
///     .with_max_batch(16)
///     .with_max_delay(Duration::from_millis(1));
/// assert_eq!(config.max_batch, 16);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Most requests in one batch.
    pub max_batch: usize,
    /// Longest a request waits for others to join its batch.
    pub max_delay: Duration,
    /// Requests a model version holds being prepared (decoded, tokenized) or queued before
    /// 503 / RESOURCE_EXHAUSTED: a request takes its place before its inputs are decoded,
    /// so an overload is refused at once, not decoded first.
    pub queue: usize,
    /// Deadline of a request without `parameters.timeout`.
    pub default_timeout: Duration,
    /// The request header whose value keeps a client on one version of an A/B route.
    pub sticky_header: String,
    /// Threads each native model runs a batch on (like onnxruntime's intra-op threads).
    pub threads: usize,
    /// Largest request body accepted (413 above it).
    pub max_body: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_batch: 32,
            max_delay: Duration::from_millis(2),
            queue: 64,
            default_timeout: Duration::from_secs(10),
            sticky_header: "x-session-id".into(),
            threads: 1,
            max_body: 64 << 20,
        }
    }
}

impl Config {
    /// Most requests in one batch (at least 1).
    #[must_use]
    pub fn with_max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }
    /// Longest a request waits for others to join its batch.
    #[must_use]
    pub fn with_max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }
    /// Requests a model version holds being prepared or queued before 503 (at least 1).
    #[must_use]
    pub fn with_queue(mut self, n: usize) -> Self {
        self.queue = n.max(1);
        self
    }
    /// Deadline of a request without `parameters.timeout`.
    #[must_use]
    pub fn with_default_timeout(mut self, d: Duration) -> Self {
        self.default_timeout = d;
        self
    }
    /// The request header whose value keeps a client on one version of an A/B route.
    #[must_use]
    pub fn with_sticky_header(mut self, name: impl Into<String>) -> Self {
        self.sticky_header = name.into();
        self
    }
    /// Threads each native model runs a batch on (at least 1).
    #[must_use]
    pub fn with_threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }
    /// Largest request body accepted (413 above it).
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

/// An API error: its status and message, sent as `{"error": …}` over HTTP and as the
/// status's gRPC code over gRPC.
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// What a full queue's error says (its gRPC code is RESOURCE_EXHAUSTED, another 503's
/// UNAVAILABLE).
pub(crate) const QUEUE_FULL: &str = "queue full";

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        use tonic::Code;
        let code = match e.0 {
            StatusCode::BAD_REQUEST => Code::InvalidArgument,
            StatusCode::NOT_FOUND => Code::NotFound,
            StatusCode::PAYLOAD_TOO_LARGE => Code::ResourceExhausted,
            StatusCode::SERVICE_UNAVAILABLE if e.1.contains(QUEUE_FULL) => Code::ResourceExhausted,
            StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
            StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
            _ => Code::Internal,
        };
        tonic::Status::new(code, e.1)
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.into())
}

/// One request in a model's queue.
struct Job {
    inputs: Vec<(String, Tensor)>,
    rows: usize,
    reply: oneshot::Sender<Result<Vec<(String, Tensor)>, String>>,
    cancelled: Arc<AtomicBool>,
    /// The request's span: the parent of its `queue`, `batch` and `run` spans.
    span: tracing::Span,
    /// Its `queue` span, ended when its batch starts.
    queued: tracing::Span,
    /// Its place among the requests its model version holds, freed when its batch starts.
    place: Option<OwnedSemaphorePermit>,
    /// The A/B variant that picked the version, if one did.
    variant: Option<String>,
}

/// How a request is queued: how long it may take, its priority (Triton's numbering) and the
/// A/B variant that picked its version (recorded on its spans).
pub(crate) struct Ticket {
    pub(crate) timeout: Duration,
    pub(crate) priority: u64,
    pub(crate) variant: Option<String>,
}

/// A model version and the pipeline that serves it.
pub(crate) struct Worker {
    pub(crate) model: Arc<Model>,
    /// The served `BYTES` input and its preprocessing.
    pub(crate) preprocess: Option<(String, Arc<Preprocess>)>,
    /// Labels per output (the classification extension).
    pub(crate) labels: BTreeMap<String, Arc<[String]>>,
    /// The pipeline's intake: bounded, served by priority (Triton's numbering: 1 is the
    /// highest, larger numbers lower; 0 or none is the default level, below every explicit
    /// one), first come first served within a level. The pipeline pulls from it only as its
    /// batcher makes room, so the order holds for all but the few requests already in the
    /// pipeline's (small) channels.
    queue: PrioritySubmitter<Job>,
    /// Places for the requests it holds being prepared or queued (`Config::queue`): a
    /// request takes one before its inputs are decoded and frees it when its batch starts.
    admission: Arc<Semaphore>,
    run: Option<Run>,
}

impl Worker {
    /// The inputs as clients see them (name, datatype, shape).
    pub(crate) fn inputs(&self) -> Vec<(String, String, Vec<i64>)> {
        served_inputs(&self.model, self.preprocess.as_ref())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // closing the queue ends the pipeline's input: what is queued is still served
        self.queue.close();
        if let Some(run) = self.run.take() {
            let _ = run.wait();
        }
    }
}

/// An A/B route: a model name's requests without a version spread over versions by weight.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Route {
    /// Versions and their weights.
    pub split: Vec<(semver::Version, u32)>,
}

impl Route {
    /// Versions and their weights; all weights 0 removes a route.
    pub fn new(split: Vec<(semver::Version, u32)>) -> Self {
        Route { split }
    }
}

/// The server's own metrics in `/metrics` (prometheus-client), beside each model version's
/// pipeline metrics (the library's [`inferkit_pipeline::Collector`]).
pub(crate) struct Stats {
    /// Inference answers by model, version and HTTP status.
    responses: Family<Status, Counter>,
    /// Requests per batch run.
    batch_size: Histogram,
    /// Latency of answered requests, arrival to answer, per model version.
    latency: Family<Served, Histogram, fn() -> Histogram>,
    /// Queued requests whose client went away before their batch ran.
    cancelled: Counter,
    /// Requests queued across models.
    pub(crate) queued: Gauge,
    /// gRPC ModelStreamInfer streams open.
    pub(crate) streams: Gauge,
}

/// The labels of an answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Status {
    model: String,
    version: String,
    code: u16,
}

/// The labels of a model version.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Served {
    model: String,
    version: String,
}

/// Batch size bounds (requests).
const BATCH_BOUNDS: [f64; 6] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0];
/// Latency bounds, seconds (1 ms to 10 s).
const LATENCY_BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

impl Default for Stats {
    fn default() -> Self {
        Stats {
            responses: Family::default(),
            batch_size: Histogram::new(BATCH_BOUNDS),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BOUNDS)),
            cancelled: Counter::default(),
            queued: Gauge::default(),
            streams: Gauge::default(),
        }
    }
}

impl Stats {
    pub(crate) fn response(&self, model: &str, version: &str, code: StatusCode) {
        self.responses
            .get_or_create(&Status {
                model: model.to_owned(),
                version: version.to_owned(),
                code: code.as_u16(),
            })
            .inc();
    }

    fn latency(&self, model: &str, version: &str, took: Duration) {
        self.latency
            .get_or_create(&Served {
                model: model.to_owned(),
                version: version.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Registers every metric (they are shared handles: the registry reads them live).
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "inferkit_requests",
            "Inference responses by model, version and HTTP status.",
            self.responses.clone(),
        );
        registry.register(
            "inferkit_queue_depth",
            "Requests queued across models.",
            self.queued.clone(),
        );
        registry.register(
            "inferkit_batch_size",
            "Requests per batch run.",
            self.batch_size.clone(),
        );
        registry.register(
            "inferkit_request_duration_seconds",
            "Latency of answered inference requests, arrival to answer.",
            self.latency.clone(),
        );
        registry.register(
            "inferkit_cancelled",
            "Queued requests whose client went away.",
            self.cancelled.clone(),
        );
        registry.register(
            "inferkit_grpc_streams",
            "Open gRPC ModelStreamInfer streams.",
            self.streams.clone(),
        );
    }
}

/// The server's state: the models it serves, their queues and workers, routes and counters.
///
/// Serve it with [`router`].
pub struct App {
    pub(crate) config: Config,
    pub(crate) registry: Registry,
    pub(crate) workers: Mutex<BTreeMap<(String, semver::Version), Arc<Worker>>>,
    routes: Mutex<BTreeMap<String, Route>>,
    /// Each route's `infer_core::Router` over its versions now served, rebuilt when a route
    /// or a model version changes (not per request).
    routers: Mutex<BTreeMap<String, Arc<AbRouter>>>,
    /// Requests routed without a sticky key (spread round-robin by weight).
    unsticky: AtomicU64,
    /// `/metrics` counters.
    pub(crate) stats: Stats,
    /// Signalled when a model version is loaded or unloaded (the gRPC health status follows).
    pub(crate) changed: Arc<tokio::sync::Notify>,
    /// Requests whose raw inputs are being decoded or tokenized at once, across models: as
    /// many as the CPUs. (One blocking thread each for every request in flight held ~7 MB a
    /// request — 520 MB with 64 clients on photos — for no more throughput.)
    preparing: Semaphore,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("App")
            .field("config", &self.config)
            .field("serving", &workers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl App {
    /// An empty server.
    pub fn new(config: Config) -> Arc<App> {
        Arc::new(App {
            config,
            registry: Registry::new(),
            workers: Mutex::default(),
            routes: Mutex::default(),
            routers: Mutex::default(),
            unsticky: AtomicU64::new(0),
            stats: Stats::default(),
            changed: Arc::default(),
            preparing: Semaphore::new(inferkit_pipeline::available_cpus()),
        })
    }

    /// Serves a model (replacing the same name and version): a [`Model`], or a
    /// [`Servable`] with preprocessed `BYTES` inputs, labels or batching of its own. Each
    /// version gets a pipeline: a bounded queue, a batcher and one inference thread.
    pub fn load(self: &Arc<App>, served: impl Into<Servable>) {
        let Servable {
            model,
            preprocess,
            labels,
            batching,
        } = served.into();
        let (max_batch, max_delay) =
            batching.unwrap_or((self.config.max_batch, self.config.max_delay));
        let d = model.descriptor().clone();
        let model = Arc::new(model);
        let app = Arc::clone(self);
        let serving = Arc::clone(&model);
        // small channels inside the pipeline: the queue (by priority) is where requests wait
        let (queue, flow) = Pipeline::builder()
            .with_capacity(max_batch)
            .priority_submitter(self.config.queue);
        let run = flow
            .batch("batch", BatchOptions::new(max_batch, max_delay))
            .sink(move |jobs: Vec<Job>| {
                app.stats.queued.dec_by(jobs.len() as i64);
                app.run_batch(&serving, jobs);
                Ok::<(), Infallible>(())
            });
        let worker = Arc::new(Worker {
            model,
            preprocess,
            labels,
            queue,
            admission: Arc::new(Semaphore::new(self.config.queue)),
            run: Some(run),
        });
        self.registry
            .register(Model::new(Arc::clone(worker.model.plan()), 1));
        let old = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((d.name.clone(), d.version.clone()), worker);
        self.rebuild_router(&d.name);
        self.changed.notify_one();
        // the old version finishes its queue on this thread
        drop(old);
    }

    /// Stops serving a model version (its queued requests are still answered). False if it
    /// was not served.
    pub fn unload(&self, name: &str, version: &semver::Version) -> bool {
        self.registry.remove(name, version);
        let old = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(name.to_owned(), version.clone()));
        self.rebuild_router(name);
        self.changed.notify_one();
        old.is_some()
    }

    /// Queued requests skipped because their client went away.
    pub fn stats_cancelled(&self) -> u64 {
        self.stats.cancelled.get()
    }

    /// Stops every model, answering what is queued.
    pub fn shutdown(&self) {
        let all = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        drop(all);
    }

    /// Routes `name` over versions by weight (replacing its route); an empty split removes it.
    pub fn route(&self, name: &str, route: Route) {
        {
            let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            if route.split.iter().all(|(_, w)| *w == 0) {
                routes.remove(name);
            } else {
                routes.insert(name.to_owned(), route);
            }
        }
        self.rebuild_router(name);
    }

    /// Rebuilds `name`'s A/B router from its route and the versions now served (none when
    /// it has no route or none of the route's versions is served).
    fn rebuild_router(&self, name: &str) {
        let route = self
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        let router = route.and_then(|route| {
            let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
            let variants: Vec<Variant> = route
                .split
                .into_iter()
                .filter_map(|(v, weight)| {
                    let w = workers.get(&(name.to_owned(), v.clone()))?;
                    Some(Variant {
                        name: v.to_string(),
                        weight,
                        model: Arc::clone(&w.model),
                    })
                })
                .collect();
            AbRouter::new(variants).ok()
        });
        let mut routers = self.routers.lock().unwrap_or_else(|e| e.into_inner());
        match router {
            Some(r) => routers.insert(name.to_owned(), Arc::new(r)),
            None => routers.remove(name),
        };
    }

    /// The version an A/B route picks for a request without one, through the library's
    /// `Router::route` (by the sticky key's hash: the same key, the same version) or
    /// `Router::route_turn` (no key: round-robin by weight, an exact split), which record
    /// `ab.variant`, `model.name` and `model.version` on the current span. Only among the
    /// route's versions now served; None without a route.
    fn routed(&self, name: &str, sticky: Option<&[u8]>) -> Option<semver::Version> {
        let router = Arc::clone(
            self.routers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)?,
        );
        let routed = match sticky {
            Some(key) => router.route(key),
            None => router.route_turn(self.unsticky.fetch_add(1, Ordering::Relaxed)),
        };
        Some(routed.model.descriptor().version.clone())
    }

    /// The worker a request goes to: the version it names, else its A/B route's pick
    /// (sticky by `sticky`), else the latest; and the A/B variant when a route picked it.
    pub(crate) fn resolve(
        &self,
        name: &str,
        version: Option<&str>,
        sticky: Option<&[u8]>,
    ) -> Result<(Arc<Worker>, Option<String>), ApiError> {
        let routed = match version {
            Some(_) => None,
            None => self.routed(name, sticky).map(|v| v.to_string()),
        };
        let worker = self.worker(name, version.or(routed.as_deref()))?;
        if routed.is_none() {
            // (the router recorded it for a routed request)
            let answering = worker.model.descriptor().version.to_string();
            tracing::Span::current().record("model.version", answering.as_str());
        }
        Ok((worker, routed))
    }

    pub(crate) fn worker(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<Worker>, ApiError> {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        match version {
            Some(v) => {
                let v = version_param(v)?;
                workers
                    .get(&(name.to_owned(), v.clone()))
                    .cloned()
                    .ok_or_else(|| not_found(format!("model `{name}` has no version {v}")))
            }
            None => workers
                .range((name.to_owned(), semver::Version::new(0, 0, 0))..)
                .take_while(|((n, _), _)| n == name)
                .last()
                .map(|(_, w)| Arc::clone(w))
                .ok_or_else(|| not_found(format!("no model `{name}`"))),
        }
    }

    /// Runs one batch: requests with the same per-row shapes are concatenated along the
    /// batch axis and run together; each gets its rows of the outputs. Each request's
    /// `queue` span ends here; its `batch` span covers joining, running and slicing, its
    /// `run` span the model's run.
    fn run_batch(&self, model: &Model, jobs: Vec<Job>) {
        let jobs: Vec<Job> = jobs
            .into_iter()
            .filter_map(|mut j| {
                j.queued = tracing::Span::none();
                j.place = None;
                let gone = j.cancelled.load(Ordering::Relaxed);
                if gone {
                    self.stats.cancelled.inc();
                }
                (!gone).then_some(j)
            })
            .collect();
        let mut groups: BTreeMap<Vec<Vec<usize>>, Vec<Job>> = BTreeMap::new();
        for j in jobs {
            let key = j
                .inputs
                .iter()
                .map(|(_, t)| t.shape()[1..].to_vec())
                .collect();
            groups.entry(key).or_default().push(j);
        }
        for (_, group) in groups {
            self.stats.batch_size.observe(group.len() as f64);
            let rows: usize = group.iter().map(|j| j.rows).sum();
            let batches: Vec<tracing::Span> = group
                .iter()
                .map(|j| {
                    stage_span!(
                        "batch",
                        &j.span,
                        model,
                        j.variant.as_deref(),
                        batch.size = group.len(),
                        batch.rows = rows
                    )
                })
                .collect();
            // what the model logs while running goes to the first request's batch
            let _entered = batches[0].enter();
            let joined = concat_inputs(&group);
            let runs: Vec<tracing::Span> = (group.iter().zip(&batches))
                .map(|(j, b)| stage_span!("run", b, model, j.variant.as_deref()))
                .collect();
            let single = group.len() == 1;
            let ran = joined.and_then(|(names, joined)| run_joined(model, &names, &joined));
            // A batch of several requests is cut along axis 0; a model whose outputs are not
            // batched there (a reduction over the batch, a fixed table) runs each request
            // alone instead, as Triton runs a model without batching.
            let unbatched = !single
                && matches!(&ran, Ok(outputs) if outputs
                    .iter()
                    .any(|(_, t)| t.shape().first().is_some_and(|&n| n != rows)));
            if unbatched {
                tracing::debug!(model = %model.descriptor().name, rows, "outputs not batched along axis 0: requests run one by one");
                for j in group {
                    let _ = j.reply.send(run_alone(model, &j.inputs));
                }
                drop(runs);
                continue;
            }
            drop(runs);
            match ran {
                Ok(mut outputs) => {
                    let mut at = 0;
                    for j in group {
                        let part = if single {
                            // (the whole output: no copy)
                            std::mem::take(&mut outputs)
                        } else {
                            outputs
                                .iter()
                                .map(|(n, t)| (n.clone(), slice_rows(t, at, j.rows)))
                                .collect()
                        };
                        at += j.rows;
                        let _ = j.reply.send(Ok(part));
                    }
                }
                Err(e) => {
                    for j in group {
                        let _ = j.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

/// A group's inputs joined along the batch axis: their names and tensors.
fn concat_inputs(group: &[Job]) -> Result<(Vec<String>, Vec<Tensor>), String> {
    let names: Vec<String> = group[0].inputs.iter().map(|(n, _)| n.clone()).collect();
    let mut joined = Vec::with_capacity(names.len());
    for (i, _) in names.iter().enumerate() {
        let parts: Vec<TensorView<'_>> = group.iter().map(|j| j.inputs[i].1.view()).collect();
        joined.push(Tensor::concatenate(0, &parts).map_err(|e| e.to_string())?);
    }
    Ok((names, joined))
}

/// Runs the model on joined inputs: its outputs by name.
fn run_joined(
    model: &Model,
    names: &[String],
    joined: &[Tensor],
) -> Result<Vec<(String, Tensor)>, String> {
    let views: Vec<(&str, TensorView<'_>)> = names
        .iter()
        .map(String::as_str)
        .zip(joined.iter().map(Tensor::view))
        .collect();
    run_views(model, &views)
}

/// One request's inputs run on their own: its outputs by name.
fn run_alone(model: &Model, inputs: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>, String> {
    let views: Vec<(&str, TensorView<'_>)> =
        inputs.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
    run_views(model, &views)
}

/// The model run on named inputs: its outputs by name.
fn run_views(
    model: &Model,
    views: &[(&str, TensorView<'_>)],
) -> Result<Vec<(String, Tensor)>, String> {
    let out = model.run(views).map_err(|e| e.to_string())?;
    Ok(model
        .descriptor()
        .outputs
        .iter()
        .map(|s| s.name.clone())
        .zip(out)
        .collect())
}

/// Rows `at..at + rows` of a batch's output (whose axis 0 has the batch's rows; a 0-d
/// output, not batched, whole).
fn slice_rows(t: &Tensor, at: usize, rows: usize) -> Tensor {
    if t.shape().is_empty() {
        return t.clone();
    }
    t.view().slice_axis(0, at..at + rows).to_owned()
}

/// Loads one model as `name` at `version` (default 1.0.0) from `path`: a `.onnx` file
/// through the ONNX backend, a folder as a MiniLM-layout BERT, any other file as
/// EfficientNet-Lite0 weights — each on the native CPU backend but ONNX.
/// The native models run each batch on `threads` threads.
///
/// # Errors
/// [`Error::Version`] for a version that is not one; [`Error::Model`] (naming the path, the
/// backend's error as its source) for a model that cannot be prepared.
pub fn load_model(
    name: &str,
    path: &std::path::Path,
    version: Option<&str>,
    threads: usize,
) -> Result<Model, Error> {
    let version = version
        .map(parse_version)
        .transpose()?
        .unwrap_or(semver::Version::new(1, 0, 0));
    let onnx = path.extension().is_some_and(|e| e == "onnx");
    prepare_model(name, path, version, threads, onnx)
}

/// `path` as `name` at `version`: through the ONNX backend (`onnx`), else the native CPU
/// backend on `threads` threads.
pub(crate) fn prepare_model(
    name: &str,
    path: &std::path::Path,
    version: semver::Version,
    threads: usize,
    onnx: bool,
) -> Result<Model, Error> {
    let err = |source| Error::Model {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let plan: Arc<dyn Plan> = if onnx {
        OnnxBackend::new()
            .with_name(name)
            .with_version(version)
            .prepare(ModelSource::Path(path), Device::Cpu)
            .map_err(err)?
    } else {
        // EfficientNet-Lite0 (a checkpoint) or MiniLM (a directory), recognised from the
        // tensors' names
        CpuBackend::new()
            .with_threads(threads)
            .with_name(name)
            .with_version(version)
            .prepare(ModelSource::Path(path), Device::Cpu)
            .map_err(err)?
    };
    Ok(Model::new(plan, 1))
}

/// `"1"` or `"1.2"` or `"1.2.3"` as a semver version.
///
/// ```
/// assert_eq!(inferkit_serve::parse_version("2").unwrap(), semver::Version::new(2, 0, 0));
/// assert!(inferkit_serve::parse_version("two").is_err());
/// ```
///
/// # Errors
/// [`Error::Version`] naming the text.
pub fn parse_version(v: &str) -> Result<semver::Version, Error> {
    let parts = v.split('.').count();
    let padded = match parts {
        1 => format!("{v}.0.0"),
        2 => format!("{v}.0"),
        _ => v.to_owned(),
    };
    semver::Version::parse(&padded).map_err(|source| Error::Version {
        version: v.to_owned(),
        source,
    })
}

/// [`parse_version`], its error a 400.
fn version_param(v: &str) -> Result<semver::Version, ApiError> {
    parse_version(v).map_err(|e| bad(e.to_string()))
}

pub(crate) fn shape_json(shape: &[Dim]) -> Vec<i64> {
    shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => *n as i64,
            _ => -1,
        })
        .collect()
}

/// A model's platform in its metadata: `inferkit/<backend>` (both protocols).
pub(crate) fn platform(d: &ModelDescriptor) -> String {
    format!(
        "inferkit/{}",
        d.metadata.get("backend").map_or("cpu", String::as_str)
    )
}

fn metadata(w: &Worker, versions: Vec<String>) -> Value {
    let d = w.model.descriptor();
    let spec = |s: &inferkit_infer_core::TensorSpec| json!({"name": s.name, "datatype": datatype(s.dtype), "shape": shape_json(&s.shape)});
    json!({
        "name": d.name,
        "versions": versions,
        "platform": platform(d),
        "inputs": w.inputs().iter().map(|(n, dt, shape)| json!({"name": n, "datatype": dt, "shape": shape})).collect::<Vec<_>>(),
        "outputs": d.outputs.iter().map(spec).collect::<Vec<_>>(),
    })
}

fn output_json(name: &str, t: &Tensor) -> Value {
    let data: Value = match t {
        Tensor::F32(a) => a.iter().copied().collect(),
        Tensor::F64(a) => a.iter().copied().collect(),
        Tensor::F16(a) => a.iter().map(|&x| f32::from(x)).collect(),
        Tensor::BF16(a) => a.iter().map(|&x| f32::from(x)).collect(),
        Tensor::I64(a) => a.iter().copied().collect(),
        Tensor::I32(a) => a.iter().copied().collect(),
        Tensor::I16(a) => a.iter().copied().collect(),
        Tensor::I8(a) => a.iter().copied().collect(),
        Tensor::U64(a) => a.iter().copied().collect(),
        Tensor::U32(a) => a.iter().copied().collect(),
        Tensor::U16(a) => a.iter().copied().collect(),
        Tensor::U8(a) => a.iter().copied().collect(),
        Tensor::Bool(a) => a.iter().copied().collect(),
        _ => Value::Null,
    };
    json!({"name": name, "datatype": datatype(t.dtype()), "shape": t.shape(), "data": data})
}

/// Sets a request's cancellation flag when the handler is dropped before it answered (the
/// client went away): the inference thread skips it.
struct CancelOnDrop(Arc<AtomicBool>, bool);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// A request parsed and checked, its body dropped: what waits for the model.
struct Prepared {
    worker: Arc<Worker>,
    inputs: Vec<(String, Arg)>,
    ticket: Ticket,
    /// Requested outputs (None: all).
    wanted: Option<Vec<Wanted>>,
    all_binary: bool,
    id: Option<Value>,
    params: Option<Value>,
}

/// Parses and checks a request (`raw`: its JSON, or with the binary extension a JSON header
/// of `json_len` bytes and then the tensors). The body is consumed: a request waiting in a
/// queue holds only its tensors, not its text or JSON tree (megabytes for an image).
fn prepare(
    app: &App,
    name: &str,
    version: Option<&str>,
    sticky: Option<&[u8]>,
    raw: axum::body::Bytes,
    json_len: Option<usize>,
) -> Result<Prepared, ApiError> {
    let (worker, variant) = app.resolve(name, version, sticky)?;
    let bytes_input = worker
        .preprocess
        .as_ref()
        .map(|(n, p)| (n.as_str(), p.kind()));
    let r = parse(worker.model.descriptor(), bytes_input, &raw, json_len).map_err(bad)?;
    drop(raw);
    Ok(Prepared {
        worker,
        inputs: r.inputs,
        ticket: Ticket {
            timeout: r.timeout.unwrap_or(app.config.default_timeout),
            priority: r.priority,
            variant,
        },
        wanted: r.wanted,
        all_binary: r.all_binary,
        id: r.id,
        params: r.params,
    })
}

/// A request's inputs as the model's tensors, checked against it (a served `BYTES` input
/// decoded or tokenized off the async threads): the tensors and their batch rows, once the
/// model version has room for the request (503 / RESOURCE_EXHAUSTED at once when it has
/// not: it holds at most `Config::queue` requests being prepared or queued). Every
/// protocol's requests go through here.
pub(crate) async fn model_inputs(
    app: &App,
    name: &str,
    worker: &Arc<Worker>,
    args: Vec<(String, Arg)>,
) -> Result<Admitted, ApiError> {
    // a place first: a request the queue has no room for is refused before its (costly)
    // decoding, so an overload is answered at once instead of piling up decoded photos
    let place = Arc::clone(&worker.admission)
        .try_acquire_owned()
        .map_err(|_| queue_full(app, name))?;
    let inputs = if let Some((_, p)) = &worker.preprocess {
        // photos are decoded on as many threads as CPUs; texts (microseconds each) as they come
        let _turn = match p.kind() {
            BytesKind::Image => Some(
                app.preparing
                    .acquire()
                    .await
                    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
            ),
            BytesKind::Text => None,
        };
        let w = Arc::clone(worker);
        tokio::task::spawn_blocking(move || tensors(&w.model, w.preprocess.as_ref(), args))
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    } else {
        tensors(&worker.model, None, args)
    }
    .map_err(bad)?;
    let rows = check_inputs(worker.model.descriptor(), &inputs).map_err(bad)?;
    Ok(Admitted {
        inputs,
        rows,
        place,
    })
}

/// A request's tensors with its place among the requests its model version holds.
pub(crate) struct Admitted {
    inputs: Vec<(String, Tensor)>,
    rows: usize,
    place: OwnedSemaphorePermit,
}

/// The answer to a request its model version has no room for: 503 / RESOURCE_EXHAUSTED.
fn queue_full(app: &App, name: &str) -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "model `{name}`: {QUEUE_FULL} ({} requests)",
            app.config.queue
        ),
    )
}

/// An output as it goes back: a tensor, or (the classification extension) `BYTES` strings.
pub(crate) enum Answer {
    Tensor(Tensor),
    Strings(Vec<usize>, Vec<String>),
}

impl Answer {
    /// The protocol's datatype.
    pub(crate) fn datatype(&self) -> &'static str {
        match self {
            Answer::Tensor(t) => datatype(t.dtype()),
            Answer::Strings(..) => "BYTES",
        }
    }
    pub(crate) fn shape(&self) -> Vec<usize> {
        match self {
            Answer::Tensor(t) => t.shape().to_vec(),
            Answer::Strings(s, _) => s.clone(),
        }
    }
    /// Its values in the protocol's binary form, appended to `out`; the byte count.
    pub(crate) fn binary(&self, out: &mut Vec<u8>) -> usize {
        match self {
            Answer::Tensor(t) => t.write_le_bytes(out),
            Answer::Strings(_, s) => bytes_binary(s, out),
        }
    }
}

/// Checks the outputs a request asks for exist (before it is queued): an unknown one is a
/// 400 naming it.
pub(crate) fn check_outputs(
    d: &ModelDescriptor,
    wanted: Option<&[Wanted]>,
) -> Result<(), ApiError> {
    if let Some(w) = wanted
        && let Some(w) = w
            .iter()
            .find(|w| !d.outputs.iter().any(|o| o.name == w.name))
    {
        return Err(bad(format!(
            "unknown output `{}` (model outputs: {})",
            w.name,
            d.outputs
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// The outputs a request asked for (None: all, as tensors), in the model's order, each
/// with whether it goes back as binary data (HTTP; `all_binary` when none were listed); a
/// classification the output cannot give is a 400.
pub(crate) fn answers(
    worker: &Worker,
    outputs: Vec<(String, Tensor)>,
    wanted: Option<&[Wanted]>,
    all_binary: bool,
) -> Result<Vec<(String, Answer, bool)>, ApiError> {
    let mut out = Vec::with_capacity(outputs.len());
    for (n, t) in outputs {
        let (k, binary) = match wanted {
            None => (None, all_binary),
            Some(w) => match w.iter().find(|w| w.name == n) {
                Some(w) => (w.classification, w.binary),
                None => continue,
            },
        };
        let a = match k {
            None => Answer::Tensor(t),
            Some(k) => {
                let labels = worker.labels.get(&n).map(|l| &l[..]);
                let (shape, strings) = classify(&n, &t, k, labels).map_err(bad)?;
                Answer::Strings(shape, strings)
            }
        };
        out.push((n, a, binary));
    }
    Ok(out)
}

/// Queues a checked request on `worker` and waits for its answer (at most `timeout`): the
/// outputs. Every protocol's requests go through here. A caller dropped while waiting (its
/// client went away) cancels the request.
pub(crate) async fn run_request(
    app: &App,
    name: &str,
    worker: &Worker,
    admitted: Admitted,
    ticket: Ticket,
) -> Result<Vec<(String, Tensor)>, ApiError> {
    let Admitted {
        inputs,
        rows,
        place,
    } = admitted;
    let Ticket {
        timeout,
        priority,
        variant,
    } = ticket;
    let started = Instant::now();
    let deadline = started + timeout;
    // (run inside the request's span)
    let span = tracing::Span::current();
    let queued = stage_span!("queue", &span, worker.model, variant.as_deref());
    let (reply, rx) = oneshot::channel();
    let cancelled = Arc::new(AtomicBool::new(false));
    let mut guard = CancelOnDrop(Arc::clone(&cancelled), false);
    let job = Job {
        inputs,
        rows,
        reply,
        cancelled,
        span,
        queued,
        place: Some(place),
        variant,
    };
    // Triton's default level (0) comes after every explicit one
    let priority = if priority == 0 { u64::MAX } else { priority };
    let item = Input::new(job)
        .with_deadline(deadline)
        .with_parent(tracing::Span::current());
    // a refused request is handed back and dropped here: its caller gets the answer below
    match worker.queue.try_submit(item, priority) {
        Ok(()) => {
            app.stats.queued.inc();
        }
        Err(SubmitError::Full(_)) => return Err(queue_full(app, name)),
        Err(SubmitError::Closed(_)) => {
            return Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("model `{name}` is unloading"),
            ));
        }
    }
    let answer = tokio::time::timeout_at(deadline.into(), rx).await;
    guard.1 = true;
    let outputs = match answer {
        Ok(Ok(Ok(outputs))) => outputs,
        Ok(Ok(Err(e))) => return Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e)),
        // dropped unanswered: the pipeline found its deadline passed
        Ok(Err(_)) | Err(_) => {
            return Err(ApiError(
                StatusCode::GATEWAY_TIMEOUT,
                format!("deadline of {} µs passed", timeout.as_micros()),
            ));
        }
    };
    let d = worker.model.descriptor();
    app.stats
        .latency(&d.name, &d.version.to_string(), started.elapsed());
    Ok(outputs)
}

async fn infer(app: &App, name: &str, p: Prepared) -> Result<(Value, Vec<u8>), ApiError> {
    let d = p.worker.model.descriptor();
    check_outputs(d, p.wanted.as_deref())?;
    let admitted = model_inputs(app, name, &p.worker, p.inputs).await?;
    let outputs = run_request(app, name, &p.worker, admitted, p.ticket).await?;
    let answers = answers(&p.worker, outputs, p.wanted.as_deref(), p.all_binary)?;
    // requested outputs (all without a list), each as JSON or, when asked, binary data
    let mut tail = Vec::new();
    let mut outs: Vec<Value> = Vec::new();
    for (n, a, as_binary) in &answers {
        if *as_binary {
            let size = a.binary(&mut tail);
            outs.push(
                json!({"name": n, "datatype": a.datatype(), "shape": a.shape(),
                             "parameters": {"binary_data_size": size}}),
            );
        } else {
            outs.push(match a {
                Answer::Tensor(t) => output_json(n, t),
                Answer::Strings(shape, s) => {
                    json!({"name": n, "datatype": "BYTES", "shape": shape, "data": s})
                }
            });
        }
    }
    let mut resp = json!({
        "model_name": d.name,
        "model_version": d.version.to_string(),
        "outputs": outs,
    });
    if let Some(id) = p.id {
        resp["id"] = id;
    }
    Ok((resp, tail))
}

/// An inference answer: plain JSON, or (with binary outputs) the JSON header followed by
/// the outputs' bytes.
fn answer(json: &Value, tail: Vec<u8>) -> Response {
    if tail.is_empty() {
        return Json(json).into_response();
    }
    let mut body = serde_json::to_vec(json).unwrap_or_default();
    let len = body.len();
    body.extend_from_slice(&tail);
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(HEADER_LENGTH, HeaderValue::from(len));
    r
}

/// The repository extension's load, for both protocols: the model at `path` (see
/// [`load_model`]) served as `name` at `version`; its version. Loading runs off the async
/// threads; a model that cannot be prepared is a 400 naming the path and the cause, and the
/// versions already served stay untouched.
pub(crate) async fn load_version(
    app: &Arc<App>,
    name: &str,
    path: String,
    version: Option<String>,
) -> Result<String, ApiError> {
    let n = name.to_owned();
    let threads = app.config.threads;
    let model = tokio::task::spawn_blocking(move || {
        load_model(&n, std::path::Path::new(&path), version.as_deref(), threads)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| bad(error_chain(&e)))?;
    let v = model.descriptor().version.to_string();
    let app2 = Arc::clone(app);
    tokio::task::spawn_blocking(move || app2.load(model))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(v)
}

/// The repository extension's unload, for both protocols: `version` of `name`, or every
/// version; how many were unloaded (404 when none).
pub(crate) async fn unload_versions(
    app: &Arc<App>,
    name: &str,
    version: Option<&str>,
) -> Result<usize, ApiError> {
    let versions = match version {
        Some(v) => vec![version_param(v)?],
        None => app.registry.versions(name),
    };
    let app2 = Arc::clone(app);
    let n = name.to_owned();
    let removed =
        tokio::task::spawn_blocking(move || versions.iter().filter(|v| app2.unload(&n, v)).count())
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if removed == 0 {
        return Err(not_found(format!("no model `{name}` to unload")));
    }
    Ok(removed)
}

impl App {
    /// Whether at least one model version is served (server readiness on both protocols).
    pub(crate) fn serving(&self) -> bool {
        !self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// The versions of `name` served, as text (model metadata on both protocols).
    pub(crate) fn versions(&self, name: &str) -> Vec<String> {
        self.registry
            .versions(name)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The repository index: every model version served (name, version), in order.
    pub(crate) fn index(&self) -> Vec<(String, String)> {
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .map(|(n, v)| (n.clone(), v.to_string()))
            .collect()
    }
}

/// The HTTP routes of the KServe v2 / Open Inference Protocol over `app`, to serve with
/// `axum::serve` or to merge into an application's own router.
pub fn router(app: Arc<App>) -> Router {
    async fn live() -> Json<Value> {
        Json(json!({"live": true}))
    }
    async fn ready(State(app): State<Arc<App>>) -> Response {
        let ready = app.serving();
        let code = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (code, Json(json!({"ready": ready}))).into_response()
    }
    async fn meta(
        State(app): State<Arc<App>>,
        Path(p): Path<Vec<(String, String)>>,
    ) -> Result<Json<Value>, ApiError> {
        let (name, version) = name_version(&p);
        let w = app.worker(&name, version.as_deref())?;
        let versions = app.versions(&name);
        Ok(Json(metadata(&w, versions)))
    }
    async fn model_ready(
        State(app): State<Arc<App>>,
        Path(p): Path<Vec<(String, String)>>,
    ) -> Result<Json<Value>, ApiError> {
        let (name, version) = name_version(&p);
        let w = app.worker(&name, version.as_deref())?;
        Ok(Json(
            json!({"name": name, "version": w.model.descriptor().version.to_string(), "ready": true}),
        ))
    }
    async fn infer_route(
        State(app): State<Arc<App>>,
        Path(p): Path<Vec<(String, String)>>,
        headers: HeaderMap,
        body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    ) -> Response {
        let (name, _) = name_version(&p);
        let span = request_span("http", &name, &headers);
        infer_http(app, p, headers, body).instrument(span).await
    }
    async fn infer_http(
        app: Arc<App>,
        p: Vec<(String, String)>,
        headers: HeaderMap,
        body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    ) -> Response {
        let started = Instant::now();
        let (name, version) = name_version(&p);
        let sticky = headers
            .get(app.config.sticky_header.as_str())
            .map(|v| v.as_bytes().to_vec());
        // JSON whatever the content type (tritonclient sends none); with the binary tensor
        // data extension, a JSON header of the given length and then the tensors' bytes
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                let e = ApiError(e.status(), format!("request body: {}", e.body_text()));
                app.stats.response(&name, &version.unwrap_or_default(), e.0);
                return e.into_response();
            }
        };
        let json_len = match headers.get(HEADER_LENGTH).map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| bad(format!("{HEADER_LENGTH}: {v:?} is not a length")))
        }) {
            None => Ok(None),
            Some(r) => r.map(Some),
        };
        // what the access log shows of the request's parameters (the redactor hides them)
        let (mut prompt, mut token) = (None, None);
        let prepared = json_len.and_then(|json_len| {
            prepare(
                &app,
                &name,
                version.as_deref(),
                sticky.as_deref(),
                body,
                json_len,
            )
        });
        let result = match prepared {
            Ok(p) => {
                let param = |k: &str| {
                    p.params
                        .as_ref()
                        .and_then(|m| m.get(k))
                        .map(|v| v.to_string())
                };
                (prompt, token) = (param("prompt"), param("token"));
                infer(&app, &name, p).await
            }
            Err(e) => Err(e),
        };
        let (status, answered) = match &result {
            Ok((j, _)) => (
                StatusCode::OK,
                j["model_version"].as_str().unwrap_or_default().to_owned(),
            ),
            Err(e) => (e.0, version.clone().unwrap_or_default()),
        };
        app.stats.response(&name, &answered, status);
        record_status(status);
        // the access log: structured, and redacted by the subscriber (authorization, prompt,
        // token, password never reach the output)
        tracing::info!(
            target: "serve::access",
            model = %name,
            version = %answered,
            status = status.as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            authorization = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
            prompt,
            token,
            "infer"
        );
        match result {
            Ok((j, tail)) => answer(&j, tail),
            Err(e) => e.into_response(),
        }
    }
    async fn repo_index(State(app): State<Arc<App>>) -> Json<Value> {
        let models: Vec<Value> = app
            .index()
            .into_iter()
            .map(|(name, version)| json!({"name": name, "version": version, "state": "READY"}))
            .collect();
        Json(Value::Array(models))
    }
    async fn repo_load(
        State(app): State<Arc<App>>,
        Path(name): Path<String>,
        body: Option<Json<Value>>,
    ) -> Result<Json<Value>, ApiError> {
        let body = body.map(|Json(b)| b).unwrap_or_default();
        let path = body["parameters"]["path"]
            .as_str()
            .ok_or_else(|| bad("load needs parameters.path"))?
            .to_owned();
        let version = body["parameters"]["version"].as_str().map(str::to_owned);
        let v = load_version(&app, &name, path, version).await?;
        Ok(Json(json!({"name": name, "version": v, "loaded": true})))
    }
    async fn repo_unload(
        State(app): State<Arc<App>>,
        Path(name): Path<String>,
        body: Option<Json<Value>>,
    ) -> Result<Json<Value>, ApiError> {
        let body = body.map(|Json(b)| b).unwrap_or_default();
        let removed = unload_versions(&app, &name, body["parameters"]["version"].as_str()).await?;
        Ok(Json(json!({"name": name, "unloaded": removed})))
    }
    async fn metrics(State(app): State<Arc<App>>) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
        );
        (headers, render_metrics(&app)).into_response()
    }
    Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(meta))
        .route("/v2/models/{name}/versions/{version}", get(meta))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready),
        )
        .route("/v2/models/{name}/infer", post(infer_route))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_route),
        )
        .route("/v2/repository/index", post(repo_index))
        .route("/v2/repository/models/{name}/load", post(repo_load))
        .route("/v2/repository/models/{name}/unload", post(repo_unload))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(app.config.max_body))
        .with_state(app)
}

fn name_version(p: &[(String, String)]) -> (String, Option<String>) {
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    (get("name").unwrap_or_default(), get("version"))
}

/// `/metrics`: the server's own metrics, then every model version's pipeline (its stages'
/// counters, queue depths and latencies) labelled `model` and `version`.
fn render_metrics(app: &App) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    app.stats.register(&mut registry);
    let mut pipelines = inferkit_pipeline::Collector::new();
    for ((name, version), worker) in app.workers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        if let Some(run) = &worker.run {
            let version = version.to_string();
            pipelines.push(
                [("model", name.as_str()), ("version", version.as_str())],
                run.metrics().snapshot(),
            );
        }
    }
    registry.register_collector(Box::new(pipelines));
    let mut text = String::new();
    // (writing to a String cannot fail)
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    text
}

/// An error and its causes, one line (a cause already in the text is not repeated).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}
