//! The onnxruntime backend, through the [`ort`] crate, loading `libonnxruntime` at run time
//! (`load-dynamic`: nothing is downloaded or linked at build time).
//!
//! Which library: [`OrtBackend::with_library`], else the `ORT_DYLIB_PATH` environment variable,
//! else `libonnxruntime.so` (`.dylib`, `.dll`) through the system's loader. The `onnxruntime`
//! pip wheel carries one (`onnxruntime/capi/libonnxruntime.so.1.*`);
//! `scripts/fetch-models.sh` puts that of onnxruntime 1.32.0 in `.cache/models/onnxruntime/`.
//! A process holds one onnxruntime library: asking for another after the first is an error
//! naming both. onnxruntime ≥ 1.17 (the C API version this crate asks for).
//!
//! Devices: [`Device::Cpu`] runs onnxruntime's CPU execution provider. [`Device::Cuda`]
//! registers the CUDA execution provider and **refuses to fall back**: a library without it
//! (the CPU-only `onnxruntime` wheel), a provider that fails to start, or a node the provider
//! cannot run (onnxruntime would otherwise place it on the CPU) is an [`Error::Device`] at
//! prepare time, never a model that quietly runs on the CPU.
//!
//! Threading: a [`Plan`] is shared; each [`Session`] owns one onnxruntime session (`ort`
//! runs a session from one thread at a time), so every session holds the model's weights
//! once and parallelises each run over its own intra-op threads ([`OrtBackend::with_threads`]).
//! For many workers, keep few sessions (a [`Model`](crate::Model) with a small `max_idle`)
//! and let onnxruntime use the cores within each run.
//!
//! Inputs are given to onnxruntime without a copy when they are contiguous (row-major): the
//! `TensorView` borrows the caller's data for the run, so it cannot be freed or changed while
//! onnxruntime reads it. A strided view is copied once. Outputs are copied into [`Tensor`]s.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{Session as OrtSessionHandle, SessionInputValue};
use ort::value::{DynValue, PrimitiveTensorElementType, TensorElementType, TensorRef, ValueType};

use crate::backend::{Backend, ModelSource, Plan, Session};
use crate::{
    DType, Device, Dim, Error, ModelDescriptor, Result, RuntimeHint, Tensor, TensorSpec, TensorView,
};

/// The `ort` crate this backend is built on (its C API asks for onnxruntime ≥ 1.17).
const ORT_CRATE: &str = "2.0.0-rc.15";

/// onnxruntime's element types and ours, both ways.
const DTYPES: [(TensorElementType, DType); 13] = [
    (TensorElementType::Float32, DType::F32),
    (TensorElementType::Float16, DType::F16),
    (TensorElementType::Bfloat16, DType::BF16),
    (TensorElementType::Float64, DType::F64),
    (TensorElementType::Int64, DType::I64),
    (TensorElementType::Int32, DType::I32),
    (TensorElementType::Int16, DType::I16),
    (TensorElementType::Int8, DType::I8),
    (TensorElementType::Uint64, DType::U64),
    (TensorElementType::Uint32, DType::U32),
    (TensorElementType::Uint16, DType::U16),
    (TensorElementType::Uint8, DType::U8),
    (TensorElementType::Bool, DType::Bool),
];

fn dtype_of(t: TensorElementType) -> Option<DType> {
    DTYPES.iter().find(|(e, _)| *e == t).map(|(_, d)| *d)
}

/// The onnxruntime backend.
///
/// ```no_run
/// use inferkit_infer_core::{Backend, Device, Model, ModelSource, ort::OrtBackend};
/// // the library from ORT_DYLIB_PATH, else libonnxruntime.so on the loader's path
/// let plan = OrtBackend::new().prepare(ModelSource::Path("model.onnx".as_ref()), Device::Cpu)?;
/// println!("{:?}", plan.descriptor().inputs);
/// # Ok::<(), inferkit_infer_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct OrtBackend {
    library: Option<PathBuf>,
    threads: usize,
    name: Option<String>,
    version: semver::Version,
}

impl Default for OrtBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl OrtBackend {
    /// Defaults: the library from `ORT_DYLIB_PATH` (else the loader's), onnxruntime's own
    /// choice of intra-op threads (one per physical core), the model named after its file,
    /// version 0.0.0.
    pub fn new() -> Self {
        OrtBackend {
            library: None,
            threads: 0,
            name: None,
            version: semver::Version::new(0, 0, 0),
        }
    }

    /// Loads onnxruntime from this file (`…/onnxruntime/capi/libonnxruntime.so.1.32.0`)
    /// rather than from `ORT_DYLIB_PATH`.
    #[must_use]
    pub fn with_library(mut self, path: impl Into<PathBuf>) -> Self {
        self.library = Some(path.into());
        self
    }

    /// Intra-op threads of each session (0: onnxruntime's default, one per physical core).
    #[must_use]
    pub fn with_threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
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

    /// The library this backend loads: [`with_library`](Self::with_library)'s, else
    /// `ORT_DYLIB_PATH`, else the platform's file name for the system's loader to find.
    pub fn library(&self) -> PathBuf {
        self.library
            .clone()
            .unwrap_or_else(|| match std::env::var_os("ORT_DYLIB_PATH") {
                Some(p) if !p.is_empty() => p.into(),
                _ => format!(
                    "{}onnxruntime{}",
                    std::env::consts::DLL_PREFIX,
                    std::env::consts::DLL_SUFFIX
                )
                .into(),
            })
    }
}

/// The library loaded into this process and its environment.
struct Runtime {
    path: PathBuf,
    environment: Environment,
}

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// The environment of the onnxruntime library at `path`, loading it on first use.
fn environment(path: &Path, model: &str) -> Result<Environment> {
    let mut runtime = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = runtime.as_ref() {
        if r.path != path {
            return Err(Error::Backend {
                model: model.into(),
                message: format!(
                    "onnxruntime is already loaded from `{}` in this process; it cannot load \
                     another library (`{}`)",
                    r.path.display(),
                    path.display()
                ),
                source: None,
            });
        }
        return Ok(r.environment.clone());
    }
    let builder = ort::init_from(path).map_err(|e| Error::Backend {
        model: model.into(),
        message: format!(
            "loading onnxruntime: {e} (give the library with ORT_DYLIB_PATH or \
             OrtBackend::with_library: the `onnxruntime` pip wheel has one in \
             onnxruntime/capi/)"
        ),
        source: Some(Box::new(e)),
    })?;
    let environment = builder
        .with_name("inferkit")
        .build()
        .map_err(ort_error(model, "starting onnxruntime"))?;
    *runtime = Some(Runtime {
        path: path.to_path_buf(),
        environment: environment.clone(),
    });
    Ok(environment)
}

fn ort_error<'a, R>(model: &'a str, step: &'a str) -> impl Fn(ort::Error<R>) -> Error + 'a {
    move |e| Error::Backend {
        model: model.to_string(),
        message: format!("onnxruntime failed {step}: {e}"),
        source: None,
    }
}

/// Where the plan's sessions read the model from.
#[derive(Debug)]
enum Source {
    File(PathBuf),
    Bytes(Arc<[u8]>),
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn prepare(&self, source: ModelSource<'_>, device: Device) -> Result<Arc<dyn Plan>> {
        let name = self.name.clone().unwrap_or_else(|| source.default_name());
        let library = self.library();
        let environment = environment(&library, &name)?;
        let source = match source {
            ModelSource::Path(p) => {
                // onnxruntime's "file doesn't exist" names no path kind; ours does
                std::fs::metadata(p).map_err(|e| Error::Io {
                    path: p.display().to_string(),
                    source: e,
                })?;
                Source::File(p.to_path_buf())
            }
            ModelSource::Bytes(b) => Source::Bytes(b.into()),
        };
        let inner = Arc::new(Inner {
            name,
            device,
            threads: self.threads,
            environment,
            source,
        });
        let first = inner.open()?;
        let descriptor = describe(&first, &inner.name, &self.version, device, &library)?;
        Ok(Arc::new(OrtPlan {
            inner,
            descriptor: Arc::new(descriptor),
            first: Mutex::new(Some(first)),
        }))
    }
}

/// What a plan opens its sessions from.
struct Inner {
    name: String,
    device: Device,
    threads: usize,
    environment: Environment,
    source: Source,
}

impl Inner {
    /// A new onnxruntime session of the model for this plan's device.
    fn open(&self) -> Result<OrtSessionHandle> {
        let name = self.name.as_str();
        // every graph optimisation, as onnxruntime's Python API does by default (`ort`'s
        // `Level3` is ORT_ENABLE_LAYOUT, not ORT_ENABLE_ALL)
        let mut builder = SessionBuilder::new(&self.environment)
            .map_err(ort_error(name, "making session options"))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(ort_error(name, "setting the optimisation level"))?;
        if self.threads > 0 {
            builder = builder
                .with_intra_threads(self.threads)
                .map_err(ort_error(name, "setting intra-op threads"))?;
        }
        builder = match self.device {
            Device::Cpu => builder,
            Device::Cuda(ordinal) => cuda(builder, ordinal)?,
        };
        let device_error = |e: ort::Error| match self.device {
            Device::Cpu => Error::Backend {
                model: name.into(),
                message: format!("onnxruntime failed loading the model: {e}"),
                source: Some(Box::new(e)),
            },
            // a node the provider cannot run, or the provider failing to start
            other => Error::Device {
                device: other.to_string(),
                reason: format!(
                    "model `{name}`: onnxruntime could not place the model on it (no CPU \
                     fallback is allowed): {e}"
                ),
            },
        };
        match &self.source {
            Source::File(p) => builder.commit_from_file(p).map_err(device_error),
            Source::Bytes(b) => builder.commit_from_memory(b).map_err(device_error),
        }
    }
}

/// Registers the CUDA execution provider, failing rather than falling back to the CPU.
fn cuda(builder: SessionBuilder, ordinal: usize) -> Result<SessionBuilder> {
    use ort::ep::{CUDA, ExecutionProvider};
    let device = Device::Cuda(ordinal).to_string();
    let refuse = |reason: String| Error::Device {
        device: device.clone(),
        reason,
    };
    match CUDA::is_available() {
        Ok(true) => {}
        Ok(false) => {
            return Err(refuse(
                "this onnxruntime library has no CUDA execution provider (the `onnxruntime` \
                 wheel is CPU-only; `onnxruntime-gpu` has it)"
                    .into(),
            ));
        }
        Err(e) => return Err(refuse(format!("asking onnxruntime for its providers: {e}"))),
    }
    let ordinal = i32::try_from(ordinal).map_err(|_| refuse("no such device ordinal".into()))?;
    builder
        .with_execution_providers([CUDA::default()
            .with_device_id(ordinal)
            .build()
            .error_on_failure()])
        .map_err(|e| refuse(format!("registering the CUDA execution provider: {e}")))?
        .with_disable_cpu_fallback()
        .map_err(|e| refuse(format!("disabling the CPU fallback: {e}")))
}

/// The descriptor from the session's inputs and outputs (dims without a value are dynamic,
/// named by the file's symbol, else `<tensor>_dim<i>` as the tract backend names them).
fn describe(
    session: &OrtSessionHandle,
    name: &str,
    version: &semver::Version,
    device: Device,
    library: &Path,
) -> Result<ModelDescriptor> {
    let spec = |o: &ort::value::Outlet| -> Result<TensorSpec> {
        let unsupported = |what: String| Error::Backend {
            model: name.into(),
            message: format!(
                "tensor `{}` is {what}, which inferkit tensors do not hold",
                o.name()
            ),
            source: None,
        };
        match o.dtype() {
            ValueType::Tensor {
                ty,
                shape,
                dimension_symbols,
            } => Ok(TensorSpec {
                name: o.name().to_string(),
                dtype: dtype_of(*ty).ok_or_else(|| unsupported(format!("of element type {ty}")))?,
                shape: shape
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| match usize::try_from(d) {
                        Ok(n) => Dim::Fixed(n),
                        Err(_) => match dimension_symbols.get(i) {
                            Some(s) if !s.is_empty() => Dim::Dynamic(s.clone()),
                            _ => Dim::Dynamic(format!("{}_dim{i}", o.name())),
                        },
                    })
                    .collect(),
            }),
            other => Err(unsupported(format!("a {other}"))),
        }
    };
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert(
        "backend".into(),
        format!("onnxruntime (through the ort crate {ORT_CRATE})"),
    );
    metadata.insert("onnxruntime_library".into(), library.display().to_string());
    Ok(ModelDescriptor {
        name: name.to_string(),
        version: version.clone(),
        inputs: session.inputs().iter().map(spec).collect::<Result<_>>()?,
        outputs: session.outputs().iter().map(spec).collect::<Result<_>>()?,
        runtime: match device {
            Device::Cuda(_) => RuntimeHint::Cuda,
            _ => RuntimeHint::Cpu,
        },
        metadata,
    })
}

/// A prepared onnxruntime model.
struct OrtPlan {
    inner: Arc<Inner>,
    descriptor: Arc<ModelDescriptor>,
    /// The session opened at prepare time (to check the model), for the first worker.
    first: Mutex<Option<OrtSessionHandle>>,
}

impl std::fmt::Debug for OrtPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtPlan")
            .field("model", &self.inner.name)
            .field("device", &self.inner.device)
            .finish_non_exhaustive()
    }
}

impl Plan for OrtPlan {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    fn device(&self) -> Device {
        self.inner.device
    }

    fn session(&self) -> Result<Box<dyn Session>> {
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner()).take();
        let session = match first {
            Some(s) => s,
            None => self.inner.open()?,
        };
        Ok(Box::new(OrtSession {
            descriptor: Arc::clone(&self.descriptor),
            session,
        }))
    }
}

/// One worker's onnxruntime session (which holds the device's context: onnxruntime's
/// CUDA stream and allocator for a GPU) for the worker's life.
struct OrtSession {
    descriptor: Arc<ModelDescriptor>,
    session: OrtSessionHandle,
}

impl std::fmt::Debug for OrtSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtSession")
            .field("model", &self.descriptor.name)
            .finish_non_exhaustive()
    }
}

/// An input for onnxruntime: the caller's data itself when contiguous, else a copy.
fn input_value<'v, T>(a: &ndarray::ArrayViewD<'v, T>) -> ort::Result<SessionInputValue<'v>>
where
    T: PrimitiveTensorElementType + Clone + std::fmt::Debug + 'static,
{
    let shape = a.shape().to_vec();
    match a.to_slice() {
        Some(data) => Ok(TensorRef::from_array_view((shape, data))?.into()),
        None => Ok(
            ort::value::Tensor::from_array((shape, a.iter().cloned().collect::<Vec<T>>()))?.into(),
        ),
    }
}

fn to_ort<'v>(view: &TensorView<'v>, model: &str, input: &str) -> Result<SessionInputValue<'v>> {
    let value = crate::tensor::each!(@ view, TensorView, a => input_value(a));
    value.map_err(|e| Error::Backend {
        model: model.into(),
        message: format!("input `{input}`: onnxruntime refused the tensor: {e}"),
        source: Some(Box::new(e)),
    })
}

fn from_ort(v: &DynValue, model: &str, output: &str) -> Result<Tensor> {
    fn make<T: PrimitiveTensorElementType + Clone>(
        v: &DynValue,
    ) -> std::result::Result<ndarray::ArrayD<T>, String> {
        let (shape, data) = v.try_extract_tensor::<T>().map_err(|e| e.to_string())?;
        let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        ndarray::ArrayD::from_shape_vec(dims, data.to_vec()).map_err(|e| e.to_string())
    }
    let ty = match v.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => {
            return Err(Error::Backend {
                model: model.into(),
                message: format!("output `{output}` is a {other}, which inferkit does not hold"),
                source: None,
            });
        }
    };
    let t = match ty {
        TensorElementType::Float32 => make(v).map(Tensor::F32),
        TensorElementType::Float16 => make(v).map(Tensor::F16),
        TensorElementType::Bfloat16 => make(v).map(Tensor::BF16),
        TensorElementType::Float64 => make(v).map(Tensor::F64),
        TensorElementType::Int64 => make(v).map(Tensor::I64),
        TensorElementType::Int32 => make(v).map(Tensor::I32),
        TensorElementType::Int16 => make(v).map(Tensor::I16),
        TensorElementType::Int8 => make(v).map(Tensor::I8),
        TensorElementType::Uint64 => make(v).map(Tensor::U64),
        TensorElementType::Uint32 => make(v).map(Tensor::U32),
        TensorElementType::Uint16 => make(v).map(Tensor::U16),
        TensorElementType::Uint8 => make(v).map(Tensor::U8),
        TensorElementType::Bool => make(v).map(Tensor::Bool),
        other => Err(format!(
            "element type {other}, which inferkit tensors do not hold"
        )),
    };
    t.map_err(|message| Error::Backend {
        model: model.into(),
        message: format!("output `{output}`: {message}"),
        source: None,
    })
}

impl Session for OrtSession {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    fn run(&mut self, inputs: &[(&str, TensorView<'_>)]) -> Result<Vec<Tensor>> {
        let d = &*self.descriptor;
        let (ordered, _dynamic) = d.validate(inputs)?;
        let values = (d.inputs.iter().zip(&ordered))
            .map(|(spec, view)| {
                Ok((
                    Cow::Borrowed(spec.name.as_str()),
                    to_ort(view, &d.name, &spec.name)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let outputs = self.session.run(values).map_err(|e| Error::Backend {
            model: d.name.clone(),
            message: format!("onnxruntime failed running: {e}"),
            source: Some(Box::new(e)),
        })?;
        d.outputs
            .iter()
            .map(|spec| match outputs.get(&spec.name) {
                Some(v) => from_ort(v, &d.name, &spec.name),
                None => Err(Error::Backend {
                    model: d.name.clone(),
                    message: format!("onnxruntime gave no output `{}`", spec.name),
                    source: None,
                }),
            })
            .collect()
    }
}
