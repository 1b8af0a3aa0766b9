//! A load generator for model servers, the driver of `scripts/load-serve.sh`: N clients
//! each send one request after another (closed loop), or requests are sent at a fixed rate
//! whatever the answers (open loop, for overload), for a number of seconds, over HTTP or
//! gRPC; every answer is counted by outcome and the latencies of the successful ones are
//! summarised. One item (an image file's bytes, or one text) per request, in the form the
//! server takes:
//!
//! - `--http URL --form kserve`: KServe v2 / Open Inference Protocol with the binary data
//!   extension (one `BYTES` element), as `tritonclient.http` sends it (inferkit-serve);
//! - `--http URL --form raw`: the image's bytes as the body (`image/jpeg`), or for a text
//!   `{"texts": [TEXT]}` (FastAPI anchors);
//! - `--grpc http://HOST:PORT`: KServe v2 `ModelInfer` with `raw_input_contents` (the
//!   length-prefixed element), as `tritonclient.grpc` sends it (inferkit-serve, and the
//!   grpcio anchor speaking the same protocol).
//!
//! ```text
//! cargo run --release --example serve_load -- (--http URL [--form kserve|raw] | --grpc URL)
//!     [--model NAME] [--input NAME] (--image FILE | --text TEXT) [--output NAME --classes K]
//!     [--clients N | --rate PER_SECOND] [--seconds S] [--warmup S] [--timeout-ms MS]
//! ```
//!
//! Prints one JSON object: sent, ok, refused (503 / RESOURCE_EXHAUSTED), other errors by
//! kind, unanswered (the client's timeout), throughput of successful answers, and their
//! latency p50/p90/p99/max in milliseconds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inferkit_serve::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use inferkit_serve::grpc::proto::infer_parameter::ParameterChoice;
use inferkit_serve::grpc::proto::model_infer_request::{
    InferInputTensor, InferRequestedOutputTensor,
};
use inferkit_serve::grpc::proto::{InferParameter, ModelInferRequest};
use serde_json::json;

struct Args {
    http: Option<String>,
    grpc: Option<String>,
    raw_form: bool,
    model: String,
    input: String,
    output: Option<String>,
    classes: i64,
    item: Vec<u8>,
    text: bool,
    clients: usize,
    rate: Option<f64>,
    seconds: f64,
    warmup: f64,
    timeout: Duration,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        http: None,
        grpc: None,
        raw_form: false,
        model: "efficientnet_lite0".into(),
        input: "image".into(),
        output: None,
        classes: 0,
        item: Vec::new(),
        text: false,
        clients: 16,
        rate: None,
        seconds: 30.0,
        warmup: 5.0,
        timeout: Duration::from_secs(30),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<f64>()
                .map_err(|_| format!("`{v}` is not a number"))
        };
        match flag.as_str() {
            "--http" => a.http = Some(value()?),
            "--grpc" => a.grpc = Some(value()?),
            "--form" => {
                a.raw_form = match value()?.as_str() {
                    "raw" => true,
                    "kserve" => false,
                    other => return Err(format!("--form {other}: kserve or raw")),
                }
            }
            "--model" => a.model = value()?,
            "--input" => a.input = value()?,
            "--output" => a.output = Some(value()?),
            "--classes" => a.classes = number(value()?)? as i64,
            "--image" => {
                let path = value()?;
                a.item = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
            }
            "--text" => {
                a.item = value()?.into_bytes();
                a.text = true;
            }
            "--clients" => a.clients = number(value()?)?.max(1.0) as usize,
            "--rate" => a.rate = Some(number(value()?)?),
            "--seconds" => a.seconds = number(value()?)?,
            "--warmup" => a.warmup = number(value()?)?,
            "--timeout-ms" => a.timeout = Duration::from_millis(number(value()?)? as u64),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    if a.http.is_none() == a.grpc.is_none() {
        return Err("one of --http URL or --grpc URL".into());
    }
    if a.item.is_empty() {
        return Err("--image FILE or --text TEXT".into());
    }
    Ok(a)
}

/// What happened to one request.
enum Outcome {
    Ok(Duration),
    /// 503 / RESOURCE_EXHAUSTED: the server shed it, with an answer.
    Refused,
    /// Any other error answer, by kind (HTTP status or gRPC code).
    Failed(String),
    /// No answer within the client's timeout, or the connection failed.
    Unanswered(String),
}

/// One request's sender: HTTP (a pooled client and a body) or gRPC (a channel and a
/// message).
#[derive(Clone)]
enum Sender {
    Http {
        client: reqwest::Client,
        url: String,
        body: prost::bytes::Bytes,
        headers: Vec<(&'static str, String)>,
    },
    Grpc {
        client: GrpcInferenceServiceClient<tonic::transport::Channel>,
        request: Box<ModelInferRequest>,
    },
}

impl Sender {
    async fn send(&mut self, timeout: Duration) -> Outcome {
        let started = Instant::now();
        match self {
            Sender::Http {
                client,
                url,
                body,
                headers,
            } => {
                let mut req = client.post(url.as_str()).body(body.clone());
                for (k, v) in headers.iter() {
                    req = req.header(*k, v);
                }
                let sent = tokio::time::timeout(timeout, async {
                    let resp = req.send().await?;
                    let status = resp.status();
                    // the whole answer read, as a client does
                    resp.bytes().await.map(|_| status)
                })
                .await;
                match sent {
                    Err(_) => Outcome::Unanswered("timeout".into()),
                    Ok(Err(e)) => Outcome::Unanswered(format!("http: {e}")),
                    Ok(Ok(s)) if s.is_success() => Outcome::Ok(started.elapsed()),
                    Ok(Ok(s)) if s.as_u16() == 503 => Outcome::Refused,
                    Ok(Ok(s)) => Outcome::Failed(format!("http {}", s.as_u16())),
                }
            }
            Sender::Grpc { client, request } => {
                let mut req = tonic::Request::new(ModelInferRequest::clone(request));
                req.set_timeout(timeout);
                match client.model_infer(req).await {
                    Ok(_) => Outcome::Ok(started.elapsed()),
                    Err(s) if s.code() == tonic::Code::ResourceExhausted => Outcome::Refused,
                    // (tonic's client answers its own timeout with CANCELLED)
                    Err(s)
                        if matches!(
                            s.code(),
                            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                        ) =>
                    {
                        Outcome::Unanswered("timeout".into())
                    }
                    Err(s) if s.code() == tonic::Code::Unavailable => {
                        Outcome::Unanswered(format!("grpc {:?}", s.code()))
                    }
                    Err(s) => Outcome::Failed(format!("grpc {:?}", s.code())),
                }
            }
        }
    }
}

/// The KServe v2 binary data extension: a JSON header, then the one BYTES element
/// length-prefixed.
fn kserve_binary(a: &Args) -> (prost::bytes::Bytes, usize) {
    let mut element = (a.item.len() as u32).to_le_bytes().to_vec();
    element.extend_from_slice(&a.item);
    let mut head = json!({
        "inputs": [{"name": a.input, "datatype": "BYTES", "shape": [1],
                    "parameters": {"binary_data_size": element.len()}}],
    });
    if let Some(out) = &a.output {
        let mut params = json!({"binary_data": false});
        if a.classes > 0 {
            params["classification"] = json!(a.classes);
        }
        head["outputs"] = json!([{"name": out, "parameters": params}]);
    }
    let mut body = serde_json::to_vec(&head).expect("JSON");
    let json_len = body.len();
    body.extend_from_slice(&element);
    (body.into(), json_len)
}

async fn sender(a: &Args) -> Result<Sender, String> {
    if let Some(url) = &a.http {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(a.clients.max(64))
            .build()
            .map_err(|e| e.to_string())?;
        let (body, headers) = if a.raw_form {
            if a.text {
                let text = String::from_utf8_lossy(&a.item).into_owned();
                let body = serde_json::to_vec(&json!({"texts": [text]})).expect("JSON");
                (
                    body.into(),
                    vec![("content-type", "application/json".into())],
                )
            } else {
                (
                    a.item.clone().into(),
                    vec![("content-type", "image/jpeg".into())],
                )
            }
        } else {
            let (body, json_len) = kserve_binary(a);
            (
                body,
                vec![
                    ("content-type", "application/octet-stream".into()),
                    ("inference-header-content-length", json_len.to_string()),
                ],
            )
        };
        return Ok(Sender::Http {
            client,
            url: url.clone(),
            body,
            headers,
        });
    }
    let url = a.grpc.clone().unwrap_or_default();
    let channel = tonic::transport::Channel::from_shared(url.clone())
        .map_err(|e| format!("{url}: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let mut raw = (a.item.len() as u32).to_le_bytes().to_vec();
    raw.extend_from_slice(&a.item);
    let outputs = a
        .output
        .iter()
        .map(|name| InferRequestedOutputTensor {
            name: name.clone(),
            parameters: (a.classes > 0)
                .then(|| {
                    (
                        "classification".to_string(),
                        InferParameter {
                            parameter_choice: Some(ParameterChoice::Int64Param(a.classes)),
                        },
                    )
                })
                .into_iter()
                .collect(),
        })
        .collect();
    let request = ModelInferRequest {
        model_name: a.model.clone(),
        inputs: vec![InferInputTensor {
            name: a.input.clone(),
            datatype: "BYTES".into(),
            shape: vec![1],
            parameters: Default::default(),
            contents: None,
        }],
        outputs,
        raw_input_contents: vec![raw.into()],
        ..Default::default()
    };
    Ok(Sender::Grpc {
        client: GrpcInferenceServiceClient::new(channel).max_decoding_message_size(64 << 20),
        request: Box::new(request),
    })
}

#[derive(Default)]
struct Tally {
    sent: u64,
    latencies_us: Vec<u64>,
    refused: u64,
    failed: BTreeMap<String, u64>,
    unanswered: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, o: Outcome) {
        self.sent += 1;
        match o {
            Outcome::Ok(d) => self.latencies_us.push(d.as_micros() as u64),
            Outcome::Refused => self.refused += 1,
            Outcome::Failed(k) => *self.failed.entry(k).or_default() += 1,
            Outcome::Unanswered(k) => *self.unanswered.entry(k).or_default() += 1,
        }
    }
}

/// Sends for `seconds`: `clients` closed loops, or `rate` requests a second open loop.
/// Requests still in flight at the end are awaited (bounded by the client timeout).
async fn drive(a: &Args, s: &Sender, seconds: f64) -> (Tally, Duration) {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    match a.rate {
        None => {
            for _ in 0..a.clients {
                let (mut s, tally, timeout) = (s.clone(), Arc::clone(&tally), a.timeout);
                tasks.spawn(async move {
                    while Instant::now() < until {
                        let o = s.send(timeout).await;
                        tally.lock().unwrap().add(o);
                    }
                });
            }
        }
        Some(rate) => {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while Instant::now() < until {
                tick.tick().await;
                let (mut s, tally, timeout) = (s.clone(), Arc::clone(&tally), a.timeout);
                tasks.spawn(async move {
                    let o = s.send(timeout).await;
                    tally.lock().unwrap().add(o);
                });
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    (tally, elapsed)
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let s = match sender(&a).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // one request first: a server that cannot answer it is an error, not a figure
    match s.clone().send(a.timeout).await {
        Outcome::Ok(_) => {}
        Outcome::Refused => eprintln!("warning: the first request was refused (503)"),
        Outcome::Failed(k) | Outcome::Unanswered(k) => {
            eprintln!("error: the first request failed: {k}");
            return std::process::ExitCode::FAILURE;
        }
    }
    if a.warmup > 0.0 {
        eprintln!("warming up for {} s", a.warmup);
        drive(&a, &s, a.warmup).await;
    }
    eprintln!("measuring for {} s", a.seconds);
    let (mut t, elapsed) = drive(&a, &s, a.seconds).await;
    t.latencies_us.sort_unstable();
    let ok = t.latencies_us.len() as u64;
    let out = json!({
        "protocol": if a.http.is_some() { "http" } else { "grpc" },
        "clients": a.rate.map_or(Some(a.clients), |_| None),
        "rate": a.rate,
        "seconds": elapsed.as_secs_f64(),
        "sent": t.sent,
        "ok": ok,
        "refused": t.refused,
        "failed": t.failed,
        "unanswered": t.unanswered,
        "throughput": ok as f64 / elapsed.as_secs_f64(),
        "p50_ms": percentile(&t.latencies_us, 0.50),
        "p90_ms": percentile(&t.latencies_us, 0.90),
        "p99_ms": percentile(&t.latencies_us, 0.99),
        "max_ms": percentile(&t.latencies_us, 1.0),
    });
    println!("{out}");
    std::process::ExitCode::SUCCESS
}
