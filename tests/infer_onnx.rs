//! infer-core with the ONNX backend on small models made by scripts/make_onnx_fixtures.py,
//! against onnxruntime's outputs (1e-5); descriptor validation; the registry's hot swap under
//! load; the A/B router's split, stickiness and span.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[path = "common/npy.rs"]
mod npy;

use inferkit::infer_core::onnx::OnnxBackend;
use inferkit::infer_core::{
    Backend, DType, Device, Dim, Error, InputProblem, Model, ModelSource, Plan, Registry, Router,
    Tensor, Variant,
};
use ndarray::{ArrayD, IxDyn};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn prepare(file: &str) -> Arc<dyn Plan> {
    OnnxBackend::new()
        .prepare(ModelSource::Path(&dir().join(file)), Device::Cpu)
        .unwrap()
}

/// A fixture `.npy` of any element type `ndarray-npy` reads.
fn npy(file: &str) -> Tensor {
    npy::read_any(&dir().join(file))
}

/// Preparing `sub/file` and running it on zeros of `shape` as its input `x` fails, with an
/// error that names each of `names` (a JSON array of strings).
fn fails_naming(sub: &str, file: &str, shape: &[usize], names: &serde_json::Value) {
    let x = Tensor::F32(ArrayD::zeros(IxDyn(shape)));
    let e = OnnxBackend::new()
        .prepare(ModelSource::Path(&dir().join(sub).join(file)), Device::Cpu)
        .and_then(|plan| plan.session()?.run(&[("x", x.view())]))
        .expect_err(file)
        .to_string();
    for name in names.as_array().unwrap() {
        assert!(e.contains(name.as_str().unwrap()), "{file}: {e}");
    }
}

/// A case's inputs (`"inputs": {name: file.npy}` of a fixtures JSON), read.
fn case_inputs(case: &serde_json::Value) -> Vec<(String, Tensor)> {
    case["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, f)| (k.clone(), npy(f.as_str().unwrap())))
        .collect()
}

/// Every integer width, f64 and bool in and out (scripts/make_dtype_onnx_fixtures.py):
/// onnxruntime's outputs exactly (integer sums past the range wrap, as in onnxruntime), f64
/// within 1e-12 relative; as one batch, and row by row.
#[test]
fn every_element_type_onnx_models_use_matches_onnxruntime() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("dtypes/dtypes.json")).unwrap())
            .unwrap();
    let plan = prepare("dtypes/dtypes.onnx");
    let d = plan.descriptor();
    let dtypes: Vec<DType> = d.inputs.iter().map(|s| s.dtype).collect();
    assert_eq!(
        dtypes,
        [
            DType::I8,
            DType::I8,
            DType::I16,
            DType::U16,
            DType::U32,
            DType::U64,
            DType::F64
        ]
    );
    let inputs: Vec<(String, Tensor)> = meta["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, f)| (k.clone(), npy(&format!("dtypes/{}", f.as_str().unwrap()))))
        .collect();
    let expected: Vec<(String, Tensor)> = meta["outputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, f)| (k.clone(), npy(&format!("dtypes/{}", f.as_str().unwrap()))))
        .collect();
    let same = |got: &Tensor, want: &Tensor, what: &str| match (got, want) {
        (Tensor::F64(g), Tensor::F64(w)) => {
            assert_eq!(g.shape(), w.shape(), "{what}");
            for (x, y) in g.iter().zip(w) {
                assert!(
                    (x - y).abs() <= 1e-12 * y.abs().max(1.0),
                    "{what}: {x} vs {y}"
                );
            }
        }
        _ => assert_eq!(got, want, "{what}"),
    };
    let mut session = plan.session().unwrap();
    let named: Vec<(&str, _)> = inputs.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
    let outputs = session.run(&named).unwrap();
    for ((spec, got), (name, want)) in d.outputs.iter().zip(&outputs).zip(&expected) {
        assert_eq!(&spec.name, name);
        assert_eq!(spec.dtype, want.dtype(), "{name}");
        same(got, want, name);
    }
    // row 1 alone (another plan), against the same rows of onnxruntime's batch
    let rows: Vec<(&str, _)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.view().slice_axis(0, 1..2)))
        .collect();
    let outputs = session.run(&rows).unwrap();
    for (got, (name, want)) in outputs.iter().zip(&expected) {
        same(got, &want.view().slice_axis(0, 1..2).to_owned(), name);
    }
}

/// A `Reshape` target and `ReduceSum` axes given as graph inputs at run time
/// (scripts/make_value_input_onnx_fixtures.py): each value gets its own plan and
/// onnxruntime's answer; the `Gather` indices, data, do not multiply the plans.
#[test]
fn shapes_and_axes_given_at_run_time_match_onnxruntime() {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir().join("value_inputs/value_inputs.json")).unwrap(),
    )
    .unwrap();
    let plan = prepare("value_inputs/value_inputs.onnx");
    assert_eq!(
        plan.descriptor().metadata["plans"],
        "typed per input shape and per value of shape, axes, which the graph takes as constants"
    );
    let mut session = plan.session().unwrap();
    for (i, case) in meta["cases"].as_array().unwrap().iter().enumerate() {
        let read = |k: &str, f: &serde_json::Value| {
            (
                k.to_owned(),
                npy(&format!("value_inputs/{}", f.as_str().unwrap())),
            )
        };
        let inputs: Vec<(String, Tensor)> = case["inputs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, f)| read(k, f))
            .collect();
        let named: Vec<(&str, _)> = inputs.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
        let got = session.run(&named).unwrap();
        for (out, want) in got.iter().zip(["y", "g"]) {
            let (_, want) = read(want, &case["outputs"][want]);
            assert!(npy::max_abs_diff(out, &want) <= 1e-5, "case {i}");
        }
    }
}

/// Operators tract 0.21 lacks or gets wrong, registered by the ONNX backend (`Gelu`, both
/// approximations, `Mish`, `Dropout` with its inputs and mask, `Resize` in eight of its
/// modes, a `Range` over shape arithmetic; scripts/make_op_onnx_fixtures.py):
/// onnxruntime's outputs within 1e-6; a training-mode `Dropout` is refused by name.
#[test]
fn operators_we_register_match_onnxruntime() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("ops/ops.json")).unwrap())
            .unwrap();
    let cases = meta["cases"].as_object().unwrap();
    assert_eq!(cases.len(), 13);
    for (file, io) in cases {
        let plan = prepare(&format!("ops/{file}"));
        let x = npy(&format!("ops/{}", io["x"].as_str().unwrap()));
        let want = npy(&format!("ops/{}", io["y"].as_str().unwrap()));
        let mut session = plan.session().unwrap();
        let out = session.run(&[("x", x.view())]).unwrap();
        let diff = npy::max_abs_diff(&out[0], &want);
        assert!(diff <= 1e-6, "{file}: {diff}");
        if file == "dropout.onnx" {
            // the identity in inference, and its mask all true
            let mask = out[1].view_as::<bool>().unwrap();
            assert_eq!(mask.shape(), want.shape());
            assert!(mask.iter().all(|&m| m));
        }
        // one row (another plan)
        let out = session.run(&[("x", x.view().slice_axis(0, 0..1))]).unwrap();
        let want = want.view().slice_axis(0, 0..1).to_owned();
        assert!(npy::max_abs_diff(&out[0], &want) <= 1e-6, "{file}");
    }
    for (file, names) in meta["refused"].as_object().unwrap() {
        fails_naming("ops", file, &[2, 16], names);
    }
}

#[test]
fn every_fixture_matches_onnxruntime() {
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let plan = prepare(case["model"].as_str().unwrap());
        let inputs = case_inputs(case);
        let named: Vec<(&str, _)> = inputs.iter().map(|(k, t)| (k.as_str(), t.view())).collect();
        // Three runs in one session: each request is independent, so a recurrent layer's
        // hidden state (gru, lstm) must not carry from one run into the next.
        let mut session = plan.session().unwrap();
        for run in 0..3 {
            let out = session.run(&named).unwrap();
            let d = plan.descriptor();
            assert_eq!(out.len(), d.outputs.len());
            for (spec, got) in d.outputs.iter().zip(&out) {
                let want = npy(case["outputs"][&spec.name].as_str().unwrap());
                let diff = npy::max_abs_diff(got, &want);
                assert!(
                    diff <= 1e-5,
                    "{} output {} (run {run} of the session): max |diff| {diff}",
                    d.name,
                    spec.name
                );
            }
        }
    }
}

/// A session keeps tract's run state per input shape between runs and may move to another
/// thread between them: other inputs and other shapes run in between, on other threads, must
/// leave no trace in the next answer (a recurrent layer's hidden state, a stale value slot).
#[test]
fn a_session_moves_between_threads_and_carries_nothing_between_runs() {
    // (model, input, outputs, whether its first dim is dynamic)
    for (model, x, outputs, dynamic) in [
        (
            "lstm.onnx",
            "lstm.x.npy",
            &["lstm.y.npy", "lstm.y_h.npy", "lstm.y_c.npy"][..],
            false,
        ),
        (
            "gru.onnx",
            "gru.x.npy",
            &["gru.y.npy", "gru.y_h.npy"][..],
            false,
        ),
        (
            "dyn_batch.onnx",
            "dyn_batch.b5.x.npy",
            &["dyn_batch.b5.y.npy"][..],
            true,
        ),
    ] {
        let plan = prepare(model);
        let x = npy(x);
        let wants: Vec<Tensor> = outputs.iter().map(|f| npy(f)).collect();
        let other: Tensor = x.view_as::<f32>().unwrap().mapv(|v| 3.0 * v - 1.0).into();
        let shorter: Tensor = x
            .view_as::<f32>()
            .unwrap()
            .slice_axis(ndarray::Axis(0), (0..1).into())
            .to_owned()
            .into();
        let mut session = plan.session().unwrap();
        for round in 0..3 {
            // another input, then another shape, each on a thread of its own
            let others = if dynamic {
                vec![&other, &shorter]
            } else {
                vec![&other]
            };
            for t in others {
                let t = t.clone();
                session = std::thread::spawn(move || {
                    session.run(&[("x", t.view())]).unwrap();
                    session
                })
                .join()
                .unwrap();
            }
            let x = x.clone();
            let (s, out) = std::thread::spawn(move || {
                let out = session.run(&[("x", x.view())]).unwrap();
                (session, out)
            })
            .join()
            .unwrap();
            session = s;
            assert_eq!(out.len(), wants.len());
            for ((got, want), file) in out.iter().zip(&wants).zip(outputs) {
                let diff = npy::max_abs_diff(got, want);
                assert!(
                    diff <= 1e-5,
                    "{model} {file} round {round}: max |diff| {diff}"
                );
            }
        }
    }
}

#[test]
fn descriptor_comes_from_the_graph() {
    let plan = prepare("two_inputs.onnx");
    let d = plan.descriptor();
    assert_eq!(d.name, "two_inputs");
    let names: Vec<&str> = d.inputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "ids"]);
    assert_eq!(d.inputs[2].dtype, DType::I64);
    assert_eq!(
        d.inputs[0].shape,
        vec![Dim::Dynamic("batch".into()), Dim::Fixed(4)]
    );
    let outs: Vec<&str> = d.outputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(outs, ["prod", "emb"]);
    let json = serde_json::to_string(d).unwrap();
    assert_eq!(
        &serde_json::from_str::<inferkit::infer_core::ModelDescriptor>(&json).unwrap(),
        d
    );
    assert!(json.contains(r#""shape":["batch",4]"#), "{json}");
}

#[test]
fn one_plan_serves_many_batch_sizes_from_many_threads() {
    let model = Arc::new(Model::new(prepare("dyn_batch.onnx"), 8));
    let x5 = npy("dyn_batch.b5.x.npy");
    let y5 = npy("dyn_batch.b5.y.npy");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (model, x5, y5) = (Arc::clone(&model), x5.clone(), y5.clone());
            std::thread::spawn(move || {
                for i in 0..20 {
                    // batch sizes 1..=5, rows taken from the batch-5 fixture
                    let n = 1 + (t + i) % 5;
                    let x = x5
                        .view_as::<f32>()
                        .unwrap()
                        .slice_axis(ndarray::Axis(0), (0..n).into())
                        .to_owned();
                    let out = model.run(&[("x", (&x).into())]).unwrap();
                    let want: Tensor = y5
                        .view_as::<f32>()
                        .unwrap()
                        .slice_axis(ndarray::Axis(0), (0..n).into())
                        .to_owned()
                        .into();
                    assert!(npy::max_abs_diff(&out[0], &want) <= 1e-5);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn validation_names_the_input_and_the_dim() {
    let plan = prepare("two_inputs.onnx");
    let mut s = plan.session().unwrap();
    let a = ArrayD::<f32>::zeros(IxDyn(&[3, 4]));
    let b2 = ArrayD::<f32>::zeros(IxDyn(&[2, 4]));
    let ids = ArrayD::<i64>::zeros(IxDyn(&[3, 5]));
    let ids_f = ArrayD::<f32>::zeros(IxDyn(&[3, 5]));
    let a_rank1 = ArrayD::<f32>::zeros(IxDyn(&[12]));
    let a_wide = ArrayD::<f32>::zeros(IxDyn(&[3, 5]));
    let problem = |r: Result<Vec<Tensor>, Error>| match r {
        Err(Error::Input {
            model,
            input,
            problem,
        }) => {
            assert_eq!(model, "two_inputs");
            (input, problem)
        }
        other => panic!("expected an input error, got {other:?}"),
    };
    // unknown name
    let (i, p) = problem(s.run(&[
        ("a", (&a).into()),
        ("c", (&a).into()),
        ("ids", (&ids).into()),
    ]));
    assert_eq!(i, "c");
    assert!(matches!(p, InputProblem::Unknown { ref expected } if expected == "a, b, ids"));
    // missing
    let (i, p) = problem(s.run(&[("a", (&a).into()), ("ids", (&ids).into())]));
    assert_eq!((i.as_str(), p), ("b", InputProblem::Missing));
    // duplicate
    let (i, p) = problem(s.run(&[
        ("a", (&a).into()),
        ("a", (&a).into()),
        ("ids", (&ids).into()),
    ]));
    assert_eq!((i.as_str(), p), ("a", InputProblem::Duplicate));
    // dtype
    let (i, p) = problem(s.run(&[
        ("a", (&a).into()),
        ("b", (&a).into()),
        ("ids", (&ids_f).into()),
    ]));
    assert_eq!(
        (i.as_str(), p),
        (
            "ids",
            InputProblem::DType {
                expected: DType::I64,
                got: DType::F32
            }
        )
    );
    // rank
    let (i, p) = problem(s.run(&[
        ("a", (&a_rank1).into()),
        ("b", (&a).into()),
        ("ids", (&ids).into()),
    ]));
    assert_eq!(i, "a");
    assert!(matches!(
        p,
        InputProblem::Rank {
            expected: 2,
            got: 1,
            ..
        }
    ));
    // fixed dim
    let (i, p) = problem(s.run(&[
        ("a", (&a_wide).into()),
        ("b", (&a).into()),
        ("ids", (&ids).into()),
    ]));
    assert_eq!(
        (i.as_str(), p),
        (
            "a",
            InputProblem::Dim {
                dim: 1,
                expected: 4,
                got: 5
            }
        )
    );
    // one value per dynamic dim
    let (i, p) = problem(s.run(&[
        ("a", (&a).into()),
        ("b", (&b2).into()),
        ("ids", (&ids).into()),
    ]));
    assert_eq!(i, "b");
    assert!(
        matches!(p, InputProblem::Dynamic { dim: 0, ref name, got: 2, first: 3, ref first_input } if name == "batch" && first_input == "a")
    );
    let msg = s
        .run(&[
            ("a", (&a).into()),
            ("b", (&b2).into()),
            ("ids", (&ids).into()),
        ])
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "model `two_inputs`: input `b`: dim 0 (`batch`) is 2, but `batch` is 3 in input `a`"
    );
    // and with everything right it runs
    assert_eq!(
        s.run(&[
            ("a", (&a).into()),
            ("b", (&a).into()),
            ("ids", (&ids).into())
        ])
        .unwrap()
        .len(),
        2
    );
}

#[test]
fn an_unsupported_operator_is_named_with_the_model() {
    let err = OnnxBackend::new()
        .prepare(
            ModelSource::Path(&dir().join("custom_op.onnx")),
            Device::Cpu,
        )
        .expect_err("tract cannot run a made-up operator");
    let msg = err.to_string();
    assert!(msg.starts_with("model `custom_op`"), "{msg}");
    assert!(msg.contains("Frobnicate"), "{msg}");
    // tract's error is kept as the source, not only flattened into the message
    let source = std::error::Error::source(&err).expect("tract's error as the source");
    assert!(format!("{source:#}").contains("Frobnicate"), "{source}");
}

#[test]
fn cuda_is_a_typed_error_without_the_backend() {
    let err = OnnxBackend::new()
        .prepare(ModelSource::Path(&dir().join("mlp.onnx")), Device::Cuda(0))
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::Device { ref device, .. } if device == "cuda:0"),
        "{err}"
    );
    assert!(matches!(Device::Cuda(0).open(), Err(Error::Device { .. })));
    assert!(Device::Cpu.open().is_ok());
}

#[test]
fn registry_hot_swap_under_load_fails_no_request() {
    let v1 = OnnxBackend::new()
        .with_name("clf")
        .with_version(semver::Version::new(1, 0, 0));
    let v2 = OnnxBackend::new()
        .with_name("clf")
        .with_version(semver::Version::new(1, 1, 0));
    let load = |b: &OnnxBackend, f: &str| {
        Model::new(
            b.prepare(ModelSource::Path(&dir().join(f)), Device::Cpu)
                .unwrap(),
            4,
        )
    };
    let registry = Arc::new(Registry::new());
    registry.register(load(&v1, "dyn_batch.onnx"));
    let x = npy("dyn_batch.b5.x.npy");
    let want: HashMap<String, Tensor> = [
        ("1.0.0".to_string(), npy("dyn_batch.b5.y.npy")),
        ("1.1.0".to_string(), npy("dyn_batch_v2.b5.y.npy")),
    ]
    .into();
    let want = Arc::new(want);
    let stop = Arc::new(AtomicBool::new(false));
    let answered: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let failures = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (registry, x, want, stop, answered, failures) = (
                Arc::clone(&registry),
                x.clone(),
                Arc::clone(&want),
                Arc::clone(&stop),
                Arc::clone(&answered),
                Arc::clone(&failures),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let result = registry.latest("clf").and_then(|m| {
                        let version = m.descriptor().version.to_string();
                        m.run(&[("x", x.view())]).map(|out| (version, out))
                    });
                    match result {
                        Ok((version, out)) => {
                            // attributable to exactly the version that answered
                            let other = if version == "1.0.0" { "1.1.0" } else { "1.0.0" };
                            assert!(npy::max_abs_diff(&out[0], &want[&version]) <= 1e-5);
                            assert!(npy::max_abs_diff(&out[0], &want[other]) > 1e-3);
                            *answered.lock().unwrap().entry(version).or_default() += 1;
                        }
                        Err(_) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for i in 0..40 {
        // add the next version, then drop the old one: there is always one to serve
        if i % 2 == 0 {
            registry.register(load(&v2, "dyn_batch_v2.onnx"));
            registry.remove("clf", &semver::Version::new(1, 0, 0));
        } else {
            registry.register(load(&v1, "dyn_batch.onnx"));
            registry.remove("clf", &semver::Version::new(1, 1, 0));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    let answered = answered.lock().unwrap();
    assert!(
        answered.get("1.0.0").copied().unwrap_or(0) > 0
            && answered.get("1.1.0").copied().unwrap_or(0) > 0,
        "{answered:?}"
    );
    assert_eq!(
        registry.versions("clf"),
        vec![semver::Version::new(1, 0, 0)]
    );
    assert!(registry.matching("clf", &"^2".parse().unwrap()).is_err());
}

fn router() -> Router {
    let b = OnnxBackend::new().with_name("clf");
    let m = |v: u64| {
        Arc::new(Model::new(
            b.clone()
                .with_version(semver::Version::new(1, v, 0))
                .prepare(ModelSource::Path(&dir().join("mlp.onnx")), Device::Cpu)
                .unwrap(),
            1,
        ))
    };
    Router::new(vec![
        Variant {
            name: "control".into(),
            weight: 90,
            model: m(0),
        },
        Variant {
            name: "candidate".into(),
            weight: 10,
            model: m(1),
        },
    ])
    .unwrap()
}

#[test]
fn router_splits_by_weight_and_sticks_to_keys() {
    let r = router();
    let mut counts = [0_usize; 2];
    for k in 0..100_000_u32 {
        let key = format!("user-{k}");
        let i = r.pick(key.as_bytes());
        counts[i] += 1;
        assert_eq!(r.pick(key.as_bytes()), i, "sticky");
    }
    let share = counts[1] as f64 / 100_000.0;
    assert!((share - 0.10).abs() <= 0.01, "candidate share {share}");
    assert!(Router::new(vec![]).is_err());
    // requests without a key: turns walk the weights, an exact split every 100 turns
    let mut turns = [0_usize; 2];
    for t in 0..1000_u64 {
        let routed = r.route_turn(t);
        turns[usize::from(routed.variant == "candidate")] += 1;
    }
    assert_eq!(turns, [900, 100]);
    assert_eq!(r.route_turn(90).variant, "candidate");
    assert_eq!(r.route_turn(89).variant, "control");
}

#[test]
fn the_span_carries_the_variant() {
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<(String, String, String)>>>);
    struct V<'a>(&'a Capture, &'a str);
    impl Visit for V<'_> {
        fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
            self.0.0.lock().unwrap().push((
                self.1.to_string(),
                f.name().to_string(),
                format!("{v:?}"),
            ));
        }
        fn record_str(&mut self, f: &Field, v: &str) {
            self.0.0.lock().unwrap().push((
                self.1.to_string(),
                f.name().to_string(),
                v.to_string(),
            ));
        }
    }
    impl<S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>>
        tracing_subscriber::Layer<S> for Capture
    {
        fn on_new_span(
            &self,
            a: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: Context<'_, S>,
        ) {
            a.record(&mut V(self, a.metadata().name()));
        }
        fn on_record(
            &self,
            id: &tracing::span::Id,
            r: &tracing::span::Record<'_>,
            ctx: Context<'_, S>,
        ) {
            let name = ctx.span(id).map(|s| s.name()).unwrap_or("?");
            r.record(&mut V(self, name));
        }
    }
    let cap = Capture::default();
    let subscriber = tracing_subscriber::registry().with(cap.clone());
    let r = router();
    let key = (0..1000)
        .map(|k| format!("k{k}"))
        .find(|k| r.pick(k.as_bytes()) == 1)
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        // (the router's span may have been registered by another test's thread while no
        // subscriber was interested: its cached interest is rebuilt with this one)
        tracing::callsite::rebuild_interest_cache();
        let request = tracing::info_span!(
            "request",
            ab.variant = tracing::field::Empty,
            model.name = tracing::field::Empty,
            model.version = tracing::field::Empty
        );
        let _e = request.enter();
        let routed = r.route(key.as_bytes());
        assert_eq!(routed.variant, "candidate");
        let _s = routed.span.enter();
    });
    let got = cap.0.lock().unwrap().clone();
    for span in ["request", "route"] {
        let field = |f: &str| {
            got.iter()
                .find(|(s, n, _)| s == span && n == f)
                .map(|(_, _, v)| v.clone())
        };
        assert_eq!(
            field("ab.variant").as_deref(),
            Some("candidate"),
            "{span}: {got:?}"
        );
        assert_eq!(
            field("model.name").as_deref(),
            Some("clf"),
            "{span}: {got:?}"
        );
        assert_eq!(
            field("model.version").as_deref(),
            Some("1.1.0"),
            "{span}: {got:?}"
        );
    }
}

#[test]
fn a_model_loads_from_bytes_and_versions_are_looked_up_exactly() {
    let bytes = std::fs::read(dir().join("mlp.onnx")).unwrap();
    let plan = OnnxBackend::new()
        .with_name("mlp-bytes")
        .with_version(semver::Version::new(2, 3, 4))
        .prepare(ModelSource::Bytes(&bytes), Device::Cpu)
        .unwrap();
    assert_eq!(plan.descriptor().name, "mlp-bytes");
    let x = npy("mlp.x.npy");
    let out = plan.session().unwrap().run(&[("x", x.view())]).unwrap();
    assert!(npy::max_abs_diff(&out[0], &npy("mlp.y.npy")) <= 1e-5);
    let registry = Registry::new();
    registry.register(Model::new(plan, 1));
    assert!(
        registry
            .get("mlp-bytes", &semver::Version::new(2, 3, 4))
            .is_ok()
    );
    let err = registry
        .get("mlp-bytes", &semver::Version::new(2, 3, 5))
        .unwrap_err();
    assert_eq!(err.to_string(), "no model `mlp-bytes` matching =2.3.5");
    assert!(
        registry
            .matching("mlp-bytes", &">=2, <3".parse().unwrap())
            .is_ok()
    );
    // garbage bytes: a backend error naming the model
    let err = OnnxBackend::new()
        .with_name("junk")
        .prepare(ModelSource::Bytes(b"not onnx"), Device::Cpu)
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("model `junk`"), "{err}");
}

/// PyTorch's own `nn.TransformerEncoder`, exported with dynamic batch and sequence axes as
/// users export it (scripts/export_transformer_onnx.py): torch's default exporter, with and
/// without a key padding mask, at two shapes each in one session; and the TorchScript
/// exporter's graph, whose sequence length the trace baked into a `Reshape` (tract could not
/// type it with symbolic dims: `Failed analyse for node /layers.0/self_attn/Reshape_4`), at
/// the batch size changed. Against onnxruntime (1e-4: attention sums in another order).
#[test]
fn a_pytorch_transformer_encoder_with_dynamic_batch_and_sequence_matches_onnxruntime() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("transformer.json")).unwrap())
            .unwrap();
    let mut plans: HashMap<String, Arc<dyn Plan>> = HashMap::new();
    let mut sessions = HashMap::new();
    let cases = meta["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let file = case["model"].as_str().unwrap().to_owned();
        let plan = plans.entry(file.clone()).or_insert_with(|| prepare(&file));
        let d = plan.descriptor();
        assert!(
            matches!(&d.inputs[0].shape[..], [Dim::Dynamic(n), Dim::Dynamic(t), Dim::Fixed(32)] if n == "n" && t == "t"),
            "{:?}",
            d.inputs[0].shape
        );
        let session = sessions
            .entry(file.clone())
            .or_insert_with(|| plan.session().unwrap());
        let inputs = case_inputs(case);
        let named: Vec<(&str, _)> = inputs.iter().map(|(k, t)| (k.as_str(), t.view())).collect();
        let out = session
            .run(&named)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let want = npy(case["outputs"]["y"].as_str().unwrap());
        let diff = npy::max_abs_diff(&out[0], &want);
        assert!(diff <= 1e-4, "{file} {:?}: max |diff| {diff}", want.shape());
    }
}

/// torchvision's MobileNetV3-Small and ResNet exported with a symbolic batch, a 2-layer LSTM
/// and a bidirectional GRU with symbolic batch and time, as users export them
/// (scripts/export_torchvision_onnx.py), each at two shapes in one session: onnxruntime's
/// outputs within 1e-4 (convolutions and recurrences sum in another order).
#[test]
fn torchvision_and_recurrent_exports_with_symbolic_dims_match_onnxruntime() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("exports/exports.json")).unwrap())
            .unwrap();
    let cases = meta["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    let mut sessions = HashMap::new();
    for case in cases {
        let file = case["model"].as_str().unwrap().to_owned();
        let session = sessions.entry(file.clone()).or_insert_with(|| {
            let plan = prepare(&format!("exports/{file}"));
            assert!(
                matches!(plan.descriptor().inputs[0].shape[0], Dim::Dynamic(ref n) if n == "n"),
                "{file}: {:?}",
                plan.descriptor().inputs[0].shape
            );
            plan.session().unwrap()
        });
        let x = npy(&format!(
            "exports/{}",
            case["inputs"]["x"].as_str().unwrap()
        ));
        let out = session
            .run(&[("x", x.view())])
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let want = npy(&format!(
            "exports/{}",
            case["outputs"]["y"].as_str().unwrap()
        ));
        let diff = npy::max_abs_diff(&out[0], &want);
        assert!(diff <= 1e-4, "{file} {:?}: max |diff| {diff}", x.shape());
    }
}

/// The TorchScript export runs only at the sequence length it was traced with — in
/// onnxruntime too. At another, the error names the model and the node, and is not a panic
/// or a wrong answer; the session still answers the shape it can.
#[test]
fn a_graph_that_cannot_take_a_shape_names_the_node_at_that_shape() {
    let plan = prepare("transformer_legacy.onnx");
    assert!(
        plan.descriptor().metadata["plans"].starts_with("typed per input shape"),
        "{:?}",
        plan.descriptor().metadata
    );
    let mut session = plan.session().unwrap();
    let x = Tensor::F32(ArrayD::zeros(IxDyn(&[2, 9, 32])));
    let e = session.run(&[("x", x.view())]).unwrap_err().to_string();
    assert!(e.starts_with("model `transformer_legacy`"), "{e}");
    assert!(e.contains("Reshape"), "{e}");
    let x = npy("transformer_legacy.3x5.x.npy");
    let out = session.run(&[("x", x.view())]).unwrap();
    let diff = npy::max_abs_diff(&out[0], &npy("transformer_legacy.3x5.y.npy"));
    assert!(diff <= 1e-4, "{diff}");
}

/// What tract 0.21 computes wrongly without an error (scripts/make_inexact_onnx_fixtures.py:
/// a recurrent layer in `reverse` direction, pooling with `dilations`, and what
/// scripts/onnx-conformance.sh found: a Scatter `reduction`, InstanceNormalization `epsilon`,
/// SpaceToDepth CRD `mode`) is refused at prepare,
/// naming the node, the operator and the attribute; a graph tract panics on is an error; the
/// bidirectional layers, which it computes right, still run and match onnxruntime (1e-5), and
/// a `Shape` output comes out as i64.
#[test]
fn what_tract_would_answer_wrongly_is_refused_by_name_and_only_that() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("inexact/inexact.json")).unwrap())
            .unwrap();
    let refused = meta["refused"].as_object().unwrap();
    assert_eq!(refused.len(), 7);
    for (file, names) in refused {
        let path = dir().join("inexact").join(file);
        for source in [
            ModelSource::Path(&path),
            ModelSource::Bytes(&std::fs::read(&path).unwrap()),
        ] {
            let e = OnnxBackend::new()
                .with_name("m")
                .prepare(source, Device::Cpu)
                .expect_err(file)
                .to_string();
            assert!(e.starts_with("model `m`"), "{e}");
            for name in names.as_array().unwrap() {
                assert!(e.contains(name.as_str().unwrap()), "{file}: {e}");
            }
            assert!(e.contains("refused rather than answered wrongly"), "{e}");
        }
    }
    // a graph tract panics on (ONNX's test_shape_start_greater_than_end): an error
    for (file, names) in meta["errors"].as_object().unwrap() {
        fails_naming("inexact", file, &[3, 4, 5], names);
    }
    // wrong at some shapes only (an empty ReduceMax): refused at those, naming the node and
    // the shape; right at the others
    let at_shapes = meta["at_shapes"].as_object().unwrap();
    assert_eq!(at_shapes.len(), 1);
    for (file, case) in at_shapes {
        let plan = prepare(&format!("inexact/{file}"));
        let mut session = plan.session().unwrap();
        let inputs = |which: &str| -> Vec<(String, Tensor)> {
            case[which]["inputs"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, f)| (k.clone(), npy(&format!("inexact/{}", f.as_str().unwrap()))))
                .collect()
        };
        let bad = inputs("refused");
        let named: Vec<(&str, _)> = bad.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
        let e = session.run(&named).expect_err(file).to_string();
        for name in case["names"].as_array().unwrap() {
            assert!(e.contains(name.as_str().unwrap()), "{file}: {e}");
        }
        assert!(e.contains("refused rather than answered wrongly"), "{e}");
        let good = inputs("exact");
        let named: Vec<(&str, _)> = good.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
        let out = session.run(&named).unwrap();
        let want = npy(&format!("inexact/{}", case["exact"]["y"].as_str().unwrap()));
        assert!(npy::max_abs_diff(&out[0], &want) <= 1e-5, "{file}");
    }
    let exact = meta["exact"].as_object().unwrap();
    assert_eq!(exact.len(), 7);
    for (file, io) in exact {
        let plan = prepare(&format!("inexact/{file}"));
        let x = npy(&format!("inexact/{}", io["x"].as_str().unwrap()));
        let out = plan.session().unwrap().run(&[("x", x.view())]).unwrap();
        let want = npy(&format!("inexact/{}", io["y"].as_str().unwrap()));
        match want {
            // `Shape`: tract's TDim output, as i64
            Tensor::I64(want) => assert_eq!(out[0], Tensor::I64(want), "{file}"),
            want => {
                let diff = npy::max_abs_diff(&out[0], &want);
                assert!(diff <= 1e-5, "{file}: {diff}");
            }
        }
    }
}
