//! Whole files behind the zip magic: the zip directory, data.pkl and storage entries.
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    exercise(data);
});
