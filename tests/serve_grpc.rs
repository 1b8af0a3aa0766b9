//! inferkit-serve over gRPC, driven by a tonic client generated from the same proto: the
//! same request over HTTP JSON, HTTP binary and gRPC (raw and typed contents) gives
//! bit-identical outputs; metadata; errors with the gRPC codes Triton uses
//! (INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED).

#[path = "common/serve_support.rs"]
#[allow(dead_code)]
mod serve_support;

use inferkit_serve as app;

use std::sync::Arc;
use std::time::Duration;

use app::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use app::grpc::proto::infer_parameter::ParameterChoice;
use app::grpc::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use app::grpc::proto::{
    InferParameter, InferTensorContents, ModelInferRequest, ModelMetadataRequest,
    ModelReadyRequest, ServerLiveRequest, ServerMetadataRequest, ServerReadyRequest,
};
use app::{App, Config};
use ndarray::Array2;
use ndarray_npy::read_npy;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

fn fixture(f: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(f)
}

fn dyn_app() -> Arc<App> {
    let app = App::new(Config::default());
    app.load(app::load_model("dyn", &fixture("dyn_batch.onnx"), Some("1"), 1).unwrap());
    app
}

fn raw_f32(x: &Array2<f32>) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn infer_request(x: &Array2<f32>, raw: bool) -> ModelInferRequest {
    let shape = x.shape().iter().map(|&d| d as i64).collect();
    ModelInferRequest {
        model_name: "dyn".into(),
        id: "req-7".into(),
        inputs: vec![InferInputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape,
            parameters: Default::default(),
            contents: (!raw).then(|| InferTensorContents {
                fp32_contents: x.iter().copied().collect(),
                ..Default::default()
            }),
        }],
        raw_input_contents: if raw { vec![raw_f32(x).into()] } else { vec![] },
        ..Default::default()
    }
}

fn f32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_three_ways_gives_the_same_bits() {
    let app = dyn_app();
    let base = serve_support::serve(Arc::clone(&app)).await;
    let mut client = serve_support::grpc(Arc::clone(&app)).await;
    let x: Array2<f32> = read_npy(fixture("dyn_batch.b5.x.npy")).unwrap();
    let want: Array2<f32> = read_npy(fixture("dyn_batch.b5.y.npy")).unwrap();

    // gRPC, raw contents in and out
    let r = client
        .model_infer(infer_request(&x, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.model_name.as_str(), r.model_version.as_str()),
        ("dyn", "1.0.0")
    );
    assert_eq!(r.id, "req-7");
    assert_eq!(r.outputs.len(), 1);
    assert_eq!(r.outputs[0].name, "y");
    assert_eq!(r.outputs[0].datatype, "FP32");
    assert_eq!(r.outputs[0].shape, vec![5, 3]);
    let grpc_raw = f32s(&r.raw_output_contents[0]);
    // against onnxruntime's answer
    for (got, want) in grpc_raw.iter().zip(want.iter()) {
        assert!((f32::from_bits(*got) - want).abs() <= 1e-5);
    }
    // gRPC, typed contents
    let r = client
        .model_infer(infer_request(&x, false))
        .await
        .unwrap()
        .into_inner();
    let grpc_typed = f32s(&r.raw_output_contents[0]);

    // HTTP JSON and HTTP binary
    let http = reqwest::Client::new();
    let url = format!("{base}/v2/models/dyn/infer");
    let json_body = json!({"inputs": [{"name": "x", "shape": [5, 8], "datatype": "FP32",
        "data": x.iter().copied().collect::<Vec<f32>>()}]});
    let v: Value = http
        .post(&url)
        .json(&json_body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let http_json: Vec<u32> = v["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v.as_f64().unwrap() as f32).to_bits())
        .collect();
    let header = serde_json::to_vec(&json!({
        "inputs": [{"name": "x", "shape": [5, 8], "datatype": "FP32",
                    "parameters": {"binary_data_size": 160}}],
        "outputs": [{"name": "y", "parameters": {"binary_data": true}}]
    }))
    .unwrap();
    let mut body = header.clone();
    body.extend(raw_f32(&x));
    let resp = http
        .post(&url)
        .header("inference-header-content-length", header.len())
        .body(body)
        .send()
        .await
        .unwrap();
    let len: usize = resp.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = resp.bytes().await.unwrap();
    let http_binary = f32s(&bytes[len..]);

    assert_eq!(grpc_raw.len(), 15);
    assert_eq!(grpc_raw, grpc_typed, "gRPC raw vs typed");
    assert_eq!(grpc_raw, http_json, "gRPC vs HTTP JSON");
    assert_eq!(grpc_raw, http_binary, "gRPC vs HTTP binary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metadata() {
    let app = dyn_app();
    let mut client = serve_support::grpc(app).await;
    assert!(
        client
            .server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        client
            .server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    for (name, version, want) in [
        ("dyn", "", true),
        ("dyn", "1", true),
        ("dyn", "9", false),
        ("nope", "", false),
    ] {
        let r = ModelReadyRequest {
            name: name.into(),
            version: version.into(),
        };
        let ready = client.model_ready(r).await.unwrap().into_inner().ready;
        assert_eq!(ready, want, "{name} version {version:?}");
    }
    let s = client
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.name, "inferkit-serve");
    let m = client
        .model_metadata(ModelMetadataRequest {
            name: "dyn".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.name, "dyn");
    assert_eq!(m.versions, vec!["1.0.0"]);
    assert_eq!(m.inputs.len(), 1);
    assert_eq!(
        (m.inputs[0].name.as_str(), m.inputs[0].datatype.as_str()),
        ("x", "FP32")
    );
    assert_eq!(m.inputs[0].shape, vec![-1, 8]);
    assert_eq!(m.outputs[0].name, "y");
    let e = client
        .model_metadata(ModelMetadataRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().contains("nope"), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_invalid_argument_naming_what_is_wrong() {
    let app = dyn_app();
    let mut client = serve_support::grpc(app).await;
    let x = Array2::<f32>::zeros((2, 8));
    let check = |r: ModelInferRequest, code: Code, says: &'static str| {
        let mut client = client.clone();
        async move {
            let e = client.model_infer(r).await.unwrap_err();
            assert_eq!(e.code(), code, "{e:?}");
            assert!(
                e.message().contains(says),
                "{:?} lacks {says:?}",
                e.message()
            );
        }
    };
    let mut r = infer_request(&x, true);
    r.model_name = "nope".into();
    check(r, Code::NotFound, "nope").await;
    let mut r = infer_request(&x, true);
    r.inputs[0].datatype = "INT64".into();
    check(r, Code::InvalidArgument, "input `x`: datatype").await;
    let mut r = infer_request(&x, true);
    r.raw_input_contents[0] = vec![0u8; 63].into();
    check(r, Code::InvalidArgument, "63 bytes").await;
    let mut r = infer_request(&x, true);
    r.inputs[0].shape = vec![2, 4, 2];
    r.raw_input_contents[0] = vec![0u8; 64].into();
    check(r, Code::InvalidArgument, "x").await;
    let mut r = infer_request(&x, true);
    r.inputs[0].name = "z".into();
    check(r, Code::InvalidArgument, "unknown input `z`").await;
    let mut r = infer_request(&x, false);
    r.inputs[0].contents.as_mut().unwrap().fp32_contents.pop();
    check(r, Code::InvalidArgument, "input `x`").await;
    let mut r = infer_request(&x, true);
    r.parameters.insert(
        "timeout".into(),
        InferParameter {
            parameter_choice: Some(ParameterChoice::StringParam("soon".into())),
        },
    );
    check(r, Code::InvalidArgument, "parameters.timeout").await;
    // and the server still answers
    let mut r = infer_request(&x, true);
    r.outputs = vec![InferRequestedOutputTensor {
        name: "y".into(),
        parameters: Default::default(),
    }];
    let ok = client.model_infer(r).await.unwrap().into_inner();
    assert_eq!(ok.outputs[0].shape, vec![2, 3]);
}

/// Sends `message` as is to `ModelInfer`: its error.
async fn send_as_infer_request<M: prost::Message + Default + Send + Sync + 'static>(
    channel: Channel,
    message: M,
) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(message),
        tonic::codegen::http::uri::PathAndQuery::from_static(
            "/inference.GRPCInferenceService/ModelInfer",
        ),
        tonic_prost::ProstCodec::<M, app::grpc::proto::ModelInferResponse>::default(),
    )
    .await
    .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_refused_by_name_and_the_server_keeps_serving() {
    let app = dyn_app();
    let channel = serve_support::channel(Arc::clone(&app)).await;
    // protobuf's wrapper messages read as a ModelInferRequest: its field 1 (`model_name`, a
    // string) holding bytes that are not UTF-8, then a varint (the wrong wire type)
    let not_utf8 = send_as_infer_request(channel.clone(), vec![0xffu8, 0xfe, 0x41]).await;
    let wire_type = send_as_infer_request(channel.clone(), 7u64).await;
    for (e, says) in [(not_utf8, "not UTF-8"), (wire_type, "invalid wire type")] {
        // (tonic's code for a message it cannot decode, as gRPC C++'s)
        assert_eq!(e.code(), Code::Internal, "{e:?}");
        assert!(
            e.message().contains("ModelInferRequest.model_name"),
            "{e:?}"
        );
        assert!(e.message().contains(says), "{e:?}");
    }
    let x = Array2::<f32>::from_elem((2, 8), 0.5);
    let mut client = GrpcInferenceServiceClient::new(channel);
    let ok = client
        .model_infer(infer_request(&x, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.outputs[0].shape, vec![2, 3]);
}

/// A request to the slow model of `serve_support` (one row of two values).
fn slow_request(id: &str) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "slow".into(),
        id: id.into(),
        inputs: vec![InferInputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![1, 2],
            parameters: Default::default(),
            contents: None,
        }],
        raw_input_contents: vec![raw_f32(&Array2::from_elem((1, 2), 1.0)).into()],
        ..Default::default()
    }
}

/// The slow model (150 ms a request, one at a time) with a queue of one: a second request
/// waits, a third is refused; a request whose deadline passes in the queue is never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_queue_and_passed_deadlines_have_their_codes() {
    let (app, base, _) = serve_support::slow_server(1).await;
    let client = serve_support::grpc(Arc::clone(&app)).await;
    let request = |timeout_us: Option<i64>| {
        let mut r = slow_request("");
        if let Some(t) = timeout_us {
            r.parameters.insert(
                "timeout".into(),
                InferParameter {
                    parameter_choice: Some(ParameterChoice::Int64Param(t)),
                },
            );
        }
        r
    };
    // many at once: the one running and the one queued are answered, the rest refused
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let mut c = client.clone();
            let r = request(None);
            tokio::spawn(async move { c.model_infer(r).await.map(|_| ()).map_err(|e| e.code()) })
        })
        .collect();
    let mut codes = Vec::new();
    for c in calls {
        codes.push(c.await.unwrap());
    }
    let ok = codes.iter().filter(|c| c.is_ok()).count();
    let full = codes
        .iter()
        .filter(|c| **c == Err(Code::ResourceExhausted))
        .count();
    assert!(ok >= 1 && full >= 1 && ok + full == 6, "{codes:?}");

    // Triton's `timeout` parameter: behind a running request, 20 ms is too short
    let batches_before = batches(&base).await;
    let mut c = client.clone();
    let busy = tokio::spawn(async move { c.model_infer(request(None)).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let e = client
        .clone()
        .model_infer(request(Some(20_000)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    busy.await.unwrap().unwrap();

    // the client's own deadline (grpc-timeout) the same way; tonic's client gives up on its
    // own too, so the code it reports is its own (CANCELLED) or the server's
    let mut c = client.clone();
    let busy = tokio::spawn(async move { c.model_infer(request(None)).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut r = tonic::Request::new(request(None));
    r.set_timeout(Duration::from_millis(20));
    let e = client.clone().model_infer(r).await.unwrap_err();
    assert!(
        matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{e:?}"
    );
    busy.await.unwrap().unwrap();
    // neither expired request ran: two batches, the two busy requests
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(batches(&base).await - batches_before, 2);
    assert!(client.clone().model_infer(request(None)).await.is_ok());
}

/// Batches the server has run (`inferkit_batch_size_count` in `/metrics`).
async fn batches(base: &str) -> u64 {
    serve_support::metric(base, "inferkit_batch_size_count").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_answers_each_request_and_reports_bad_ones_in_band() {
    let app = dyn_app();
    let mut client = serve_support::grpc(Arc::clone(&app)).await;
    let x: Array2<f32> = read_npy(fixture("dyn_batch.b5.x.npy")).unwrap();
    let mut good = infer_request(&x, true);
    good.id = "good".into();
    let mut typed = infer_request(&x, false);
    typed.id = "typed".into();
    let mut bad = infer_request(&x, true);
    bad.id = "bad".into();
    bad.inputs[0].datatype = "INT64".into();
    let unary = client.model_infer(good.clone()).await.unwrap().into_inner();
    let requests = tonic::codegen::tokio_stream::iter(vec![good, bad, typed]);
    let mut answers = client
        .model_stream_infer(requests)
        .await
        .unwrap()
        .into_inner();
    let mut by_id = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    while let Some(m) = answers.message().await.unwrap() {
        match m.infer_response {
            Some(r) if m.error_message.is_empty() => {
                by_id.insert(r.id.clone(), r);
            }
            _ => errors.push(m.error_message),
        }
    }
    assert_eq!(by_id.len(), 2, "{:?}", by_id.keys());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("input `x`: datatype"), "{errors:?}");
    for id in ["good", "typed"] {
        assert_eq!(
            by_id[id].raw_output_contents, unary.raw_output_contents,
            "{id}"
        );
    }
}

/// A client that sends on a stream and never reads: the stream's buffer fills, the model's
/// worker goes on serving others; when the client leaves, the stream ends and what it had in
/// flight is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_blocks_no_worker_and_its_stream_ends_when_it_leaves() {
    let app = dyn_app();
    let base = serve_support::serve(Arc::clone(&app)).await;
    let mut client = serve_support::grpc(Arc::clone(&app)).await;
    let x: Array2<f32> = read_npy(fixture("dyn_batch.b5.x.npy")).unwrap();
    let (send, requests) = tokio::sync::mpsc::channel(1024);
    let answers = client
        .model_stream_infer(tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(
            requests,
        ))
        .await
        .unwrap()
        .into_inner();
    for i in 0..1000 {
        let mut r = infer_request(&x, true);
        r.id = i.to_string();
        send.send(r).await.unwrap();
    }
    assert_eq!(
        serve_support::metric(&base, "inferkit_grpc_streams").await,
        1
    );
    // the worker still answers others, again and again, while nobody reads the stream
    // (a full queue answers RESOURCE_EXHAUSTED, and a client tries again, as Triton's do)
    let mut answered = 0;
    for _ in 0..400 {
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            client.clone().model_infer(infer_request(&x, true)),
        )
        .await
        .expect("a unary request waited behind a stalled stream");
        match r {
            Ok(r) => {
                assert_eq!(r.into_inner().outputs[0].shape, vec![5, 3]);
                answered += 1;
                if answered == 20 {
                    break;
                }
            }
            Err(e) if e.code() == Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(answered, 20);
    // the client leaves: the server's side of the stream ends (bounded wait, no wall-time claim)
    drop(answers);
    drop(send);
    let mut open = 1;
    for _ in 0..200 {
        open = serve_support::metric(&base, "inferkit_grpc_streams").await;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open, 0, "the stream outlived its client");
}

/// A stream's `grpc-timeout` ends it with its queued work cancelled: of five requests to the
/// slow model (150 ms each, one at a time), those still queued at the deadline never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_past_its_deadline_ends_and_its_queued_requests_never_run() {
    let (app, base, _) = serve_support::slow_server(8).await;
    let mut client = serve_support::grpc(Arc::clone(&app)).await;
    let before = batches(&base).await;
    let requests: Vec<ModelInferRequest> = (0..5).map(|i| slow_request(&i.to_string())).collect();
    let mut request = tonic::Request::new(tonic::codegen::tokio_stream::iter(requests));
    request.set_timeout(Duration::from_millis(300));
    let mut answered = 0;
    let mut ended = None;
    match client.model_stream_infer(request).await {
        Ok(r) => {
            let mut answers = r.into_inner();
            loop {
                match answers.message().await {
                    Ok(Some(m)) if m.error_message.is_empty() => answered += 1,
                    // a request's own deadline (the stream's) passed in the queue
                    Ok(Some(m)) if m.error_message.contains("deadline") => {}
                    Ok(Some(m)) => panic!("{}", m.error_message),
                    Ok(None) => break,
                    Err(e) => {
                        ended = Some(e.code());
                        break;
                    }
                }
            }
        }
        Err(e) => ended = Some(e.code()),
    }
    assert!(answered < 5, "every request ran past the deadline");
    // the stream itself ends with the deadline, unless every request was answered (in
    // band, some with their own deadline's error) first
    assert!(
        matches!(ended, None | Some(Code::DeadlineExceeded | Code::Cancelled)),
        "{ended:?}"
    );
    // what was queued at the deadline never runs
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ran = batches(&base).await - before;
    assert!(ran < 5, "{ran} of 5 requests ran");
    assert_eq!(
        serve_support::metric(&base, "inferkit_grpc_streams").await,
        0
    );
}

/// Triton's repository extension over gRPC: index, load (a new version served at once),
/// unload; errors named. And grpc.health.v1 following what is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repository_and_health_over_grpc() {
    use app::grpc::proto::model_repository_parameter::ParameterChoice as P;
    use app::grpc::proto::{
        ModelRepositoryParameter, RepositoryIndexRequest, RepositoryModelLoadRequest,
        RepositoryModelUnloadRequest,
    };
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let app = dyn_app();
    let ch = serve_support::channel(Arc::clone(&app)).await;
    let mut client = GrpcInferenceServiceClient::new(ch.clone());
    let health = HealthClient::new(ch);
    let param = |v: &str| ModelRepositoryParameter {
        parameter_choice: Some(P::StringParam(v.into())),
    };
    let index = |mut c: GrpcInferenceServiceClient<Channel>| async move {
        c.repository_index(RepositoryIndexRequest::default())
            .await
            .unwrap()
            .into_inner()
            .models
            .into_iter()
            .map(|m| (m.name, m.version, m.state))
            .collect::<Vec<_>>()
    };
    let ready = |v: &str| ("dyn".to_string(), v.to_string(), "READY".to_string());
    assert_eq!(index(client.clone()).await, vec![ready("1.0.0")]);

    let load = |path: std::path::PathBuf, version: &str| RepositoryModelLoadRequest {
        model_name: "dyn".into(),
        parameters: [
            ("path".to_string(), param(path.to_str().unwrap())),
            ("version".to_string(), param(version)),
        ]
        .into(),
        ..Default::default()
    };
    client
        .repository_model_load(load(fixture("dyn_batch_v2.onnx"), "2"))
        .await
        .unwrap();
    assert_eq!(
        index(client.clone()).await,
        vec![ready("1.0.0"), ready("2.0.0")]
    );
    let x: Array2<f32> = read_npy(fixture("dyn_batch_v2.b5.x.npy")).unwrap();
    let want: Array2<f32> = read_npy(fixture("dyn_batch_v2.b5.y.npy")).unwrap();
    let mut r = infer_request(&x, true);
    r.model_version = "2".into();
    let got = client.model_infer(r).await.unwrap().into_inner();
    for (g, w) in f32s(&got.raw_output_contents[0]).iter().zip(want.iter()) {
        assert!((f32::from_bits(*g) - w).abs() <= 1e-5);
    }
    // a file that is not a model: named, and the served versions untouched
    let e = client
        .repository_model_load(load(fixture("cases.json"), "3"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("cases.json"), "{}", e.message());
    let e = client
        .repository_model_load(RepositoryModelLoadRequest {
            model_name: "dyn".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("path"), "{}", e.message());

    let unload = |version: Option<&str>| RepositoryModelUnloadRequest {
        model_name: "dyn".into(),
        parameters: version
            .map(|v| [("version".to_string(), param(v))].into())
            .unwrap_or_default(),
        ..Default::default()
    };
    client
        .repository_model_unload(unload(Some("1")))
        .await
        .unwrap();
    assert_eq!(index(client.clone()).await, vec![ready("2.0.0")]);

    // health: the server and the inference service serve while a model is loaded
    let status = |mut h: HealthClient<Channel>, service: &'static str| async move {
        h.check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status())
    };
    let service = "inference.GRPCInferenceService";
    // bounded waits: the status follows a load or unload as soon as it is noticed
    let wait_for = async |want: ServingStatus| {
        let mut now = None;
        for _ in 0..100 {
            now = Some(status(health.clone(), service).await.unwrap());
            if now == Some(want) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(now, Some(want));
    };
    wait_for(ServingStatus::Serving).await;
    assert_eq!(
        status(health.clone(), "").await.unwrap(),
        ServingStatus::Serving
    );
    client.repository_model_unload(unload(None)).await.unwrap();
    wait_for(ServingStatus::NotServing).await;
    assert!(index(client.clone()).await.is_empty());
    let e = client
        .repository_model_unload(unload(None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = status(health.clone(), "nope").await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}
