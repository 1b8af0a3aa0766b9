//! The inference trait: backend → plan (immutable, shared) → session (per worker) → run.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::{Device, ModelDescriptor, Result, Tensor, TensorView};

/// Where a model comes from.
#[derive(Debug, Clone, Copy)]
pub enum ModelSource<'a> {
    /// A file.
    Path(&'a Path),
    /// Bytes in memory.
    Bytes(&'a [u8]),
}

#[cfg(any(feature = "onnx", feature = "ort"))]
impl ModelSource<'_> {
    /// The name a model gets when none is given: its file's stem, else `model`.
    pub(crate) fn default_name(&self) -> String {
        match self {
            ModelSource::Path(p) => p
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().into_owned()),
            ModelSource::Bytes(_) => "model".into(),
        }
    }
}

/// Something that turns model files into runnable plans for a device.
pub trait Backend {
    /// The backend's name (`onnx`, …).
    fn name(&self) -> &'static str;

    /// Loads, checks and optimises a model once, for `device`.
    ///
    /// # Errors
    /// The backend's, wrapped with the model's name; [`Error::Device`](crate::Error::Device)
    /// for a device this build cannot use.
    fn prepare(&self, source: ModelSource<'_>, device: Device) -> Result<Arc<dyn Plan>>;
}

/// A prepared model: immutable, `Send + Sync`, shared by every worker. It carries its
/// descriptor.
///
/// Threading contract: share one plan (in an `Arc`) across threads; each worker thread
/// opens its own [`Session`] and keeps it for its life; a session is `Send` but used by one
/// thread at a time (`run` takes `&mut self`). [`Model`] does this for callers that want
/// `run(&self)` from any thread.
pub trait Plan: Send + Sync + std::fmt::Debug {
    /// What the model takes and gives.
    fn descriptor(&self) -> &ModelDescriptor;
    /// The device it was prepared for.
    fn device(&self) -> Device;
    /// A session for one worker: its scratch buffers and device context.
    ///
    /// # Errors
    /// [`Error::Device`](crate::Error::Device) when the device context cannot be opened.
    fn session(&self) -> Result<Box<dyn Session>>;
}

/// One worker's state for running a plan: owns scratch buffers and holds the device context
/// (an RAII guard, reused for every call, released when the session is dropped).
pub trait Session: Send + std::fmt::Debug {
    /// The plan's descriptor.
    fn descriptor(&self) -> &ModelDescriptor;
    /// Runs a batch: named inputs (checked against the descriptor first), outputs in the
    /// descriptor's order.
    ///
    /// # Errors
    /// Validation errors naming the input and dim; the backend's errors with the model name.
    fn run(&mut self, inputs: &[(&str, TensorView<'_>)]) -> Result<Vec<Tensor>>;
}

impl<P: Plan + ?Sized> Plan for Arc<P> {
    fn descriptor(&self) -> &ModelDescriptor {
        (**self).descriptor()
    }
    fn device(&self) -> Device {
        (**self).device()
    }
    fn session(&self) -> Result<Box<dyn Session>> {
        (**self).session()
    }
}

impl<P: Plan + ?Sized> Plan for Box<P> {
    fn descriptor(&self) -> &ModelDescriptor {
        (**self).descriptor()
    }
    fn device(&self) -> Device {
        (**self).device()
    }
    fn session(&self) -> Result<Box<dyn Session>> {
        (**self).session()
    }
}

impl<S: Session + ?Sized> Session for Box<S> {
    fn descriptor(&self) -> &ModelDescriptor {
        (**self).descriptor()
    }
    fn run(&mut self, inputs: &[(&str, TensorView<'_>)]) -> Result<Vec<Tensor>> {
        (**self).run(inputs)
    }
}

impl<B: Backend + ?Sized> Backend for &B {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn prepare(&self, source: ModelSource<'_>, device: Device) -> Result<Arc<dyn Plan>> {
        (**self).prepare(source, device)
    }
}

impl<B: Backend + ?Sized> Backend for Arc<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn prepare(&self, source: ModelSource<'_>, device: Device) -> Result<Arc<dyn Plan>> {
        (**self).prepare(source, device)
    }
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn prepare(&self, source: ModelSource<'_>, device: Device) -> Result<Arc<dyn Plan>> {
        (**self).prepare(source, device)
    }
}

impl<P: Plan + ?Sized> Plan for &P {
    fn descriptor(&self) -> &ModelDescriptor {
        (**self).descriptor()
    }
    fn device(&self) -> Device {
        (**self).device()
    }
    fn session(&self) -> Result<Box<dyn Session>> {
        (**self).session()
    }
}

/// A plan with a small pool of sessions: `run(&self)` from any number of threads. Each call
/// takes an idle session (or opens one), runs, and puts it back (keeping at most
/// `max_idle`).
pub struct Model {
    plan: Arc<dyn Plan>,
    idle: Mutex<Vec<Box<dyn Session>>>,
    max_idle: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.descriptor().name)
            .field("version", &self.descriptor().version.to_string())
            .field("max_idle", &self.max_idle)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Wraps a plan, keeping up to `max_idle` idle sessions.
    pub fn new(plan: Arc<dyn Plan>, max_idle: usize) -> Self {
        Model {
            plan,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// The plan.
    pub fn plan(&self) -> &Arc<dyn Plan> {
        &self.plan
    }

    /// The descriptor.
    pub fn descriptor(&self) -> &ModelDescriptor {
        self.plan.descriptor()
    }

    /// Runs on a pooled session.
    ///
    /// # Errors
    /// As [`Session::run`].
    pub fn run(&self, inputs: &[(&str, TensorView<'_>)]) -> Result<Vec<Tensor>> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut session = match pooled {
            Some(s) => s,
            None => self.plan.session()?,
        };
        let out = session.run(inputs);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(session);
        }
        out
    }
}
