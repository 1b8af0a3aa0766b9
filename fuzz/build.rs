//! The messages of inferkit-serve's gRPC protocol for the `serve_grpc_request` target, made
//! as crates/serve/build.rs makes them (raw tensor bytes as `bytes::Bytes`), with the
//! protoc of protoc-bin-vendored.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../crates/serve/proto";
    println!("cargo:rerun-if-changed={proto}/inference.proto");
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.bytes([".inference"]);
    config.compile_protos(&[format!("{proto}/inference.proto")], &[proto])?;
    Ok(())
}
