//! What a model takes and gives: tensor specs and the model descriptor, and the validation
//! of inputs against them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::InputProblem;
use crate::{DType, Error, Result, TensorView};

/// One dimension of a tensor spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    /// Always this size.
    Fixed(usize),
    /// Any size, the same wherever the name appears in one call (e.g. `batch`).
    Dynamic(String),
}

/// Name, element type and shape of an input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// The name inputs are matched by.
    pub name: String,
    /// The element type.
    #[serde(with = "dtype_name")]
    pub dtype: DType,
    /// The dimensions.
    pub shape: Vec<Dim>,
}

/// What the model would like to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RuntimeHint {
    /// No preference.
    #[default]
    Any,
    /// CPU.
    Cpu,
    /// A CUDA GPU.
    Cuda,
}

/// The contract of a model: its name, semver version, inputs and outputs, a runtime hint and
/// free-form metadata. Round-trips through JSON.
///
/// ```
/// use inferkit_infer_core::{Dim, ModelDescriptor, TensorSpec, weights::DType};
/// let d = ModelDescriptor {
///     name: "mlp".into(),
///     version: semver::Version::new(1, 0, 0),
///     inputs: vec![TensorSpec { name: "x".into(), dtype: DType::F32, shape: vec![Dim::Dynamic("batch".into()), Dim::Fixed(8)] }],
///     outputs: vec![],
///     runtime: Default::default(),
///     metadata: Default::default(),
/// };
/// let json = serde_json::to_string(&d)?;
/// assert_eq!(serde_json::from_str::<ModelDescriptor>(&json)?, d);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDescriptor {
    /// The model's name.
    pub name: String,
    /// Its version.
    pub version: semver::Version,
    /// Inputs, in the order backends take them.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in the order `run` returns them.
    pub outputs: Vec<TensorSpec>,
    /// Where it would like to run.
    #[serde(default)]
    pub runtime: RuntimeHint,
    /// Anything else (producer, licence, …).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl ModelDescriptor {
    /// Checks named inputs against the specs: count, names, dtype, rank, fixed dims, and one
    /// value per named dynamic dim. Returns the inputs in spec order and the dynamic dims'
    /// values.
    ///
    /// # Errors
    /// [`Error::InputCount`], or [`Error::Input`] naming the input and what is wrong.
    pub fn validate<'v, 'a>(
        &self,
        inputs: &'v [(&str, TensorView<'a>)],
    ) -> Result<(Vec<&'v TensorView<'a>>, BTreeMap<String, usize>)> {
        let names = || {
            self.inputs
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let err = |input: &str, problem| Error::Input {
            model: self.name.clone(),
            input: input.to_string(),
            problem,
        };
        for (name, _) in inputs {
            if !self.inputs.iter().any(|s| s.name == *name) {
                return Err(err(name, InputProblem::Unknown { expected: names() }));
            }
        }
        if inputs.len() > self.inputs.len() {
            let dup = inputs
                .iter()
                .enumerate()
                .find(|(i, (n, _))| inputs[..*i].iter().any(|(m, _)| m == n))
                .map(|(_, (n, _))| *n);
            if let Some(n) = dup {
                return Err(err(n, InputProblem::Duplicate));
            }
            return Err(Error::InputCount {
                model: self.name.clone(),
                expected: self.inputs.len(),
                names: names(),
                got: inputs.len(),
            });
        }
        let mut ordered = Vec::with_capacity(self.inputs.len());
        let mut dynamic: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for spec in &self.inputs {
            let mut found = inputs.iter().filter(|(n, _)| *n == spec.name);
            let Some((_, view)) = found.next() else {
                return Err(err(&spec.name, InputProblem::Missing));
            };
            if found.next().is_some() {
                return Err(err(&spec.name, InputProblem::Duplicate));
            }
            if view.dtype() != spec.dtype {
                return Err(err(
                    &spec.name,
                    InputProblem::DType {
                        expected: spec.dtype,
                        got: view.dtype(),
                    },
                ));
            }
            let shape = view.shape();
            if shape.len() != spec.shape.len() {
                return Err(err(
                    &spec.name,
                    InputProblem::Rank {
                        expected: spec.shape.len(),
                        got: shape.len(),
                        shape: shape.to_vec(),
                    },
                ));
            }
            for (dim, (want, &got)) in spec.shape.iter().zip(shape).enumerate() {
                match want {
                    Dim::Fixed(n) if *n != got => {
                        return Err(err(
                            &spec.name,
                            InputProblem::Dim {
                                dim,
                                expected: *n,
                                got,
                            },
                        ));
                    }
                    Dim::Fixed(_) => {}
                    Dim::Dynamic(sym) => match dynamic.get(sym) {
                        Some((first, first_input)) if *first != got => {
                            return Err(err(
                                &spec.name,
                                InputProblem::Dynamic {
                                    dim,
                                    name: sym.clone(),
                                    got,
                                    first: *first,
                                    first_input: first_input.clone(),
                                },
                            ));
                        }
                        Some(_) => {}
                        None => {
                            dynamic.insert(sym.clone(), (got, spec.name.clone()));
                        }
                    },
                }
            }
            ordered.push(view);
        }
        Ok((
            ordered,
            dynamic.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        ))
    }
}

mod dtype_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use crate::DType;

    pub(super) fn serialize<S: Serializer>(d: &DType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(d.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DType, D::Error> {
        let name = String::deserialize(d)?;
        DType::from_safetensors_name(&name)
            .ok_or_else(|| D::Error::custom(format!("unknown dtype `{name}`")))
    }
}
