//! Generates the gRPC service and messages from proto/inference.proto with the protoc that
//! `protoc-bin-vendored` ships (no system protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // raw tensor bytes as `bytes::Bytes`: sliced from the message, not copied
    config.bytes([".inference"]);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &["proto/inference.proto"], &["proto"])?;
    Ok(())
}
