//! What the server tests share (`tests/serve.rs`, `tests/faults.rs`, each naming
//! `inferkit_serve` as `app` at its root): serving an [`App`] on a free port, and a
//! deliberately slow model.

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

/// A model that doubles its input after sleeping: slow on purpose.
#[derive(Debug)]
pub(crate) struct Slow(ModelDescriptor);

impl Plan for Slow {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.0
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn session(&self) -> inferkit::infer_core::Result<Box<dyn Session>> {
        Ok(Box::new(SlowSession(self.0.clone(), Device::Cpu.open()?)))
    }
}

/// The descriptor, and the device context held for the session's life.
#[derive(Debug)]
struct SlowSession(ModelDescriptor, #[allow(dead_code)] DeviceContext);

impl Session for SlowSession {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.0
    }
    fn run(
        &mut self,
        inputs: &[(&str, TensorView<'_>)],
    ) -> inferkit::infer_core::Result<Vec<Tensor>> {
        std::thread::sleep(Duration::from_millis(150));
        let TensorView::F32(x) = &inputs[0].1 else {
            unreachable!()
        };
        Ok(vec![Tensor::F32(x.mapv(|v| v * 2.0))])
    }
}

pub(crate) fn slow() -> Model {
    let spec = |n: &str| TensorSpec {
        name: n.into(),
        dtype: DType::F32,
        shape: vec![Dim::Dynamic("batch".into()), Dim::Fixed(2)],
    };
    Model::new(
        Arc::new(Slow(ModelDescriptor {
            name: "slow".into(),
            version: semver::Version::new(1, 0, 0),
            inputs: vec![spec("x")],
            outputs: vec![spec("y")],
            runtime: RuntimeHint::Cpu,
            metadata: Default::default(),
        })),
        1,
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

/// A model that doubles its input once a gate lets each run through (or after 10 s): a
/// batch held running for as long as a test needs.
#[derive(Debug)]
pub(crate) struct Gated(ModelDescriptor, crossbeam_channel::Receiver<()>);

impl Plan for Gated {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.0
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn session(&self) -> inferkit::infer_core::Result<Box<dyn Session>> {
        Ok(Box::new(GatedSession(
            self.0.clone(),
            self.1.clone(),
            Device::Cpu.open()?,
        )))
    }
}

#[derive(Debug)]
struct GatedSession(
    ModelDescriptor,
    crossbeam_channel::Receiver<()>,
    #[allow(dead_code)] DeviceContext,
);

impl Session for GatedSession {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.0
    }
    fn run(
        &mut self,
        inputs: &[(&str, TensorView<'_>)],
    ) -> inferkit::infer_core::Result<Vec<Tensor>> {
        let _ = self.1.recv_timeout(Duration::from_secs(10));
        let TensorView::F32(x) = &inputs[0].1 else {
            unreachable!()
        };
        Ok(vec![Tensor::F32(x.mapv(|v| v * 2.0))])
    }
}

/// A gated model `gated` taking `[batch, 3, side, side]` images (input `x`, output `y`),
/// and the gate's sender: each `send(())` lets one batch run.
pub(crate) fn gated_images(side: usize) -> (Model, crossbeam_channel::Sender<()>) {
    let (open, gate) = crossbeam_channel::unbounded();
    let spec = |n: &str| TensorSpec {
        name: n.into(),
        dtype: DType::F32,
        shape: vec![
            Dim::Dynamic("batch".into()),
            Dim::Fixed(3),
            Dim::Fixed(side),
            Dim::Fixed(side),
        ],
    };
    let model = Model::new(
        Arc::new(Gated(
            ModelDescriptor {
                name: "gated".into(),
                version: semver::Version::new(1, 0, 0),
                inputs: vec![spec("x")],
                outputs: vec![spec("y")],
                runtime: RuntimeHint::Cpu,
                metadata: Default::default(),
            },
            gate,
        )),
        1,
    );
    (model, open)
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
