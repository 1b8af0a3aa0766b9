//! A BERT sentence embedder: sentence-transformers' `all-MiniLM-L6-v2` (6 layers, hidden 384,
//! 12 heads, intermediate 1536), or any BERT checkpoint with the same key names, from its
//! `model.safetensors`, `config.json` and `tokenizer.json`.
//!
//! **Weights in place.** The checkpoint is memory-mapped and every weight is read straight
//! from the map: linear weights stay PyTorch's `[out, in]` and the GEMM reads them
//! transposed through strides; the embedding tables are indexed in place. Nothing is copied
//! at load (a test counts the heap bytes). The price: Q, K and V stay three GEMMs, since
//! fusing them would need one concatenated (copied) weight. The checkpoint must hold f32
//! tensors at 4-byte-aligned offsets (safetensors files written by PyTorch do); anything
//! else is an error at load naming the tensor.
//!
//! **Tokens.** `tokenizer.json` through the `tokenizers` crate, truncated to `max_tokens`
//! (256, sentence-transformers' `max_seq_length` for this model) and never padded by the
//! tokenizer; a batch is padded here to its longest text and masked.
//!
//! **Output.** Mean of the last hidden states over the non-padding tokens, then L2
//! normalised: what `SentenceTransformer.encode` returns for this model.
//!
//! **int8.** [`load`](MiniLm::load) reads an int8 checkpoint too (its precision from its
//! metadata: the format is in [`quant`](super::quant)'s docs), as written by
//! [`save_int8`](MiniLm::save_int8) (the `quantize` example) or made in memory by
//! [`with_int8`](MiniLm::with_int8); both give the same numbers. The six linear layers of
//! each encoder layer run on the int8 GEMM ([`int8`](super::int8)): weights symmetric per
//! output channel (`scale = max|w| / 127`), activations quantized per token (each row on its
//! own range, as ONNX's `DynamicQuantizeLinear` does a tensor; one scale for the whole tensor
//! is known to lose too much on MiniLM), the sums scaled back to f32 before the bias,
//! residual, GELU and layer norms, which stay f32 like the attention products. The word
//! embeddings are int8 too, one scale per token's row, dequantized as they are gathered:
//! the file is a quarter of the f32 one. The linear weights are packed at load (a copy, a
//! quarter of the f32 ones, whose pages in the map are then given back to the kernel:
//! `Checkpoint::release`); the rest is read in place.

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array2, ArrayView2, Ix2};
use rayon::prelude::*;
use tokenizers::{Tokenizer, TruncationParams};

use super::epilogue::{Act, add_bias};
use super::int8::{Isa, Out, PackedI8, Rows, gemm_u8i8_rows, quantize_rows};
use super::kernels::{Strides, sgemm_strided};
use super::math::{layer_norm, masked_softmax, mean_pool_l2};
use super::nhwc::for_rows;
use super::quant;
use crate::backend::{Plan, Session};
use crate::weights::{Checkpoint, TensorBytes};
use crate::{
    DType, Device, DeviceContext, Dim, Error, ModelDescriptor, Result, RuntimeHint, Tensor,
    TensorSpec, TensorView,
};

/// Token ids and attention mask of a batch, padded to its longest text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// `[batch, seq]` token ids (0, `[PAD]`, after each text's end).
    pub ids: Array2<i64>,
    /// `[batch, seq]`: 1 for a real token, 0 for padding.
    pub mask: Array2<i64>,
}

#[derive(Debug, Clone)]
struct Config {
    hidden: usize,
    heads: usize,
    layers: usize,
    intermediate: usize,
    eps: f32,
    max_positions: usize,
    vocab: usize,
    type_vocab: usize,
}

/// all-MiniLM-L6-v2 (or a BERT of the same layout) on the native CPU backend: a [`Plan`]
/// with inputs `input_ids` and `attention_mask` (`[batch, seq]` i64) and output
/// `sentence_embedding` (`[batch, hidden]` f32, unit length); [`embed`](Self::embed) takes
/// texts.
///
/// A cheap handle (clones share the mapped weights and the tokenizer): share it, or an
/// `Arc<dyn Plan>` of it, across threads.
#[derive(Clone)]
pub struct MiniLm {
    net: Arc<Net>,
}

/// The mapped checkpoint, the tokenizer, the configuration and the thread pool.
struct Net {
    descriptor: ModelDescriptor,
    ckpt: Checkpoint,
    tokenizer: Tokenizer,
    config: Config,
    max_tokens: usize,
    threads: usize,
    pool: Option<rayon::ThreadPool>,
    /// The linear layers quantized (by weight name; Q, K and V fused as `…{QKV}`), when the
    /// checkpoint is int8: its word embeddings are then int8 too.
    int8: Option<std::collections::HashMap<String, QLinear>>,
}

/// The scheme an int8 MiniLM checkpoint records (`inferkit.scheme`).
const INT8_SCHEME: &str = "weights: int8, symmetric, one scale per output channel (linear \
    layers) or per token (word embeddings); activations: uint8, asymmetric, one scale and \
    zero point per token, found at run time; attention products, norms, GELU: f32";

/// The descriptor's `precision` of an int8 MiniLM.
const INT8_PRECISION: &str = "int8 (weights per output channel, activations per token)";

/// The word embedding table.
const WORD: &str = "embeddings.word_embeddings.weight";

/// The name of a layer's fused Q, K, V weight among the int8 layers.
const QKV: &str = "attention.self.qkv";

/// One linear layer's weight quantized for the int8 GEMM, with its bias.
struct QLinear {
    w: PackedI8,
    /// Per output channel.
    scale: Vec<f32>,
    /// Per output channel (a copy: the fused Q, K, V layer's is three side by side).
    bias: Vec<f32>,
    /// `n` zeros (for the pass that adds the residual or GELU after the bias).
    zeros: Vec<f32>,
    isa: Isa,
}

impl QLinear {
    /// PyTorch's `[n, k]` int8 weight (`n` rows) packed, with its `n` scales and biases.
    fn new(q: &[i8], scale: &[f32], bias: &[f32], n: usize, k: usize) -> QLinear {
        QLinear {
            w: PackedI8::from_rows(q, n, k),
            scale: scale.to_vec(),
            bias: bias.to_vec(),
            zeros: vec![0.0; n],
            isa: Isa::detect(),
        }
    }
}

impl Tokens {
    /// Texts' token ids (from [`MiniLm::encode`]) padded with 0 to the longest, masked.
    pub fn pad<T: AsRef<[i64]>>(texts: &[T]) -> Tokens {
        let seq = texts.iter().map(|t| t.as_ref().len()).max().unwrap_or(0);
        let mut ids = Array2::<i64>::zeros((texts.len(), seq));
        let mut mask = Array2::<i64>::zeros((texts.len(), seq));
        for (row, t) in texts.iter().enumerate() {
            for (j, &id) in t.as_ref().iter().enumerate() {
                ids[[row, j]] = id;
                mask[[row, j]] = 1;
            }
        }
        Tokens { ids, mask }
    }
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm")
            .field("config", &self.net.config)
            .field("max_tokens", &self.net.max_tokens)
            .field("threads", &self.net.threads)
            .finish_non_exhaustive()
    }
}

fn err(message: String) -> Error {
    Error::Backend {
        model: "minilm".into(),
        message,
        source: None,
    }
}

impl MiniLm {
    /// Loads `dir/model.safetensors` (mapped, used in place; f32, or int8 as its metadata
    /// says: see the module docs), `dir/config.json` and `dir/tokenizer.json`; texts are
    /// truncated to 256 tokens. One thread until [`with_threads`](Self::with_threads).
    ///
    /// # Errors
    /// [`Error::Weights`] naming `model.safetensors` when it is missing or not a valid
    /// checkpoint (it is opened first); [`Error::Backend`] naming a missing or unreadable
    /// `config.json` or `tokenizer.json`, a missing tensor, a tensor of the wrong shape or
    /// dtype, one that cannot be used in place, or a quantization this build does not read.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let ckpt =
            Checkpoint::open(dir.join("model.safetensors")).map_err(|source| Error::Weights {
                model: "minilm".into(),
                source,
            })?;
        Self::from_checkpoint(dir, ckpt)
    }

    /// [`load`](Self::load) with the weights from a checkpoint already open (used in place,
    /// so the model keeps it); `config.json` and `tokenizer.json` still come from `dir`.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn from_checkpoint(dir: impl AsRef<Path>, ckpt: Checkpoint) -> Result<Self> {
        let dir = dir.as_ref();
        let config_path = dir.join("config.json");
        let config: serde_json::Value = std::fs::read_to_string(&config_path)
            .map_err(|e| err(format!("{}: {e}", config_path.display())))
            .and_then(|s| {
                serde_json::from_str(&s).map_err(|e| err(format!("{}: {e}", config_path.display())))
            })?;
        let field = |name: &str| -> Result<usize> {
            config[name]
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| err(format!("{}: no integer `{name}`", config_path.display())))
        };
        let config = Config {
            hidden: field("hidden_size")?,
            heads: field("num_attention_heads")?,
            layers: field("num_hidden_layers")?,
            intermediate: field("intermediate_size")?,
            eps: config["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32,
            max_positions: field("max_position_embeddings")?,
            vocab: field("vocab_size")?,
            type_vocab: field("type_vocab_size")?,
        };
        if config.heads == 0 || !config.hidden.is_multiple_of(config.heads) {
            return Err(err(format!(
                "hidden size {} does not split into {} heads",
                config.hidden, config.heads
            )));
        }
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tok_path)
            .map_err(|e| err(format!("{}: {e}", tok_path.display())))?;
        let max_tokens = 256.min(config.max_positions);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| err(format!("{}: {e}", tok_path.display())))?;
        tokenizer.with_padding(None);
        let mut net = Net {
            descriptor: descriptor(&config),
            ckpt,
            tokenizer,
            config,
            max_tokens,
            threads: 1,
            pool: None,
            int8: None,
        };
        net.take_precision()?;
        Ok(MiniLm { net: Arc::new(net) })
    }
}

impl Net {
    /// Checks the checkpoint's tensors for its precision (from its metadata) and, when it is
    /// int8, packs the linear layers.
    fn take_precision(&mut self) -> Result<()> {
        let int8 = quant::is_int8(&self.ckpt).map_err(err)?;
        self.check_weights(int8)?;
        self.int8 = None;
        if int8 {
            self.int8 = Some(self.int8_layers()?);
            // the packed copies are all the forward pass reads: the mapped int8 weights
            // need not stay resident (read back from the file should anything ask)
            let packed = self.quantized();
            let packed = packed
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| *n != WORD);
            self.ckpt.release(packed).map_err(|source| Error::Weights {
                model: self.descriptor.name.clone(),
                source,
            })?;
            self.descriptor
                .metadata
                .insert("precision".into(), INT8_PRECISION.into());
        }
        Ok(())
    }

    /// The int8 checkpoint's linear layers packed (Q, K and V as one `[3h, h]` weight).
    fn int8_layers(&self) -> Result<std::collections::HashMap<String, QLinear>> {
        let c = &self.config;
        let (h, i) = (c.hidden, c.intermediate);
        let mut layers = std::collections::HashMap::new();
        for l in 0..c.layers {
            let p = format!("encoder.layer.{l}");
            for (name, n, k) in &LINEARS[3..] {
                let (n, k) = (n.pick(h, i), k.pick(h, i));
                let weight = format!("{p}.{name}.weight");
                let (q, s, b) = (
                    self.i8(&weight)?,
                    self.f32(&quant::scale_name(&weight))?,
                    self.f32(&format!("{p}.{name}.bias"))?,
                );
                layers.insert(weight, QLinear::new(q, s, b, n, k));
            }
            let (mut q, mut s, mut b) = (Vec::new(), Vec::new(), Vec::new());
            for (name, _, _) in &LINEARS[..3] {
                let weight = format!("{p}.{name}.weight");
                q.extend_from_slice(self.i8(&weight)?);
                s.extend_from_slice(self.f32(&quant::scale_name(&weight))?);
                b.extend_from_slice(self.f32(&format!("{p}.{name}.bias"))?);
            }
            layers.insert(format!("{p}.{QKV}"), QLinear::new(&q, &s, &b, 3 * h, h));
        }
        Ok(layers)
    }

    /// The tensors quantized in an int8 checkpoint, with their `[rows, columns]`: every
    /// encoder layer's linear weights and the word embeddings.
    fn quantized(&self) -> Vec<(String, [usize; 2])> {
        let c = &self.config;
        let (h, i) = (c.hidden, c.intermediate);
        let mut names = vec![(WORD.to_string(), [c.vocab, h])];
        for l in 0..c.layers {
            for (name, out, inp) in LINEARS {
                names.push((
                    format!("encoder.layer.{l}.{name}.weight"),
                    [out.pick(h, i), inp.pick(h, i)],
                ));
            }
        }
        names
    }

    /// Every tensor the forward pass reads, with its shape and dtype, readable in place: the
    /// quantized ones int8 with their scales when `int8`.
    fn check_weights(&self, int8: bool) -> Result<()> {
        let c = &self.config;
        let (h, i) = (c.hidden, c.intermediate);
        let mut want: Vec<(String, Vec<usize>)> = vec![
            (WORD.into(), vec![c.vocab, h]),
            (
                "embeddings.position_embeddings.weight".into(),
                vec![c.max_positions, h],
            ),
            (
                "embeddings.token_type_embeddings.weight".into(),
                vec![c.type_vocab, h],
            ),
            ("embeddings.LayerNorm.weight".into(), vec![h]),
            ("embeddings.LayerNorm.bias".into(), vec![h]),
        ];
        for l in 0..c.layers {
            let p = format!("encoder.layer.{l}");
            for (name, out, inp) in LINEARS {
                let (out, inp) = (out.pick(h, i), inp.pick(h, i));
                want.push((format!("{p}.{name}.weight"), vec![out, inp]));
                want.push((format!("{p}.{name}.bias"), vec![out]));
            }
            for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
                want.push((format!("{p}.{ln}.weight"), vec![h]));
                want.push((format!("{p}.{ln}.bias"), vec![h]));
            }
        }
        let quantized: std::collections::HashSet<String> = if int8 {
            self.quantized().into_iter().map(|(name, _)| name).collect()
        } else {
            Default::default()
        };
        let shape_of = |name: &str, shape: &[usize]| -> Result<()> {
            let t = self.ckpt.tensor(name).map_err(|e| err(e.to_string()))?;
            if t.shape() != shape {
                return Err(err(format!(
                    "{}: {name}: shape {:?}, expected {shape:?}",
                    self.ckpt.path().display(),
                    t.shape()
                )));
            }
            Ok(())
        };
        for (name, shape) in &want {
            shape_of(name, shape)?;
            if quantized.contains(name) {
                self.i8(name)?;
                let scale = quant::scale_name(name);
                shape_of(&scale, &shape[..1])?;
                self.f32(&scale)?;
            } else {
                self.f32(name)?;
            }
        }
        Ok(())
    }

    /// A tensor of `T` read in place, or an error naming it and the file.
    fn slice<T: crate::weights::StoredElement + bytemuck::Pod>(&self, name: &str) -> Result<&[T]> {
        let file = self.ckpt.path().display();
        let t = self.ckpt.tensor(name).map_err(|e| err(e.to_string()))?;
        let v = t
            .view::<T>()
            .map_err(|e| err(format!("{file}: {name} cannot be used in place: {e}")))?;
        v.to_slice()
            .ok_or_else(|| err(format!("{file}: {name} is not contiguous")))
    }

    fn f32(&self, name: &str) -> Result<&[f32]> {
        self.slice(name)
    }

    fn i8(&self, name: &str) -> Result<&[i8]> {
        self.slice(name)
    }

    /// An f32 weight checked at load.
    fn w(&self, name: &str) -> &[f32] {
        self.f32(name).expect("checked at load")
    }

    /// The int8 checkpoint of this (f32) model, in memory: the tensors of
    /// [`quantized`](Self::quantized) int8 with their scales, the rest as they are.
    fn int8_bytes(&self) -> Result<Vec<u8>> {
        let list = self.quantized();
        let quantized: std::collections::HashMap<&str, [usize; 2]> =
            list.iter().map(|(n, dims)| (n.as_str(), *dims)).collect();
        let mut tensors: Vec<(String, TensorBytes<'_>)> = Vec::new();
        let weights = |source| Error::Weights {
            model: self.descriptor.name.clone(),
            source,
        };
        for t in self.ckpt.tensors() {
            let Some(&[rows, cols]) = quantized.get(t.name()) else {
                tensors.push((t.name().into(), TensorBytes::from_view(&t)));
                continue;
            };
            let (q, scale) = quant::symmetric_rows(self.w(t.name()), cols);
            tensors.push((
                t.name().into(),
                TensorBytes::new(
                    crate::DType::I8,
                    vec![rows, cols],
                    bytemuck::cast_vec::<i8, u8>(q),
                )
                .map_err(weights)?,
            ));
            tensors.push((
                quant::scale_name(t.name()),
                TensorBytes::new(
                    crate::DType::F32,
                    vec![rows],
                    bytemuck::cast_slice::<f32, u8>(&scale).to_vec(),
                )
                .map_err(weights)?,
            ));
        }
        let names: Vec<String> = list.iter().map(|(n, _)| n.clone()).collect();
        let meta = quant::metadata(
            &self.ckpt,
            INT8_SCHEME,
            "dynamic (activation ranges found per token at run time; no calibration set)",
            &names,
        );
        crate::weights::to_bytes(tensors, Some(meta)).map_err(weights)
    }
}

impl MiniLm {
    /// Runs on `threads` threads (0 is taken as 1): 1 on the caller's thread, more on a
    /// rayon pool of exactly that size owned by the model.
    ///
    /// # Errors
    /// [`Error::Backend`] when the pool's threads cannot be started, or when the model is
    /// already shared (a clone of it exists).
    pub fn with_threads(mut self, threads: usize) -> Result<Self> {
        let threads = threads.max(1);
        let pool = super::thread_pool(threads, "minilm").map_err(err)?;
        let net = super::unshared(&mut self.net, "minilm", "with_threads")?;
        net.pool = pool;
        net.threads = threads;
        Ok(self)
    }

    /// This model in int8 (see the module docs), quantized in memory: the checkpoint
    /// [`save_int8`](Self::save_int8) writes, opened from memory in place of the f32 one (the
    /// same numbers as loading that file), which the model then holds on the heap (a
    /// quarter of the f32 file; loading the file maps it instead). The descriptor's
    /// `precision` metadata says `int8`. An int8 model is returned as it is.
    ///
    /// # Errors
    /// [`Error::Backend`] when the model is already shared (a clone of it exists);
    /// [`Error::Weights`] when the safetensors writer refuses the tensors.
    pub fn with_int8(mut self) -> Result<Self> {
        if self.is_int8() {
            return Ok(self);
        }
        let net = super::unshared(&mut self.net, "minilm", "with_int8")?;
        let bytes = net.int8_bytes()?;
        let label = net.ckpt.path().with_extension("int8.safetensors");
        net.ckpt = Checkpoint::from_slice(label, &bytes).map_err(|source| Error::Weights {
            model: net.descriptor.name.clone(),
            source,
        })?;
        net.take_precision()?;
        Ok(self)
    }

    /// Writes this (f32) model's int8 checkpoint to `path` (see the module docs; the format
    /// and its metadata: [`quant`](super::quant)): the linear weights and word embeddings
    /// int8 with their scales, the rest as in the source; metadata records the scheme and
    /// the source file's sha256. Load it with [`load`](Self::load) beside the same
    /// `config.json` and `tokenizer.json`. Returns the bytes written.
    ///
    /// # Errors
    /// [`Error::Backend`] when the model is int8 already, or naming `path` when the file
    /// cannot be written; [`Error::Weights`] when the safetensors writer refuses the tensors.
    pub fn save_int8(&self, path: impl AsRef<Path>) -> Result<u64> {
        if self.is_int8() {
            return Err(err(format!(
                "{}: already int8; quantize the f32 checkpoint",
                self.net.ckpt.path().display()
            )));
        }
        let bytes = self.net.int8_bytes()?;
        quant::write_file(path.as_ref(), &bytes).map_err(err)?;
        Ok(bytes.len() as u64)
    }

    /// Whether the model runs in int8 (an int8 checkpoint, or [`with_int8`](Self::with_int8)).
    pub fn is_int8(&self) -> bool {
        self.net.int8.is_some()
    }

    /// Serves under another name and version (its descriptor's; default: the model's own
    /// name, 1.0.0).
    ///
    /// # Errors
    /// [`Error::Backend`] when the model is already shared (a clone of it exists).
    pub fn with_name(mut self, name: impl Into<String>, version: semver::Version) -> Result<Self> {
        let net = super::unshared(&mut self.net, "minilm", "with_name")?;
        net.descriptor.name = name.into();
        net.descriptor.version = version;
        Ok(self)
    }

    /// The number of threads a forward pass uses.
    pub fn threads(&self) -> usize {
        self.net.threads
    }

    /// The most tokens a text keeps (with `[CLS]` and `[SEP]`); the rest is cut.
    pub fn max_tokens(&self) -> usize {
        self.net.max_tokens
    }

    /// The embedding width.
    pub fn width(&self) -> usize {
        self.net.config.hidden
    }

    /// Tokenizes `texts`, truncated to [`max_tokens`](Self::max_tokens), padded to the
    /// longest.
    ///
    /// # Errors
    /// [`Error::Backend`] when the tokenizer fails.
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S]) -> Result<Tokens> {
        let ids = texts
            .iter()
            .map(|t| self.encode(t.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tokens::pad(&ids))
    }

    /// The token ids of one text, `[CLS]` … `[SEP]`, truncated to
    /// [`max_tokens`](Self::max_tokens), unpadded.
    ///
    /// # Errors
    /// [`Error::Backend`] when the tokenizer fails.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let e = self
            .net
            .tokenizer
            .encode(text, true)
            .map_err(|e| err(format!("tokenizer: {e}")))?;
        Ok(e.get_ids().iter().map(|&id| i64::from(id)).collect())
    }

    /// Unit-length sentence embeddings, `[texts, width]`.
    ///
    /// # Errors
    /// [`Error::Backend`] when the tokenizer fails.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Array2<f32>> {
        let t = self.tokenize(texts)?;
        self.forward(t.ids.view(), t.mask.view())
    }

    /// Embeddings of a tokenized batch.
    ///
    /// # Errors
    /// [`Error::Input`]-like [`Error::Backend`] for a token id outside the vocabulary, more
    /// tokens than position embeddings, or shapes that differ.
    pub fn forward(
        &self,
        ids: ArrayView2<'_, i64>,
        mask: ArrayView2<'_, i64>,
    ) -> Result<Array2<f32>> {
        if ids.dim() != mask.dim() {
            return Err(err(format!(
                "input_ids {:?} and attention_mask {:?} differ",
                ids.shape(),
                mask.shape()
            )));
        }
        let (_, seq) = ids.dim();
        if seq > self.net.config.max_positions {
            return Err(err(format!(
                "{seq} tokens, more than the {} positions",
                self.net.config.max_positions
            )));
        }
        if let Some((at, id)) = ids
            .indexed_iter()
            .find(|(_, id)| **id < 0 || **id as usize >= self.net.config.vocab)
        {
            return Err(err(format!(
                "input_ids[{}, {}] = {id}: outside the vocabulary of {}",
                at.0, at.1, self.net.config.vocab
            )));
        }
        Ok(match &self.net.pool {
            Some(pool) => pool.install(|| self.forward_on(ids, mask)),
            None => self.forward_on(ids, mask),
        })
    }

    fn forward_on(&self, ids: ArrayView2<'_, i64>, mask: ArrayView2<'_, i64>) -> Array2<f32> {
        let c = &self.net.config;
        let (batch, seq) = ids.dim();
        let (h, t) = (c.hidden, self.net.threads);
        let tokens = batch * seq;
        let keep: Vec<bool> = mask.iter().map(|m| *m != 0).collect();
        if tokens == 0 {
            return Array2::zeros((batch, h));
        }
        // embeddings: word + position + token type 0, then layer norm
        let net = &*self.net;
        let (pos, typ) = (
            net.w("embeddings.position_embeddings.weight"),
            net.w("embeddings.token_type_embeddings.weight"),
        );
        // int8 rows with a scale each, or f32 rows (checked at load)
        let word_i8 = self.is_int8().then(|| {
            let q = net.i8(WORD).expect("checked at load");
            (q, net.w(&quant::scale_name(WORD)))
        });
        let word_f32 = if word_i8.is_none() { net.w(WORD) } else { &[] };
        let mut x = vec![0.0_f32; tokens * h];
        for (p, (row, id)) in x.chunks_exact_mut(h).zip(ids.iter()).enumerate() {
            let (id, j) = (*id as usize, p % seq);
            let word = id * h..(id + 1) * h;
            match word_i8 {
                Some((q, s)) => {
                    for (o, q) in row.iter_mut().zip(&q[word]) {
                        *o = f32::from(*q) * s[id];
                    }
                }
                None => row.copy_from_slice(&word_f32[word]),
            }
            for ((o, b), d) in row.iter_mut().zip(&pos[j * h..(j + 1) * h]).zip(&typ[..h]) {
                *o = *o + b + d;
            }
        }
        layer_norm(
            &mut x,
            net.w("embeddings.LayerNorm.weight"),
            net.w("embeddings.LayerNorm.bias"),
            c.eps,
        );
        // Q, K and V: one after the other (f32), or side by side in each row (the fused int8
        // product)
        let mut qkv = vec![0.0; tokens * 3 * h];
        let mut ctx = vec![0.0; tokens * h];
        let mut x1 = vec![0.0; tokens * h];
        let mut inter = vec![0.0; tokens * c.intermediate];
        for l in 0..c.layers {
            let p = format!("encoder.layer.{l}");
            let lin =
                |name: &str, input: &[f32], out: &mut [f32], act: Act, residual: Option<&[f32]>| {
                    let weight = format!("{p}.{name}.weight");
                    match self.net.int8.as_ref().and_then(|q| q.get(&weight)) {
                        // (the quantized layer holds its bias)
                        Some(q) => linear_int8(input, q, act, residual, out, t),
                        None => {
                            let b = net.w(&format!("{p}.{name}.bias"));
                            linear(input, net.w(&weight), b, act, residual, out, t);
                        }
                    }
                };
            match self
                .net
                .int8
                .as_ref()
                .and_then(|q| q.get(&format!("{p}.{QKV}")))
            {
                // int8: one product of Q, K and V side by side (their weights concatenated
                // when quantized), the rows quantized once
                Some(fused) => {
                    linear_int8(&x, fused, Act::Identity, None, &mut qkv, t);
                    let qkv = &qkv[..];
                    self.attention((qkv, &qkv[h..], &qkv[2 * h..]), 3 * h, &keep, seq, &mut ctx);
                }
                None => {
                    let (q, kv) = qkv.split_at_mut(tokens * h);
                    let (k, v) = kv.split_at_mut(tokens * h);
                    lin("attention.self.query", &x, q, Act::Identity, None);
                    lin("attention.self.key", &x, k, Act::Identity, None);
                    lin("attention.self.value", &x, v, Act::Identity, None);
                    self.attention((q, k, v), h, &keep, seq, &mut ctx);
                }
            }
            lin(
                "attention.output.dense",
                &ctx,
                &mut x1,
                Act::Identity,
                Some(&x),
            );
            layer_norm(
                &mut x1,
                net.w(&format!("{p}.attention.output.LayerNorm.weight")),
                net.w(&format!("{p}.attention.output.LayerNorm.bias")),
                c.eps,
            );
            lin("intermediate.dense", &x1, &mut inter, Act::Gelu, None);
            lin("output.dense", &inter, &mut x, Act::Identity, Some(&x1));
            layer_norm(
                &mut x,
                net.w(&format!("{p}.output.LayerNorm.weight")),
                net.w(&format!("{p}.output.LayerNorm.bias")),
                c.eps,
            );
        }
        let mut out = Array2::<f32>::zeros((batch, h));
        for (b, mut row) in out.outer_iter_mut().enumerate() {
            let e = mean_pool_l2(
                &x[b * seq * h..(b + 1) * seq * h],
                &keep[b * seq..(b + 1) * seq],
                h,
            );
            row.assign(&ndarray::ArrayView1::from(&e));
        }
        out
    }

    /// Multi-head self-attention of every sequence: `ctx[b]` = softmax(QKᵀ/√d, masked)·V per
    /// head, written into that head's columns; the rows of `q`, `k` and `v` are `ld` apart
    /// (`h` when apart, `3h` when one fused product wrote them side by side). Sequences run
    /// in parallel on more threads.
    fn attention(
        &self,
        (q, k, v): (&[f32], &[f32], &[f32]),
        ld: usize,
        keep: &[bool],
        seq: usize,
        ctx: &mut [f32],
    ) {
        let (h, heads) = (self.net.config.hidden, self.net.config.heads);
        let d = h / heads;
        let scale = 1.0 / (d as f32).sqrt();
        let one = |b: usize, out: &mut [f32]| {
            let mut scores = vec![0.0_f32; seq * seq];
            let at = b * seq * ld;
            let keep = &keep[b * seq..(b + 1) * seq];
            for head in 0..heads {
                let off = at + head * d;
                sgemm_strided(
                    seq,
                    d,
                    seq,
                    (&q[off..], Strides::row_major(ld)),
                    (&k[off..], Strides::transposed(ld)),
                    (&mut scores, seq),
                );
                masked_softmax(&mut scores, keep, scale);
                sgemm_strided(
                    seq,
                    seq,
                    d,
                    (&scores, Strides::row_major(seq)),
                    (&v[off..], Strides::row_major(ld)),
                    (&mut out[head * d..], h),
                );
            }
        };
        if self.net.threads > 1 {
            ctx.par_chunks_mut(seq * h)
                .enumerate()
                .for_each(|(b, out)| one(b, out));
        } else {
            ctx.chunks_mut(seq * h)
                .enumerate()
                .for_each(|(b, out)| one(b, out));
        }
    }
}

/// Rows per GEMM call of [`linear`]: the GEMM packs the weight once per call, so calls must
/// be tall (16-row calls spent a third of MiniLM's time packing; the heights measured:
/// BENCHMARKS.md, "Design measurements"); more threads split the rows anyway.
const LINEAR_ROWS: usize = 2048;

/// `act(x · wᵀ + b (+ residual))`: `x` `[rows, in]`, `w` PyTorch's `[out, in]` read in
/// place, row blocks in parallel on more threads.
fn linear(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    act: Act,
    residual: Option<&[f32]>,
    out: &mut [f32],
    threads: usize,
) {
    let n = b.len();
    let k = w.len() / n;
    for_rows(out, n, LINEAR_ROWS, threads, |first, chunk| {
        let rows = chunk.len() / n;
        sgemm_strided(
            rows,
            k,
            n,
            (&x[first * k..(first + rows) * k], Strides::row_major(k)),
            (w, Strides::transposed(k)),
            (chunk, n),
        );
        let res = residual.map(|r| &r[first * n..(first + rows) * n]);
        add_bias(chunk, b, act, res);
    });
}

/// A linear layer's dimension: the hidden size or the intermediate one.
#[derive(Clone, Copy)]
enum Size {
    Hidden,
    Inter,
}

impl Size {
    fn pick(self, hidden: usize, inter: usize) -> usize {
        match self {
            Size::Hidden => hidden,
            Size::Inter => inter,
        }
    }
}

/// Each encoder layer's linear layers: name, outputs, inputs.
const LINEARS: [(&str, Size, Size); 6] = [
    ("attention.self.query", Size::Hidden, Size::Hidden),
    ("attention.self.key", Size::Hidden, Size::Hidden),
    ("attention.self.value", Size::Hidden, Size::Hidden),
    ("attention.output.dense", Size::Hidden, Size::Hidden),
    ("intermediate.dense", Size::Inter, Size::Hidden),
    ("output.dense", Size::Hidden, Size::Inter),
];

/// [`linear`] on the int8 GEMM: each block of rows quantized per token, multiplied, scaled
/// back to f32 with the bias in the GEMM's store, then the residual and activation, if any,
/// as in [`linear`].
fn linear_int8(
    x: &[f32],
    q: &QLinear,
    act: Act,
    residual: Option<&[f32]>,
    out: &mut [f32],
    threads: usize,
) {
    let (n, k) = (q.w.n(), q.w.k());
    for_rows(out, n, LINEAR_ROWS, threads, |first, chunk| {
        let rows = chunk.len() / n;
        let mut a = vec![0u8; rows * k];
        let (mut zeros, mut scales) = (vec![0u8; rows], vec![0f32; rows]);
        quantize_rows(
            &x[first * k..(first + rows) * k],
            k,
            &mut a,
            &mut zeros,
            &mut scales,
        );
        let a = Rows {
            m: rows,
            data: &a,
            lda: k,
            zeros: &zeros,
            scales: &scales,
        };
        gemm_u8i8_rows(
            q.isa,
            a,
            &q.w,
            Out::F32 {
                out: chunk,
                scale: &q.scale,
                bias: &q.bias,
                act: Act::Identity,
            },
        );
        if act != Act::Identity || residual.is_some() {
            // the residual and GELU in one more pass (the bias is in already)
            let res = residual.map(|r| &r[first * n..(first + rows) * n]);
            add_bias(chunk, &q.zeros, act, res);
        }
    });
}

fn descriptor(c: &Config) -> ModelDescriptor {
    let dims = || {
        vec![
            Dim::Dynamic("batch".into()),
            Dim::Dynamic("sequence".into()),
        ]
    };
    ModelDescriptor {
        name: "all-minilm-l6-v2".into(),
        version: semver::Version::new(1, 0, 0),
        inputs: vec![
            TensorSpec {
                name: "input_ids".into(),
                dtype: DType::I64,
                shape: dims(),
            },
            TensorSpec {
                name: "attention_mask".into(),
                dtype: DType::I64,
                shape: dims(),
            },
        ],
        outputs: vec![TensorSpec {
            name: "sentence_embedding".into(),
            dtype: DType::F32,
            shape: vec![Dim::Dynamic("batch".into()), Dim::Fixed(c.hidden)],
        }],
        runtime: RuntimeHint::Cpu,
        metadata: [
            ("backend".to_string(), "cpu (native)".to_string()),
            ("pooling".to_string(), "mean, L2-normalised".to_string()),
            ("precision".to_string(), "fp32".to_string()),
        ]
        .into(),
    }
}

impl Plan for MiniLm {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.net.descriptor
    }

    fn device(&self) -> Device {
        Device::Cpu
    }

    fn session(&self) -> Result<Box<dyn Session>> {
        Ok(Box::new(MiniLmSession {
            model: self.clone(),
            _context: Device::Cpu.open()?,
        }))
    }
}

struct MiniLmSession {
    model: MiniLm,
    _context: DeviceContext,
}

impl std::fmt::Debug for MiniLmSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmSession")
            .field("model", &self.model.net.descriptor.name)
            .finish_non_exhaustive()
    }
}

impl Session for MiniLmSession {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.model.net.descriptor
    }

    fn run(&mut self, inputs: &[(&str, TensorView<'_>)]) -> Result<Vec<Tensor>> {
        let (ordered, _) = self.model.net.descriptor.validate(inputs)?;
        let (TensorView::I64(ids), TensorView::I64(mask)) = (ordered[0], ordered[1]) else {
            unreachable!("validated as I64")
        };
        let ids = ids
            .view()
            .into_dimensionality::<Ix2>()
            .map_err(|e| err(e.to_string()))?;
        let mask = mask
            .view()
            .into_dimensionality::<Ix2>()
            .map_err(|e| err(e.to_string()))?;
        let out = self.model.forward(ids, mask)?;
        Ok(vec![Tensor::F32(out.into_dyn())])
    }
}
