// Shared by the table targets (included with `include!`): reads a file of arbitrary bytes
// and turns every numeric column of every batch into the feature matrix.

use inferkit_preprocess::table::{Features, Nulls};

/// Writes `bytes` to this process's scratch file with `ext` and returns its path.
fn scratch(bytes: &[u8], ext: &str) -> std::path::PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("inferkit-fuzz-{}.{ext}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// libfuzzer-sys aborts on every panic, even one caught: `TableReader` catches a panic of
/// the Parquet/CSV decoders (dependencies' bugs on corrupt data, reported as errors, each
/// kept as a regression test in tests/preprocess_tables.rs). This hook lets those caught
/// panics pass; a panic that escapes still aborts (libfuzzer-sys's catch_unwind).
fn quiet_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

/// Every batch (a bounded number), every numeric column under each null policy.
fn exercise(reader: inferkit_preprocess::table::TableReader) {
    for batch in reader.take(64) {
        let Ok(batch) = batch else {
            return;
        };
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .filter(|f| f.data_type().is_numeric() || f.data_type().is_dictionary_key_type())
            .map(|f| f.name().clone())
            .collect();
        for policy in [Nulls::Error, Nulls::Fill(0.0), Nulls::Mask] {
            let mut f = Features::new(names.iter().map(String::as_str));
            for n in &names {
                f = f.with_nulls(n, policy);
            }
            let mut out = vec![0f32; batch.num_rows() * f.width()];
            let _ = f.fill(&batch, &mut out, 0, "fuzz");
        }
    }
}
