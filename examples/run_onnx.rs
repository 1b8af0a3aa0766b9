//! Runs an ONNX model once on inputs read from `.npy` files.
//!
//! ```text
//! cargo run --release --example run_onnx -- MODEL.onnx --input NAME=FILE.npy… --out DIR \
//!     [--threads N] [--backend tract|ort]
//! ```
//!
//! `--backend tract` (the default) is the pure-Rust ONNX backend; `--backend ort` is
//! onnxruntime through the `ort` crate, loading the library from `ORT_DYLIB_PATH`, else the one
//! `scripts/fetch-models.sh` puts in `.cache/models/onnxruntime/`, else the system loader's.
//!
//! Prints the model's descriptor as one JSON line, runs it (on N threads at once through one
//! shared plan when `--threads N`, checking they agree), writes each output as
//! `DIR/<output name>.npy` (characters other than letters, digits, `.`, `_` and `-` written
//! as `_`, so `/encoder/Add_output_0` is `_encoder_Add_output_0.npy`; a clash gets
//! `-<output index>`), and ends with a JSON summary line giving each output's file. On failure: an `error: …`
//! line on stderr and exit 1 (unknown input name, shape or dtype mismatch, unsupported
//! operator: each named).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use inferkit::infer_core::onnx::OnnxBackend;
use inferkit::infer_core::ort::OrtBackend;
use inferkit::infer_core::{Backend, DType, Device, Model, ModelSource, Tensor};
use ndarray::ArrayD;
use ndarray_npy::{read_npy, write_npy};

#[path = "../tests/common/ort_library.rs"]
mod ort_library;
use ort_library::fetched_ort_library;

struct Args {
    model: PathBuf,
    inputs: Vec<(String, PathBuf)>,
    out: PathBuf,
    threads: usize,
    backend: String,
}

const USAGE: &str = "usage: run_onnx MODEL.onnx --input NAME=FILE.npy… --out DIR [--threads N] [--backend tract|ort]";

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut model = None;
    let mut inputs = Vec::new();
    let mut out = None;
    let mut threads = 1;
    let mut backend = "tract".to_string();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--input" => {
                let v = it.next().ok_or("--input needs NAME=FILE.npy")?;
                let (name, file) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--input {v}: expected NAME=FILE.npy"))?;
                inputs.push((name.to_string(), PathBuf::from(file)));
            }
            "--out" => out = Some(PathBuf::from(it.next().ok_or("--out needs a folder")?)),
            "--threads" => {
                threads = it
                    .next()
                    .ok_or("--threads needs a number")?
                    .parse::<usize>()
                    .map_err(|e| format!("--threads: {e}"))?
                    .max(1)
            }
            "--backend" => {
                backend = it.next().ok_or("--backend needs tract or ort")?;
                if backend != "tract" && backend != "ort" {
                    return Err(format!("--backend {backend}: expected tract or ort"));
                }
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s if model.is_none() => model = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    Ok(Args {
        model: model.ok_or(USAGE)?,
        inputs,
        out: out.ok_or("--out DIR is required")?,
        threads,
        backend,
    })
}

/// Reads an `.npy` of any element type but f16/bf16 (`ndarray-npy` reads neither).
fn read_any(path: &Path) -> Result<Tensor, String> {
    macro_rules! try_read {
        ($($t:ty),*) => {$(
            if let Ok(a) = read_npy::<_, ArrayD<$t>>(path) {
                return Ok(a.into());
            }
        )*};
    }
    try_read!(f32, f64, i64, i32, i16, i8, u64, u32, u16, u8);
    read_npy::<_, ArrayD<bool>>(path)
        .map(Into::into)
        .map_err(|e| {
            format!(
                "{}: not an .npy of f32/f64, i8…i64, u8…u64 or bool ({e})",
                path.display()
            )
        })
}

fn write_any(path: &Path, t: &Tensor) -> Result<(), String> {
    let r = match t {
        Tensor::F32(a) => write_npy(path, a),
        Tensor::F64(a) => write_npy(path, a),
        Tensor::I64(a) => write_npy(path, a),
        Tensor::I32(a) => write_npy(path, a),
        Tensor::I16(a) => write_npy(path, a),
        Tensor::I8(a) => write_npy(path, a),
        Tensor::U64(a) => write_npy(path, a),
        Tensor::U32(a) => write_npy(path, a),
        Tensor::U16(a) => write_npy(path, a),
        Tensor::U8(a) => write_npy(path, a),
        Tensor::Bool(a) => write_npy(path, a),
        // f16 and bf16 as f32, exactly (every one is an f32)
        Tensor::F16(a) => write_npy(path, &a.mapv(f32::from)),
        Tensor::BF16(a) => write_npy(path, &a.mapv(f32::from)),
        other => return Err(format!("cannot write an output of dtype {}", other.dtype())),
    };
    r.map_err(|e| format!("{}: {e}", path.display()))
}

fn run(args: &Args) -> Result<(), String> {
    let source = ModelSource::Path(&args.model);
    let plan = match args.backend.as_str() {
        "ort" => {
            let mut backend = OrtBackend::new();
            if let Some(lib) = fetched_ort_library() {
                backend = backend.with_library(lib);
            }
            backend.prepare(source, Device::Cpu)
        }
        _ => OnnxBackend::new().prepare(source, Device::Cpu),
    }
    .map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(plan.descriptor()).map_err(|e| e.to_string())?
    );
    let inputs: Vec<(String, Tensor)> = args
        .inputs
        .iter()
        .map(|(n, f)| {
            let t = read_any(f)?;
            // `ndarray-npy` reads no f16: an F16 input may come as f32 values that are all
            // exactly f16s
            let f16_input =
                (plan.descriptor().inputs.iter()).any(|s| s.name == *n && s.dtype == DType::F16);
            match t {
                Tensor::F32(a) if f16_input => {
                    let h = a.mapv(half::f16::from_f32);
                    if h.iter()
                        .zip(&a)
                        .any(|(h, x)| f32::from(*h) != *x && !x.is_nan())
                    {
                        return Err(format!(
                            "{}: input `{n}` is F16 and these f32 values are not all f16s",
                            f.display()
                        ));
                    }
                    Ok((n.clone(), Tensor::F16(h)))
                }
                t => Ok((n.clone(), t)),
            }
        })
        .collect::<Result<_, String>>()?;
    let model = Arc::new(Model::new(plan, args.threads));
    let started = Instant::now();
    let results: Vec<Result<Vec<Tensor>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.threads)
            .map(|_| {
                let (model, inputs) = (&model, &inputs);
                s.spawn(move || {
                    let named: Vec<(&str, _)> =
                        inputs.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
                    model.run(&named).map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut results = results.into_iter();
    let first = results.next().ok_or("no run")??;
    for r in results {
        if r? != first {
            return Err("threads disagree on the outputs".into());
        }
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut written = Vec::new();
    let mut taken = std::collections::HashSet::new();
    for (i, (spec, t)) in model.descriptor().outputs.iter().zip(&first).enumerate() {
        // PyTorch names outputs like `/encoder/layer.0/Add_output_0`: a name becomes a file
        // name in DIR (never a path out of it), and a clash gets the output's index
        let mut file: String = spec
            .name
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
                _ => '_',
            })
            .collect();
        if !taken.insert(file.clone()) {
            file = format!("{file}-{i}");
            taken.insert(file.clone());
        }
        let path = args.out.join(format!("{file}.npy"));
        write_any(&path, t)?;
        written.push(serde_json::json!({"name": spec.name, "shape": t.shape(), "dtype": t.dtype().as_str(), "file": path}));
    }
    println!(
        "{}",
        serde_json::json!({"outputs": written, "threads": args.threads, "seconds": seconds})
    );
    Ok(())
}

fn main() {
    let result = parse().and_then(|a| run(&a));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
