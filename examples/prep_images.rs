//! Preprocesses every image in a folder into one ImageNet-normalised f32 `.npy` batch.
//!
//! ```text
//! cargo run --release --example prep_images -- DIR --out FILE.npy [--resize 256 --crop 224] [--threads N]
//! ```
//!
//! Files are taken in sorted file-name order (those with an image extension: jpg, jpeg, png,
//! webp, gif, bmp, tif, tiff). The output is N×3×crop×crop f32 of the images that decoded, in
//! that order. A file that fails is named on stderr with the reason; the others are still
//! written, and the exit status is 2. The last stdout line is a JSON summary; `seconds`
//! counts decoding and transforming (not reading files), `mp_per_s` the source images'
//! megapixels.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use inferkit::preprocess::{Batch, BufferPool, DecodeOptions, Decoder, Resize, Transform};
use ndarray::{Array4, Axis};
use ndarray_npy::WriteNpyExt;

const EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];
/// Images decoded per parallel batch (bounds the memory of one step).
const CHUNK: usize = 64;

struct Args {
    dir: PathBuf,
    out: PathBuf,
    resize: u32,
    crop: u32,
    threads: usize,
}

fn parse() -> Result<Args, String> {
    let usage = "usage: prep_images DIR --out FILE.npy [--resize 256 --crop 224] [--threads N]";
    let mut it = std::env::args().skip(1);
    let (mut dir, mut out, mut resize, mut crop) = (None, None, 256, 224);
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{usage}"));
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--resize" => {
                resize = value("--resize")?
                    .parse()
                    .map_err(|e| format!("--resize: {e}"))?
            }
            "--crop" => {
                crop = value("--crop")?
                    .parse()
                    .map_err(|e| format!("--crop: {e}"))?
            }
            "--threads" => {
                threads = value("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?
            }
            "-h" | "--help" => return Err(usage.into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{usage}")),
            s if dir.is_none() => dir = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument {s}\n{usage}")),
        }
    }
    Ok(Args {
        dir: dir.ok_or(usage)?,
        out: out.ok_or(usage)?,
        resize,
        crop,
        threads: threads.max(1),
    })
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

/// Returns the number of files that failed.
fn run(args: &Args) -> Result<usize, Box<dyn std::error::Error>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.dir)
        .map_err(|e| format!("{}: {e}", args.dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()?;
    let decoder = Decoder::new(DecodeOptions::default());
    let transform = Transform::imagenet(args.crop).with_resize(Resize::ShorterSide(args.resize));
    let buffers = BufferPool::new(2);
    let per = transform.output_len().expect("crop set");
    let mut kept: Vec<f32> = Vec::new();
    let (mut ok, mut failed, mut megapixels, mut seconds) = (0usize, 0usize, 0f64, 0f64);

    let bar = ProgressBar::new(files.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images {per_sec} eta {eta}")
            .expect("template"),
    );
    for chunk in files.chunks(CHUNK) {
        let bytes: Vec<Vec<u8>> = chunk
            .iter()
            .map(|p| std::fs::read(p).unwrap_or_default()) // an unreadable file fails as empty
            .collect();
        let start = Instant::now();
        let batch = pool.install(|| Batch::from_encoded(&bytes, &decoder, &transform, &buffers))?;
        seconds += start.elapsed().as_secs_f64();
        for (i, (path, result)) in chunk.iter().zip(batch.results()).enumerate() {
            match result {
                Ok(info) => {
                    ok += 1;
                    megapixels += info.megapixels();
                    kept.extend_from_slice(
                        batch
                            .view()
                            .index_axis(Axis(0), i)
                            .as_slice()
                            .expect("contiguous"),
                    );
                }
                Err(e) => {
                    failed += 1;
                    bar.suspend(|| eprintln!("{}: {e}", path.display()));
                }
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();

    let array = Array4::from_shape_vec((ok, 3, args.crop as usize, args.crop as usize), kept)?;
    debug_assert_eq!(array.len(), ok * per);
    let file =
        std::fs::File::create(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    array.write_npy(std::io::BufWriter::new(file))?;
    let summary = serde_json::json!({
        "images": ok,
        "failed": failed,
        "seconds": seconds,
        "images_per_s": if seconds > 0.0 { ok as f64 / seconds } else { 0.0 },
        "mp_per_s": if seconds > 0.0 { megapixels / seconds } else { 0.0 },
    });
    println!("{summary}");
    Ok(failed)
}
