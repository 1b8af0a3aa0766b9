//! The safetensors header parser: the input's first byte picks where the header ends,
//! the rest is header JSON then data, behind a correct 8-byte length.
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else { return };
    let n = if rest.is_empty() { 0 } else { (k as usize * 7) % (rest.len() + 1) };
    let mut file = (n as u64).to_le_bytes().to_vec();
    file.extend_from_slice(rest);
    exercise(&file);
    // And the raw input as a whole file (any length prefix).
    exercise(data);
});
