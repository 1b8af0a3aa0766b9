//! The main job: classify every image in a folder with EfficientNet-Lite0 on the native CPU
//! backend.
//!
//! ```text
//! cargo run --release --example classify_images [-- DIR] [--out results.csv] [--batch N] [--threads N] [--model PATH | --int8]
//! ```
//!
//! `--int8` runs the int8 checkpoint `scripts/fetch-models.sh` makes
//! (`.cache/models/efficientnet-lite0-int8.safetensors`); `--model` takes any checkpoint of
//! either precision (read from its metadata).
//!
//! With no `DIR` it classifies the bundled photos in `assets/images/`. Files are taken in
//! sorted file-name order (extensions jpg, jpeg, png, webp, gif, bmp, tif, tiff). A
//! `pipeline` reads and decodes them on `--threads` workers (ImageNet preprocessing:
//! shorter side 256, centre crop 224, mean/std), batches them (`--batch`, default 32; a
//! partial batch leaves after 20 ms or at the end), runs the model on `--threads` threads
//! and prints, on stdout, one JSON line per image in file-name order:
//!
//! ```text
//! {"file":"chelsea.jpg","top5":[[285,"Egyptian cat",0.48],…]}
//! ```
//!
//! A file that cannot be read or decoded gets `{"file":…,"error":…}` instead (and its
//! reason on stderr); the others are still classified, and the exit status is 2. The last
//! line is a summary: `images` (classified), `failed`, `seconds` and `images_per_s` (reading,
//! decoding, preprocessing and inference: from the first file read to the last answer),
//! `load_seconds` (model load, apart), `batch`, `threads`, `precision` (the model's: `fp32` or
//! `int8 …`), and resident memory in MiB (Linux; null elsewhere): `rss_before_load_mb`,
//! `rss_after_load_mb` (the difference: the model's weights as loaded), `rss_mb` at the end,
//! `peak_rss_mb`. `--out FILE.csv` also writes
//! `file,rank,class_index,label,probability` rows. A progress bar shows on stderr when
//! there are more than 64 images.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use inferkit::infer_core::cpu::CpuBackend;
use inferkit::infer_core::{Backend, Device, Dim, Model, ModelSource};
use inferkit::pipeline::{BatchOptions, Pipeline, StageOptions, available_cpus};
use inferkit::preprocess::{
    BufferPool, DecodeOptions, Decoder, Pooled, Resize, Scratch, Transform,
};
use ndarray::{ArrayD, ArrayView4};

#[path = "common/rss.rs"]
mod rss;

const EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CROP: usize = 224;

struct Args {
    dir: PathBuf,
    out: Option<PathBuf>,
    batch: usize,
    threads: usize,
    model: PathBuf,
}

fn parse() -> Result<Args, String> {
    let usage = "usage: classify_images [DIR] [--out results.csv] [--batch N] [--threads N] [--model PATH | --int8]";
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        dir: Path::new(ROOT).join("assets/images"),
        out: None,
        batch: 32,
        threads: available_cpus(),
        model: Path::new(ROOT).join("assets/models/efficientnet-lite0.pth"),
    };
    let mut dir = None;
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{usage}"));
        let count = |name: &str, v: String| -> Result<usize, String> {
            match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{name}: `{v}` is not a whole number above 0")),
            }
        };
        match a.as_str() {
            "--out" => args.out = Some(PathBuf::from(value("--out")?)),
            "--batch" => args.batch = count("--batch", value("--batch")?)?,
            "--threads" => args.threads = count("--threads", value("--threads")?)?,
            "--model" => args.model = PathBuf::from(value("--model")?),
            "--int8" => {
                let models = std::env::var_os("INFERKIT_MODELS")
                    .map_or_else(|| Path::new(ROOT).join(".cache/models"), PathBuf::from);
                args.model = models.join("efficientnet-lite0-int8.safetensors");
                if !args.model.exists() {
                    return Err(format!(
                        "--int8: {} is not there; scripts/fetch-models.sh makes it",
                        args.model.display()
                    ));
                }
            }
            "-h" | "--help" => return Err(usage.into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{usage}")),
            s if dir.is_none() => dir = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument {s}\n{usage}")),
        }
    }
    if let Some(d) = dir {
        args.dir = d;
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One image on its way through: its place in the file order, its name, and its
/// preprocessed pixels or why it has none.
struct Item {
    index: usize,
    file: String,
    pixels: Result<Pooled<f32>, String>,
}

/// One image's answer.
struct Answer {
    index: usize,
    file: String,
    top5: Result<Vec<(usize, f32)>, String>,
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

fn softmax_top5(logits: &[f32]) -> Vec<(usize, f32)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|v| (v - max).exp()).sum();
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    idx.into_iter()
        .take(5)
        .map(|i| (i, (logits[i] - max).exp() / sum))
        .collect()
}

/// Returns the number of files that failed.
fn run(args: &Args) -> Result<usize, Box<dyn std::error::Error>> {
    let files = list(&args.dir)?;
    let labels: Vec<String> =
        std::fs::read_to_string(Path::new(ROOT).join("assets/imagenet_classes.txt"))?
            .lines()
            .map(str::to_owned)
            .collect();

    let rss_before_load = rss::rss_bytes();
    let load_start = Instant::now();
    // The architecture is recognised from the checkpoint's tensors (EfficientNet-Lite0).
    let plan = CpuBackend::new()
        .with_threads(args.threads)
        .prepare(ModelSource::Path(&args.model), Device::Cpu)?;
    let model = Model::new(plan, 1);
    let load_seconds = load_start.elapsed().as_secs_f64();
    let rss_after_load = rss::rss_bytes();
    let precision = model
        .descriptor()
        .metadata
        .get("precision")
        .cloned()
        .unwrap_or_default();
    let classes = match model.descriptor().outputs[0].shape.get(1) {
        Some(Dim::Fixed(n)) => *n,
        _ => return Err("the model's output has no fixed class count".into()),
    };
    if labels.len() != classes {
        return Err(format!("{} labels for a {classes}-class model", labels.len()).into());
    }

    let bar = ProgressBar::with_draw_target(
        Some(files.len() as u64),
        if files.len() > 64 {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    )
    .with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let decoder = Decoder::new(DecodeOptions::default());
    let transform = Transform::imagenet(CROP as u32).with_resize(Resize::ShorterSide(256));
    let per_image = transform
        .output_len()
        .ok_or("the transform has no fixed size")?;
    let pixels = BufferPool::<f32>::new(2 * args.batch + 2 * args.threads);
    let batches = BufferPool::<f32>::new(2);
    let batch = args.batch;
    let start = Instant::now();
    let mut outputs = Pipeline::builder()
        .with_capacity(2 * batch)
        .source(files.into_iter().enumerate())
        .map(
            "decode",
            StageOptions::new()
                .with_workers(args.threads)
                .with_ordered(true),
            move |(index, path): (usize, PathBuf)| {
                let file = path
                    .file_name()
                    .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
                let pixels = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| decoder.decode(&bytes).map_err(|e| e.to_string()))
                    .and_then(|img| {
                        let mut slot = pixels.get_with_capacity(per_image);
                        slot.resize(per_image, 0.0);
                        SCRATCH
                            .with(|s| transform.apply_into(&img, &mut slot, &mut s.borrow_mut()))
                            .map_err(|e| e.to_string())?;
                        Ok(slot)
                    });
                Item {
                    index,
                    file,
                    pixels,
                }
            },
        )
        .batch("batch", BatchOptions::new(batch, Duration::from_millis(20)))
        .map(
            "infer",
            StageOptions::new().with_workers(1),
            move |items: Vec<Item>| classify(&model, &batches, items),
        )
        .unbatch::<Answer>("unbatch")
        .outputs();

    let mut csv = match &args.out {
        Some(p) => Some(csv::Writer::from_path(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    if let Some(w) = csv.as_mut() {
        w.write_record(["file", "rank", "class_index", "label", "probability"])?;
    }
    let (mut ok, mut failed) = (0usize, 0usize);
    // The decode stage keeps file order and the model stage is one worker, so answers
    // arrive in order; the check is cheap and keeps the output honest if that changes.
    for (next, (_, answer)) in outputs.by_ref().enumerate() {
        if answer.index != next {
            return Err(format!("answer {} arrived before {next}", answer.index).into());
        }
        bar.inc(1);
        match answer.top5 {
            Ok(top5) => {
                ok += 1;
                let rows: Vec<serde_json::Value> = top5
                    .iter()
                    .map(|&(c, p)| serde_json::json!([c, labels[c], round6(p)]))
                    .collect();
                bar.suspend(|| {
                    println!("{}", serde_json::json!({"file": answer.file, "top5": rows}));
                });
                if let Some(w) = csv.as_mut() {
                    for (rank, &(c, p)) in top5.iter().enumerate() {
                        w.write_record([
                            answer.file.as_str(),
                            &(rank + 1).to_string(),
                            &c.to_string(),
                            &labels[c],
                            &p.to_string(),
                        ])?;
                    }
                }
            }
            Err(e) => {
                failed += 1;
                bar.suspend(|| {
                    eprintln!("{}: {e}", answer.file);
                    println!("{}", serde_json::json!({"file": answer.file, "error": e}));
                });
            }
        }
    }
    let report = outputs.finish()?;
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    if let Some(mut w) = csv {
        w.flush()?;
    }
    if report.delivered != report.items {
        return Err(format!("{} of {} images delivered", report.delivered, report.items).into());
    }
    println!(
        "{}",
        serde_json::json!({
            "images": ok,
            "failed": failed,
            "seconds": seconds,
            "images_per_s": if seconds > 0.0 { ok as f64 / seconds } else { 0.0 },
            "load_seconds": load_seconds,
            "batch": batch,
            "threads": args.threads,
            "precision": precision,
            "rss_before_load_mb": rss::mb(rss_before_load),
            "rss_after_load_mb": rss::mb(rss_after_load),
            "rss_mb": rss::mb(rss::rss_bytes()),
            "peak_rss_mb": rss::mb(rss::peak_rss_bytes()),
        })
    );
    Ok(failed)
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::new());
}

/// Runs the model on the images of `items` that decoded; the others keep their error.
fn classify(model: &Model, batches: &BufferPool<f32>, items: Vec<Item>) -> Vec<Answer> {
    let per = 3 * CROP * CROP;
    let good = items.iter().filter(|i| i.pixels.is_ok()).count();
    let mut input = batches.get_with_capacity(good * per);
    for item in &items {
        if let Ok(p) = &item.pixels {
            input.extend_from_slice(p);
        }
    }
    let logits: Result<ArrayD<f32>, String> = if good == 0 {
        Ok(ArrayD::zeros(vec![0, 0]))
    } else {
        ArrayView4::from_shape((good, 3, CROP, CROP), &input[..])
            .map_err(|e| e.to_string())
            .and_then(|x| {
                model
                    .run(&[("images", x.into_dyn().into())])
                    .map_err(|e| e.to_string())
            })
            .and_then(|mut out| out.remove(0).into_array::<f32>().map_err(|e| e.to_string()))
    };
    let mut row = 0;
    items
        .into_iter()
        .map(|item| {
            let top5 = match (item.pixels, &logits) {
                (Err(e), _) => Err(e),
                (Ok(_), Err(e)) => Err(format!("inference: {e}")),
                (Ok(_), Ok(l)) => {
                    let r = l.index_axis(ndarray::Axis(0), row);
                    row += 1;
                    Ok(softmax_top5(r.as_slice().expect("contiguous logits")))
                }
            };
            Answer {
                index: item.index,
                file: item.file,
                top5,
            }
        })
        .collect()
}

/// A probability to six decimals (f32 carries about seven digits).
fn round6(p: f32) -> f64 {
    (f64::from(p) * 1e6).round() / 1e6
}
