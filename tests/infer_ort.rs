//! infer-core's onnxruntime backend (`ort`), on the ONNX fixtures of tests/infer_onnx.rs,
//! against the outputs onnxruntime's Python API gave for them (the same onnxruntime 1.32.0
//! library: within 1e-6 for f32, where intra-op threads may sum in another order; integers
//! exactly); its descriptor against the tract backend's; its refusals: a device it cannot
//! get, a second library, bad inputs and bad bytes.
//!
//! The library: `ORT_DYLIB_PATH`, else the one `scripts/fetch-models.sh` puts in
//! `.cache/models/onnxruntime/` (or `$INFERKIT_MODELS/onnxruntime/`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

#[path = "common/npy.rs"]
mod npy;
#[path = "common/ort_library.rs"]
mod ort_library;

use inferkit::infer_core::onnx::OnnxBackend;
use inferkit::infer_core::ort::OrtBackend;
use inferkit::infer_core::{
    Backend, DType, Device, Error, InputProblem, Model, ModelSource, Plan, Tensor,
};
use ndarray::{ArrayD, IxDyn};
use ort_library::fetched_ort_library;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

/// The backend on `ORT_DYLIB_PATH`'s library, else the one scripts/fetch-models.sh fetched.
fn backend() -> OrtBackend {
    match fetched_ort_library() {
        Some(lib) => OrtBackend::new().with_library(lib),
        None => {
            assert!(
                std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| !p.is_empty()),
                "no onnxruntime library: run scripts/fetch-models.sh (or set ORT_DYLIB_PATH to a \
                 libonnxruntime)"
            );
            OrtBackend::new()
        }
    }
}

fn prepare(file: &str) -> Arc<dyn Plan> {
    backend()
        .prepare(ModelSource::Path(&dir().join(file)), Device::Cpu)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn npy(file: &str) -> Tensor {
    npy::read_any(&dir().join(file))
}

fn json(file: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join(file)).unwrap()).unwrap()
}

/// `got` is onnxruntime's Python answer `want`: f32 within `tol`, f64 within 1e-12
/// relative, every other type exactly.
fn assert_same(got: &Tensor, want: &Tensor, tol: f32, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    match (got, want) {
        (Tensor::F32(g), Tensor::F32(w)) => {
            let diff = g
                .iter()
                .zip(w)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(diff <= tol, "{what}: max |diff| {diff}");
        }
        (Tensor::F64(g), Tensor::F64(w)) => {
            for (x, y) in g.iter().zip(w) {
                assert!(
                    (x - y).abs() <= 1e-12 * y.abs().max(1.0),
                    "{what}: {x} vs {y}"
                );
            }
        }
        _ => assert_eq!(got, want, "{what}"),
    }
}

/// Runs `file` on `inputs` (name → fixture file, under `sub`) and compares each output named
/// in `outputs` with its fixture.
fn check_case(sub: &str, file: &str, inputs: &serde_json::Value, outputs: &serde_json::Value) {
    check_plan(
        &prepare(&format!("{sub}{file}")),
        sub,
        file,
        inputs,
        outputs,
    );
}

/// [`check_case`] on a plan already prepared.
fn check_plan(
    plan: &Arc<dyn Plan>,
    sub: &str,
    file: &str,
    inputs: &serde_json::Value,
    outputs: &serde_json::Value,
) {
    let at = |f: &serde_json::Value| npy(&format!("{sub}{}", f.as_str().unwrap()));
    let given: Vec<(String, Tensor)> = (inputs.as_object().unwrap().iter())
        .map(|(k, f)| (k.clone(), at(f)))
        .collect();
    let named: Vec<(&str, _)> = given.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
    let got = plan
        .session()
        .unwrap()
        .run(&named)
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let d = plan.descriptor();
    for (name, f) in outputs.as_object().unwrap() {
        let i = d.outputs.iter().position(|s| s.name == *name).unwrap();
        assert_same(&got[i], &at(f), 1e-6, &format!("{file} output {name}"));
    }
}

/// Cases `{file: {"x": input file, "y": output file}}` under `sub`: `x` the input named x,
/// `y` the model's first output. Returns how many.
fn check_x_to_first_output(sub: &str, cases: &serde_json::Value) -> usize {
    let cases = cases.as_object().unwrap();
    for (file, io) in cases {
        let plan = prepare(&format!("{sub}{file}"));
        let first = plan.descriptor().outputs[0].name.clone();
        let inputs = serde_json::json!({ "x": io["x"] });
        check_plan(
            &plan,
            sub,
            file,
            &inputs,
            &serde_json::json!({ first: io["y"] }),
        );
    }
    cases.len()
}

/// Every fixture of tests/infer_onnx.rs that has onnxruntime's answer: the small models, the
/// element types (exactly), shapes and axes given at run time, the operators the tract
/// backend registers, the layers tract runs right, PyTorch's transformer encoder at each of
/// its shapes, and torchvision's MobileNetV3/ResNet and recurrent models exported with
/// symbolic dims.
#[test]
fn every_fixture_matches_onnxruntimes_python_api() {
    let mut n = 0;
    for case in json("cases.json")["cases"].as_array().unwrap() {
        check_case(
            "",
            case["model"].as_str().unwrap(),
            &case["inputs"],
            &case["outputs"],
        );
        n += 1;
    }
    let dtypes = json("dtypes/dtypes.json");
    check_case(
        "dtypes/",
        "dtypes.onnx",
        &dtypes["inputs"],
        &dtypes["outputs"],
    );
    for case in json("value_inputs/value_inputs.json")["cases"]
        .as_array()
        .unwrap()
    {
        check_case(
            "value_inputs/",
            "value_inputs.onnx",
            &case["inputs"],
            &case["outputs"],
        );
        n += 1;
    }
    n += check_x_to_first_output("ops/", &json("ops/ops.json")["cases"]);
    n += check_x_to_first_output("inexact/", &json("inexact/inexact.json")["exact"]);
    for case in json("transformer.json")["cases"].as_array().unwrap() {
        check_case(
            "",
            case["model"].as_str().unwrap(),
            &case["inputs"],
            &case["outputs"],
        );
        n += 1;
    }
    for case in json("exports/exports.json")["cases"].as_array().unwrap() {
        check_case(
            "exports/",
            case["model"].as_str().unwrap(),
            &case["inputs"],
            &case["outputs"],
        );
        n += 1;
    }
    assert_eq!(n, 8 + 5 + 13 + 7 + 5 + 8);
}

/// The graphs the tract backend refuses rather than answer wrongly (a recurrent layer run in
/// reverse, pooling with dilations, …) run on onnxruntime, with outputs of the shapes the
/// graph declares.
#[test]
fn what_tract_refuses_runs_on_onnxruntime() {
    let refused = json("inexact/inexact.json")["refused"].clone();
    for file in refused.as_object().unwrap().keys() {
        let plan = prepare(&format!("inexact/{file}"));
        let d = plan.descriptor();
        let shape: Vec<usize> = (d.inputs[0].shape.iter())
            .map(|dim| match dim {
                inferkit::infer_core::Dim::Fixed(n) => *n,
                inferkit::infer_core::Dim::Dynamic(_) => 2,
            })
            .collect();
        let x = Tensor::F32(ArrayD::from_elem(IxDyn(&shape), 0.5));
        let out = plan
            .session()
            .unwrap()
            .run(&[(&d.inputs[0].name, x.view())]);
        let out = out.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(out.len(), d.outputs.len(), "{file}");
        for (t, spec) in out.iter().zip(&d.outputs) {
            assert_eq!(t.dtype(), spec.dtype, "{file}");
            assert_eq!(t.shape().len(), spec.shape.len(), "{file}");
        }
    }
}

/// Both backends describe each model alike: names, element types, dims (a dynamic dim by the
/// file's name for it, else `<tensor>_dim<i>`).
#[test]
fn the_descriptor_is_the_tract_backends() {
    let mut files: Vec<String> = (json("cases.json")["cases"].as_array().unwrap().iter())
        .map(|c| c["model"].as_str().unwrap().to_owned())
        .collect();
    files.extend(
        [
            "dtypes/dtypes.onnx",
            "transformer.onnx",
            "exports/mobilenet_v3_small.onnx",
            "exports/resnet.onnx",
            "exports/lstm.onnx",
            "exports/gru_bidirectional.onnx",
        ]
        .map(String::from),
    );
    files.dedup();
    for file in files {
        let ort = prepare(&file);
        let tract = OnnxBackend::new()
            .prepare(ModelSource::Path(&dir().join(&file)), Device::Cpu)
            .unwrap();
        let (o, t) = (ort.descriptor(), tract.descriptor());
        assert_eq!(
            (&o.name, &o.inputs, &o.outputs),
            (&t.name, &t.inputs, &t.outputs),
            "{file}"
        );
        assert_eq!(ort.device(), Device::Cpu);
        assert!(
            o.metadata["backend"].starts_with("onnxruntime"),
            "{:?}",
            o.metadata
        );
    }
}

/// One plan, a pool of 3 sessions, 6 threads, batch sizes 1 to 5: every answer onnxruntime's.
#[test]
fn one_plan_serves_many_threads_and_batch_sizes() {
    let model = Arc::new(Model::new(prepare("dyn_batch.onnx"), 3));
    let (x5, y5) = (npy("dyn_batch.b5.x.npy"), npy("dyn_batch.b5.y.npy"));
    std::thread::scope(|s| {
        for t in 0..6 {
            let (model, x5, y5) = (&model, &x5, &y5);
            s.spawn(move || {
                for i in 0..10 {
                    let n = 1 + (t + i) % 5;
                    let x = x5.view().slice_axis(0, 0..n);
                    let out = model.run(&[("x", x)]).unwrap();
                    let want = y5.view().slice_axis(0, 0..n).to_owned();
                    assert_same(&out[0], &want, 1e-6, "dyn_batch");
                }
            });
        }
    });
}

/// A contiguous input goes to onnxruntime as is; a strided view (every other row, a
/// transposed array) is copied first and gives the same answer as its contiguous copy.
#[test]
fn strided_inputs_give_the_answer_of_their_contiguous_copy() {
    let plan = prepare("dyn_batch.onnx");
    let mut session = plan.session().unwrap();
    let x = npy("dyn_batch.b5.x.npy").into_array::<f32>().unwrap();
    let every_other = x.slice_axis(ndarray::Axis(0), ndarray::Slice::new(0, None, 2));
    assert!(every_other.as_slice().is_none());
    let strided = session.run(&[("x", every_other.clone().into())]).unwrap();
    let copy = every_other.as_standard_layout().into_owned();
    let contiguous = session.run(&[("x", (&copy).into())]).unwrap();
    assert_eq!(strided, contiguous);
    let t = x.t().to_owned(); // [8, 5]
    let back = t.t(); // [5, 8], column-major
    let out = session.run(&[("x", back.into_dyn().into())]).unwrap();
    assert_same(&out[0], &npy("dyn_batch.b5.y.npy"), 1e-6, "transposed");
}

/// The descriptor's checks come first and name the input; an input shape the graph itself
/// cannot take is onnxruntime's error, with the model's name and the node.
#[test]
fn bad_inputs_are_named() {
    let plan = prepare("two_inputs.onnx");
    let mut s = plan.session().unwrap();
    let a = ArrayD::<f32>::zeros(IxDyn(&[3, 4]));
    let ids_f = ArrayD::<f32>::zeros(IxDyn(&[3, 5]));
    match s.run(&[
        ("a", (&a).into()),
        ("b", (&a).into()),
        ("ids", (&ids_f).into()),
    ]) {
        Err(Error::Input {
            model,
            input,
            problem,
        }) => {
            assert_eq!((model.as_str(), input.as_str()), ("two_inputs", "ids"));
            assert_eq!(
                problem,
                InputProblem::DType {
                    expected: DType::I64,
                    got: DType::F32
                }
            );
        }
        other => panic!("{other:?}"),
    }
    // traced at sequence length 5: onnxruntime refuses 9 in a Reshape, naming it
    let plan = prepare("transformer_legacy.onnx");
    let x = Tensor::F32(ArrayD::zeros(IxDyn(&[2, 9, 32])));
    let e = plan
        .session()
        .unwrap()
        .run(&[("x", x.view())])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("model `transformer_legacy`: onnxruntime failed running"),
        "{e}"
    );
    assert!(e.contains("Reshape"), "{e}");
}

/// The CPU-only onnxruntime has no CUDA provider: asking for a GPU is a device error at
/// prepare, never a model that runs on the CPU instead.
#[test]
fn a_gpu_without_its_provider_is_refused_not_run_on_the_cpu() {
    let e = backend()
        .prepare(ModelSource::Path(&dir().join("mlp.onnx")), Device::Cuda(0))
        .unwrap_err();
    match &e {
        Error::Device { device, reason } => {
            assert_eq!(device, "cuda:0");
            assert!(reason.contains("no CUDA execution provider"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

/// Bytes load like a file; garbage bytes, a missing file and a second library are errors
/// naming the model, the file and both libraries.
#[test]
fn sources_and_libraries_that_fail_are_named() {
    let bytes = std::fs::read(dir().join("mlp.onnx")).unwrap();
    let plan = backend()
        .with_name("mlp-bytes")
        .prepare(ModelSource::Bytes(&bytes), Device::Cpu)
        .unwrap();
    assert_eq!(plan.descriptor().name, "mlp-bytes");
    let out = plan
        .session()
        .unwrap()
        .run(&[("x", npy("mlp.x.npy").view())])
        .unwrap();
    assert_same(&out[0], &npy("mlp.y.npy"), 1e-6, "mlp from bytes");

    let e = backend()
        .with_name("junk")
        .prepare(ModelSource::Bytes(b"not onnx"), Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("model `junk`: onnxruntime failed loading the model"),
        "{e}"
    );

    let missing = dir().join("no-such-model.onnx");
    let e = backend()
        .prepare(ModelSource::Path(&missing), Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no-such-model.onnx"), "{e}");

    let e = OrtBackend::new()
        .with_library("/nonexistent/libonnxruntime.so")
        .prepare(ModelSource::Bytes(&bytes), Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/libonnxruntime.so"), "{e}");
}
