//! State shared by every thread of a run: cancellation, policy, metrics, failures, threads.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError, TrySendError};

use crate::envelope::Meta;
use crate::error::{BoxError, DeadLetter, Error, panic_message};
use crate::metrics::{Metrics, StageCounters};
use crate::{CancelToken, ErrorPolicy};

pub(crate) type DeadLetterFn = Arc<dyn Fn(DeadLetter) + Send + Sync>;

/// Starts the threads of one part of the pipeline (a source, a stage, a batcher, a sink).
type Launch = Box<dyn FnOnce(&Arc<Shared>) + Send>;

pub(crate) struct Shared {
    pub(crate) cancel: CancelToken,
    pub(crate) policy: ErrorPolicy,
    pub(crate) dead_letter: Option<DeadLetterFn>,
    pub(crate) metrics: Metrics,
    failure: Mutex<Option<Error>>,
    expired: Mutex<Vec<u64>>,
    threads: Mutex<Vec<(String, JoinHandle<()>)>>,
    /// What starts the threads of every part appended so far, in order; run by
    /// [`launch`](Self::launch) when the pipeline is ended (a sink or `outputs()`), and
    /// dropped unrun, with everything it captured, when an unended pipeline is dropped.
    pending: Mutex<Vec<Launch>>,
    /// Threads of per-stage rayon pools: joined after every stage thread (whose exit drops
    /// the pools).
    pool_threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    pub(crate) items: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) failed: AtomicU64,
}

impl Shared {
    pub(crate) fn new(policy: ErrorPolicy, dead_letter: Option<DeadLetterFn>) -> Self {
        Shared {
            cancel: CancelToken::new(),
            policy,
            dead_letter,
            metrics: Metrics::default(),
            failure: Mutex::new(None),
            expired: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            pending: Mutex::new(Vec::new()),
            pool_threads: Arc::default(),
            items: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// Keeps `f` to start a part's threads when the pipeline is ended.
    pub(crate) fn defer(&self, f: impl FnOnce(&Arc<Shared>) + Send + 'static) {
        lock(&self.pending).push(Box::new(f));
    }

    /// Starts the threads of every part, source first. Called once, by the end of the
    /// pipeline.
    pub(crate) fn launch(self: &Arc<Self>) {
        let pending = std::mem::take(&mut *lock(&self.pending));
        for start in pending {
            start(self);
        }
    }

    /// Starts a named thread of stage `stage`; on failure records the error and cancels.
    pub(crate) fn spawn(&self, stage: &str, thread: String, f: impl FnOnce() + Send + 'static) {
        match std::thread::Builder::new().name(thread).spawn(f) {
            Ok(h) => lock(&self.threads).push((stage.to_string(), h)),
            Err(source) => self.fail_run(Error::Spawn {
                stage: stage.to_string(),
                source,
            }),
        }
    }

    pub(crate) fn pool_threads(&self) -> Arc<Mutex<Vec<JoinHandle<()>>>> {
        Arc::clone(&self.pool_threads)
    }

    /// Records the run's first fatal error and cancels the run.
    pub(crate) fn fail_run(&self, err: Error) {
        let mut slot = lock(&self.failure);
        if slot.is_none() {
            tracing::error!(stage = err.stage(), error = %err, "pipeline run failed");
            *slot = Some(err);
        }
        drop(slot);
        self.cancel.cancel();
    }

    /// An item failed in a stage: counted, then the policy decides.
    pub(crate) fn item_failed(&self, counters: &StageCounters, meta: Meta, err: Error) {
        counters.error();
        self.metrics.leave(meta.weight as i64);
        self.failed.fetch_add(meta.weight, Relaxed);
        match self.policy {
            ErrorPolicy::FailFast => self.fail_run(err),
            ErrorPolicy::Skip => {
                tracing::warn!(parent: &meta.span, stage = %counters.name, item = meta.id, error = %err, "item skipped");
                if let Some(dl) = &self.dead_letter {
                    let letter = DeadLetter {
                        item: meta.id,
                        stage: counters.name.clone(),
                        error: err,
                    };
                    if let Err(p) = catch_unwind(AssertUnwindSafe(|| dl(letter))) {
                        tracing::error!(message = %panic_message(&*p), "the dead-letter callback panicked");
                    }
                }
            }
        }
    }

    /// Calls a stage's closure on one item, inside a child span of the item's span, timing
    /// it (busy time and latency histogram). An `Err` or a panic becomes this stage's error
    /// for the item; the caller hands it to [`item_failed`](Self::item_failed).
    pub(crate) fn process<U>(
        counters: &StageCounters,
        meta: &Meta,
        f: impl FnOnce() -> Result<U, BoxError>,
    ) -> Result<U, Error> {
        let span = tracing::info_span!(parent: &meta.span, "stage", stage = %counters.name);
        let started = Instant::now();
        let result = {
            let _entered = span.enter();
            catch_unwind(AssertUnwindSafe(f))
        };
        counters.observe(started.elapsed());
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(Error::Stage {
                stage: counters.name.clone(),
                item: meta.id,
                source,
            }),
            Err(p) => Err(Error::Panic {
                stage: counters.name.clone(),
                item: meta.id,
                message: panic_message(&*p),
            }),
        }
    }

    /// An item's deadline passed before a stage could take it up.
    pub(crate) fn item_expired(&self, counters: &StageCounters, meta: Meta) {
        counters.expired(meta.weight);
        self.metrics.leave(meta.weight as i64);
        tracing::warn!(parent: &meta.span, stage = %counters.name, item = meta.id, "deadline passed; item dropped");
        let mut ex = lock(&self.expired);
        if meta.members.is_empty() {
            ex.push(meta.id);
        } else {
            ex.extend(meta.members.iter().map(|(id, _)| *id));
        }
    }

    /// An item held by a stage when the run was cancelled (or its consumer went away).
    pub(crate) fn item_cancelled(&self, counters: &StageCounters, meta: &Meta) {
        counters.cancelled(meta.weight);
        self.metrics.leave(meta.weight as i64);
    }

    /// Joins every thread of the run (stage threads first, then rayon pool threads).
    pub(crate) fn join_all(&self) {
        loop {
            let batch: Vec<_> = std::mem::take(&mut *lock(&self.threads));
            if batch.is_empty() {
                break;
            }
            for (stage, h) in batch {
                if let Err(p) = h.join() {
                    self.fail_run(Error::ThreadPanic {
                        stage,
                        message: panic_message(&*p),
                    });
                }
            }
        }
        for h in std::mem::take(&mut *lock(&self.pool_threads)) {
            let _ = h.join();
        }
    }

    pub(crate) fn take_failure(&self) -> Option<Error> {
        lock(&self.failure).take()
    }

    pub(crate) fn take_expired(&self) -> Vec<u64> {
        let mut v = std::mem::take(&mut *lock(&self.expired));
        v.sort_unstable();
        v
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Receives, or `None` at end of input or on cancellation.
pub(crate) fn recv<T>(rx: &Receiver<T>, cancel: &CancelToken) -> Option<T> {
    if cancel.is_cancelled() {
        return None;
    }
    match rx.try_recv() {
        Ok(v) => return Some(v),
        Err(TryRecvError::Disconnected) => return None,
        Err(TryRecvError::Empty) => {}
    }
    crossbeam_channel::select! {
        recv(rx) -> m => m.ok(),
        recv(cancel.receiver()) -> _ => None,
    }
}

/// Sends, waiting for room unless the run is cancelled; hands the value back when it could
/// not be sent (cancelled, or the receiver is gone).
pub(crate) fn send<T>(tx: &Sender<T>, v: T, cancel: &CancelToken) -> Result<(), T> {
    let v = match tx.try_send(v) {
        Ok(()) => return Ok(()),
        Err(TrySendError::Disconnected(v)) => return Err(v),
        Err(TrySendError::Full(v)) => v,
    };
    let mut sel = Select::new();
    let s = sel.send(tx);
    let c = sel.recv(cancel.receiver());
    let op = sel.select();
    if op.index() == s {
        op.send(tx, v).map_err(|e| e.into_inner())
    } else {
        debug_assert_eq!(op.index(), c);
        let _ = op.recv(cancel.receiver());
        Err(v)
    }
}
