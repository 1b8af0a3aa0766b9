//! A model repository in Triton's layout: `DIR/<model>/config.pbtxt` and
//! `DIR/<model>/<version>/model.{onnx,safetensors,pth}` (or the file or folder
//! `default_model_filename` names), read into [`Servable`]s.
//!
//! `config.pbtxt` is protobuf text format with Triton's field names
//! (`proto/model_config.proto` lists the ones read; any other is an error naming it):
//!
//! ```text
//! name: "efficientnet_lite0"
//! platform: "inferkit_cpu"          # or onnxruntime_onnx; empty: from the model file
//! max_batch_size: 32
//! input [ { name: "image", data_type: TYPE_STRING, dims: [ 1 ] } ]
//! output [ { name: "logits", data_type: TYPE_FP32, dims: [ 1000 ], label_filename: "labels.txt" } ]
//! dynamic_batching { max_queue_delay_microseconds: 2000 }
//! version_policy { latest { num_versions: 1 } }  # Triton's default; or all {}, specific { versions: [1, 3] }
//! instance_group [ { kind: KIND_CPU, count: 2 } ] # count: threads a native model runs a batch on
//! parameters { key: "preprocess" value { string_value: "image" } }  # or "text"
//! parameters { key: "resize" value { string_value: "256" } }        # image: shorter side
//! parameters { key: "crop" value { string_value: "224" } }          # image: centre crop
//! ```
//!
//! With `preprocess: "image"` the one `TYPE_STRING` input takes encoded images (decoded,
//! EXIF-oriented, resized, cropped and normalised with ImageNet's mean and std on the
//! server); with `"text"` it takes UTF-8 texts (the model directory's `tokenizer.json`).
//! Declared inputs and outputs are checked against the model's own at load time: a name,
//! datatype or fixed dim that differs is an error, never a model served with the wrong
//! interface.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use inferkit_infer_core::cpu::MiniLm;
use inferkit_infer_core::{Dim, Model, Plan};
use inferkit_preprocess::{Resize, Transform};
use prost_reflect::{DescriptorPool, DynamicMessage};

use crate::app::prepare_model;
use crate::request::datatype;
use crate::{Error, Servable};

/// The configuration messages of `proto/model_config.proto`.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all
)]
pub mod config {
    include!(concat!(env!("OUT_DIR"), "/inferkit.config.rs"));
}

use config::ModelConfig;
use config::model_version_policy::PolicyChoice;

/// The descriptor set of `proto/model_config.proto` (for the text-format parser).
const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model_config.bin"));

/// Reads a `config.pbtxt` (protobuf text format, Triton's field names).
///
/// ```
/// let c = inferkit_serve::repository::parse_config(r#"
///     name: "m" max_batch_size: 8
///     input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]
/// "#)?;
/// assert_eq!((c.name.as_str(), c.max_batch_size, c.input[0].dims.as_slice()), ("m", 8, &[4][..]));
/// assert!(inferkit_serve::repository::parse_config("nmae: \"m\"").is_err());
/// # Ok::<(), String>(())
/// ```
///
/// # Errors
/// The parser's message (an unknown field is named with the message it is not in).
pub fn parse_config(text: &str) -> Result<ModelConfig, String> {
    let pool = DescriptorPool::decode(DESCRIPTORS).map_err(|e| e.to_string())?;
    let desc = pool
        .get_message_by_name("inferkit.config.ModelConfig")
        .ok_or("the configuration schema lacks ModelConfig")?;
    let msg =
        DynamicMessage::parse_text_format(desc, &list_colons(text)).map_err(|e| e.to_string())?;
    msg.transcode_to::<ModelConfig>().map_err(|e| e.to_string())
}

/// `field [ … ]` as `field: [ … ]`. Triton's configurations write repeated message fields
/// without the colon (`input [ { … } ]`), which protobuf's C++ text parser accepts;
/// prost-reflect's follows the text-format grammar, where a list needs it. Strings and
/// `#` comments are left as they are.
fn list_colons(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    for c in text.chars() {
        if comment {
            comment = c != '\n';
        } else if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
        } else if c == '"' || c == '\'' {
            quote = Some(c);
        } else if c == '#' {
            comment = true;
        } else if c == '[' {
            let before = out.trim_end().chars().last();
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == '_') {
                out.push(':');
            }
        }
        out.push(c);
    }
    out
}

/// One model version found in a repository, not loaded yet.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The model's name (its directory's).
    pub name: String,
    /// The version (its directory's number, as `N.0.0`).
    pub version: semver::Version,
    /// The model file or folder.
    pub path: PathBuf,
    /// The model's configuration.
    pub config: ModelConfig,
    /// The model's directory (label files are relative to it).
    pub dir: PathBuf,
}

/// The model versions of the repository at `dir` its configurations select (each model's
/// `version_policy`; Triton's default, the latest one), in name and version order.
///
/// # Errors
/// [`Error::Repository`] naming the file or directory: no `config.pbtxt`, one that does not
/// parse, a name that differs from the directory's, no version directory the policy selects,
/// a version with no model file.
pub fn scan(dir: &Path) -> Result<Vec<Entry>, Error> {
    let err = |path: &Path, problem: String| Error::Repository {
        path: path.to_path_buf(),
        problem,
    };
    let mut models: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| err(dir, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !is_hidden(p))
        .collect();
    models.sort();
    let mut out = Vec::new();
    for m in models {
        let name = file_name(&m);
        let cfg_path = m.join("config.pbtxt");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| err(&cfg_path, e.to_string()))?;
        let config = parse_config(&text).map_err(|e| err(&cfg_path, e))?;
        if !config.name.is_empty() && config.name != name {
            return Err(err(
                &cfg_path,
                format!(
                    "name \"{}\" differs from the directory's, \"{name}\"",
                    config.name
                ),
            ));
        }
        let mut versions: Vec<u64> = std::fs::read_dir(&m)
            .map_err(|e| err(&m, e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .filter_map(|p| file_name(&p).parse().ok())
            .collect();
        versions.sort_unstable();
        let chosen: Vec<u64> = match config
            .version_policy
            .as_ref()
            .and_then(|p| p.policy_choice.as_ref())
        {
            None => versions.last().copied().into_iter().collect(),
            Some(PolicyChoice::Latest(l)) => {
                let n = (l.num_versions.max(1) as usize).min(versions.len());
                versions[versions.len() - n..].to_vec()
            }
            Some(PolicyChoice::All(_)) => versions.clone(),
            Some(PolicyChoice::Specific(s)) => {
                for v in &s.versions {
                    if !versions.iter().any(|&have| i64::try_from(have) == Ok(*v)) {
                        return Err(err(
                            &m,
                            format!("version_policy names version {v}, which has no directory"),
                        ));
                    }
                }
                versions
                    .iter()
                    .copied()
                    .filter(|&v| s.versions.iter().any(|&w| i64::try_from(v) == Ok(w)))
                    .collect()
            }
        };
        if chosen.is_empty() {
            return Err(err(&m, "no version directory (1/, 2/, …) to serve".into()));
        }
        for v in chosen {
            let vdir = m.join(v.to_string());
            let path = model_file(&vdir, &config.default_model_filename).ok_or_else(|| {
                err(
                    &vdir,
                    match config.default_model_filename.as_str() {
                        "" => "no model file (model.onnx, model.safetensors, model.pth or model/)"
                            .into(),
                        f => format!("no {f} (default_model_filename)"),
                    },
                )
            })?;
            out.push(Entry {
                name: name.clone(),
                version: semver::Version::new(v, 0, 0),
                path,
                config: config.clone(),
                dir: m.clone(),
            });
        }
    }
    Ok(out)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_hidden(p: &Path) -> bool {
    file_name(p).starts_with('.')
}

/// The model in a version directory: `default_model_filename`, else the first of
/// `model.onnx`, `model.safetensors`, `model.pth`, `model` (a folder: a MiniLM layout).
fn model_file(vdir: &Path, default: &str) -> Option<PathBuf> {
    let names: Vec<&str> = if default.is_empty() {
        vec!["model.onnx", "model.safetensors", "model.pth", "model"]
    } else {
        vec![default]
    };
    names.into_iter().map(|n| vdir.join(n)).find(|p| p.exists())
}

/// Loads one repository entry: the model on the backend its configuration names (native
/// models on `threads` threads unless `instance_group` gives a count), its declared inputs
/// and outputs checked against the model, its preprocessing, labels and batching.
///
/// # Errors
/// [`Error::Repository`] naming the configuration for what it asks that cannot be done (a
/// GPU instance, an unknown platform, an interface that does not match the model);
/// [`Error::Model`] when the model cannot be prepared.
pub fn load(entry: &Entry, threads: usize) -> Result<Servable, Error> {
    let c = &entry.config;
    let cfg_path = entry.dir.join("config.pbtxt");
    let err = |problem: String| Error::Repository {
        path: cfg_path.clone(),
        problem,
    };
    let mut threads = threads;
    for g in &c.instance_group {
        if g.kind() == config::model_instance_group::Kind::Gpu || !g.gpus.is_empty() {
            return Err(err(
                "instance_group asks for a GPU; inferkit-serve runs models on the CPU".into(),
            ));
        }
        if g.count > 0 {
            threads = g.count as usize;
        }
    }
    let onnx = match (c.platform.as_str(), c.backend.as_str()) {
        ("onnxruntime_onnx", _) | (_, "onnxruntime" | "onnx") => true,
        ("inferkit_cpu", _) | (_, "inferkit") => false,
        ("", "") => entry.path.extension().is_some_and(|e| e == "onnx"),
        (p, b) => {
            return Err(err(format!(
                "platform \"{p}\" / backend \"{b}\": inferkit-serve runs onnxruntime_onnx \
                 (ONNX, through tract) and inferkit_cpu (native EfficientNet-Lite0, MiniLM)"
            )));
        }
    };
    let param = |k: &str| c.parameters.get(k).map(|p| p.string_value.as_str());
    let preprocess = param("preprocess").unwrap_or("");
    let model_err = |source| Error::Model {
        path: entry.path.clone(),
        source: Box::new(source),
    };
    let mut served = match preprocess {
        "text" if onnx => {
            return Err(err(
                "preprocess \"text\" runs the native MiniLM (platform inferkit_cpu); an ONNX \
                 text model takes its token tensors as inputs"
                    .into(),
            ));
        }
        "text" => {
            // the model is its own tokenizer's owner: one load for both
            let dir = if entry.path.is_dir() {
                entry.path.clone()
            } else {
                entry.path.parent().unwrap_or(Path::new(".")).to_path_buf()
            };
            let m = MiniLm::load(&dir)
                .and_then(|m| m.with_threads(threads))
                .and_then(|m| m.with_name(entry.name.clone(), entry.version.clone()))
                .map_err(model_err)?;
            let plan: Arc<dyn Plan> = Arc::new(m.clone());
            let input = one_string_input(c).map_err(&err)?;
            Servable::new(Model::new(plan, 1)).with_text_input(input, m)?
        }
        "image" | "" => {
            let model = prepare_model(
                &entry.name,
                &entry.path,
                entry.version.clone(),
                threads,
                onnx,
            )?;
            if preprocess == "image" {
                let number = |k: &str, default: u32| -> Result<u32, Error> {
                    param(k).map_or(Ok(default), |v| {
                        v.parse()
                            .map_err(|_| err(format!("parameter {k}: \"{v}\" is not a size")))
                    })
                };
                let transform = Transform::imagenet(number("crop", 224)?)
                    .with_resize(Resize::ShorterSide(number("resize", 256)?));
                let input = one_string_input(c).map_err(&err)?;
                Servable::new(model).with_image_input(input, transform)?
            } else {
                check_inputs(c, &model).map_err(&err)?;
                Servable::new(model)
            }
        }
        other => {
            return Err(err(format!(
                "parameter preprocess: \"{other}\"; inferkit-serve knows \"image\" and \"text\""
            )));
        }
    };
    for o in &c.output {
        let spec = served
            .model()
            .descriptor()
            .outputs
            .iter()
            .find(|s| s.name == o.name)
            .ok_or_else(|| err(format!("output `{}`: the model has no such output", o.name)))?;
        check_spec(
            "output",
            o.name.as_str(),
            o.data_type(),
            &o.dims,
            c.max_batch_size,
            spec,
        )
        .map_err(&err)?;
        if !o.label_filename.is_empty() {
            let path = entry.dir.join(&o.label_filename);
            let labels: Vec<String> = std::fs::read_to_string(&path)
                .map_err(|e| Error::Repository {
                    path: path.clone(),
                    problem: e.to_string(),
                })?
                .lines()
                .map(str::to_owned)
                .collect();
            served = served.with_labels(&o.name, labels)?;
        }
    }
    if c.max_batch_size > 0 {
        let delay = c.dynamic_batching.as_ref().map_or(Duration::ZERO, |b| {
            Duration::from_micros(b.max_queue_delay_microseconds)
        });
        served = served.with_batching(c.max_batch_size as usize, delay);
    } else {
        served = served.with_batching(1, Duration::ZERO);
    }
    Ok(served)
}

/// The one `TYPE_STRING` input a preprocessed model declares.
fn one_string_input(c: &ModelConfig) -> Result<String, String> {
    match c.input.as_slice() {
        [i] if i.data_type() == config::DataType::TypeString => Ok(i.name.clone()),
        _ => Err(
            "a preprocessed model declares one input, of data_type TYPE_STRING (its BYTES)".into(),
        ),
    }
}

/// Each declared input against the model's input of that name.
fn check_inputs(c: &ModelConfig, model: &Model) -> Result<(), String> {
    let d = model.descriptor();
    for i in &c.input {
        let spec = d.inputs.iter().find(|s| s.name == i.name).ok_or_else(|| {
            format!(
                "input `{}`: the model has no such input (it takes {})",
                i.name,
                d.inputs
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        check_spec(
            "input",
            &i.name,
            i.data_type(),
            &i.dims,
            c.max_batch_size,
            spec,
        )?;
    }
    Ok(())
}

/// A declared tensor's datatype and dims against the model's (a batch dimension first when
/// `max_batch_size` > 0; -1 matches any).
fn check_spec(
    what: &str,
    name: &str,
    data_type: config::DataType,
    dims: &[i64],
    max_batch_size: i32,
    spec: &inferkit_infer_core::TensorSpec,
) -> Result<(), String> {
    // Triton's names are the protocol's with `TYPE_` before them (TYPE_STRING is BYTES,
    // which no model tensor is)
    let have = datatype(spec.dtype);
    if data_type.as_str_name().strip_prefix("TYPE_") != Some(have) {
        return Err(format!(
            "{what} `{name}`: data_type {}, the model's is {have}",
            data_type.as_str_name()
        ));
    }
    let mut full: Vec<i64> = Vec::with_capacity(dims.len() + 1);
    if max_batch_size > 0 {
        full.push(-1);
    }
    full.extend_from_slice(dims);
    let fits = full.len() == spec.shape.len()
        && full.iter().zip(&spec.shape).all(|(&d, s)| match s {
            Dim::Fixed(n) => d == -1 || d == *n as i64,
            _ => true,
        });
    if !fits {
        return Err(format!(
            "{what} `{name}`: dims {dims:?} (max_batch_size {max_batch_size}) do not fit the model's {:?}",
            spec.shape
        ));
    }
    Ok(())
}
