//! inferkit-serve's server, in process (the library, named `app` here): the
//! Open Inference Protocol endpoints and their errors on the ONNX fixtures
//! (scripts/make_onnx_fixtures.py, onnxruntime's outputs), batching across concurrent
//! clients with the same answers, a full queue (503), a passed deadline (504), and a hot
//! reload under load with no failed request.

use inferkit_serve as app;
#[path = "common/log.rs"]
mod log;
#[path = "common/npy.rs"]
mod npy;
#[path = "common/serve_support.rs"]
#[allow(dead_code)]
mod serve_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use app::{App, Config};
use ndarray::Array2;
use ndarray_npy::read_npy;
use serde_json::{Value, json};
use serve_support::{serve, slow_server};

fn fixture(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(f)
}

fn request(x: &Array2<f32>) -> Value {
    json!({
        "id": "req-1",
        "inputs": [{"name": "x", "shape": x.shape(), "datatype": "FP32",
                    "data": x.iter().copied().collect::<Vec<f32>>()}]
    })
}

fn output(v: &Value) -> Vec<f32> {
    v["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The value of the first sample in a Prometheus scrape whose line starts with `name`.
fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .parse()
        .unwrap()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5)
}

/// [`two_versions`] with an A/B route over them: version 1 weighs `w1`, version 2 `w2`.
fn routed_versions(w1: u32, w2: u32) -> Arc<App> {
    let app = two_versions();
    app.route(
        "dyn",
        app::Route::new(vec![
            (semver::Version::new(1, 0, 0), w1),
            (semver::Version::new(2, 0, 0), w2),
        ]),
    );
    app
}

fn two_versions() -> Arc<App> {
    let app = App::new(Config::default());
    app.load(app::load_model("dyn", &fixture("dyn_batch.onnx"), Some("1"), 1).unwrap());
    app.load(app::load_model("dyn", &fixture("dyn_batch_v2.onnx"), Some("2"), 1).unwrap());
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_answer_as_the_protocol_says_and_errors_are_named() {
    let base = serve(two_versions()).await;
    let c = reqwest::Client::new();
    let get = |p: &str| c.get(format!("{base}{p}")).send();
    assert_eq!(get("/v2/health/live").await.unwrap().status(), 200);
    assert_eq!(get("/v2/health/ready").await.unwrap().status(), 200);
    let meta: Value = get("/v2/models/dyn").await.unwrap().json().await.unwrap();
    assert_eq!(meta["name"], "dyn");
    assert_eq!(meta["versions"], json!(["1.0.0", "2.0.0"]));
    assert_eq!(meta["inputs"][0]["name"], "x");
    assert_eq!(meta["inputs"][0]["datatype"], "FP32");
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 8]));
    assert_eq!(
        get("/v2/models/dyn/versions/1").await.unwrap().status(),
        200
    );
    assert_eq!(
        get("/v2/models/dyn/versions/1/ready")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(get("/v2/models/dyn/ready").await.unwrap().status(), 200);
    let r = get("/v2/models/nope").await.unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("nope"), "{e}");
    assert_eq!(
        get("/v2/models/dyn/versions/9").await.unwrap().status(),
        404
    );

    // inference, version 1 and the latest (2), against onnxruntime's outputs
    let x: Array2<f32> = read_npy(fixture("dyn_batch.b5.x.npy")).unwrap();
    let y1: Array2<f32> = read_npy(fixture("dyn_batch.b5.y.npy")).unwrap();
    let x2: Array2<f32> = read_npy(fixture("dyn_batch_v2.b5.x.npy")).unwrap();
    let y2: Array2<f32> = read_npy(fixture("dyn_batch_v2.b5.y.npy")).unwrap();
    let post = |p: String, body: Value| c.post(format!("{base}{p}")).json(&body).send();
    let r: Value = post("/v2/models/dyn/versions/1/infer".into(), request(&x))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["model_name"], "dyn");
    assert_eq!(r["model_version"], "1.0.0");
    assert_eq!(r["id"], "req-1");
    assert_eq!(r["outputs"][0]["name"], "y");
    assert_eq!(r["outputs"][0]["shape"], json!([5, 3]));
    assert!(close(&output(&r), y1.as_slice().unwrap()), "{r}");
    let r: Value = post("/v2/models/dyn/infer".into(), request(&x2))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["model_version"], "2.0.0");
    assert!(close(&output(&r), y2.as_slice().unwrap()));

    // errors: 400 naming what is wrong, 404 for unknown models
    let bad = |body: Value| post("/v2/models/dyn/infer".into(), body);
    let expect = |status: u16, needle: &'static str| {
        move |r: reqwest::Response| async move {
            assert_eq!(r.status(), status);
            let e: Value = r.json().await.unwrap();
            let msg = e["error"].as_str().unwrap().to_owned();
            assert!(msg.contains(needle), "{msg}");
        }
    };
    let r = c
        .post(format!("{base}/v2/models/dyn/infer"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect(400, "malformed JSON")(r).await;
    let mut wrong = request(&x);
    wrong["inputs"][0]["name"] = json!("z");
    expect(400, "unknown input `z`")(bad(wrong).await.unwrap()).await;
    let mut wrong = request(&x);
    wrong["inputs"][0]["datatype"] = json!("INT64");
    expect(400, "datatype")(bad(wrong).await.unwrap()).await;
    let mut wrong = request(&x);
    wrong["inputs"][0]["shape"] = json!([5, 9]);
    expect(400, "values for shape")(bad(wrong).await.unwrap()).await;
    let wrong = request(&Array2::<f32>::zeros((2, 7)));
    expect(400, "x")(bad(wrong).await.unwrap()).await;
    expect(404, "nope")(
        post("/v2/models/nope/infer".into(), request(&x))
            .await
            .unwrap(),
    )
    .await;

    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("# TYPE inferkit_requests_total counter"));
    assert!(metrics.contains("code=\"400\""), "{metrics}");
}

/// `/metrics` is one valid exposition: the server's own families and each model version's
/// pipeline (the library's collector) labelled `model` and `version`, every family once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_each_versions_pipeline_under_its_labels() {
    let base = serve(two_versions()).await;
    let c = reqwest::Client::new();
    let x: Array2<f32> = read_npy(fixture("dyn_batch.b5.x.npy")).unwrap();
    for (version, n) in [("1", 2), ("2", 3)] {
        for _ in 0..n {
            let r = c
                .post(format!("{base}/v2/models/dyn/versions/{version}/infer"))
                .json(&request(&x))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    let r = c.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let mut unique = types.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(types.len(), unique.len(), "a family twice:\n{text}");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("valid exposition format");
    let value = |metric: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(b) => b.last().map_or(f64::NAN, |b| b.count),
                _ => f64::NAN,
            })
    };
    for (version, n) in [("1.0.0", 2.0), ("2.0.0", 3.0)] {
        let served = [("model", "dyn"), ("version", version)];
        let stage = [served[0], served[1], ("stage", "batch")];
        assert_eq!(
            value("inferkit_pipeline_received_total", &stage),
            Some(n),
            "{text}"
        );
        let answered = [served[0], served[1], ("code", "200")];
        assert_eq!(value("inferkit_requests_total", &answered), Some(n));
        assert_eq!(value("inferkit_request_duration_seconds", &served), Some(n));
    }
    assert_eq!(value("inferkit_queue_depth", &[]), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_are_batched_and_get_their_own_rows() {
    let app = App::new(
        Config::default()
            .with_max_batch(16)
            .with_max_delay(Duration::from_millis(50)),
    );
    app.load(app::load_model("dyn", &fixture("dyn_batch.onnx"), None, 1).unwrap());
    let base = serve(Arc::clone(&app)).await;
    let x: Array2<f32> = read_npy(fixture("dyn_batch.b5.x.npy")).unwrap();
    let y: Array2<f32> = read_npy(fixture("dyn_batch.b5.y.npy")).unwrap();
    let c = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (c, base) = (c.clone(), base.clone());
        let row = x.slice(ndarray::s![i % 5..i % 5 + 1, ..]).to_owned();
        tasks.push(tokio::spawn(async move {
            let r: Value = c
                .post(format!("{base}/v2/models/dyn/infer"))
                .json(&request(&row))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (i, output(&r))
        }));
    }
    for t in tasks {
        let (i, got) = t.await.unwrap();
        assert!(
            close(&got, y.row(i % 5).as_slice().unwrap()),
            "request {i}: {got:?}"
        );
    }
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (sum, count) = (
        metric(&metrics, "inferkit_batch_size_sum"),
        metric(&metrics, "inferkit_batch_size_count"),
    );
    assert_eq!(sum, 16.0);
    assert!(
        count < 16.0,
        "16 requests in {count} batches: none batched\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_is_503_and_a_passed_deadline_504() {
    let (_app, base, body) = slow_server(1).await;
    let c = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, base, body) = (c.clone(), base.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let r = c
                .post(format!("{base}/v2/models/slow/infer"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let retry = r.headers().get("retry-after").is_some();
            (r.status().as_u16(), retry, r.json::<Value>().await.unwrap())
        }));
    }
    let (mut ok, mut full) = (0, 0);
    for t in tasks {
        let (status, retry, v) = t.await.unwrap();
        match status {
            200 => {
                assert_eq!(output(&v), vec![2.0, 4.0]);
                ok += 1;
            }
            503 => {
                assert!(retry, "503 without Retry-After");
                assert!(v["error"].as_str().unwrap().contains("queue full"));
                full += 1;
            }
            s => panic!("status {s}: {v}"),
        }
    }
    assert!(ok >= 1 && full >= 1, "{ok} answered, {full} refused");
    // a deadline shorter than the request ahead of it
    let busy = spawn_infer(&c, &base, &body);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut hurried = body.clone();
    hurried["parameters"] = json!({"timeout": 20_000});
    let r = c
        .post(format!("{base}/v2/models/slow/infer"))
        .json(&hurried)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(busy.await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_reload_under_load_fails_no_request() {
    let app = App::new(Config::default());
    app.load(app::load_model("dyn", &fixture("dyn_batch.onnx"), Some("1"), 1).unwrap());
    let base = serve(Arc::clone(&app)).await;
    let x: Array2<f32> = read_npy(fixture("dyn_batch.b5.x.npy")).unwrap();
    let y1: Array2<f32> = read_npy(fixture("dyn_batch.b5.y.npy")).unwrap();
    let x2: Array2<f32> = read_npy(fixture("dyn_batch_v2.b5.x.npy")).unwrap();
    assert_eq!(x, x2, "both versions' fixtures share their input");
    let y2: Array2<f32> = read_npy(fixture("dyn_batch_v2.b5.y.npy")).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (base, stop, x) = (base.clone(), Arc::clone(&stop), x.clone());
        let (y1, y2) = (y1.clone(), y2.clone());
        clients.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            let (mut n, mut failed) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = c
                    .post(format!("{base}/v2/models/dyn/infer"))
                    .json(&request(&x))
                    .send()
                    .await
                    .unwrap();
                if r.status() != 200 {
                    failed += 1;
                    continue;
                }
                let v: Value = r.json().await.unwrap();
                let want = if v["model_version"] == "1.0.0" {
                    &y1
                } else {
                    &y2
                };
                assert!(close(&output(&v), want.as_slice().unwrap()), "{v}");
                n += 1;
            }
            (n, failed)
        }));
    }
    let c = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r: Value = c
        .post(format!("{base}/v2/repository/models/dyn/load"))
        .json(&json!({"parameters": {"path": fixture("dyn_batch_v2.onnx"), "version": "2"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["version"], "2.0.0", "{r}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = c
        .post(format!("{base}/v2/repository/models/dyn/unload"))
        .json(&json!({"parameters": {"version": "1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut total, mut failed) = (0, 0);
    for t in clients {
        let (n, f) = t.await.unwrap();
        total += n;
        failed += f;
    }
    assert_eq!(
        failed, 0,
        "{failed} of {total} requests failed during the reload"
    );
    assert!(total > 10, "{total} requests");
    let meta: Value = serve_support::get_json(&format!("{base}/v2/models/dyn")).await;
    assert_eq!(meta["versions"], json!(["2.0.0"]));
    let r = c
        .post(format!("{base}/v2/repository/models/nope/unload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// One request to the slow model, in the background: its status.
fn spawn_infer(
    c: &reqwest::Client,
    base: &str,
    body: &Value,
) -> tokio::task::JoinHandle<reqwest::StatusCode> {
    let (c, url, body) = (
        c.clone(),
        format!("{base}/v2/models/slow/infer"),
        body.clone(),
    );
    tokio::spawn(async move { c.post(url).json(&body).send().await.unwrap().status() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn higher_priority_requests_are_served_first() {
    let (_app, base, body) = slow_server(32).await;
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let send = |tag: &'static str, priority: Option<u64>| {
        let (base, order) = (base.clone(), Arc::clone(&order));
        let mut body = body.clone();
        if let Some(p) = priority {
            body["parameters"] = json!({ "priority": p });
        }
        tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(format!("{base}/v2/models/slow/infer"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            order.lock().unwrap().push(tag);
        })
    };
    // fillers (at the highest priority, so they stay ahead) occupy the model and the
    // pipeline's few channel slots for ~8 × 150 ms, so what follows waits in the queue
    let mut tasks: Vec<_> = (0..8).map(|_| send("filler", Some(1))).collect();
    tokio::time::sleep(Duration::from_millis(60)).await;
    tasks.extend((0..3).map(|_| send("default", None)));
    tasks.extend((0..3).map(|_| send("low", Some(5))));
    tokio::time::sleep(Duration::from_millis(30)).await;
    tasks.extend((0..3).map(|_| send("high", Some(1))));
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    let rest: Vec<&str> = order.into_iter().filter(|t| *t != "filler").collect();
    assert_eq!(
        rest,
        [
            "high", "high", "high", "low", "low", "low", "default", "default", "default"
        ],
        "answer order after the fillers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_route_splits_by_weight_and_sticks_by_header() {
    let app = routed_versions(3, 1);
    let base = serve(Arc::clone(&app)).await;
    let x: Array2<f32> = read_npy(fixture("dyn_batch.b5.x.npy")).unwrap();
    let y1: Array2<f32> = read_npy(fixture("dyn_batch.b5.y.npy")).unwrap();
    let y2: Array2<f32> = read_npy(fixture("dyn_batch_v2.b5.y.npy")).unwrap();
    let c = reqwest::Client::new();
    let ask = |session: Option<String>| {
        let mut r = c
            .post(format!("{base}/v2/models/dyn/infer"))
            .json(&request(&x));
        if let Some(s) = session {
            r = r.header("x-session-id", s);
        }
        async move { r.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    // without a key: round-robin by weight, 3 of v1 to 1 of v2
    let mut v1 = 0;
    for _ in 0..40 {
        let r = ask(None).await;
        let want = if r["model_version"] == "1.0.0" {
            v1 += 1;
            &y1
        } else {
            assert_eq!(r["model_version"], "2.0.0");
            &y2
        };
        assert!(close(&output(&r), want.as_slice().unwrap()), "{r}");
    }
    assert_eq!(v1, 30, "40 requests at 3:1");
    // with a key: each session always gets the same version; sessions split about 3:1
    let mut per_version = [0; 2];
    for s in 0..200 {
        let key = format!("user-{s}");
        let first = ask(Some(key.clone())).await["model_version"].clone();
        for _ in 0..2 {
            assert_eq!(
                ask(Some(key.clone())).await["model_version"],
                first,
                "{key}"
            );
        }
        per_version[usize::from(first != "1.0.0")] += 1;
    }
    assert!(
        (120..=180).contains(&per_version[0]),
        "200 sessions at 3:1 gave {per_version:?}"
    );
    // a version named in the path is not routed
    let r = c
        .post(format!("{base}/v2/models/dyn/versions/2/infer"))
        .header("x-session-id", "user-1")
        .json(&request(&x))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(r["model_version"], "2.0.0");
    // unloading a routed version sends its share to the other
    assert!(app.unload("dyn", &semver::Version::new(1, 0, 0)));
    for s in 0..20 {
        assert_eq!(
            ask(Some(format!("user-{s}"))).await["model_version"],
            "2.0.0"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_disconnects_cancels_its_queued_request() {
    let (app, base, body) = slow_server(8).await;
    let c = reqwest::Client::new();
    // one request runs (150 ms); the next, queued behind it, gives up after 40 ms
    let running = spawn_infer(&c, &base, &body);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let gone = reqwest::Client::builder()
        .timeout(Duration::from_millis(40))
        .build()
        .unwrap()
        .post(format!("{base}/v2/models/slow/infer"))
        .json(&body)
        .send()
        .await;
    assert!(gone.unwrap_err().is_timeout());
    assert_eq!(running.await.unwrap(), 200);
    // the model reaches the abandoned request after the running one: it is skipped, not run
    let mut cancelled = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        cancelled = app.stats_cancelled();
        if cancelled > 0 {
            break;
        }
    }
    assert_eq!(cancelled, 1, "the abandoned request was not cancelled");
    let ok = c
        .post(format!("{base}/v2/models/slow/infer"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "the server goes on");
}

/// The test binary's global log subscriber: inferkit-serve's JSON format and redaction,
/// into a buffer.
fn captured_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
        let w = log::Buf(Arc::clone(&buf));
        let sub = tracing_subscriber::fmt()
            .fmt_fields(inferkit::pipeline::Redact::default())
            .event_format(inferkit::pipeline::Redact::default().json())
            .with_writer(move || w.clone())
            .finish();
        tracing::subscriber::set_global_default(sub).unwrap();
        buf
    })
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logs_are_json_and_never_show_credentials_or_prompts() {
    let logs = captured_logs();
    let base = serve(two_versions()).await;
    let x: Array2<f32> = read_npy(fixture("dyn_batch.b5.x.npy")).unwrap();
    let mut body = request(&x);
    body["parameters"] = json!({"prompt": "my secret prompt", "token": "tok-s3cr3t"});
    let r = reqwest::Client::new()
        .post(format!("{base}/v2/models/dyn/versions/1/infer"))
        .header("authorization", "Bearer very-secret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    for secret in ["very-secret", "my secret prompt", "tok-s3cr3t"] {
        assert!(!out.contains(secret), "{secret} in the logs:\n{out}");
    }
    let line: Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        // other tests in this binary log too: this request's line is the one with credentials
        .find(|l| l["target"] == "serve::access" && !l["fields"]["authorization"].is_null())
        .unwrap_or_else(|| panic!("no access log line:\n{out}"));
    let f = &line["fields"];
    assert_eq!(f["message"], "infer");
    assert_eq!(f["version"], "1.0.0");
    assert_eq!(f["status"], 200);
    assert!(f["latency_us"].as_u64().unwrap() > 0);
    for k in ["authorization", "prompt", "token"] {
        assert_eq!(f[k], "[REDACTED]", "{k}: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_tensor_data_extension_in_and_out() {
    let base = serve(two_versions()).await;
    let x: Array2<f32> = read_npy(fixture("dyn_batch.b5.x.npy")).unwrap();
    let y: Array2<f32> = read_npy(fixture("dyn_batch.b5.y.npy")).unwrap();
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = json!({
        "inputs": [{"name": "x", "shape": [5, 8], "datatype": "FP32",
                    "parameters": {"binary_data_size": bytes.len()}}],
        "outputs": [{"name": "y", "parameters": {"binary_data": true}}]
    });
    let post = |header: &Value, tail: &[u8], claimed: Option<usize>| {
        let mut body = serde_json::to_vec(header).unwrap();
        let len = claimed.unwrap_or(body.len());
        body.extend_from_slice(tail);
        reqwest::Client::new()
            .post(format!("{base}/v2/models/dyn/versions/1/infer"))
            .header("inference-header-content-length", len)
            .body(body)
            .send()
    };
    let r = post(&header, &bytes, None).await.unwrap();
    assert_eq!(r.status(), 200);
    let len: usize = r.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = r.bytes().await.unwrap();
    let head: Value = serde_json::from_slice(&body[..len]).unwrap();
    assert_eq!(head["outputs"][0]["shape"], json!([5, 3]));
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 60);
    let got: Vec<f32> = body[len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(close(&got, y.as_slice().unwrap()), "{got:?}");
    // too few bytes, bytes left over, a header length past the body: 400, named
    for (tail, claimed, needle) in [
        (&bytes[..bytes.len() - 4], None, "binary_data_size 160"),
        (
            &[bytes.as_slice(), &[0; 4]].concat()[..],
            None,
            "no input claims",
        ),
        (&bytes[..], Some(1 << 20), "inference-header-content-length"),
    ] {
        let r = post(&header, tail, claimed).await.unwrap();
        assert_eq!(r.status(), 400);
        let e: Value = r.json().await.unwrap();
        assert!(e["error"].as_str().unwrap().contains(needle), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413_in_json() {
    let app = App::new(Config::default().with_max_body(100));
    app.load(app::load_model("dyn", &fixture("dyn_batch.onnx"), None, 1).unwrap());
    let base = serve(app).await;
    let x: Array2<f32> = read_npy(fixture("dyn_batch.b5.x.npy")).unwrap();
    let r = reqwest::Client::new()
        .post(format!("{base}/v2/models/dyn/infer"))
        .json(&request(&x))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("request body"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_data_is_row_major_and_non_numbers_are_named() {
    let base = serve(two_versions()).await;
    let x: Array2<f32> = read_npy(fixture("dyn_batch.b5.x.npy")).unwrap();
    let y: Array2<f32> = read_npy(fixture("dyn_batch.b5.y.npy")).unwrap();
    let c = reqwest::Client::new();
    let post = |body: Value| {
        c.post(format!("{base}/v2/models/dyn/versions/1/infer"))
            .json(&body)
            .send()
    };
    let nested: Vec<Vec<f32>> = x.rows().into_iter().map(|r| r.to_vec()).collect();
    let body =
        json!({"inputs": [{"name": "x", "shape": [5, 8], "datatype": "FP32", "data": nested}]});
    let r: Value = post(body).await.unwrap().json().await.unwrap();
    assert!(close(&output(&r), y.as_slice().unwrap()), "{r}");
    for (bad_value, index) in [(json!("1.5"), 3), (json!(null), 3), (json!({"a": 1}), 3)] {
        let mut data: Vec<Value> = x.iter().map(|&v| json!(v)).collect();
        data[index] = bad_value.clone();
        let body =
            json!({"inputs": [{"name": "x", "shape": [5, 8], "datatype": "FP32", "data": data}]});
        let r = post(body).await.unwrap();
        assert_eq!(r.status(), 400, "{bad_value}");
        let e: Value = r.json().await.unwrap();
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .contains("value 3 is not a FP32"),
            "{bad_value}: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shape_whose_size_overflows_is_400() {
    let base = serve(two_versions()).await;
    let body = json!({"inputs": [{"name": "x", "shape": [u64::MAX / 2, 8], "datatype": "FP32", "data": []}]});
    let r = reqwest::Client::new()
        .post(format!("{base}/v2/models/dyn/infer"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("too large"), "{e}");
}

/// Where an A/B route picks the version, the request's span records it (through the
/// library's `Router::route`): the access log line of a routed request carries `ab.variant`
/// and the answering version, on both protocols' span `infer`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_span_records_the_ab_variant() {
    let logs = captured_logs();
    // a model name of its own: other tests in this binary log access lines for `dyn`
    let app = App::new(Config::default());
    for (file, v) in [("dyn_batch.onnx", "1"), ("dyn_batch_v2.onnx", "2")] {
        app.load(app::load_model("abspan", &fixture(file), Some(v), 1).unwrap());
    }
    app.route(
        "abspan",
        app::Route::new(vec![
            (semver::Version::new(1, 0, 0), 1),
            (semver::Version::new(2, 0, 0), 1),
        ]),
    );
    let base = serve(Arc::clone(&app)).await;
    let x: Array2<f32> = read_npy(fixture("dyn_batch.b5.x.npy")).unwrap();
    let mut answered = std::collections::BTreeMap::new();
    for user in ["ada", "grace", "linus", "ken", "barbara", "edsger"] {
        let r: Value = reqwest::Client::new()
            .post(format!("{base}/v2/models/abspan/infer"))
            .header("x-session-id", user)
            .json(&request(&x))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answered.insert(r["model_version"].as_str().unwrap().to_owned(), user);
    }
    assert_eq!(
        answered.len(),
        2,
        "both variants answer some users: {answered:?}"
    );
    let out = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    for version in answered.keys() {
        let line = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| {
                l["target"] == "serve::access"
                    && l["fields"]["model"] == "abspan"
                    && l["fields"]["version"] == **version
            })
            .find(|l| {
                l["spans"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["name"] == "infer"))
            })
            .unwrap_or_else(|| panic!("no access line in a span for {version}:\n{out}"));
        let span = line["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "infer")
            .unwrap();
        let fields = span["fields"].as_str().unwrap();
        assert!(
            fields.contains(&format!("ab.variant=\"{version}\"")),
            "{fields}"
        );
        assert!(
            fields.contains(&format!("model.version=\"{version}\"")),
            "{fields}"
        );
        assert!(fields.contains("model.name=abspan"), "{fields}");
    }
}

/// Every integer width and FP64 in and out (scripts/make_dtype_onnx_fixtures.py): as JSON
/// data and through the binary data extension, onnxruntime's outputs exactly; a value that
/// does not fit its datatype and a BOOL byte that is no bool are 400s naming them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_integer_width_and_fp64_in_json_and_binary() {
    use inferkit::infer_core::Tensor;
    let app = App::new(Config::default());
    app.load(app::load_model("dtypes", &fixture("dtypes/dtypes.onnx"), None, 1).unwrap());
    let base = serve(app).await;
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("dtypes/dtypes.json")).unwrap())
            .unwrap();
    let read = |f: &Value| -> Tensor {
        npy::read_any(&fixture(&format!("dtypes/{}", f.as_str().unwrap())))
    };
    let name = |t: &Tensor| match t.dtype() {
        inferkit::infer_core::DType::F64 => "FP64",
        inferkit::infer_core::DType::I16 => "INT16",
        inferkit::infer_core::DType::I8 => "INT8",
        inferkit::infer_core::DType::U64 => "UINT64",
        inferkit::infer_core::DType::U32 => "UINT32",
        inferkit::infer_core::DType::U16 => "UINT16",
        inferkit::infer_core::DType::Bool => "BOOL",
        other => panic!("{other:?}"),
    };
    let inputs: Vec<(String, Tensor)> = meta["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, f)| (k.clone(), read(f)))
        .collect();
    let outputs: Vec<(String, Tensor)> = meta["outputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, f)| (k.clone(), read(f)))
        .collect();
    let as_json = |t: &Tensor| -> Value {
        let mut bytes = Vec::new();
        t.write_le_bytes(&mut bytes);
        let width = t.dtype().size();
        let v: Vec<Value> = bytes
            .chunks_exact(width)
            .map(|c| match t {
                Tensor::F64(_) => json!(f64::from_le_bytes(c.try_into().unwrap())),
                Tensor::I16(_) => json!(i16::from_le_bytes(c.try_into().unwrap())),
                Tensor::I8(_) => json!(c[0] as i8),
                Tensor::U64(_) => json!(u64::from_le_bytes(c.try_into().unwrap())),
                Tensor::U32(_) => json!(u32::from_le_bytes(c.try_into().unwrap())),
                Tensor::U16(_) => json!(u16::from_le_bytes(c.try_into().unwrap())),
                Tensor::Bool(_) => json!(c[0] == 1),
                _ => unreachable!(),
            })
            .collect();
        Value::Array(v)
    };
    let c = reqwest::Client::new();
    let url = format!("{base}/v2/models/dtypes/infer");
    // JSON in, JSON out
    let json_body = json!({"inputs": inputs.iter().map(|(n, t)| json!({
        "name": n, "shape": t.shape(), "datatype": name(t), "data": as_json(t)})).collect::<Vec<_>>()});
    let r: Value = c
        .post(&url)
        .json(&json_body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (n, want) in &outputs {
        let got = r["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == json!(n))
            .unwrap_or_else(|| panic!("no output {n}: {r}"));
        assert_eq!(got["datatype"], json!(name(want)), "{n}");
        assert_eq!(got["shape"], json!(want.shape()), "{n}");
        assert_eq!(got["data"], as_json(want), "{n}");
    }
    // binary in, binary out
    let mut tail = Vec::new();
    let header = json!({
        "inputs": inputs.iter().map(|(n, t)| json!({"name": n, "shape": t.shape(),
            "datatype": name(t), "parameters": {"binary_data_size": t.write_le_bytes(&mut tail)}}))
            .collect::<Vec<_>>(),
        "parameters": {"binary_data_output": true}
    });
    let mut body = serde_json::to_vec(&header).unwrap();
    let len = body.len();
    body.extend_from_slice(&tail);
    let r = c
        .post(&url)
        .header("inference-header-content-length", len)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let len: usize = r.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = r.bytes().await.unwrap();
    let head: Value = serde_json::from_slice(&body[..len]).unwrap();
    let mut at = len;
    for o in head["outputs"].as_array().unwrap() {
        let (_, want) = outputs.iter().find(|(n, _)| o["name"] == json!(n)).unwrap();
        let size = o["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
        let got = Tensor::from_le_bytes(want.dtype(), want.shape(), &body[at..at + size]).unwrap();
        assert_eq!(&got, want, "{o}");
        at += size;
    }
    assert_eq!(at, body.len());
    // 200 does not fit INT8: named
    let mut bad = json_body["inputs"].clone();
    bad[0]["data"][2] = json!(200);
    let r = c
        .post(&url)
        .json(&json!({"inputs": bad}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("value 2 is not a INT8"),
        "{e}"
    );
}

/// A model with an output not batched along axis 0 (a sum over the batch;
/// scripts/make_value_input_onnx_fixtures.py): concurrent requests that land in one batch
/// each get their own answer — the sum of their own rows — as each runs alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_model_whose_output_is_not_batched_answers_each_request_alone() {
    let app = App::new(
        Config::default()
            .with_max_batch(8)
            .with_max_delay(Duration::from_millis(50)),
    );
    app.load(app::load_model("sum", &fixture("value_inputs/batch_sum.onnx"), None, 1).unwrap());
    let base = serve(Arc::clone(&app)).await;
    let c = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let (c, base) = (c.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let x: Vec<f32> = (0..8).map(|k| f32::from(i * 10 + k)).collect();
            let body =
                json!({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x}]});
            let r: Value = c
                .post(format!("{base}/v2/models/sum/infer"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (x, r)
        }));
    }
    for t in tasks {
        let (x, r) = t.await.unwrap();
        let out = |name: &str| -> Vec<f32> {
            let o = r["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["name"] == name);
            let o = o.unwrap_or_else(|| panic!("no {name}: {r}"));
            o["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        };
        let sum: Vec<f32> = (0..4).map(|k| x[k] + x[k + 4]).collect();
        assert_eq!(out("s"), sum, "{r}");
        assert_eq!(
            out("y"),
            x.iter().map(|v| 2.0 * v).collect::<Vec<_>>(),
            "{r}"
        );
    }
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = metric(&metrics, "inferkit_batch_size_count");
    assert!(
        count < 8.0,
        "8 requests in {count} batches: none shared one, nothing was tested"
    );
}
