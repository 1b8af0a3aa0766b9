//! inferkit-serve's gRPC request reading (crates/serve/src/grpc_request.rs: typed contents,
//! `raw_input_contents`, BYTES elements length-prefixed or as `bytes_contents`, the
//! `timeout`/`priority`/`classification` parameters, checks against the model's inputs) on
//! any `ModelInferRequest` prost decodes from arbitrary bytes. The first byte picks whether
//! the model serves a BYTES input `img`. An error message is the expected answer to
//! garbage; a panic, a hang or a huge allocation is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

#[path = "../../crates/serve/src/request.rs"]
#[allow(dead_code)]
mod request;

#[path = "../../crates/serve/src/grpc_request.rs"]
mod grpc_request;

/// The messages of crates/serve/proto/inference.proto (built by fuzz/build.rs as the
/// server's build.rs does, without the service).
mod grpc {
    #[allow(dead_code, clippy::all)]
    pub mod proto {
        include!(concat!(env!("OUT_DIR"), "/inference.rs"));
    }
}

#[path = "serve_model.rs"]
mod serve_model;

fuzz_target!(|bytes: &[u8]| {
    let d = serve_model::descriptor();
    let Some((&mode, body)) = bytes.split_first() else {
        return;
    };
    let Ok(r) = grpc::proto::ModelInferRequest::decode(body) else {
        return;
    };
    let bytes_input = (mode & 1 == 1).then_some("img");
    if let Ok(p) = grpc_request::parse(&d, bytes_input, &r) {
        assert_eq!(p.inputs.len(), r.inputs.len());
        for (_, a) in &p.inputs {
            if let request::Arg::Bytes { shape, items } = a {
                assert_eq!(shape.iter().product::<usize>(), items.len());
            }
        }
        std::hint::black_box((p.timeout, p.priority));
        for w in p.wanted.iter().flatten() {
            assert_ne!(w.classification, Some(0));
        }
    }
});
