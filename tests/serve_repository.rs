//! inferkit-serve's model repository (`examples/model_repository`, Triton's layout and
//! `config.pbtxt`) and raw inputs: encoded photos and texts sent as `BYTES` over HTTP (the
//! binary data extension and JSON) and gRPC (raw and typed contents) give exactly the
//! library's own answers — the same decode, transform and model as `Batch::from_encoded`
//! and `MiniLm::embed` — and Triton's classification extension names the classes. A corrupt
//! photo fails its own request only, naming the element; a configuration that does not fit
//! its model is refused at load time, naming the field.

#[path = "common/serve_support.rs"]
#[allow(dead_code)]
mod serve_support;

use inferkit_serve as app;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use app::grpc::proto::infer_parameter::ParameterChoice;
use app::grpc::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use app::grpc::proto::{
    InferParameter, InferTensorContents, ModelInferRequest, ModelMetadataRequest,
};
use app::{App, Config, Servable, repository};
use inferkit::infer_core::cpu::MiniLm;
use inferkit::infer_core::{Tensor, TensorView};
use inferkit::preprocess::{Batch, BufferPool, DecodeOptions, Decoder, Resize, Transform};
use serde_json::{Value, json};
use tonic::Code;

const PHOTOS: [&str; 4] = ["chelsea.jpg", "astronaut.jpg", "coffee.jpg", "rocket.jpg"];
const TEXTS: [&str; 3] = [
    "A cat sits on the mat.",
    "The rocket lifts off from the launch pad at dawn.",
    "coffee",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn photo(name: &str) -> Vec<u8> {
    std::fs::read(root().join("assets/images").join(name)).unwrap()
}

fn repository_dir() -> PathBuf {
    root().join("examples/model_repository")
}

/// The example repository, every model loaded.
fn repo_app() -> Arc<App> {
    let app = App::new(Config::default().with_max_body(4 << 20));
    for e in repository::scan(&repository_dir()).unwrap() {
        app.load(repository::load(&e, 1).unwrap());
    }
    app
}

/// The library's own answer: the photos through `Batch::from_encoded` with the
/// repository's transform, then the model, as one batch.
fn library_logits(photos: &[Vec<u8>]) -> (Vec<f32>, Vec<f32>) {
    let transform = Transform::imagenet(224).with_resize(Resize::ShorterSide(256));
    let batch = Batch::from_encoded(
        photos,
        &Decoder::new(DecodeOptions::default()),
        &transform,
        &BufferPool::new(1),
    )
    .unwrap();
    assert_eq!(batch.ok_count(), photos.len());
    let model = app::load_model(
        "efficientnet-lite0",
        &root().join("assets/models/efficientnet-lite0.pth"),
        None,
        1,
    )
    .unwrap();
    let input = batch.view().into_dyn();
    let out = model.run(&[("images", TensorView::F32(input))]).unwrap();
    let Tensor::F32(logits) = &out[0] else {
        panic!("logits are f32")
    };
    (logits.iter().copied().collect(), batch.as_slice().to_vec())
}

/// Photos as JSON can carry them: base64.
fn base64s(photos: &[Vec<u8>]) -> Vec<String> {
    use base64::Engine as _;
    photos
        .iter()
        .map(|p| base64::engine::general_purpose::STANDARD.encode(p))
        .collect()
}

/// `BYTES` elements in the protocol's binary form (4-byte little-endian length, bytes).
fn length_prefixed(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        out.extend_from_slice(&(i.len() as u32).to_le_bytes());
        out.extend_from_slice(i);
    }
    out
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// An HTTP binary-extension request: `inputs` as JSON with their bytes after it; the
/// response's JSON and binary tail.
async fn post_binary(
    url: &str,
    header: Value,
    tail: Vec<u8>,
) -> (reqwest::StatusCode, Value, Vec<u8>) {
    let header = serde_json::to_vec(&header).unwrap();
    let mut body = header.clone();
    body.extend(tail);
    let resp = reqwest::Client::new()
        .post(url)
        .header("inference-header-content-length", header.len())
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let len: Option<usize> = resp
        .headers()
        .get("inference-header-content-length")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let bytes = resp.bytes().await.unwrap().to_vec();
    match len {
        Some(n) => (
            status,
            serde_json::from_slice(&bytes[..n]).unwrap(),
            bytes[n..].to_vec(),
        ),
        None => (status, serde_json::from_slice(&bytes).unwrap(), Vec::new()),
    }
}

fn bytes_request(model: &str, input: &str, items: Vec<Vec<u8>>, raw: bool) -> ModelInferRequest {
    let shape = vec![items.len() as i64, 1];
    let (contents, raw_input_contents) = if raw {
        (None, vec![length_prefixed(&items).into()])
    } else {
        (
            Some(InferTensorContents {
                bytes_contents: items.into_iter().map(Into::into).collect(),
                ..Default::default()
            }),
            vec![],
        )
    };
    ModelInferRequest {
        model_name: model.into(),
        inputs: vec![InferInputTensor {
            name: input.into(),
            datatype: "BYTES".into(),
            shape,
            parameters: Default::default(),
            contents,
        }],
        raw_input_contents,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_as_bytes_give_the_librarys_logits_over_every_protocol() {
    let app = repo_app();
    let base = serve_support::serve(Arc::clone(&app)).await;
    let mut client = serve_support::grpc(Arc::clone(&app)).await;
    let photos: Vec<Vec<u8>> = PHOTOS.iter().map(|p| photo(p)).collect();
    let (want, batch) = library_logits(&photos);
    let url = format!("{base}/v2/models/efficientnet_lite0/infer");

    // metadata: the served input is the photo's bytes
    let meta = serve_support::get_json(&format!("{base}/v2/models/efficientnet_lite0")).await;
    assert_eq!(
        meta["inputs"],
        json!([{"name": "image", "datatype": "BYTES", "shape": [-1]}])
    );
    let m = client
        .model_metadata(ModelMetadataRequest {
            name: "efficientnet_lite0".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (m.inputs[0].name.as_str(), m.inputs[0].datatype.as_str()),
        ("image", "BYTES")
    );

    // HTTP, the binary data extension (what tritonclient.http sends for BYTES)
    let tail = length_prefixed(&photos);
    let (status, v, out) = post_binary(
        &url,
        json!({"inputs": [{"name": "image", "shape": [4, 1], "datatype": "BYTES",
                           "parameters": {"binary_data_size": tail.len()}}],
               "outputs": [{"name": "logits", "parameters": {"binary_data": true}}]}),
        tail,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["outputs"][0]["shape"], json!([4, 1000]));
    assert_eq!(f32s(&out), want, "HTTP binary vs the library");

    // HTTP JSON: the photos as base64 strings
    let v = serve_support::post_json(
        &url,
        &json!({"inputs": [{"name": "image", "shape": [4], "datatype": "BYTES", "data": base64s(&photos)}]}),
    )
    .await;
    let http_json: Vec<f32> = v["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(http_json, want, "HTTP JSON vs the library");

    // gRPC, raw and typed contents
    for raw in [true, false] {
        let r = client
            .model_infer(bytes_request(
                "efficientnet_lite0",
                "image",
                photos.clone(),
                raw,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.outputs[0].shape, vec![4, 1000]);
        assert_eq!(f32s(&r.raw_output_contents[0]), want, "gRPC raw={raw}");
    }

    // the FP32 model of the repository, sent the library's preprocessed batch
    let r = client
        .model_infer(ModelInferRequest {
            model_name: "efficientnet_lite0_f32".into(),
            inputs: vec![InferInputTensor {
                name: "images".into(),
                datatype: "FP32".into(),
                shape: vec![4, 3, 224, 224],
                parameters: Default::default(),
                contents: None,
            }],
            raw_input_contents: vec![
                batch
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect::<Vec<u8>>()
                    .into(),
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f32s(&r.raw_output_contents[0]), want, "FP32 model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classification_names_the_top_classes_with_their_labels() {
    let app = repo_app();
    let base = serve_support::serve(Arc::clone(&app)).await;
    let mut client = serve_support::grpc(Arc::clone(&app)).await;
    let photos: Vec<Vec<u8>> = PHOTOS.iter().map(|p| photo(p)).collect();
    let (want, _) = library_logits(&photos);
    let labels: Vec<String> = std::fs::read_to_string(root().join("assets/imagenet_classes.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    // the library's top 3 per photo, as Triton writes them
    let expected: Vec<String> = want
        .chunks(1000)
        .flat_map(|row| {
            let mut idx: Vec<usize> = (0..1000).collect();
            idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            idx[..3]
                .iter()
                .map(|&i| format!("{:.6}:{i}:{}", row[i], labels[i]))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        expected[0].ends_with(":285:Egyptian cat"),
        "{}",
        expected[0]
    );

    let v = serve_support::post_json(
        &format!("{base}/v2/models/efficientnet_lite0/infer"),
        &json!({
            "inputs": [{"name": "image", "shape": [4], "datatype": "BYTES", "data": base64s(&photos)}],
            "outputs": [{"name": "logits", "parameters": {"classification": 3}}]}),
    )
    .await;
    assert_eq!(v["outputs"][0]["datatype"], "BYTES");
    assert_eq!(v["outputs"][0]["shape"], json!([4, 3]));
    assert_eq!(v["outputs"][0]["data"], json!(expected), "HTTP");

    let mut r = bytes_request("efficientnet_lite0", "image", photos.clone(), true);
    r.outputs = vec![InferRequestedOutputTensor {
        name: "logits".into(),
        parameters: [(
            "classification".to_string(),
            InferParameter {
                parameter_choice: Some(ParameterChoice::Int64Param(3)),
            },
        )]
        .into(),
    }];
    let r = client.model_infer(r).await.unwrap().into_inner();
    assert_eq!(
        (
            r.outputs[0].datatype.as_str(),
            r.outputs[0].shape.as_slice()
        ),
        ("BYTES", &[4, 3][..])
    );
    let got: Vec<String> = app_bytes(&r.raw_output_contents[0]);
    assert_eq!(got, expected, "gRPC");
}

/// `BYTES` in the binary form as strings.
fn app_bytes(mut raw: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let n = u32::from_le_bytes(raw[..4].try_into().unwrap()) as usize;
        out.push(String::from_utf8(raw[4..4 + n].to_vec()).unwrap());
        raw = &raw[4 + n..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_as_bytes_give_the_librarys_embeddings() {
    let app = repo_app();
    let base = serve_support::serve(Arc::clone(&app)).await;
    let mut client = serve_support::grpc(Arc::clone(&app)).await;
    let minilm = MiniLm::load(root().join(".cache/models/all-MiniLM-L6-v2")).unwrap();
    let want: Vec<f32> = minilm.embed(&TEXTS).unwrap().iter().copied().collect();

    let v = serve_support::post_json(
        &format!("{base}/v2/models/minilm/infer"),
        &json!({"inputs": [{"name": "text", "shape": [3, 1], "datatype": "BYTES", "data": TEXTS}]}),
    )
    .await;
    assert_eq!(v["outputs"][0]["shape"], json!([3, 384]), "{v}");
    let http: Vec<f32> = v["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(http, want, "HTTP JSON vs MiniLm::embed");

    let items: Vec<Vec<u8>> = TEXTS.iter().map(|t| t.as_bytes().to_vec()).collect();
    for raw in [true, false] {
        let r = client
            .model_infer(bytes_request("minilm", "text", items.clone(), raw))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(f32s(&r.raw_output_contents[0]), want, "gRPC raw={raw}");
    }

    // bytes that are not UTF-8 name their element
    let mut bad = items.clone();
    bad[2] = vec![0xff, 0xfe];
    let e = client
        .model_infer(bytes_request("minilm", "text", bad, true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("element 2 is not UTF-8"),
        "{}",
        e.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_photo_fails_only_its_own_request() {
    let app = App::new(Config::default().with_max_delay(std::time::Duration::from_millis(50)));
    for e in repository::scan(&repository_dir()).unwrap() {
        if e.name == "efficientnet_lite0" {
            app.load(
                repository::load(&e, 1)
                    .unwrap()
                    .with_batching(8, std::time::Duration::from_millis(50)),
            );
        }
    }
    let mut client = serve_support::grpc(Arc::clone(&app)).await;
    let good = vec![photo("chelsea.jpg")];
    let (want, _) = library_logits(&good);
    let mut corrupt = photo("coffee.jpg");
    corrupt.truncate(corrupt.len() / 3);
    corrupt[200..400].fill(0x55);
    let bad = vec![photo("chelsea.jpg"), corrupt];
    // sent together: the good ones are batched with each other, the bad one fails alone
    let mut c2 = client.clone();
    let mut c3 = client.clone();
    let (a, b, c) = tokio::join!(
        client.model_infer(bytes_request(
            "efficientnet_lite0",
            "image",
            good.clone(),
            true
        )),
        c2.model_infer(bytes_request("efficientnet_lite0", "image", bad, true)),
        c3.model_infer(bytes_request(
            "efficientnet_lite0",
            "image",
            good.clone(),
            true
        )),
    );
    let e = b.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("input `image`: element 1:"),
        "{}",
        e.message()
    );
    for ok in [a, c] {
        let r = ok.unwrap().into_inner();
        let got = f32s(&r.raw_output_contents[0]);
        let top = |v: &[f32]| {
            v.iter()
                .enumerate()
                .max_by(|x, y| x.1.total_cmp(y.1))
                .unwrap()
                .0
        };
        assert_eq!(top(&got), 285);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4, "{g} vs {w}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_with_no_room_refuses_a_photo_before_decoding_it() {
    // one place: a request holds it from before its decoding until its batch starts
    let (model, gate) = serve_support::gated_images(8);
    let app = App::new(
        Config::default()
            .with_max_batch(1)
            .with_max_delay(std::time::Duration::ZERO)
            .with_queue(1),
    );
    let transform = Transform::imagenet(8).with_resize(Resize::ShorterSide(8));
    app.load(
        Servable::new(model)
            .with_image_input("x", transform)
            .unwrap(),
    );
    let base = serve_support::serve(Arc::clone(&app)).await;
    let client = serve_support::grpc(Arc::clone(&app)).await;
    let send = |items: Vec<Vec<u8>>| {
        let mut c = client.clone();
        tokio::spawn(async move {
            c.model_infer(bytes_request("gated", "x", items, true))
                .await
        })
    };
    // A runs, held at the gate (its place freed as its batch started)
    let a = send(vec![photo("chelsea.jpg")]);
    serve_support::wait_for_metric(&base, "inferkit_batch_size_count", 1).await;
    // B is decoded and queued behind it, holding the one place
    let b = send(vec![photo("coffee.jpg")]);
    serve_support::wait_for_metric(&base, "inferkit_queue_depth", 1).await;
    // C, a corrupt photo, is refused for want of room without being decoded (its decoder
    // error would be INVALID_ARGUMENT)
    let corrupt = b"\xff\xd8\xff\xe0 not a photo".to_vec();
    let e = client
        .clone()
        .model_infer(bytes_request("gated", "x", vec![corrupt.clone()], true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("queue full"), "{e:?}");
    // the gate opens: A and B are answered; then C has room, and its decoder's error
    gate.send(()).unwrap();
    gate.send(()).unwrap();
    for r in [a, b] {
        let out = r.await.unwrap().unwrap().into_inner();
        assert_eq!(out.outputs[0].shape, vec![1, 3, 8, 8]);
    }
    let e = client
        .clone()
        .model_infer(bytes_request("gated", "x", vec![corrupt], true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("element 0"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_gets_a_named_error_on_both_protocols() {
    // 16 photos (~0.9 MB) pass under the default limit; under a 200 kB limit they are
    // refused by name, not by a dropped connection
    let photos: Vec<Vec<u8>> = (0..16).map(|i| photo(PHOTOS[i % 4])).collect();
    let tail = length_prefixed(&photos);
    assert!(tail.len() > 800_000);
    let header = json!({"inputs": [{"name": "image", "shape": [16], "datatype": "BYTES",
                        "parameters": {"binary_data_size": tail.len()}}],
                        "outputs": [{"name": "logits", "parameters": {"classification": 1}}]});
    let app = repo_app();
    let base = serve_support::serve(Arc::clone(&app)).await;
    let (status, v, _) = post_binary(
        &format!("{base}/v2/models/efficientnet_lite0/infer"),
        header.clone(),
        tail.clone(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["outputs"][0]["shape"], json!([16, 1]));

    let small = App::new(Config::default().with_max_body(200_000));
    for e in repository::scan(&repository_dir()).unwrap() {
        small.load(repository::load(&e, 1).unwrap());
    }
    let base = serve_support::serve(Arc::clone(&small)).await;
    let (status, v, _) = post_binary(
        &format!("{base}/v2/models/efficientnet_lite0/infer"),
        header,
        tail,
    )
    .await;
    assert_eq!(status, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("length limit"), "{v}");
    let mut client = serve_support::grpc(Arc::clone(&small)).await;
    let e = client
        .model_infer(bytes_request("efficientnet_lite0", "image", photos, true))
        .await
        .unwrap_err();
    assert!(
        matches!(e.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{e:?}"
    );
    assert!(e.message().contains("too large"), "{}", e.message());
}

/// Writes a one-model repository whose `config.pbtxt` is `config` (the model: the bundled
/// EfficientNet-Lite0), and loads it.
fn load_config(config: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("net");
    std::fs::create_dir_all(m.join("1")).unwrap();
    std::fs::copy(
        root().join("assets/models/efficientnet-lite0.pth"),
        m.join("1/model.pth"),
    )
    .unwrap();
    std::fs::write(m.join("config.pbtxt"), config).unwrap();
    let entries = repository::scan(dir.path()).map_err(|e| e.to_string())?;
    for e in &entries {
        repository::load(e, 1).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[test]
fn a_configuration_that_does_not_fit_its_model_is_refused_by_name() {
    let ok = r#"name: "net" max_batch_size: 8
        input [ { name: "images" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] } ]
        output [ { name: "logits" data_type: TYPE_FP32 dims: [ 1000 ] } ]"#;
    load_config(ok).unwrap();
    let cases = [
        ("name: \"net\" max_batch: 8", "field 'max_batch' not found"),
        ("name: \"other\"", "differs from the directory's"),
        (
            &ok.replace("dims: [ 3, 224, 224 ]", "dims: [ 3, 256, 256 ]"),
            "input `images`: dims [3, 256, 256]",
        ),
        (
            &ok.replace("TYPE_FP32 dims: [ 3", "TYPE_INT64 dims: [ 3"),
            "input `images`: data_type TYPE_INT64",
        ),
        (
            &ok.replace("\"logits\"", "\"probs\""),
            "output `probs`: the model has no such output",
        ),
        (
            &format!("{ok} instance_group [ {{ kind: KIND_GPU }} ]"),
            "asks for a GPU",
        ),
        (
            &format!("{ok} platform: \"tensorrt_plan\""),
            "platform \"tensorrt_plan\"",
        ),
        (
            &format!("{ok} version_policy {{ specific {{ versions: [ 2 ] }} }}"),
            "names version 2, which has no directory",
        ),
        (
            &format!(
                r#"{ok} parameters {{ key: "preprocess" value {{ string_value: "audio" }} }}"#
            ),
            "preprocess: \"audio\"",
        ),
        (
            &format!(
                r#"{ok} platform: "onnxruntime_onnx" parameters {{ key: "preprocess" value {{ string_value: "text" }} }}"#
            ),
            "preprocess \"text\" runs the native MiniLM",
        ),
    ];
    for (config, want) in cases {
        let e = load_config(config).unwrap_err();
        assert!(e.contains(want), "{config}\n  gave: {e}\n  wanted: {want}");
        assert!(e.contains("config.pbtxt") || e.contains("net"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_request_gets_an_answer_and_the_model_keeps_serving() {
    let app = repo_app();
    let mut client = serve_support::grpc(Arc::clone(&app)).await;
    for (model, input) in [("efficientnet_lite0", "image"), ("minilm", "text")] {
        let r = client
            .model_infer(bytes_request(model, input, vec![], true))
            .await;
        match r {
            Ok(r) => assert_eq!(r.into_inner().outputs[0].shape[0], 0, "{model}"),
            Err(e) => assert_eq!(e.code(), Code::InvalidArgument, "{model}: {e:?}"),
        }
    }
    let r = client
        .model_infer(bytes_request(
            "efficientnet_lite0",
            "image",
            vec![photo("chelsea.jpg")],
            true,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outputs[0].shape, vec![1, 1000]);
}
