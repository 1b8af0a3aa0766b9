//! Generates the gRPC service and messages from proto/inference.proto, and the model
//! repository's configuration messages from proto/model_config.proto (with its descriptor
//! set, which prost-reflect's text-format parser reads), with the protoc that
//! `protoc-bin-vendored` ships (no system protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(&protoc);
    // raw tensor bytes as `bytes::Bytes`: sliced from the message, not copied
    config.bytes([".inference"]);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &["proto/inference.proto"], &["proto"])?;

    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(&protoc);
    config.file_descriptor_set_path(out.join("model_config.bin"));
    config.compile_protos(&["proto/model_config.proto"], &["proto"])?;
    Ok(())
}
