//! Cancellation shared by every stage of a run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};

/// A cancellation token: cheap to clone, shared by the run and every item's envelope.
///
/// Cancelling wakes every blocked stage at once (each blocking wait also selects on the
/// token's channel, which disconnects on cancel), so a run stops within one item's
/// processing time per worker.
///
/// ```
/// use inferkit_pipeline::CancelToken;
/// let t = CancelToken::new();
/// let u = t.clone();
/// assert!(!u.is_cancelled());
/// t.cancel();
/// assert!(u.is_cancelled());
/// ```
#[derive(Clone)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

struct Inner {
    flag: AtomicBool,
    /// Dropped on cancel, which disconnects `rx`.
    tx: Mutex<Option<Sender<()>>>,
    rx: Receiver<()>,
}

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(0);
        CancelToken {
            inner: Arc::new(Inner {
                flag: AtomicBool::new(false),
                tx: Mutex::new(Some(tx)),
                rx,
            }),
        }
    }

    /// Cancels; idempotent.
    pub fn cancel(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        self.inner
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::Relaxed)
    }

    /// A channel that becomes ready (disconnected) when the token is cancelled, for
    /// `select!`.
    pub(crate) fn receiver(&self) -> &Receiver<()> {
        &self.inner.rx
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
