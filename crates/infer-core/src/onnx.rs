//! The ONNX backend: tract (pure Rust). Loads a file or bytes, derives the descriptor from
//! the graph, types and optimises once per concrete input shape (a small LRU of plans shared
//! by all sessions; shapes the file states inside the graph in the inputs' symbols are
//! inferred again from the concrete ones), and runs from any number of threads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::{
    Datum, DatumType, Framework, InferenceFact, InferenceModel, InferenceModelExt, OutletId,
    SimpleState, TDim, Tensor as TractTensor, TypedFact, TypedModel, TypedOp, TypedRunnableModel,
    tvec,
};
use tract_onnx::tract_hir::infer::{GenericFactoid, ShapeFactoid};

use crate::backend::{Backend, ModelSource, Plan, Session};
use crate::error::InputProblem;
use crate::{
    DType, Device, DeviceContext, Dim, Error, ModelDescriptor, Result, RuntimeHint, Tensor,
    TensorSpec, TensorView,
};

/// How many optimised per-shape plans a model keeps (least recently used go first).
pub const DEFAULT_PLAN_CACHE: usize = 8;

/// The ONNX backend (tract-onnx).
///
/// ```
/// use inferkit_infer_core::{Backend, Device, ModelSource, onnx::OnnxBackend};
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/onnx/dyn_batch.onnx");
/// let plan = OnnxBackend::new().prepare(ModelSource::Path(path.as_ref()), Device::Cpu)?;
/// let d = plan.descriptor();
/// assert_eq!(d.inputs[0].name, "x");
/// assert_eq!(serde_json::to_string(&d.inputs[0].shape).unwrap(), r#"["batch",8]"#);
/// # Ok::<(), inferkit_infer_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct OnnxBackend {
    plan_cache: usize,
    name: Option<String>,
    version: semver::Version,
}

impl Default for OnnxBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl OnnxBackend {
    /// Defaults: a cache of [`DEFAULT_PLAN_CACHE`] shapes; the model named after its graph
    /// (or file), version 0.0.0.
    pub fn new() -> Self {
        OnnxBackend {
            plan_cache: DEFAULT_PLAN_CACHE,
            name: None,
            version: semver::Version::new(0, 0, 0),
        }
    }

    /// Names the model (errors and descriptor carry it).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the descriptor's version.
    #[must_use]
    pub fn with_version(mut self, version: semver::Version) -> Self {
        self.version = version;
        self
    }

    /// Per-shape plans kept (at least 1).
    #[must_use]
    pub fn with_plan_cache(mut self, n: usize) -> Self {
        self.plan_cache = n.max(1);
        self
    }
}

fn wrap(model: &str) -> impl Fn(tract_onnx::prelude::TractError) -> Error + '_ {
    move |e| Error::Backend {
        model: model.to_string(),
        message: format!("{e:#}"),
        source: Some(e.into()),
    }
}

impl Backend for OnnxBackend {
    fn name(&self) -> &'static str {
        "onnx"
    }

    fn prepare(&self, source: ModelSource<'_>, device: Device) -> Result<Arc<dyn Plan>> {
        if device != Device::Cpu {
            // tract runs on the CPU only.
            return Err(Error::Device {
                device: device.to_string(),
                reason: "the ONNX backend (tract) runs on the CPU only".into(),
            });
        }
        let name = self.name.clone().unwrap_or_else(|| source.default_name());
        let mut onnx = tract_onnx::onnx();
        crate::onnx_ops::register(&mut onnx.op_register);
        let (proto, dir) = match source {
            ModelSource::Path(p) => (
                onnx.proto_model_for_path(p),
                p.parent().and_then(|d| d.to_str()),
            ),
            ModelSource::Bytes(mut b) => (onnx.proto_model_for_read(&mut b), None),
        };
        let mut proto = proto.map_err(wrap(&name))?;
        if let Some(graph) = &mut proto.graph {
            refuse_inexact(graph, &name)?;
            crate::onnx_quant::uint8_weights_for_qlinearconv(graph);
        }
        // (tract panics on some graphs it parses: a Cast to FLOAT8 or INT4)
        let parsed = unpanicked(&name, "reading the graph", || {
            onnx.parse(&proto, dir).map_err(wrap(&name))
        })?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(Error::Backend {
                model: name,
                message: format!(
                    "inputs of nodes that nothing produces: {:?}",
                    parsed.unresolved_inputs
                ),
                source: None,
            });
        }
        let model = parsed.model;
        let mut descriptor = describe(&model, &name, &self.version)?;
        // tract reads no output types or shapes from the file (its analysis finds them per
        // plan): the descriptor takes them from the graph's declaration, as onnxruntime's
        // `get_outputs()` does
        if let Some(graph) = &proto.graph {
            for (spec, declared) in descriptor.outputs.iter_mut().zip(&graph.output) {
                if let Some(d) = declared_spec(declared, &name)? {
                    *spec = d;
                }
            }
        }
        // Optimise once up front when every input shape is fixed (the common case), so
        // that a broken model fails here and the first request is not slow.
        let baked: Vec<bool> = descriptor
            .inputs
            .iter()
            .map(|spec| {
                proto.graph.as_ref().is_some_and(|g| {
                    g.node.iter().any(|n| {
                        n.input
                            .iter()
                            .enumerate()
                            .any(|(pos, i)| *i == spec.name && needs_value(&n.op_type, pos))
                    })
                })
            })
            .collect();
        let mut inner = Inner {
            descriptor,
            model,
            cache: Mutex::new(Vec::new()),
            capacity: self.plan_cache,
            baked,
            watch: proto.graph.as_ref().map(watched).unwrap_or_default(),
        };
        let fixed: Option<Vec<Vec<usize>>> = inner
            .descriptor
            .inputs
            .iter()
            .map(|s| {
                s.shape
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => Some(*n),
                        Dim::Dynamic(_) => None,
                    })
                    .collect()
            })
            .collect();
        let baked_names: Vec<&str> = (inner.descriptor.inputs.iter().zip(&inner.baked))
            .filter(|(_, b)| **b)
            .map(|(s, _)| s.name.as_str())
            .collect();
        match fixed {
            _ if !baked_names.is_empty() => {
                // Typed at each run's shapes and values of these inputs; an operator tract
                // does not have is named now.
                if let Some(n) =
                    (inner.model.nodes().iter()).find(|n| n.op.name().starts_with("Unimplemented("))
                {
                    return Err(Error::Backend {
                        model: inner.descriptor.name.clone(),
                        message: format!(
                            "node `{}`: {}, which tract 0.21 does not have",
                            n.name,
                            n.op.name()
                        ),
                        source: None,
                    });
                }
                let plans = format!(
                    "typed per input shape and per value of {}, which the graph takes as constants",
                    baked_names.join(", ")
                );
                inner.descriptor.metadata.insert("plans".into(), plans);
            }
            Some(shapes) => {
                inner.plan_for(Key {
                    shapes,
                    values: Vec::new(),
                })?;
            }
            None => {
                // An operator tract does not have is named here. Otherwise tract may fail
                // to type a graph whose dims are symbols where every concrete shape types
                // (a graph whose `Reshape` targets are `Shape` arithmetic, as PyTorch
                // exports attention); plans are made per concrete shape anyway, so such a
                // graph is typed at each shape it is run with (an input shape the graph
                // cannot take is an error naming the node then, as in onnxruntime), and its
                // metadata says so.
                let model = inner.model.clone();
                let typed = unpanicked(&inner.descriptor.name, "typing the graph", || {
                    model.into_typed().map_err(wrap(&inner.descriptor.name))
                });
                if let Err(symbolic) = typed {
                    let missing = inner
                        .model
                        .nodes()
                        .iter()
                        .any(|n| n.op.name().starts_with("Unimplemented("));
                    if missing {
                        return Err(symbolic);
                    }
                    inner.descriptor.metadata.insert(
                        "plans".into(),
                        format!(
                            "typed per input shape (with symbolic dims tract could not: {})",
                            match &symbolic {
                                Error::Backend { message, .. } => message.as_str(),
                                _ => "",
                            }
                        ),
                    );
                }
            }
        }
        Ok(Arc::new(OnnxPlan {
            inner: Arc::new(inner),
        }))
    }
}

/// What tract 0.21 answers wrongly at some shapes only: checked on each plan's shapes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum AtShapes {
    /// `ReduceMax`/`ReduceMin` of an empty set (ONNX: the lowest/highest value).
    ReduceMinMaxEmpty,
}

/// A node to check at each plan's shapes: tract's name for it, how errors name it, what.
#[derive(Debug, Clone)]
struct Watched {
    node: String,
    shown: String,
    what: AtShapes,
}

/// The nodes of `graph` (not its subgraphs) that tract answers wrongly at some shapes, named
/// as tract-onnx names nodes (their name, else their first output's).
fn watched(graph: &tract_onnx::pb::GraphProto) -> Vec<Watched> {
    let mut out = Vec::new();
    for node in &graph.node {
        let what = match node.op_type.as_str() {
            "ReduceMax" | "ReduceMin" => AtShapes::ReduceMinMaxEmpty,
            _ => continue,
        };
        let node_name = if !node.name.is_empty() {
            node.name.clone()
        } else if let Some(o) = node.output.first().filter(|o| !o.is_empty()) {
            o.clone()
        } else {
            continue;
        };
        out.push(Watched {
            shown: format!("node `{node_name}` ({})", node.op_type),
            node: node_name,
            what,
        });
    }
    out
}

/// Refuses a plan whose shapes make a [`Watched`] node answer wrongly (`model` has its
/// facts analysed).
fn refuse_at_shapes(model: &InferenceModel, watch: &[Watched], name: &str) -> Result<()> {
    let dims = |f: &InferenceFact| f.shape.as_concrete_finite().ok().flatten();
    for w in watch {
        let Ok(node) = model.node_by_name(&w.node) else {
            continue;
        };
        let Ok(inputs) = model.node_input_facts(node.id) else {
            continue;
        };
        let Some(input) = inputs.first().and_then(|f| dims(f)) else {
            continue;
        };
        let problem = match w.what {
            AtShapes::ReduceMinMaxEmpty if input.contains(&0) => {
                "an empty input, whose reduction tract 0.21 does not give as ONNX does"
            }
            _ => continue,
        };
        return Err(Error::Backend {
            model: name.to_string(),
            message: format!(
                "{} at input shape {input:?}: {problem}: refused rather than answered wrongly",
                w.shown
            ),
            source: None,
        });
    }
    Ok(())
}

/// Whether input `pos` of an `op` node must be a constant for tract 0.21 to type the graph
/// (a shape, axes, pads, sizes, splits, repeats, `k`, a range's bounds, normalisation
/// parameters, sequence lengths). A graph input there — ONNX's own tests feed them so, as
/// do exporters for a `Reshape` to a size given at run time — makes its plans specialised
/// per value as well as per shape.
fn needs_value(op: &str, pos: usize) -> bool {
    match op {
        "Reshape" | "Expand" | "Tile" | "Squeeze" | "Unsqueeze" | "TopK" | "Split" | "CumSum"
        | "Upsample" | "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd"
        | "ReduceL1" | "ReduceL2" | "ReduceLogSum" | "ReduceLogSumExp" | "ReduceSumSquare" => {
            pos == 1
        }
        "ConstantOfShape" => pos == 0,
        "Range" => pos <= 2,
        "Slice" | "Pad" | "Resize" | "BatchNormalization" | "Dropout" | "OneHot" => pos >= 1,
        "LSTM" | "GRU" | "RNN" => pos == 4,
        _ => false,
    }
}

/// `f`, a call into tract, with a panic of tract's (on a graph it does not expect: ONNX's
/// `test_shape_start_greater_than_end`) turned into an error naming the model and the step.
fn unpanicked<T>(model: &str, step: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(Error::Backend {
            model: model.to_string(),
            message: format!("tract failed {step}: {why}"),
            source: None,
        })
    })
}

/// Refuses, naming the node, what tract 0.21 computes wrongly without an error (measured
/// against onnxruntime: scripts/make_inexact_onnx_fixtures.py): an LSTM or RNN run in
/// `reverse` direction alone (run forward: LSTM 0.37 off; `bidirectional` is right; GRU is
/// our own, `crate::onnx_gru`), pooling with `dilations` (ignored: another output shape), MaxPool's `Indices`
/// output with strides (other indices), InstanceNormalization's
/// `epsilon` and SpaceToDepth's CRD `mode` (ignored; found by scripts/onnx-conformance.sh). Subgraphs (`If`, `Loop`, `Scan` bodies)
/// are looked at too.
fn refuse_inexact(graph: &tract_onnx::pb::GraphProto, model: &str) -> Result<()> {
    for (i, node) in graph.node.iter().enumerate() {
        let attribute = |n: &str| node.attribute.iter().find(|a| a.name == n);
        let strided = attribute("strides").is_some_and(|a| a.ints.iter().any(|&s| s != 1));
        let problem = match node.op_type.as_str() {
            // (GRU is ours: crate::onnx_gru)
            "LSTM" | "RNN" => attribute("direction")
                .filter(|a| a.s == b"reverse")
                .map(|_| "direction \"reverse\", which tract 0.21 runs forward"),
            "MaxPool" | "AveragePool" | "LpPool"
                if attribute("dilations").is_some_and(|a| a.ints.iter().any(|&d| d != 1)) =>
            {
                Some("dilations other than 1, which tract 0.21 ignores")
            }
            "MaxPool" if node.output.len() > 1 && strided => {
                Some("an `Indices` output with strides, which tract 0.21 numbers otherwise")
            }
            "InstanceNormalization"
                if attribute("epsilon").is_some_and(|a| (a.f - 1e-5).abs() > 1e-12) =>
            {
                Some("an `epsilon` other than 1e-5, which tract 0.21 ignores")
            }
            "SpaceToDepth" if attribute("mode").is_some_and(|a| a.s != b"DCR") => {
                Some("`mode` CRD, which tract 0.21 runs as DCR")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            return Err(Error::Backend {
                model: model.to_string(),
                message: format!(
                    "node `{}` ({}) has {problem}: refused rather than answered wrongly",
                    if node.name.is_empty() {
                        format!("#{i}")
                    } else {
                        node.name.clone()
                    },
                    node.op_type
                ),
                source: None,
            });
        }
        for a in &node.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                refuse_inexact(g, model)?;
            }
        }
    }
    Ok(())
}

/// tract's element types and ours, both ways (tract 0.21 has no bfloat16).
const DTYPES: [(DatumType, DType); 12] = [
    (DatumType::F32, DType::F32),
    (DatumType::F16, DType::F16),
    (DatumType::F64, DType::F64),
    (DatumType::I64, DType::I64),
    (DatumType::I32, DType::I32),
    (DatumType::I16, DType::I16),
    (DatumType::I8, DType::I8),
    (DatumType::U64, DType::U64),
    (DatumType::U32, DType::U32),
    (DatumType::U16, DType::U16),
    (DatumType::U8, DType::U8),
    (DatumType::Bool, DType::Bool),
];

fn dtype_of(dt: DatumType) -> Option<DType> {
    DTYPES.iter().find(|(t, _)| *t == dt).map(|(_, d)| *d)
}

fn datum_of(dt: DType) -> Option<DatumType> {
    DTYPES.iter().find(|(_, d)| *d == dt).map(|(t, _)| *t)
}

fn spec_of(fact: &InferenceFact, name: &str, model: &str) -> Result<TensorSpec> {
    let dtype = match &fact.datum_type {
        GenericFactoid::Only(dt) => dtype_of(*dt).ok_or_else(|| Error::Backend {
            model: model.into(),
            source: None,
            message: format!(
                "tensor `{name}` has element type {dt:?}, which inferkit tensors do not hold"
            ),
        })?,
        GenericFactoid::Any => DType::F32,
    };
    let shape = fact
        .shape
        .dims()
        .enumerate()
        .map(|(i, d)| match d {
            GenericFactoid::Only(TDim::Val(n)) => Dim::Fixed(*n as usize),
            GenericFactoid::Only(other) => Dim::Dynamic(other.to_string()),
            GenericFactoid::Any => Dim::Dynamic(format!("{name}_dim{i}")),
        })
        .collect();
    Ok(TensorSpec {
        name: name.to_string(),
        dtype,
        shape,
    })
}

/// A graph input's or output's declared element type and shape (`None` where the file
/// declares no element type).
fn declared_spec(v: &tract_onnx::pb::ValueInfoProto, model: &str) -> Result<Option<TensorSpec>> {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value as D;
    use tract_onnx::pb::type_proto::Value;
    let Some(Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Ok(None);
    };
    if t.elem_type == 0 {
        return Ok(None);
    }
    let dtype = tract_onnx::pb::tensor_proto::DataType::from_i32(t.elem_type)
        .and_then(|pb| DatumType::try_from(pb).ok())
        .and_then(dtype_of)
        .ok_or_else(|| Error::Backend {
            model: model.into(),
            source: None,
            message: format!(
                "tensor `{}` has element type {} ({}), which inferkit tensors do not hold",
                v.name,
                tract_onnx::pb::tensor_proto::DataType::from_i32(t.elem_type)
                    .map_or("unknown", |d| d.as_str_name()),
                t.elem_type
            ),
        })?;
    let shape = t.shape.as_ref().map_or_else(Vec::new, |s| {
        s.dim
            .iter()
            .enumerate()
            .map(|(i, d)| match &d.value {
                Some(D::DimValue(n)) if *n >= 0 => Dim::Fixed(*n as usize),
                Some(D::DimParam(p)) if !p.is_empty() => Dim::Dynamic(p.clone()),
                _ => Dim::Dynamic(format!("{}_dim{i}", v.name)),
            })
            .collect()
    });
    Ok(Some(TensorSpec {
        name: v.name.clone(),
        dtype,
        shape,
    }))
}

fn describe(
    model: &InferenceModel,
    name: &str,
    version: &semver::Version,
) -> Result<ModelDescriptor> {
    let mut inputs = Vec::new();
    for (i, outlet) in model
        .input_outlets()
        .map_err(wrap(name))?
        .iter()
        .enumerate()
    {
        let input_name = model.node(outlet.node).name.clone();
        inputs.push(spec_of(
            model.input_fact(i).map_err(wrap(name))?,
            &input_name,
            name,
        )?);
    }
    let mut outputs = Vec::new();
    for (i, outlet) in model
        .output_outlets()
        .map_err(wrap(name))?
        .iter()
        .enumerate()
    {
        let output_name = model
            .outlet_label(*outlet)
            .map_or_else(|| model.node(outlet.node).name.clone(), str::to_string);
        outputs.push(spec_of(
            model.output_fact(i).map_err(wrap(name))?,
            &output_name,
            name,
        )?);
    }
    let mut metadata = BTreeMap::new();
    metadata.insert("backend".into(), "onnx (tract 0.21)".into());
    Ok(ModelDescriptor {
        name: name.to_string(),
        version: version.clone(),
        inputs,
        outputs,
        runtime: RuntimeHint::Cpu,
        metadata,
    })
}

type Runnable = TypedRunnableModel<TypedModel>;

/// Input shapes, in descriptor order, and the values of the inputs the graph needs as
/// constants (see [`needs_value`]), in descriptor order: the key of the plan cache.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    shapes: Vec<Vec<usize>>,
    values: Vec<Tensor>,
}

struct Inner {
    descriptor: ModelDescriptor,
    model: InferenceModel,
    /// Most recently used last.
    cache: Mutex<Vec<(Key, Arc<Runnable>)>>,
    capacity: usize,
    /// Per input (descriptor order): whether the graph takes its value as a constant.
    baked: Vec<bool>,
    /// Nodes to check at each plan's shapes.
    watch: Vec<Watched>,
}

impl Inner {
    /// The optimised plan for these input shapes, from the cache or made (outside the lock).
    fn plan_for(&self, key: Key) -> Result<Arc<Runnable>> {
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = cache.iter().position(|(k, _)| *k == key) {
                let hit = cache.remove(i);
                let plan = Arc::clone(&hit.1);
                cache.push(hit);
                return Ok(plan);
            }
        }
        let name = &self.descriptor.name;
        let mut model = self.model.clone();
        // Shapes the file states inside the graph (ONNX `value_info`, outputs) in the
        // input's symbols (`[t, n, 32]`, as torch's exporter writes them) would not unify
        // with the concrete input shapes: they are forgotten and inferred from the inputs.
        let inputs = model.input_outlets().map_err(wrap(name))?.to_vec();
        for node in 0..model.nodes().len() {
            for slot in 0..model.nodes()[node].outputs.len() {
                let outlet = OutletId::new(node, slot);
                let fact = &model.nodes()[node].outputs[slot].fact;
                let symbolic = fact
                    .shape
                    .dims()
                    .any(|d| matches!(d, GenericFactoid::Only(d) if d.to_i64().is_err()));
                if symbolic && !inputs.contains(&outlet) {
                    let mut fact = fact.clone();
                    fact.shape = ShapeFactoid::default();
                    model.set_outlet_fact(outlet, fact).map_err(wrap(name))?;
                }
            }
        }
        for (i, (spec, shape)) in self.descriptor.inputs.iter().zip(&key.shapes).enumerate() {
            let dt = datum_of(spec.dtype).ok_or_else(|| Error::Input {
                model: name.clone(),
                input: spec.name.clone(),
                problem: InputProblem::Unsupported(spec.dtype),
            })?;
            model
                .set_input_fact(i, InferenceFact::dt_shape(dt, shape.clone()))
                .map_err(wrap(name))?;
        }
        // inputs whose values the graph needs as constants become constants of this plan
        if !key.values.is_empty() {
            let mut values = key.values.iter();
            let mut kept = Vec::new();
            for (outlet, (&baked, spec)) in inputs
                .iter()
                .zip(self.baked.iter().zip(&self.descriptor.inputs))
            {
                if !baked {
                    kept.push(*outlet);
                    continue;
                }
                let value = values.next().ok_or_else(|| Error::Backend {
                    model: name.clone(),
                    message: format!("no value for input `{}` of this plan", spec.name),
                    source: None,
                })?;
                let t = Arc::new(to_tract(&value.view(), name, &spec.name)?);
                model.node_mut(outlet.node).op = Box::new(
                    tract_onnx::tract_hir::ops::konst::Const::new(Arc::clone(&t)),
                );
                model
                    .set_outlet_fact(*outlet, InferenceFact::from(t))
                    .map_err(wrap(name))?;
            }
            model.set_input_outlets(&kept).map_err(wrap(name))?;
        }
        if !self.watch.is_empty() {
            // (a graph that does not analyse fails below, with tract's error)
            let analysed = unpanicked(name, "typing the graph", || {
                model.analyse(false).map_err(wrap(name))
            });
            if analysed.is_ok() {
                refuse_at_shapes(&model, &self.watch, name)?;
            }
        }
        let plan = Arc::new(unpanicked(name, "optimising the graph", || {
            model
                .into_optimized()
                .and_then(|m| m.into_runnable())
                .map_err(wrap(name))
        })?);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if !cache.iter().any(|(k, _)| *k == key) {
            if cache.len() >= self.capacity {
                cache.remove(0);
            }
            cache.push((key, Arc::clone(&plan)));
        }
        Ok(plan)
    }
}

/// A prepared ONNX model: the graph, its descriptor and the per-shape plan cache.
struct OnnxPlan {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OnnxPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.inner.descriptor;
        f.debug_struct("OnnxPlan")
            .field("name", &d.name)
            .field("version", &d.version.to_string())
            .finish_non_exhaustive()
    }
}

impl Plan for OnnxPlan {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.inner.descriptor
    }

    fn device(&self) -> Device {
        Device::Cpu
    }

    fn session(&self) -> Result<Box<dyn Session>> {
        Ok(Box::new(OnnxSession {
            plan: Arc::clone(&self.inner),
            states: Vec::new(),
            _context: Device::Cpu.open()?,
        }))
    }
}

/// A session of an ONNX plan: keeps tract's run state (value slots, op states, matmul
/// scratch) for each input shape it has run, so a run does not rebuild it.
struct OnnxSession {
    plan: Arc<Inner>,
    /// Per plan key, most recently used last, at most the plan cache's capacity.
    states: Vec<(Key, KeptState)>,
    _context: DeviceContext,
}

/// tract's run state for one optimised plan.
type State = SimpleState<TypedFact, Box<dyn TypedOp>, TypedModel, Arc<Runnable>>;

/// A tract run state kept between runs of a session, which may move to another thread
/// between runs (`Session: Send`).
///
/// tract 0.21's `SimpleState` is not `Send`: values are `TValue`s, which may be
/// `Rc<Tensor>`, and its session state holds an `anymap3::Map` (no op of tract 0.21 puts
/// anything in it). Moving an `Rc` to another thread is unsound only while a clone of it stays
/// behind. Between runs no `Rc` reachable from the state has a clone outside it: the state
/// is taken out of the session for a run and put back only after the run succeeded and
/// every output `TValue` was copied into an inferkit tensor and dropped (`SimpleState::run`
/// clears the value slots before it returns); the inputs the state keeps were made from our
/// own copies; a failed or panicking run drops its state. tract's thread-locals (linalg
/// scratch, executor) hold nothing of a state.
struct KeptState(State);

// SAFETY: see `KeptState`: between runs every `Rc` inside the state is owned by the state
// alone, and a `KeptState` is only touched through `&mut OnnxSession`, on one thread at a time.
#[allow(unsafe_code)]
unsafe impl Send for KeptState {}

fn to_tract(view: &TensorView<'_>, model: &str, input: &str) -> Result<TractTensor> {
    fn make<T: Datum + Copy>(
        a: &ndarray::ArrayViewD<'_, T>,
    ) -> tract_onnx::prelude::TractResult<TractTensor> {
        match a.as_slice() {
            Some(s) => TractTensor::from_shape(a.shape(), s),
            None => TractTensor::from_shape(a.shape(), &a.iter().copied().collect::<Vec<_>>()),
        }
    }
    match view {
        TensorView::F32(a) => make(a),
        TensorView::F16(a) => make(a),
        TensorView::F64(a) => make(a),
        TensorView::I64(a) => make(a),
        TensorView::I32(a) => make(a),
        TensorView::I16(a) => make(a),
        TensorView::I8(a) => make(a),
        TensorView::U64(a) => make(a),
        TensorView::U32(a) => make(a),
        TensorView::U16(a) => make(a),
        TensorView::U8(a) => make(a),
        TensorView::Bool(a) => make(a),
        other => {
            return Err(Error::Input {
                model: model.into(),
                input: input.into(),
                problem: InputProblem::Unsupported(other.dtype()),
            });
        }
    }
    .map_err(wrap(model))
}

fn from_tract(t: &TractTensor, model: &str) -> Result<Tensor> {
    fn make<T: Datum + Copy>(
        t: &TractTensor,
    ) -> tract_onnx::prelude::TractResult<ndarray::ArrayD<T>> {
        let data = t.as_slice::<T>()?.to_vec();
        Ok(ndarray::ArrayD::from_shape_vec(t.shape(), data)?)
    }
    let w = wrap(model);
    Ok(match t.datum_type() {
        DatumType::F32 => Tensor::F32(make(t).map_err(w)?),
        DatumType::F16 => Tensor::F16(make(t).map_err(w)?),
        DatumType::F64 => Tensor::F64(make(t).map_err(w)?),
        DatumType::I64 => Tensor::I64(make(t).map_err(w)?),
        DatumType::I32 => Tensor::I32(make(t).map_err(w)?),
        DatumType::I16 => Tensor::I16(make(t).map_err(w)?),
        DatumType::I8 => Tensor::I8(make(t).map_err(w)?),
        DatumType::U64 => Tensor::U64(make(t).map_err(w)?),
        DatumType::U32 => Tensor::U32(make(t).map_err(w)?),
        DatumType::U16 => Tensor::U16(make(t).map_err(w)?),
        DatumType::U8 => Tensor::U8(make(t).map_err(w)?),
        DatumType::Bool => Tensor::Bool(make(t).map_err(w)?),
        // a `Shape` (or shape arithmetic) as an output: concrete at run time, as i64
        DatumType::TDim => {
            let t = t.cast_to::<i64>().map_err(wrap(model))?;
            Tensor::I64(make(&t).map_err(wrap(model))?)
        }
        other => {
            return Err(Error::Backend {
                model: model.into(),
                source: None,
                message: format!(
                    "output of element type {other:?}, which inferkit tensors do not hold"
                ),
            });
        }
    })
}

impl std::fmt::Debug for OnnxSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxSession")
            .field("model", &self.plan.descriptor.name)
            .finish_non_exhaustive()
    }
}

impl Session for OnnxSession {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.plan.descriptor
    }

    fn run(&mut self, inputs: &[(&str, TensorView<'_>)]) -> Result<Vec<Tensor>> {
        let d = &self.plan.descriptor;
        let (ordered, _dynamic) = d.validate(inputs)?;
        let key = Key {
            shapes: ordered.iter().map(|v| v.shape().to_vec()).collect(),
            values: ordered
                .iter()
                .zip(&self.plan.baked)
                .filter(|(_, b)| **b)
                .map(|(v, _)| TensorView::to_owned(v))
                .collect(),
        };
        let mut values = tvec![];
        for ((spec, view), baked) in d.inputs.iter().zip(&ordered).zip(&self.plan.baked) {
            if !baked {
                values.push(to_tract(view, &d.name, &spec.name)?.into());
            }
        }
        // Out of the session for the run: a run that fails or panics drops its state.
        let mut state = match self.states.iter().position(|(k, _)| *k == key) {
            Some(i) => {
                let mut kept = self.states.remove(i).1;
                // Requests are independent: op states (a recurrent layer's hidden state) start
                // afresh; value slots, constants and scratch are kept.
                kept.0.reset_op_states().map_err(wrap(&d.name))?;
                kept
            }
            None => {
                let runnable = self.plan.plan_for(key.clone())?;
                KeptState(State::new(runnable).map_err(wrap(&d.name))?)
            }
        };
        let tract_outputs = unpanicked(&d.name, "running", || {
            state.0.run(values).map_err(wrap(&d.name))
        })?;
        let outputs = tract_outputs
            .iter()
            .map(|t| from_tract(t, &d.name))
            .collect::<Result<Vec<_>>>()?;
        drop(tract_outputs);
        if self.states.len() >= self.plan.capacity {
            self.states.remove(0);
        }
        self.states.push((key, state));
        Ok(outputs)
    }
}
