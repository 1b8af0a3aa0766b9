// Shared by the fuzz targets (included with `include!`).

/// Opens `bytes` and, when that succeeds, reads every tensor every way the API allows:
/// a panic or out-of-bounds read anywhere here is a bug.
fn exercise(bytes: &[u8]) {
    let Ok(ckpt) = inferkit_weights::Checkpoint::from_slice("fuzz.bin", bytes) else {
        return;
    };
    for t in ckpt.tensors() {
        if t.numel() > 1 << 20 {
            continue;
        }
        let _ = t.to_f64();
        let mut buf = vec![0f32; t.numel()];
        let _ = t.to_f32_into(&mut buf);
        let _ = t.to_contiguous_bytes();
        let _ = t.view::<f32>();
        let _ = t.cow::<u8>();
    }
}
