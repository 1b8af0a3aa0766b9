//! Turns an f32 checkpoint into an int8 one (the format: `inferkit::infer_core::cpu::quant`).
//!
//! ```text
//! cargo run --release --example quantize -- minilm SRC_DIR OUT_DIR
//! cargo run --release --example quantize -- efficientnet-lite0 SRC OUT [PHOTOS_DIR]
//! ```
//!
//! `minilm`: SRC_DIR is an all-MiniLM-L6-v2 folder (`model.safetensors`, `config.json`,
//! `tokenizer.json`, …); OUT_DIR gets `model.safetensors` in int8 — the encoder's linear
//! weights and the word embeddings symmetric per output channel (per token row for the
//! embeddings), activations quantized per token at run time, so no calibration set — and
//! a copy of every other file of SRC_DIR but ONNX exports (which stay f32). `embed --model
//! OUT_DIR` (or `embed --int8`, for the folder `scripts/fetch-models.sh` makes) runs it.
//!
//! `efficientnet-lite0`: SRC is an EfficientNet-Lite0 checkpoint (the bundled
//! `assets/models/efficientnet-lite0.pth`); OUT gets the int8 safetensors file — every
//! convolution and the classifier int8 per output channel, activations `u8` on ranges
//! calibrated statically (the 99.99th percentile of the f32 activations) over the photos of
//! PHOTOS_DIR (default: the bundled `assets/images`), each seen six ways: three resizes
//! (shorter side 224, 256 and 320, centre-cropped to 224) and their mirror images.
//! `classify_images --model OUT` (or `--int8`, for the file `scripts/fetch-models.sh`
//! makes) runs it.
//!
//! Prints what it wrote: the sizes before and after, the tensors quantized, the source's
//! sha256 (also in the file's metadata) and the time taken.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use inferkit::infer_core::cpu::{EfficientNetLite0, MiniLm};
use inferkit::preprocess::{DecodeOptions, Decoder, Resize, Scratch, Transform};
use inferkit::weights::Checkpoint;
use ndarray::{Array3, Array4, Axis, s};

const USAGE: &str =
    "usage: quantize minilm SRC_DIR OUT_DIR | quantize efficientnet-lite0 SRC OUT [PHOTOS_DIR]";
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["minilm", src, out] => minilm(Path::new(src), Path::new(out)),
        ["efficientnet-lite0", src, out] => efficientnet(
            Path::new(src),
            Path::new(out),
            &Path::new(ROOT).join("assets/images"),
        ),
        ["efficientnet-lite0", src, out, photos] => {
            efficientnet(Path::new(src), Path::new(out), Path::new(photos))
        }
        ["-h" | "--help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(format!("unexpected arguments {args:?}\n{USAGE}").into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn minilm(src: &Path, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    // (a source that is not there is MiniLm::load's error, naming the file)
    distinct(src, out, "folder")?;
    let model = MiniLm::load(src)?;
    if model.is_int8() {
        return Err(format!("{}: already int8", src.join("model.safetensors").display()).into());
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let copied = copy_tree(src, out)?;
    let target = out.join("model.safetensors");
    let written = model.save_int8(&target)?;
    let source = std::fs::metadata(src.join("model.safetensors"))?.len();
    let ckpt = Checkpoint::open(&target)?;
    let meta = ckpt.metadata();
    let quantized = meta["inferkit.quantized"].split(',').count();
    println!(
        "{}: {quantized} tensors int8 of {}, {written} bytes ({:.3}x the {source} of {}), \
         {copied} other files copied, {:.2} s",
        target.display(),
        ckpt.len(),
        written as f64 / source as f64,
        src.join("model.safetensors").display(),
        start.elapsed().as_secs_f64()
    );
    println!("scheme: {}", meta["inferkit.scheme"]);
    println!("source sha256: {}", meta["inferkit.source_sha256"]);
    Ok(())
}

/// An error when `out` is `src` itself (a `what`: folder or file).
fn distinct(src: &Path, out: &Path, what: &str) -> Result<(), String> {
    if out.exists() && src.canonicalize().ok() == out.canonicalize().ok() {
        return Err(format!(
            "{}: the output {what} must differ from the source",
            out.display()
        ));
    }
    Ok(())
}

fn efficientnet(src: &Path, out: &Path, photos: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    distinct(src, out, "file")?;
    let model = EfficientNetLite0::load(src)?;
    if model.is_int8() {
        return Err(format!("{}: already int8", src.display()).into());
    }
    let (batch, names) = calibration_batch(photos)?;
    // the folder as the repository names it, where it is the repository's
    let folder = photos
        .canonicalize()
        .ok()
        .and_then(|p| {
            let root = Path::new(ROOT).canonicalize().ok()?;
            p.strip_prefix(root).ok().map(Path::to_path_buf)
        })
        .unwrap_or_else(|| photos.to_path_buf());
    let described = format!("{} ({})", folder.display(), names.join(", "));
    let written = model.save_int8(out, batch.view(), &described)?;
    let source = std::fs::metadata(src)?.len();
    let ckpt = Checkpoint::open(out)?;
    let meta = ckpt.metadata();
    println!(
        "{}: {} tensors int8 of {}, {written} bytes ({:.3}x the {source} of {}), {:.2} s",
        out.display(),
        meta["inferkit.quantized"].split(',').count(),
        ckpt.len(),
        written as f64 / source as f64,
        src.display(),
        start.elapsed().as_secs_f64()
    );
    println!("calibration: {}", meta["inferkit.calibration"]);
    println!("source sha256: {}", meta["inferkit.source_sha256"]);
    Ok(())
}

/// Every photo of `dir` (sorted by name), each three resizes centre-cropped to 224 and
/// their mirror images, ImageNet-normalised: `[6 · photos, 3, 224, 224]`.
fn calibration_batch(dir: &Path) -> Result<(Array4<f32>, Vec<String>), Box<dyn std::error::Error>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| {
                ["jpg", "jpeg", "png"].contains(&e.to_string_lossy().to_lowercase().as_str())
            })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "{}: no photos (jpg, jpeg, png) to calibrate on",
            dir.display()
        )
        .into());
    }
    let decoder = Decoder::new(DecodeOptions::default());
    let mut scratch = Scratch::default();
    let mut images = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let img = decoder
            .decode(&bytes)
            .map_err(|e| format!("{}: {e}", f.display()))?;
        for side in [224, 256, 320] {
            let t = Transform::imagenet(224).with_resize(Resize::ShorterSide(side));
            let mut px = vec![0.0; 3 * 224 * 224];
            t.apply_into(&img, &mut px, &mut scratch)
                .map_err(|e| format!("{}: {e}", f.display()))?;
            let a = Array3::from_shape_vec((3, 224, 224), px)?;
            let mirrored = a.slice(s![.., .., ..;-1]).to_owned();
            images.push(a);
            images.push(mirrored);
        }
    }
    let views: Vec<_> = images.iter().map(|a| a.view()).collect();
    let batch = ndarray::stack(Axis(0), &views)?;
    let names = files
        .iter()
        .map(|f| {
            f.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        })
        .collect();
    Ok((batch, names))
}

/// Copies every file under `src` into `out` (folders made as needed) but the checkpoint and
/// ONNX exports; returns the count.
fn copy_tree(src: &Path, out: &Path) -> Result<usize, String> {
    let mut copied = 0;
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = src.join(&rel);
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let (name, kind) = (
                entry.file_name(),
                entry.file_type().map_err(|e| e.to_string())?,
            );
            let rel = rel.join(&name);
            if kind.is_dir() {
                std::fs::create_dir_all(out.join(&rel))
                    .map_err(|e| format!("{}: {e}", out.join(&rel).display()))?;
                stack.push(rel);
            } else if rel != Path::new("model.safetensors")
                && rel.extension().is_none_or(|e| e != "onnx")
            {
                std::fs::copy(src.join(&rel), out.join(&rel)).map_err(|e| {
                    format!(
                        "{} → {}: {e}",
                        src.join(&rel).display(),
                        out.join(&rel).display()
                    )
                })?;
                copied += 1;
            }
        }
    }
    Ok(copied)
}
