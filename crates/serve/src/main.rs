//! `inferkit-serve`: a model server speaking the KServe v2 / Open Inference Protocol over
//! HTTP/REST.
//!
//! ```text
//! cargo run --release -p inferkit-serve -- [--addr 127.0.0.1:8000] [--grpc-addr 127.0.0.1:8001|none] [--model NAME=PATH[@VERSION]]…
//!     [--ab NAME=VERSION:WEIGHT,VERSION:WEIGHT…]… [--sticky-header x-session-id]
//!     [--threads N] [--max-batch N] [--max-delay-ms MS] [--queue N] [--timeout-ms MS]
//!     [--model-repository DIR] [--max-message-bytes N] [--otlp-endpoint URL]
//! ```
//!
//! `--model-repository DIR` serves a repository in Triton's layout
//! (`DIR/<model>/config.pbtxt`, `DIR/<model>/<version>/model.{onnx,safetensors,pth}`; see
//! the library's `repository` module), with models whose `BYTES` input takes encoded
//! images or texts and labels for the classification extension
//! (`examples/model_repository` is one). `--max-message-bytes` (default 64 MiB) is the
//! largest request over either protocol; a larger one is refused with a named error (HTTP
//! 413, gRPC RESOURCE_EXHAUSTED/OUT_OF_RANGE).
//!
//! With no `--model`, run from a checkout of inferkit, it serves the bundled EfficientNet-Lite0 on the native CPU backend as
//! `efficientnet-lite0` and, when fetched, MiniLM as `all-minilm-l6-v2`. A `.onnx` path loads
//! through the ONNX backend (tract); a `.pth` path as EfficientNet-Lite0 weights; a folder
//! as a MiniLM-layout BERT.
//!
//! gRPC (`--grpc-addr`, 127.0.0.1:8001 by default, as Triton's ports; `none` turns it off;
//! both ports answer both protocols):
//! the KServe v2 `inference.GRPCInferenceService` — ServerLive/Ready/Metadata, ModelReady,
//! ModelMetadata, ModelInfer with typed or raw contents (raw outputs), ModelStreamInfer,
//! RepositoryIndex/ModelLoad/ModelUnload, and `grpc.health.v1`;
//! `grpc-timeout` and
//! the `timeout` parameter set the request's deadline. Same models, queues and batches as
//! HTTP.
//!
//! Endpoints: `GET /v2/health/live`, `POST /v2/repository/models/{name}/load` (body
//! `{"parameters": {"path": "…", "version": "2"}}`) and `…/unload` (`{"parameters":
//! {"version": "2"}}`, or every version) — a new version serves new requests at once while
//! the old one answers what it has queued, `GET /v2/health/ready`, `GET /v2/models/{name}[/versions/{v}]`
//! (metadata), `GET …/ready`, `POST …/infer` (JSON tensors; `parameters.timeout` in µs as
//! Triton's schedule-policy extension defines it), `GET /metrics` (Prometheus text). Errors
//! are `{"error": …}`: 400 malformed or mismatched input (named), 404 unknown model or
//! version, 503 with `Retry-After` when a model's queue is full, 504 when a deadline passes.
//! Requests to one model version are batched together (`--max-batch` requests, waiting at
//! most `--max-delay-ms`) through `pipeline`'s batcher and run on that model's own thread,
//! never on the async runtime's. A request's `parameters.priority` (Triton's numbering: 1
//! is the highest; none or 0 is the default level, below every explicit one) orders the
//! queue; within a level, first come first served. A client that disconnects before its
//! answer cancels its queued request (counted in `inferkit_cancelled_total`).
//!
//! A/B: `--ab NAME=1:90,2:10` spreads requests to NAME that name no version over versions 1
//! and 2 by weight; a request with the sticky header (default `x-session-id`) always goes to
//! the same version for the same value (its hash picks the share); the answer's
//! `model_version` says which version answered. A request naming a version is not routed.
//!
//! Traces: each inference request is an `infer` span (OpenTelemetry server span) that
//! continues the caller's W3C trace (`traceparent` header or gRPC metadata), with `queue`,
//! `batch` and `run` spans under it, each carrying `model.name`, `model.version` and
//! `ab.variant`. `--otlp-endpoint http://HOST:4317` exports them over OTLP/gRPC (service
//! name `inferkit-serve`, or `OTEL_SERVICE_NAME`); the last spans are sent at shutdown.
//!
//! Logs: one JSON object per line on stderr (an access line per inference request: model,
//! version, status, latency), with the `pipeline` crate's redaction: the `authorization`
//! header and `prompt`, `token`, `password` fields are written as `[REDACTED]`.
//!
//! `--threads N` (default: the CPUs this process may use, as onnxruntime's default) is the
//! thread count each native model runs a batch on.
//!
//! SIGINT/SIGTERM: stop accepting, answer what is queued, exit 0.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use inferkit_pipeline::Redact;
use inferkit_serve::telemetry::Otlp;
use inferkit_serve::{App, Config, Route, grpc_router, load_model, parse_version, router};
use tracing_subscriber::layer::SubscriberExt;

/// The inferkit checkout this binary was built in (its bundled models, when no `--model`).
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// mimalloc: under load glibc's per-thread arenas held about twice the live heap (request
/// bodies and batches of megabytes, freed on other threads than allocated them).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    addr: String,
    grpc_addr: Option<String>,
    models: Vec<(String, PathBuf, Option<String>)>,
    repository: Option<PathBuf>,
    routes: Vec<(String, Route)>,
    otlp: Option<String>,
    config: Config,
}

fn parse() -> Result<Args, String> {
    let usage = "usage: inferkit-serve [--addr HOST:PORT] [--grpc-addr HOST:PORT|none] [--model NAME=PATH[@VERSION]]… [--ab NAME=VERSION:WEIGHT,VERSION:WEIGHT…]… [--sticky-header NAME] [--threads N] [--max-batch N] [--max-delay-ms MS] [--queue N] [--timeout-ms MS] [--model-repository DIR] [--max-message-bytes N] [--otlp-endpoint URL]";
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        addr: "127.0.0.1:8000".into(),
        grpc_addr: Some("127.0.0.1:8001".into()),
        models: Vec::new(),
        repository: None,
        routes: Vec::new(),
        otlp: None,
        config: Config::default().with_threads(inferkit_pipeline::available_cpus()),
    };
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{usage}"));
        let num = |name: &str, v: String| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: `{v}` is not a whole number"))
        };
        match a.as_str() {
            "--addr" => args.addr = value("--addr")?,
            "--grpc-addr" => {
                let v = value("--grpc-addr")?;
                args.grpc_addr = (v != "none").then_some(v);
            }
            "--model" => {
                let v = value("--model")?;
                let (name, rest) = v
                    .split_once('=')
                    .ok_or(format!("--model {v}: expected NAME=PATH[@VERSION]"))?;
                let (path, version) = match rest.rsplit_once('@') {
                    Some((p, ver)) => (p, Some(ver.to_owned())),
                    None => (rest, None),
                };
                args.models
                    .push((name.to_owned(), PathBuf::from(path), version));
            }
            "--ab" => {
                let v = value("--ab")?;
                let (name, split) = v
                    .split_once('=')
                    .ok_or(format!("--ab {v}: expected NAME=VERSION:WEIGHT,…"))?;
                let split = split
                    .split(',')
                    .map(|part| {
                        let (ver, w) = part
                            .split_once(':')
                            .ok_or(format!("--ab {v}: `{part}` is not VERSION:WEIGHT"))?;
                        let ver = parse_version(ver).map_err(|e| format!("--ab {v}: {e}"))?;
                        Ok((ver, num("--ab weight", w.to_owned())? as u32))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                args.routes.push((name.to_owned(), Route::new(split)));
            }
            "--sticky-header" => args.config.sticky_header = value("--sticky-header")?,
            "--threads" => {
                args.config.threads = num("--threads", value("--threads")?)?.max(1) as usize
            }
            "--max-batch" => {
                args.config.max_batch = num("--max-batch", value("--max-batch")?)?.max(1) as usize
            }
            "--max-delay-ms" => {
                args.config.max_delay =
                    Duration::from_millis(num("--max-delay-ms", value("--max-delay-ms")?)?)
            }
            "--queue" => args.config.queue = num("--queue", value("--queue")?)?.max(1) as usize,
            "--timeout-ms" => {
                args.config.default_timeout =
                    Duration::from_millis(num("--timeout-ms", value("--timeout-ms")?)?)
            }
            "--model-repository" => {
                args.repository = Some(PathBuf::from(value("--model-repository")?))
            }
            "--max-message-bytes" => {
                args.config.max_body =
                    num("--max-message-bytes", value("--max-message-bytes")?)? as usize
            }
            "--otlp-endpoint" => args.otlp = Some(value("--otlp-endpoint")?),
            "-h" | "--help" => return Err(usage.into()),
            s => return Err(format!("unexpected argument {s}\n{usage}")),
        }
    }
    Ok(args)
}

fn main() -> std::process::ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // spans over OTLP when asked (the exporter's channel lives on the runtime)
    let otlp = match &args.otlp {
        Some(endpoint) => {
            let _in_runtime = runtime.enter();
            match Otlp::new(endpoint, "inferkit-serve") {
                Ok(o) => Some(o),
                Err(e) => {
                    eprintln!("error: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    // structured JSON logs on stderr; authorization, prompt, token, password redacted
    let logs = tracing_subscriber::fmt()
        .fmt_fields(Redact::default())
        .event_format(Redact::default().json())
        .with_writer(std::io::stderr)
        .finish()
        .with(otlp.as_ref().map(Otlp::layer));
    if let Err(e) = tracing::subscriber::set_global_default(logs) {
        eprintln!("error: logging: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let app = App::new(args.config.clone());
    for (name, route) in &args.routes {
        app.route(name, route.clone());
    }
    if let Some(dir) = &args.repository {
        let loaded = inferkit_serve::repository::scan(dir).and_then(|entries| {
            entries
                .into_iter()
                .map(|e| {
                    let s = inferkit_serve::repository::load(&e, args.config.threads)?;
                    Ok((e, s))
                })
                .collect::<Result<Vec<_>, inferkit_serve::Error>>()
        });
        match loaded {
            Ok(all) => {
                for (e, s) in all {
                    tracing::info!(model = %e.name, version = %e.version, path = %e.path.display(), "serving");
                    app.load(s);
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let mut models = args.models.clone();
    if models.is_empty() && args.repository.is_none() {
        models.push((
            "efficientnet-lite0".into(),
            Path::new(ROOT).join("assets/models/efficientnet-lite0.pth"),
            None,
        ));
        let minilm = Path::new(ROOT).join(".cache/models/all-MiniLM-L6-v2");
        if minilm.join("model.safetensors").exists() {
            models.push(("all-minilm-l6-v2".into(), minilm, None));
        }
    }
    for (name, path, version) in &models {
        match load_model(name, path, version.as_deref(), args.config.threads) {
            Ok(m) => {
                tracing::info!(
                    model = %name,
                    version = %m.descriptor().version,
                    path = %path.display(),
                    "serving"
                );
                app.load(m);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let served = runtime.block_on(async {
        // one signal stops both protocols
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        });
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        // both protocols on each port (axum serves HTTP/1.1 and h2c side by side)
        let routes = router(Arc::clone(&app)).merge(grpc_router(Arc::clone(&app)));
        let serve_on = |addr: Option<String>, protocol: &'static str| {
            let routes = routes.clone();
            let stopped = stopped.clone();
            async move {
                let Some(addr) = addr else {
                    return Ok(());
                };
                let listener = tokio::net::TcpListener::bind(&addr)
                    .await
                    .map_err(|e| format!("{addr}: {e}"))?;
                // the address bound (the port the system chose for `:0`)
                let bound = listener.local_addr().map_err(|e| format!("{addr}: {e}"))?;
                tracing::info!(addr = %bound, protocol, "listening");
                // TCP_NODELAY, as Triton and tonic's own server set it: without it a small
                // answer written in parts (gRPC's headers, data and trailers) waited for
                // the client's delayed ACK, 40 ms a request
                let listener = listener.tap_io(|tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "TCP_NODELAY not set");
                    }
                });
                axum::serve(listener, routes)
                    .with_graceful_shutdown(wait(stopped))
                    .await
                    .map_err(|e| format!("{addr}: {e}"))
            }
        };
        let http = serve_on(Some(args.addr.clone()), "http");
        let grpc = serve_on(args.grpc_addr.clone(), "grpc");
        // the first to fail (a port taken) stops the other
        tokio::try_join!(http, grpc).map(|_| ())
    });
    // answer what is queued, join every model thread
    app.shutdown();
    tracing::info!(
        cancelled = app.stats_cancelled(),
        "stopped: every queued request answered"
    );
    // the last spans, sent while the runtime (the exporter's channel) still runs
    if let Some(Err(e)) = otlp.map(Otlp::shutdown) {
        eprintln!("error: {e}");
    }
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
