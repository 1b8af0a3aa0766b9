//! Converts any checkpoint inferkit reads (safetensors, sharded safetensors, PyTorch zip,
//! legacy PyTorch) into one safetensors file: same names, dtypes, shapes and values, every
//! tensor contiguous.
//!
//! ```text
//! cargo run --release --example convert -- INPUT OUTPUT.safetensors
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("error: usage: convert INPUT OUTPUT.safetensors");
        return ExitCode::FAILURE;
    };
    match inferkit::weights::convert(input, output) {
        Ok(n) => {
            println!(
                "{{\"tensors\":{n},\"output\":{}}}",
                serde_json::Value::from(output.as_str())
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
