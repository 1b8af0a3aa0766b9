//! What the server tests share (`tests/serve.rs`, `tests/faults.rs`, each naming
//! `inferkit_serve` as `app` at its root): serving an [`App`] on a free port, and models
//! that are slow on purpose (one that sleeps, one held at a gate).

use std::sync::Arc;
use std::time::Duration;

use inferkit::infer_core::{
    DType, Device, DeviceContext, Dim, Model, ModelDescriptor, Plan, RuntimeHint, Session, Tensor,
    TensorSpec, TensorView,
};
use serde_json::{Value, json};

use crate::app::{self, App, Config};

/// Serves `app` on 127.0.0.1 at a free port, in the background: its base URL.
pub(crate) async fn serve(app: Arc<App>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app::router(app)).await.unwrap();
    });
    format!("http://{addr}")
}

/// Serves `app`'s gRPC routes on 127.0.0.1 at a free port, as the binary does: a channel
/// to them.
pub(crate) async fn channel(app: Arc<App>) -> tonic::transport::Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app::grpc_router(app)).await.unwrap();
    });
    tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A client of `app`'s inference service (answers up to 64 MiB).
pub(crate) async fn grpc(
    app: Arc<App>,
) -> app::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient<
    tonic::transport::Channel,
> {
    app::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient::new(
        channel(app).await,
    )
    .max_decoding_message_size(64 << 20)
}

/// A GET answered with JSON: its body.
pub(crate) async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// A JSON POST: its answer's JSON body.
pub(crate) async fn post_json(url: &str, body: &Value) -> Value {
    reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// How a [`Doubler`]'s run waits before it answers.
#[derive(Debug, Clone)]
enum Hold {
    /// A fixed time: slow on purpose.
    Sleep(Duration),
    /// Until a gate lets the run through (or 10 s pass): held for as long as a test needs.
    Gate(crossbeam_channel::Receiver<()>),
}

/// A model that doubles its (f32) input after its hold.
#[derive(Debug)]
struct Doubler(ModelDescriptor, Hold);

impl Plan for Doubler {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.0
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn session(&self) -> inferkit::infer_core::Result<Box<dyn Session>> {
        Ok(Box::new(DoublerSession(
            self.0.clone(),
            self.1.clone(),
            Device::Cpu.open()?,
        )))
    }
}

/// The descriptor, the hold, and the device context held for the session's life.
#[derive(Debug)]
struct DoublerSession(ModelDescriptor, Hold, #[allow(dead_code)] DeviceContext);

impl Session for DoublerSession {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.0
    }
    fn run(
        &mut self,
        inputs: &[(&str, TensorView<'_>)],
    ) -> inferkit::infer_core::Result<Vec<Tensor>> {
        match &self.1 {
            Hold::Sleep(d) => std::thread::sleep(*d),
            Hold::Gate(gate) => {
                let _ = gate.recv_timeout(Duration::from_secs(10));
            }
        }
        let TensorView::F32(x) = &inputs[0].1 else {
            unreachable!()
        };
        Ok(vec![Tensor::F32(x.mapv(|v| v * 2.0))])
    }
}

/// A [`Doubler`] named `name` (version 1) with f32 input `x` and output `y` of `shape`.
fn doubler(name: &str, shape: Vec<Dim>, hold: Hold) -> Model {
    let spec = |n: &str| TensorSpec {
        name: n.into(),
        dtype: DType::F32,
        shape: shape.clone(),
    };
    Model::new(
        Arc::new(Doubler(
            ModelDescriptor {
                name: name.into(),
                version: semver::Version::new(1, 0, 0),
                inputs: vec![spec("x")],
                outputs: vec![spec("y")],
                runtime: RuntimeHint::Cpu,
                metadata: Default::default(),
            },
            hold,
        )),
        1,
    )
}

/// A model `slow` that doubles its `[batch, 2]` input after sleeping 150 ms.
pub(crate) fn slow() -> Model {
    doubler(
        "slow",
        vec![Dim::Dynamic("batch".into()), Dim::Fixed(2)],
        Hold::Sleep(Duration::from_millis(150)),
    )
}

/// A slow model (150 ms a batch) answering one request at a time, and the body of one
/// request to it.
pub(crate) async fn slow_server(queue: usize) -> (Arc<App>, String, Value) {
    let app = App::new(
        Config::default()
            .with_max_batch(1)
            .with_max_delay(Duration::ZERO)
            .with_queue(queue),
    );
    app.load(slow());
    let base = serve(Arc::clone(&app)).await;
    let body =
        json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]});
    (app, base, body)
}

/// A gated model `gated` taking `[batch, 3, side, side]` images (input `x`, output `y`),
/// and the gate's sender: each `send(())` lets one batch run.
pub(crate) fn gated_images(side: usize) -> (Model, crossbeam_channel::Sender<()>) {
    let (open, gate) = crossbeam_channel::unbounded();
    let shape = vec![
        Dim::Dynamic("batch".into()),
        Dim::Fixed(3),
        Dim::Fixed(side),
        Dim::Fixed(side),
    ];
    (doubler("gated", shape, Hold::Gate(gate)), open)
}

/// Reads a gauge or counter of `/metrics`.
pub(crate) async fn metric(base: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// Waits (at most 10 s) until `/metrics` shows `name` at `value`.
pub(crate) async fn wait_for_metric(base: &str, name: &str, value: u64) {
    for _ in 0..200 {
        if metric(base, name).await == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} did not reach {value} in 10 s");
}
