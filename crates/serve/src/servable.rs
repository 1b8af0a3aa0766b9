//! [`Servable`]: a model as clients see it — its own tensors, or a `BYTES` input (encoded
//! images, texts) that the server turns into them, labels for the classification extension,
//! and its own batching.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use inferkit_infer_core::cpu::{MiniLm, Tokens};
use inferkit_infer_core::{DType, Dim, Model, Tensor};
use inferkit_preprocess::{Batch, BufferPool, DecodeOptions, Decoder, Transform};

use crate::Error;
use crate::request::{Arg, BytesKind};

/// How a served model's `BYTES` input becomes the model's tensors.
#[derive(Debug)]
pub(crate) enum Preprocess {
    /// Encoded images (JPEG, PNG, WebP, … with EXIF orientation) decoded and transformed
    /// in parallel into one pooled batch: the model's single `[N, C, H, W]` f32 input.
    Image {
        decoder: Decoder,
        transform: Transform,
        pool: BufferPool<f32>,
    },
    /// UTF-8 texts through the model's tokenizer into `input_ids` and `attention_mask`,
    /// padded to the request's longest text.
    Text(MiniLm),
}

/// A model to serve and how clients reach it: its own tensors (the default), or a `BYTES`
/// input the server preprocesses ([`with_image_input`](Self::with_image_input),
/// [`with_text_input`](Self::with_text_input)); labels for Triton's classification extension
/// ([`with_labels`](Self::with_labels)); batching of its own
/// ([`with_batching`](Self::with_batching)). A [`Model`] converts into one serving its
/// tensors.
///
/// ```
/// use inferkit_infer_core::{Backend, Device, Model, ModelSource};
/// use inferkit_infer_core::cpu::CpuBackend;
/// use inferkit_preprocess::{Resize, Transform};
/// use inferkit_serve::Servable;
///
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/models/efficientnet-lite0.pth");
/// let plan = CpuBackend::new().prepare(ModelSource::Path(path.as_ref()), Device::Cpu)?;
/// let served = Servable::new(Model::new(plan, 1))
///     // clients send encoded photos as BYTES; the server decodes, resizes and crops them
///     .with_image_input("image", Transform::imagenet(224).with_resize(Resize::ShorterSide(256)))?
///     .with_labels("logits", (0..1000).map(|i| format!("class {i}")).collect())?;
/// assert_eq!(served.inputs()[0], ("image".to_string(), "BYTES".to_string(), vec![-1]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Servable {
    pub(crate) model: Model,
    /// The `BYTES` input's name and its preprocessing.
    pub(crate) preprocess: Option<(String, Arc<Preprocess>)>,
    /// Labels per output (the classification extension).
    pub(crate) labels: BTreeMap<String, Arc<[String]>>,
    /// Most requests per batch and the longest wait, instead of the server's.
    pub(crate) batching: Option<(usize, Duration)>,
}

impl From<Model> for Servable {
    fn from(model: Model) -> Self {
        Servable::new(model)
    }
}

impl Servable {
    /// `model`, its own tensors as its inputs.
    pub fn new(model: Model) -> Self {
        Servable {
            model,
            preprocess: None,
            labels: BTreeMap::new(),
            batching: None,
        }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Clients send encoded images as the `BYTES` input `name` (shape `[n]` or `[n, 1]`,
    /// one image each); the server decodes them (EXIF orientation applied) and applies
    /// `transform` into the model's one input, an f32 `[N, C, H, W]` batch.
    ///
    /// # Errors
    /// [`Error::Interface`] when the model does not take exactly one f32 input of rank 4
    /// whose fixed dims match the transform's output, or the transform has no fixed size.
    pub fn with_image_input(
        mut self,
        name: impl Into<String>,
        transform: Transform,
    ) -> Result<Self, Error> {
        let name = name.into();
        let d = self.model.descriptor();
        let problem = |p: String| Error::Interface {
            model: d.name.clone(),
            problem: p,
        };
        let [input] = d.inputs.as_slice() else {
            return Err(problem(format!(
                "an image input needs a model of one input; it takes {}",
                d.inputs.len()
            )));
        };
        let shape = transform
            .output_shape()
            .ok_or_else(|| problem("the image transform has no fixed output size".into()))?;
        let fits = input.dtype == DType::F32
            && input.shape.len() == 4
            && input.shape[1..].iter().zip(shape).all(|(d, s)| match d {
                Dim::Fixed(n) => *n == s,
                _ => true,
            });
        if !fits {
            return Err(problem(format!(
                "input `{}` ({:?} {:?}) does not take the transform's [N, {}, {}, {}] f32 batch",
                input.name, input.dtype, input.shape, shape[0], shape[1], shape[2]
            )));
        }
        self.preprocess = Some((
            name,
            Arc::new(Preprocess::Image {
                decoder: Decoder::new(DecodeOptions::default()),
                transform,
                pool: BufferPool::new(4),
            }),
        ));
        Ok(self)
    }

    /// Clients send UTF-8 texts as the `BYTES` input `name` (shape `[n]` or `[n, 1]`); the
    /// server tokenizes them with `tokenizer` (truncated to its `max_tokens`) into the
    /// model's `input_ids` and `attention_mask`, padded to the request's longest text.
    ///
    /// # Errors
    /// [`Error::Interface`] when the model's inputs are not `input_ids` and
    /// `attention_mask`.
    pub fn with_text_input(
        mut self,
        name: impl Into<String>,
        tokenizer: MiniLm,
    ) -> Result<Self, Error> {
        let d = self.model.descriptor();
        let names: Vec<&str> = d.inputs.iter().map(|s| s.name.as_str()).collect();
        if names != ["input_ids", "attention_mask"] {
            return Err(Error::Interface {
                model: d.name.clone(),
                problem: format!(
                    "a text input needs a model taking input_ids and attention_mask; it takes {}",
                    names.join(", ")
                ),
            });
        }
        self.preprocess = Some((name.into(), Arc::new(Preprocess::Text(tokenizer))));
        Ok(self)
    }

    /// Labels of `output`'s classes, in index order, for Triton's classification extension
    /// (a request asking `classification: k` of it gets the top k as
    /// `"score:index:label"` strings).
    ///
    /// # Errors
    /// [`Error::Interface`] when the model has no such output, or its class dimension is
    /// fixed and not the labels' count.
    pub fn with_labels(mut self, output: &str, labels: Vec<String>) -> Result<Self, Error> {
        let d = self.model.descriptor();
        let problem = |p: String| Error::Interface {
            model: d.name.clone(),
            problem: p,
        };
        let spec = d
            .outputs
            .iter()
            .find(|s| s.name == output)
            .ok_or_else(|| problem(format!("no output `{output}` to label")))?;
        if let Some(Dim::Fixed(n)) = spec.shape.last()
            && *n != labels.len()
        {
            return Err(problem(format!(
                "output `{output}` has {n} classes, the labels {}",
                labels.len()
            )));
        }
        self.labels.insert(output.to_owned(), labels.into());
        Ok(self)
    }

    /// Batches of at most `max_batch` requests, waiting at most `max_delay` for others to
    /// join (the server's [`Config`](crate::Config) otherwise).
    #[must_use]
    pub fn with_batching(mut self, max_batch: usize, max_delay: Duration) -> Self {
        self.batching = Some((max_batch.max(1), max_delay));
        self
    }

    /// The inputs as clients see them: name, the protocol's datatype, shape (-1: any).
    pub fn inputs(&self) -> Vec<(String, String, Vec<i64>)> {
        served_inputs(&self.model, self.preprocess.as_ref())
    }
}

/// A served model's inputs as clients see them (metadata on both protocols): its `BYTES`
/// input, else the model's own.
pub(crate) fn served_inputs(
    model: &Model,
    preprocess: Option<&(String, Arc<Preprocess>)>,
) -> Vec<(String, String, Vec<i64>)> {
    match preprocess {
        Some((name, _)) => vec![(name.clone(), "BYTES".into(), vec![-1])],
        None => model
            .descriptor()
            .inputs
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    crate::request::datatype(s.dtype).into(),
                    crate::app::shape_json(&s.shape),
                )
            })
            .collect(),
    }
}

impl Preprocess {
    /// How the `BYTES` input's JSON strings read.
    pub(crate) fn kind(&self) -> BytesKind {
        match self {
            Preprocess::Image { .. } => BytesKind::Image,
            Preprocess::Text(_) => BytesKind::Text,
        }
    }
}

/// A request's inputs as the model's tensors: tensors as given, or the served `BYTES`
/// input through its preprocessing (blocking: decoding and tokenizing run here). The error
/// is a 400's message naming the input and, for a bad element, its index and the reason.
pub(crate) fn tensors(
    model: &Model,
    preprocess: Option<&(String, Arc<Preprocess>)>,
    args: Vec<(String, Arg)>,
) -> Result<Vec<(String, Tensor)>, String> {
    let Some((input, pre)) = preprocess else {
        return args
            .into_iter()
            .map(|(n, a)| match a {
                Arg::Tensor(t) => Ok((n, t)),
                Arg::Bytes { .. } => Err(format!("input `{n}`: BYTES are not served")),
            })
            .collect();
    };
    let mut args = args.into_iter();
    let (Some((name, arg)), None) = (args.next(), args.next()) else {
        return Err(format!("the request must have one input, `{input}`"));
    };
    let Arg::Bytes { shape, items } = arg else {
        return Err(format!("input `{name}`: the model takes BYTES"));
    };
    if !matches!(shape.as_slice(), [_] | [_, 1]) {
        return Err(format!(
            "input `{name}`: shape {shape:?}; one element per row, [n] or [n, 1]"
        ));
    }
    let d = model.descriptor();
    match &**pre {
        Preprocess::Image {
            decoder,
            transform,
            pool,
        } => {
            let batch = Batch::from_encoded(&items, decoder, transform, pool)
                .map_err(|e| format!("input `{name}`: {e}"))?;
            if let Some((i, Err(e))) = batch.results().iter().enumerate().find(|(_, r)| r.is_err())
            {
                return Err(format!("input `{name}`: element {i}: {e}"));
            }
            let t = Tensor::F32(batch.view().to_owned().into_dyn());
            Ok(vec![(d.inputs[0].name.clone(), t)])
        }
        Preprocess::Text(tokenizer) => {
            let ids = items
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let text = std::str::from_utf8(b).map_err(|e| {
                        format!("input `{name}`: element {i} is not UTF-8 text: {e}")
                    })?;
                    tokenizer
                        .encode(text)
                        .map_err(|e| format!("input `{name}`: element {i}: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let t = Tokens::pad(&ids);
            Ok(vec![
                ("input_ids".into(), Tensor::I64(t.ids.into_dyn())),
                ("attention_mask".into(), Tensor::I64(t.mask.into_dyn())),
            ])
        }
    }
}

/// Triton's classification extension: each row's top `k` of `t` (`[rows, classes]`) as
/// `"score:index:label"` (`"score:index"` without labels), highest first; shape `[rows, k]`
/// (k capped at the classes).
pub(crate) fn classify(
    output: &str,
    t: &Tensor,
    k: usize,
    labels: Option<&[String]>,
) -> Result<(Vec<usize>, Vec<String>), String> {
    let Tensor::F32(a) = t else {
        return Err(format!(
            "output `{output}`: classification needs FP32 scores, it is {:?}",
            t.dtype()
        ));
    };
    let a = a
        .view()
        .into_dimensionality::<ndarray::Ix2>()
        .map_err(|_| {
            format!(
                "output `{output}`: classification needs [rows, classes], it is {:?}",
                a.shape()
            )
        })?;
    let k = k.min(a.ncols());
    let mut out = Vec::with_capacity(a.nrows() * k);
    for row in a.rows() {
        let mut idx: Vec<usize> = (0..row.len()).collect();
        // highest first; equal scores by index (as a stable sort of the scores would)
        idx.sort_by(|&x, &y| row[y].total_cmp(&row[x]).then(x.cmp(&y)));
        for &i in &idx[..k] {
            out.push(match labels.and_then(|l| l.get(i)) {
                Some(l) => format!("{:.6}:{i}:{l}", row[i]),
                None => format!("{:.6}:{i}", row[i]),
            });
        }
    }
    Ok((vec![a.nrows(), k], out))
}

/// Strings as the protocol's binary `BYTES` form: each a 4-byte little-endian length, then
/// its bytes.
pub(crate) fn bytes_binary(items: &[String], out: &mut Vec<u8>) -> usize {
    let start = out.len();
    for s in items {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.len() - start
}
