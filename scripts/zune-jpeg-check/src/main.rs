//! `zune-jpeg-check FILE...`: decodes each JPEG with the patched and the upstream zune-jpeg
//! (strict mode, RGB out), then 40 corrupted variants of each (truncated, or 1–3 bytes
//! overwritten past the headers, from a fixed-seed xorshift), and counts any difference in
//! pixels, error message or panic. Exits 1 on a difference.

use std::panic::catch_unwind;

type Outcome = Result<Result<Vec<u8>, String>, ()>;

fn patched(bytes: &[u8]) -> Outcome {
    catch_unwind(|| {
        let o = zune_jpeg::zune_core::options::DecoderOptions::default()
            .jpeg_set_out_colorspace(zune_jpeg::zune_core::colorspace::ColorSpace::RGB)
            .set_strict_mode(true);
        let cursor = zune_jpeg::zune_core::bytestream::ZCursor::new(bytes);
        let mut d = zune_jpeg::JpegDecoder::new_with_options(cursor, o);
        d.decode().map_err(|e| e.to_string())
    })
    .map_err(|_| ())
}

fn upstream(bytes: &[u8]) -> Outcome {
    catch_unwind(|| {
        use zune_jpeg_upstream::zune_core as zc;
        let o = zc::options::DecoderOptions::default()
            .jpeg_set_out_colorspace(zc::colorspace::ColorSpace::RGB)
            .set_strict_mode(true);
        let cursor = zc::bytestream::ZCursor::new(bytes);
        let mut d = zune_jpeg_upstream::JpegDecoder::new_with_options(cursor, o);
        d.decode().map_err(|e| e.to_string())
    })
    .map_err(|_| ())
}

fn main() {
    std::panic::set_hook(Box::new(|_| {}));
    let mut seed = 0x1234_5678_9abc_def0_u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut files, mut cases, mut errors, mut differ, mut panics) = (0, 0, 0, 0, 0);
    for f in std::env::args().skip(1) {
        let original = std::fs::read(&f).expect("readable file");
        files += 1;
        for t in 0..41 {
            let mut b = original.clone();
            if t == 0 {
                // the file itself
            } else if original.len() < 400 {
                break;
            } else if t % 4 == 0 {
                b.truncate(rnd() as usize % b.len());
            } else {
                for _ in 0..(1 + t % 3) {
                    let i = 200 + rnd() as usize % (b.len() - 200);
                    b[i] = rnd() as u8;
                }
            }
            let (p, u) = (patched(&b), upstream(&b));
            cases += 1;
            errors += usize::from(matches!(p, Ok(Err(_))));
            panics += usize::from(p.is_err());
            if p != u {
                differ += 1;
                eprintln!("DIFFERENT: {f} variant {t}");
            }
        }
    }
    println!(
        "{files} files, {cases} decodes ({errors} errors, {panics} panics in the patched \
         decoder), {differ} differ from upstream"
    );
    std::process::exit(i32::from(differ > 0));
}
