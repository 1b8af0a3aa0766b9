//! A log writer into shared memory, for tests that read what a tracing subscriber wrote.

use std::sync::{Arc, Mutex};

/// Clones write into the same buffer.
#[derive(Clone, Default)]
pub(crate) struct Buf(pub(crate) Arc<Mutex<Vec<u8>>>);

impl Buf {
    /// What was written so far.
    #[allow(dead_code)] // not every test binary that includes this module reads it this way
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
