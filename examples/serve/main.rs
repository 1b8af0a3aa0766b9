//! An application that embeds inferkit-serve: the bundled EfficientNet-Lite0 and, when
//! fetched (`scripts/fetch-models.sh`), MiniLM, behind the KServe v2 HTTP endpoints, next to a
//! route of the application's own.
//!
//! ```text
//! cargo run --release --example serve -- [127.0.0.1:8000]
//! curl localhost:8000/v2/models/efficientnet-lite0
//! ```
//!
//! The full server, with its flags (models, A/B routes, batching, queue, timeouts), is the
//! `inferkit-serve` binary: `cargo run --release -p inferkit-serve -- --help`.

use std::path::Path;
use std::sync::Arc;

use axum::serve::ListenerExt;
use inferkit_serve::{App, Config, load_model, router};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let threads = inferkit::pipeline::available_cpus();
    let app = App::new(Config::default().with_threads(threads).with_max_batch(16));
    let effnet = root.join("assets/models/efficientnet-lite0.pth");
    app.load(load_model("efficientnet-lite0", &effnet, None, threads)?);
    let minilm = root.join(".cache/models/all-MiniLM-L6-v2");
    if minilm.join("model.safetensors").exists() {
        app.load(load_model("all-minilm-l6-v2", &minilm, None, threads)?);
    }
    // the protocol's routes, merged with one of the application's own
    let routes = router(Arc::clone(&app)).route("/hello", axum::routing::get(|| async { "hello" }));
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        // TCP_NODELAY: small answers are not held back by Nagle's algorithm
        let listener = tokio::net::TcpListener::bind(&addr).await?.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        println!("serving on http://{addr} (Ctrl-C stops)");
        axum::serve(listener, routes)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
    })?;
    app.shutdown(); // answers what is queued, joins every model thread
    Ok(())
}
