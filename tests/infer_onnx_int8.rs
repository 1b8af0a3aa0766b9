//! ONNX models quantized by `onnxruntime.quantization` as users quantize them (issue 22;
//! tests/fixtures/onnx/int8, from scripts/make_int8_onnx_fixtures.py): QDQ with per-channel
//! weights, QOperator (`QLinearConv`, `QLinearMatMul`, and onnxruntime's own `QLinearAdd`,
//! `QLinearMul`, `QLinearSigmoid`, `QLinearGlobalAveragePool`, `QGemm` of domain
//! com.microsoft: a residual block with squeeze-and-excitation, a pooled classifier), dynamic (`MatMulInteger` + `DynamicQuantizeLinear`), each at
//! batch 1 and 3, against onnxruntime's outputs.
//!
//! - The `ort` backend (the same onnxruntime library): within 1e-6.
//! - tract: within 2% of the output's largest magnitude (about two steps of its uint8
//!   quantization: a float summed in another order can move an activation across a rounding
//!   boundary on another CPU; here it is exact or 1e-7). Before our `QuantizeLinear` and
//!   `DequantizeLinear` (tract 0.21 read the first channel's scale only) the per-channel
//!   QDQ model was 11% off without an error; before our `QLinearConv` the QOperator CNN was
//!   refused (tract wanted one type for activations and weights, and its own quantized
//!   convolution fails on per-channel weights), and before our com.microsoft operators the
//!   other QOperator models were ("Unimplemented(QLinearAdd)").
//!
//! The ort backend's library: `ORT_DYLIB_PATH`, else the one `scripts/fetch-models.sh` fetched.

use std::path::{Path, PathBuf};

#[path = "common/npy.rs"]
mod npy;
#[path = "common/ort_library.rs"]
mod ort_library;

use inferkit::infer_core::onnx::OnnxBackend;
use inferkit::infer_core::ort::OrtBackend;
use inferkit::infer_core::{Backend, Device, ModelSource, Tensor};
use ort_library::fetched_ort_library;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/int8")
}

fn max_abs(t: &Tensor) -> f32 {
    t.view_as::<f32>()
        .unwrap()
        .iter()
        .fold(0.0, |m, v| m.max(v.abs()))
}

/// Each backend's tolerance, as a fraction of the output's largest magnitude.
fn tolerance(backend: &str) -> f32 {
    if backend == "ort" { 1e-6 } else { 0.02 }
}

#[test]
fn onnxruntime_quantized_models_match_onnxruntime_on_both_backends() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("int8.json")).unwrap()).unwrap();
    let cases = meta["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    // each kind of quantized model is there
    let ops: Vec<String> = cases
        .iter()
        .flat_map(|c| {
            c["ops"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap().to_owned())
        })
        .collect();
    for op in [
        "QuantizeLinear",
        "DequantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "MatMulInteger",
        "DynamicQuantizeLinear",
        "QLinearAdd",
        "QLinearMul",
        "QLinearSigmoid",
        "QLinearGlobalAveragePool",
        "QGemm",
    ] {
        assert!(ops.iter().any(|o| o == op), "no fixture uses {op}");
    }
    let ort = match fetched_ort_library() {
        Some(lib) => OrtBackend::new().with_library(lib),
        None => OrtBackend::new(),
    };
    let backends: [(&str, &dyn Backend); 2] = [("tract", &OnnxBackend::new()), ("ort", &ort)];
    for (name, backend) in backends {
        for case in cases {
            let model = case["model"].as_str().unwrap();
            let x = npy::read_any(&dir().join(case["x"].as_str().unwrap()));
            let want = npy::read_any(&dir().join(case["y"].as_str().unwrap()));
            let what = format!("{name} {model} {:?}", x.shape());
            let out = backend
                .prepare(ModelSource::Path(&dir().join(model)), Device::Cpu)
                .and_then(|plan| plan.session()?.run(&[("x", x.view())]))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let diff = npy::max_abs_diff(&out[0], &want);
            println!(
                "{what}: max |diff| {diff} (largest output {})",
                max_abs(&want)
            );
            assert!(
                diff <= tolerance(name) * max_abs(&want),
                "{what}: max |diff| {diff}"
            );
        }
    }
}
