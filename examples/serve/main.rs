//! A model server speaking the KServe v2 / Open Inference Protocol over HTTP/REST.
//!
//! ```text
//! cargo run --release --example serve -- [--addr 127.0.0.1:8000] [--model NAME=PATH[@VERSION]]… [--max-batch N] [--max-delay-ms MS] [--queue N] [--timeout-ms MS]
//! ```
//!
//! With no `--model` it serves the bundled EfficientNet-Lite0 on the native CPU backend as
//! `efficientnet-lite0` and, when fetched, MiniLM as `all-minilm-l6-v2`. A `.onnx` path loads
//! through the ONNX backend (tract); a `.pth` path as EfficientNet-Lite0 weights; a folder
//! as a MiniLM-layout BERT.
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
//! never on the async runtime's. SIGINT/SIGTERM: stop accepting, answer what is queued,
//! exit 0.

mod app;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use app::{App, Config, load};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Args {
    addr: String,
    models: Vec<(String, PathBuf, Option<String>)>,
    config: Config,
}

fn parse() -> Result<Args, String> {
    let usage = "usage: serve [--addr HOST:PORT] [--model NAME=PATH[@VERSION]]… [--max-batch N] [--max-delay-ms MS] [--queue N] [--timeout-ms MS]";
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        addr: "127.0.0.1:8000".into(),
        models: Vec::new(),
        config: Config::default(),
    };
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{usage}"));
        let num = |name: &str, v: String| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: `{v}` is not a whole number"))
        };
        match a.as_str() {
            "--addr" => args.addr = value("--addr")?,
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
    let app = App::new(args.config.clone());
    let mut models = args.models.clone();
    if models.is_empty() {
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
        match load(name, path, version.as_deref()) {
            Ok(m) => {
                eprintln!(
                    "serving {} {} from {}",
                    name,
                    m.descriptor().version,
                    path.display()
                );
                app.load(m);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
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
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .map_err(|e| format!("{}: {e}", args.addr))?;
        eprintln!("listening on http://{}", args.addr);
        axum::serve(listener, app::router(Arc::clone(&app)))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    });
    // answer what is queued, join every model thread
    app.shutdown();
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
