//! [`CpuBackend`]: the native models behind the same [`Backend`] trait as the ONNX backend,
//! so an application switches model or backend without changing its code.

use std::path::Path;
use std::sync::Arc;

use super::EfficientNetLite0;
use crate::backend::{Backend, ModelSource, Plan};
use crate::weights::Checkpoint;
use crate::{Device, Error, Result};

/// The architectures the native CPU backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Architecture {
    /// EfficientNet-Lite0 ([`EfficientNetLite0`]): a checkpoint with its keys
    /// (`_conv_stem.weight`, `_blocks.*`, `_fc.weight`), in any format `weights` reads.
    EfficientNetLite0,
    /// all-MiniLM-L6-v2 or a BERT of its layout ([`MiniLm`](super::MiniLm), feature
    /// `text`): a directory holding `model.safetensors`, `config.json` and `tokenizer.json`
    /// (or the `model.safetensors` in it).
    MiniLm,
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Architecture::EfficientNetLite0 => "efficientnet-lite0",
            Architecture::MiniLm => "minilm",
        })
    }
}

impl Architecture {
    /// The architecture of the model at `path`, from the names of its tensors (a directory:
    /// its `model.safetensors`).
    ///
    /// # Errors
    /// [`Error::Weights`] when the checkpoint cannot be opened; [`Error::Backend`] when its
    /// tensors match no architecture this backend runs.
    pub fn recognise(path: &Path) -> Result<Architecture> {
        let (file, ckpt) = open(path)?;
        Self::of(&ckpt, &file)
    }

    /// The architecture of an open checkpoint (`file` names it in the error).
    fn of(ckpt: &Checkpoint, file: &Path) -> Result<Architecture> {
        let has = |name: &str| ckpt.get(name).is_some();
        if has("_conv_stem.weight") && has("_fc.weight") {
            Ok(Architecture::EfficientNetLite0)
        } else if has("embeddings.word_embeddings.weight")
            && has("encoder.layer.0.attention.self.query.weight")
        {
            Ok(Architecture::MiniLm)
        } else {
            let first: Vec<&str> = ckpt.tensors().take(4).map(|t| t.name()).collect();
            Err(Error::Backend {
                model: file.display().to_string(),
                source: None,
                message: format!(
                    "no architecture of the cpu backend has these tensors (first: {}); \
                     EfficientNet-Lite0 has `_conv_stem.weight`, MiniLM \
                     `embeddings.word_embeddings.weight`",
                    first.join(", ")
                ),
            })
        }
    }
}

/// Opens the checkpoint at `path` (a directory: its `model.safetensors`), once for both
/// recognising and loading it.
fn open(path: &Path) -> Result<(std::path::PathBuf, Checkpoint)> {
    let file = if path.is_dir() {
        path.join("model.safetensors")
    } else {
        path.to_path_buf()
    };
    let ckpt = Checkpoint::open(&file).map_err(|source| Error::Weights {
        model: file.display().to_string(),
        source,
    })?;
    Ok((file, ckpt))
}

/// The native CPU backend: EfficientNet-Lite0 and MiniLM as [`Plan`]s, the architecture
/// recognised from the checkpoint ([`Architecture::recognise`]) or named by the caller.
///
/// ```
/// use inferkit_infer_core::cpu::CpuBackend;
/// use inferkit_infer_core::{Backend, Device, ModelSource};
///
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/models/efficientnet-lite0.pth");
/// let plan = CpuBackend::new()
///     .with_threads(1)
///     .prepare(ModelSource::Path(path.as_ref()), Device::Cpu)?;
/// assert_eq!(plan.descriptor().name, "efficientnet-lite0");
/// assert_eq!(plan.descriptor().outputs[0].name, "logits");
/// # Ok::<(), inferkit_infer_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CpuBackend {
    threads: usize,
    architecture: Option<Architecture>,
    name: Option<String>,
    version: Option<semver::Version>,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    /// One thread (the caller's), the architecture recognised from the checkpoint, the
    /// model's own name and version 1.0.0.
    pub fn new() -> Self {
        CpuBackend {
            threads: 1,
            architecture: None,
            name: None,
            version: None,
        }
    }

    /// Each plan runs on `threads` threads (0 is taken as 1): 1 on the caller's thread,
    /// more on a rayon pool of that size owned by the plan.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Takes the model to be of this architecture instead of recognising it.
    #[must_use]
    pub fn with_architecture(mut self, architecture: Architecture) -> Self {
        self.architecture = Some(architecture);
        self
    }

    /// Names the model (the descriptor and errors carry it).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the descriptor's version.
    #[must_use]
    pub fn with_version(mut self, version: semver::Version) -> Self {
        self.version = Some(version);
        self
    }

    fn naming(&self, own: &str) -> (String, semver::Version) {
        (
            self.name.clone().unwrap_or_else(|| own.to_string()),
            self.version
                .clone()
                .unwrap_or_else(|| semver::Version::new(1, 0, 0)),
        )
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn prepare(&self, source: ModelSource<'_>, device: Device) -> Result<Arc<dyn Plan>> {
        if device != Device::Cpu {
            return Err(Error::Device {
                device: device.to_string(),
                reason: "the cpu backend runs on the CPU only".into(),
            });
        }
        let ModelSource::Path(path) = source else {
            return Err(Error::Backend {
                model: self.name.clone().unwrap_or_else(|| "(bytes)".into()),
                message: "the cpu backend reads models from files (ModelSource::Path)".into(),
                source: None,
            });
        };
        // Opened once: recognised and loaded from the same mapped/parsed checkpoint.
        let (file, ckpt) = open(path)?;
        let architecture = match self.architecture {
            Some(a) => a,
            None => Architecture::of(&ckpt, &file)?,
        };
        match architecture {
            Architecture::EfficientNetLite0 => {
                let (name, version) = self.naming("efficientnet-lite0");
                let model = EfficientNetLite0::from_checkpoint(&ckpt)?
                    .with_threads(self.threads)?
                    .with_name(name, version)?;
                Ok(Arc::new(model))
            }
            Architecture::MiniLm => self.prepare_minilm(&file, ckpt),
        }
    }
}

impl CpuBackend {
    #[cfg(feature = "text")]
    fn prepare_minilm(&self, file: &Path, ckpt: Checkpoint) -> Result<Arc<dyn Plan>> {
        let dir = file.parent().unwrap_or(Path::new("."));
        let (name, version) = self.naming("minilm");
        let model = super::MiniLm::from_checkpoint(dir, ckpt)?
            .with_threads(self.threads)?
            .with_name(name, version)?;
        Ok(Arc::new(model))
    }

    #[cfg(not(feature = "text"))]
    fn prepare_minilm(&self, file: &Path, _ckpt: Checkpoint) -> Result<Arc<dyn Plan>> {
        Err(Error::Backend {
            model: file.display().to_string(),
            message: "MiniLM needs inferkit-infer-core's feature `text` (the tokenizer)".into(),
            source: None,
        })
    }
}
