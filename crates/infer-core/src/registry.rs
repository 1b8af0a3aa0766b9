//! Models by name and version, replaced atomically while requests run.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use semver::{Version, VersionReq};

use crate::{Error, Model, Result};

type Table = BTreeMap<String, BTreeMap<Version, Arc<Model>>>;

/// Models registered by name and semver version.
///
/// Lookups are lock-free (`arc-swap`): a lookup returns an `Arc<Model>`, so a request keeps
/// running on the version it started with even if that version is replaced or removed
/// meanwhile; the old model is freed when its last request ends. Changes are atomic: a
/// lookup sees the table before or after a change, never half of it.
///
/// ```
/// use inferkit_infer_core::{Registry, Model, Backend, Device, ModelSource, onnx::OnnxBackend};
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/onnx/mlp.onnx");
/// let plan = OnnxBackend::new().with_version(semver::Version::new(1, 2, 0))
///     .prepare(ModelSource::Path(path.as_ref()), Device::Cpu)?;
/// let registry = Registry::new();
/// registry.register(Model::new(plan, 4));
/// assert_eq!(registry.latest("mlp")?.descriptor().version.to_string(), "1.2.0");
/// assert!(registry.matching("mlp", &"^1.1".parse().unwrap()).is_ok());
/// # Ok::<(), inferkit_infer_core::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Registry {
    table: ArcSwap<Table>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a model under its descriptor's name and version, replacing that exact version
    /// if present (atomically). Returns the model it replaced.
    pub fn register(&self, model: Model) -> Option<Arc<Model>> {
        let model = Arc::new(model);
        let name = model.descriptor().name.clone();
        let version = model.descriptor().version.clone();
        let mut replaced = None;
        self.table.rcu(|t| {
            let mut t = Table::clone(t);
            replaced = t
                .entry(name.clone())
                .or_default()
                .insert(version.clone(), Arc::clone(&model));
            t
        });
        replaced
    }

    /// Removes one version (atomically); requests already holding it finish on it.
    pub fn remove(&self, name: &str, version: &Version) -> Option<Arc<Model>> {
        let mut removed = None;
        self.table.rcu(|t| {
            let mut t = Table::clone(t);
            removed = t.get_mut(name).and_then(|v| v.remove(version));
            if t.get(name).is_some_and(BTreeMap::is_empty) {
                t.remove(name);
            }
            t
        });
        removed
    }

    /// Exactly this version.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn get(&self, name: &str, version: &Version) -> Result<Arc<Model>> {
        self.table
            .load()
            .get(name)
            .and_then(|v| v.get(version))
            .cloned()
            .ok_or_else(|| not_found(name, format!("={version}")))
    }

    /// The highest version.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn latest(&self, name: &str) -> Result<Arc<Model>> {
        self.table
            .load()
            .get(name)
            .and_then(|v| v.values().next_back())
            .cloned()
            .ok_or_else(|| not_found(name, "latest".into()))
    }

    /// The highest version matching a semver requirement (`^1.2`, `>=2, <3`, …).
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn matching(&self, name: &str, req: &VersionReq) -> Result<Arc<Model>> {
        self.table
            .load()
            .get(name)
            .and_then(|v| {
                v.iter()
                    .rev()
                    .find(|(ver, _)| req.matches(ver))
                    .map(|(_, m)| m)
            })
            .cloned()
            .ok_or_else(|| not_found(name, req.to_string()))
    }

    /// Registered versions of `name`, ascending.
    pub fn versions(&self, name: &str) -> Vec<Version> {
        self.table
            .load()
            .get(name)
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default()
    }
}

fn not_found(name: &str, requirement: String) -> Error {
    Error::NotFound {
        name: name.to_string(),
        requirement,
    }
}
