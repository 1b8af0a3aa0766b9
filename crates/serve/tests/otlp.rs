//! Traces from the user's side: the `inferkit-serve` binary with `--otlp-endpoint` pointing
//! at an OTLP collector run in this test (a tonic `TraceService` on 127.0.0.1), serving a
//! model in two versions behind an A/B route. Requests over HTTP and gRPC carrying a W3C
//! `traceparent` come back in the collector as spans of the caller's trace: `infer` (a
//! child of the caller's span) with `route` (the A/B router's pick), `queue` and `batch`
//! under it and `run` under `batch`, each with `model.name`, `model.version` and the
//! `ab.variant` that picked the version, and the pipeline's `item` span under `infer`. A
//! request without `traceparent` starts a trace of its own.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use inferkit_serve::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use inferkit_serve::grpc::proto::model_infer_request::InferInputTensor;
use inferkit_serve::grpc::proto::{InferTensorContents, ModelInferRequest};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/onnx");

/// An OTLP collector that keeps what it is sent.
#[derive(Default, Clone)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// One exported span, flattened: its service, ids, name and string attributes.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    trace: String,
    id: String,
    parent: String,
    name: String,
    attributes: HashMap<String, String>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn spans(c: &Collector) -> Vec<Span> {
    let mut out = Vec::new();
    for req in c.0.lock().unwrap().iter() {
        for rs in &req.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
                .unwrap_or_default();
            for s in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                out.push(Span {
                    service: service.clone(),
                    trace: hex(&s.trace_id),
                    id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    name: s.name.clone(),
                    attributes: s
                        .attributes
                        .iter()
                        .filter_map(|kv| {
                            Some((kv.key.clone(), text(kv.value.as_ref()?.value.as_ref()?)?))
                        })
                        .collect(),
                });
            }
        }
    }
    out
}

fn text(v: &AnyValue) -> Option<String> {
    match v {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The server, killed if the test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with `args`; waits (at most 120 s) until both ports listen: the
/// server, its HTTP and gRPC addresses.
fn start(args: Vec<String>) -> (Server, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_inferkit-serve"))
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let (tx, rx) = mpsc::channel();
    // reads the logs to the end (a full pipe would block the server)
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut http, mut grpc) = (None, None);
    let until = Instant::now() + Duration::from_secs(120);
    while http.is_none() || grpc.is_none() {
        let left = until.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the server listens within 120 s");
        let Ok(log) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let fields = &log["fields"];
        if fields["message"] == "listening" {
            let addr = fields["addr"].as_str().unwrap().to_owned();
            match fields["protocol"].as_str() {
                Some("http") => http = Some(addr),
                Some("grpc") => grpc = Some(addr),
                _ => {}
            }
        }
    }
    (server, http.unwrap(), grpc.unwrap())
}

/// SIGTERM (the binary sends its last spans as it stops), then waits at most 60 s.
fn stop(mut server: Server) {
    let pid = server.0.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            assert!(status.success(), "the server exits cleanly: {status}");
            return;
        }
        assert!(Instant::now() < until, "the server stops within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const ROW: [f32; 8] = [0.5, -1.0, 0.25, 2.0, -0.5, 1.5, 0.0, -2.0];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_continue_the_callers_trace_with_queue_batch_and_run_spans_and_the_variant() {
    // the collector
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    let routes = tonic::service::Routes::new(TraceServiceServer::new(collector.clone()));
    tokio::spawn(async move {
        axum::serve(listener, routes.into_axum_router())
            .await
            .unwrap();
    });

    // the server: one model in two versions, an even A/B route
    let v1 = format!("m={FIXTURES}/dyn_batch.onnx@1");
    let v2 = format!("m={FIXTURES}/dyn_batch_v2.onnx@2");
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--grpc-addr",
        "127.0.0.1:0",
        "--model",
        &v1,
        "--model",
        &v2,
        "--ab",
        "m=1:1,2:1",
        "--threads",
        "1",
        "--otlp-endpoint",
        &otlp,
    ]
    .map(str::to_owned)
    .to_vec();
    let (server, http, grpc) = tokio::task::spawn_blocking(move || start(args))
        .await
        .unwrap();

    // HTTP, with the caller's trace
    let (http_trace, http_parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let body = json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 8], "data": ROW}]});
    let answer: Value = reqwest::Client::new()
        .post(format!("http://{http}/v2/models/m/infer"))
        .header("traceparent", format!("00-{http_trace}-{http_parent}-01"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let http_version = answer["model_version"].as_str().unwrap().to_owned();

    // gRPC, with another trace in the metadata
    let (grpc_trace, grpc_parent) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let mut client = GrpcInferenceServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let request = || ModelInferRequest {
        model_name: "m".into(),
        inputs: vec![InferInputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![1, 8],
            parameters: Default::default(),
            contents: Some(InferTensorContents {
                fp32_contents: ROW.to_vec(),
                ..Default::default()
            }),
        }],
        ..Default::default()
    };
    let mut traced = tonic::Request::new(request());
    traced.metadata_mut().insert(
        "traceparent",
        format!("00-{grpc_trace}-{grpc_parent}-01").parse().unwrap(),
    );
    let grpc_version = client
        .model_infer(traced)
        .await
        .unwrap()
        .into_inner()
        .model_version;

    // gRPC without a trace, naming a version (not routed: no variant)
    let mut named = request();
    named.model_version = "2".into();
    client.model_infer(named).await.unwrap();

    drop(client);
    tokio::task::spawn_blocking(move || stop(server))
        .await
        .unwrap();

    let all = spans(&collector);
    assert!(
        all.iter().all(|s| s.service == "inferkit-serve"),
        "{all:#?}"
    );
    for (protocol, trace, parent, version) in [
        ("http", http_trace, http_parent, &http_version),
        ("grpc", grpc_trace, grpc_parent, &grpc_version),
    ] {
        let of_trace: Vec<&Span> = all.iter().filter(|s| s.trace == trace).collect();
        let one = |name: &str| -> &Span {
            let found: Vec<&&Span> = of_trace.iter().filter(|s| s.name == name).collect();
            assert_eq!(
                found.len(),
                1,
                "{protocol}: one `{name}` span in {of_trace:#?}"
            );
            found[0]
        };
        let infer = one("infer");
        assert_eq!(
            infer.parent, parent,
            "{protocol}: the caller's span is the parent"
        );
        assert_eq!(infer.attributes["protocol"], protocol);
        // the library's Router records its pick on a `route` span
        let route = one("route");
        assert_eq!(route.parent, infer.id, "{protocol}: route under infer");
        let (queue, batch, run) = (one("queue"), one("batch"), one("run"));
        assert_eq!(queue.parent, infer.id, "{protocol}: queue under infer");
        // the pipeline's own span of the request's way through it
        assert_eq!(one("item").parent, infer.id, "{protocol}: item under infer");
        assert_eq!(batch.parent, infer.id, "{protocol}: batch under infer");
        assert_eq!(run.parent, batch.id, "{protocol}: run under batch");
        assert_eq!(batch.attributes["batch.size"], "1");
        for s in [infer, route, queue, batch, run] {
            assert_eq!(s.attributes["model.name"], "m", "{protocol} {}", s.name);
            // a version served as 1 answers as 1.0.0, the variant named the same
            assert_eq!(
                &s.attributes["model.version"], version,
                "{protocol} {}",
                s.name
            );
            assert_eq!(
                &s.attributes["ab.variant"], version,
                "{protocol} {}",
                s.name
            );
        }
        assert_eq!(of_trace.len(), 6, "{protocol}: {of_trace:#?}");
    }
    // the untraced request: a trace of its own, its `infer` span a root, no variant
    let own: Vec<&Span> = all
        .iter()
        .filter(|s| s.name == "infer" && s.trace != http_trace && s.trace != grpc_trace)
        .collect();
    assert_eq!(own.len(), 1, "{all:#?}");
    assert_eq!(own[0].parent, "", "a root span");
    assert_eq!(own[0].attributes["model.version"], "2.0.0");
    assert!(
        !own[0].attributes.contains_key("ab.variant"),
        "{:?}",
        own[0]
    );
    let batch = all
        .iter()
        .find(|s| s.trace == own[0].trace && s.name == "batch")
        .expect("its batch span");
    assert_eq!(batch.parent, own[0].id);
    assert!(
        !all.iter()
            .any(|s| s.trace == own[0].trace && s.name == "route"),
        "a request naming its version is not routed"
    );
    assert!(!batch.attributes.contains_key("ab.variant"), "{batch:?}");
}
