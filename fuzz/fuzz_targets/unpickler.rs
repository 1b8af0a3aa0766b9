//! The restricted unpickler, through the legacy PyTorch format: the input follows the
//! magic, protocol and sys-info pickles (it is the object pickle, the storage-key pickle and
//! the storage bytes).
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("common.rs");

const HEADER: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03.\x80\x02}q\x00(X\x0d\x00\x00\x00little_endianq\x01\x88u.";

fuzz_target!(|data: &[u8]| {
    let mut file = HEADER.to_vec();
    file.extend_from_slice(data);
    exercise(&file);
});
