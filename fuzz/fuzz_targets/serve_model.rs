//! The model both inferkit-serve request targets parse against: `x` FP32 `[batch, 8]`,
//! `ids` INT64 and `mask` INT32 `[batch, seq]`, output `y` FP32 `[batch, 3]`.

use inferkit_infer_core::{DType, Dim, ModelDescriptor, RuntimeHint, TensorSpec};

pub fn descriptor() -> ModelDescriptor {
    let spec = |name: &str, dtype, shape: Vec<Dim>| TensorSpec {
        name: name.into(),
        dtype,
        shape,
    };
    let batch = || Dim::Dynamic("batch".into());
    ModelDescriptor {
        name: "fuzz".into(),
        version: semver::Version::new(1, 0, 0),
        inputs: vec![
            spec("x", DType::F32, vec![batch(), Dim::Fixed(8)]),
            spec("ids", DType::I64, vec![batch(), Dim::Dynamic("seq".into())]),
            spec("mask", DType::I32, vec![batch(), Dim::Dynamic("seq".into())]),
        ],
        outputs: vec![spec("y", DType::F32, vec![batch(), Dim::Fixed(3)])],
        runtime: RuntimeHint::Cpu,
        metadata: Default::default(),
    }
}
