//! inferkit-serve's request parsing (crates/serve/src/request.rs: JSON, nested data,
//! the binary tensor data extension, BYTES elements in JSON (text, base64) and in the
//! length-prefixed binary form, checks against the model's inputs) on arbitrary bytes.
//! The first byte picks plain JSON or a binary-extension header length. A 400 message is
//! the expected answer to garbage; a panic, a hang or a huge allocation is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/serve/src/request.rs"]
#[allow(dead_code)]
mod request;

#[path = "serve_model.rs"]
mod serve_model;

use serve_model::descriptor;

fuzz_target!(|bytes: &[u8]| {
    let d = descriptor();
    let Some((&mode, body)) = bytes.split_first() else {
        return;
    };
    // mode 0..=127: plain JSON; else a JSON header of (mode - 128) * 4 bytes, then binary;
    // an odd mode serves a BYTES input `img` (base64 images in JSON), an even one `txt`
    let json_len = (mode >= 128).then(|| usize::from(mode & 0x7f) * 4);
    let bytes_input = if mode & 1 == 1 {
        ("img", request::BytesKind::Image)
    } else {
        ("txt", request::BytesKind::Text)
    };
    if let Ok(p) = request::parse(&d, Some(bytes_input), body, json_len) {
        for (_, a) in &p.inputs {
            if let request::Arg::Bytes { shape, items } = a {
                assert_eq!(shape.iter().product::<usize>(), items.len());
            }
        }
        if let Ok(inputs) = p
            .inputs
            .into_iter()
            .map(|(n, a)| match a {
                request::Arg::Tensor(t) => Ok((n, t)),
                request::Arg::Bytes { .. } => Err(()),
            })
            .collect::<Result<Vec<_>, ()>>()
        {
            if let Ok(rows) = request::check_inputs(&d, &inputs) {
                for (_, t) in &inputs {
                    assert_eq!(t.shape().first().copied(), Some(rows));
                }
            }
        }
    }
});
