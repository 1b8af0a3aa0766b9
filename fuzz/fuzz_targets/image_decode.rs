//! Image decoding and the ImageNet transform on arbitrary bytes: any format the decoder
//! sniffs (JPEG, PNG, WebP, GIF, BMP, TIFF). A panic, a hang or an allocation past the
//! pixel limit is a bug; an `Err` is the expected answer to garbage.
#![no_main]

use inferkit_preprocess::{DecodeOptions, Decoder, Scratch, Transform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let decoder = Decoder::new(DecodeOptions::new().with_max_pixels(4 << 20));
    let Ok(img) = decoder.decode(bytes) else {
        return;
    };
    assert_eq!(
        img.pixels().len(),
        img.width() as usize * img.height() as usize * img.channels() as usize
    );
    let t = Transform::imagenet(64);
    let mut out = vec![0f32; t.output_len().unwrap()];
    let _ = t.apply_into(&img, &mut out, &mut Scratch::new());
});
