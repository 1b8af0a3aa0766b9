//! Ending a pipeline: a sink thread ([`Run`]), or the caller's own loop ([`Outputs`]).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crossbeam_channel::Receiver;

use crate::CancelToken;
use crate::envelope::Envelope;
use crate::error::{BoxError, Result};
use crate::flow::Flow;
use crate::metrics::{Metrics, Snapshot, StageCounters};
use crate::shared::{Shared, recv};

/// How a run ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// Items the source sent.
    pub items: u64,
    /// Items the sink consumed (or the caller received).
    pub delivered: u64,
    /// Items a stage failed or panicked on (under [`ErrorPolicy::Skip`](crate::ErrorPolicy::Skip)).
    pub failed: u64,
    /// Ids of the items dropped because their deadline passed, sorted.
    pub expired: Vec<u64>,
    /// Whether the run was cancelled before its input ended.
    pub cancelled: bool,
    /// Every stage's counters at the end.
    pub metrics: Snapshot,
}

impl<T: Send + 'static> Flow<T> {
    /// Ends the pipeline in a sink thread calling `f` on every item, starts every thread, and
    /// returns the running pipeline's handle. An `Err` or a panic in `f` follows the error policy, like a stage's.
    pub fn sink<E, F>(self, f: F) -> Run
    where
        E: Into<BoxError>,
        F: FnMut(T) -> Result<(), E> + Send + 'static,
    {
        let counters = self.counters("sink", "sink", 1);
        let shared = Arc::clone(&self.shared);
        let bound = self.in_flight_bound();
        let rx = self.rx;
        shared.defer(move |shared| {
            let sh = Arc::clone(shared);
            shared.spawn("sink", "ik-sink".into(), move || {
                sink_loop(&sh, &counters, &rx, f)
            });
        });
        shared.launch();
        Run {
            shared,
            bound,
            joined: false,
        }
    }

    /// Ends the pipeline in the caller's thread and starts every thread: an iterator of
    /// `(id, item)` in arrival order, which ends when the input has drained through every
    /// stage, or at once when the run is cancelled or fails
    /// ([`finish`](Outputs::finish) then says which).
    pub fn outputs(self) -> Outputs<T> {
        let counters = self.counters("outputs", "sink", 1);
        let bound = self.in_flight_bound();
        self.shared.launch();
        Outputs {
            shared: self.shared,
            counters,
            rx: Some(self.rx),
            bound,
            joined: false,
        }
    }

    /// Runs the pipeline to the end and gathers every output.
    ///
    /// # Errors
    /// The run's error under [`ErrorPolicy::FailFast`](crate::ErrorPolicy::FailFast).
    pub fn collect(self) -> Result<Collected<T>> {
        let mut out = self.outputs();
        let items: Vec<(u64, T)> = out.by_ref().collect();
        let report = out.finish()?;
        Ok(Collected { items, report })
    }
}

fn sink_loop<T, E: Into<BoxError>>(
    shared: &Shared,
    counters: &StageCounters,
    rx: &Receiver<Envelope<T>>,
    mut f: impl FnMut(T) -> Result<(), E>,
) {
    let cancel = shared.cancel.clone();
    while let Some(env) = recv(rx, &cancel) {
        counters.received(1);
        if env.expired(Instant::now()) {
            shared.item_expired(counters, env.meta);
            continue;
        }
        let Envelope { meta, value } = env;
        match Shared::process(counters, &meta, || f(value).map_err(Into::into)) {
            Ok(()) => {
                counters.emitted(1);
                shared.delivered.fetch_add(meta.weight, Relaxed);
                shared.metrics.leave(meta.weight as i64);
            }
            Err(err) => shared.item_failed(counters, meta, err),
        }
    }
}

fn report(shared: &Shared) -> Result<Report> {
    if let Some(err) = shared.take_failure() {
        return Err(err);
    }
    Ok(Report {
        items: shared.items.load(Relaxed),
        delivered: shared.delivered.load(Relaxed),
        failed: shared.failed.load(Relaxed),
        expired: shared.take_expired(),
        cancelled: shared.cancel.is_cancelled(),
        metrics: shared.metrics.snapshot(),
    })
}

/// A running pipeline that ends in a sink. [`wait`](Run::wait) for it; dropping it cancels
/// the run and joins every thread.
#[must_use = "dropping a Run cancels it"]
pub struct Run {
    shared: Arc<Shared>,
    bound: u64,
    joined: bool,
}

impl Run {
    /// Waits for the end of input to drain through every stage, joins every thread, and
    /// reports.
    ///
    /// # Errors
    /// Under [`ErrorPolicy::FailFast`](crate::ErrorPolicy::FailFast), the first error, with
    /// its stage and item id; a thread that could not start or that panicked outside a
    /// stage's closure.
    pub fn wait(mut self) -> Result<Report> {
        self.shared.join_all();
        self.joined = true;
        report(&self.shared)
    }

    /// Cancels the run: every stage stops within one item's processing time per worker.
    /// [`wait`](Run::wait) still joins and reports.
    pub fn cancel(&self) {
        self.shared.cancel.cancel();
    }

    /// The run's cancellation token.
    pub fn cancel_token(&self) -> CancelToken {
        self.shared.cancel.clone()
    }

    /// The run's live metrics (for progress bars and exporters).
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics.clone()
    }

    /// The most source items this configuration can hold in flight.
    pub fn in_flight_bound(&self) -> u64 {
        self.bound
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !self.joined {
            self.shared.cancel.cancel();
            self.shared.join_all();
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

/// The outputs of a pipeline, received on the caller's thread: `(id, item)` pairs.
/// [`finish`](Outputs::finish) joins and reports; dropping it cancels and joins.
#[must_use = "dropping Outputs cancels the run"]
pub struct Outputs<T> {
    shared: Arc<Shared>,
    counters: Arc<StageCounters>,
    rx: Option<Receiver<Envelope<T>>>,
    bound: u64,
    joined: bool,
}

impl<T> Iterator for Outputs<T> {
    type Item = (u64, T);

    fn next(&mut self) -> Option<(u64, T)> {
        let rx = self.rx.as_ref()?;
        loop {
            let env = recv(rx, &self.shared.cancel)?;
            self.counters.received(1);
            if env.expired(Instant::now()) {
                self.shared.item_expired(&self.counters, env.meta);
                continue;
            }
            self.counters.emitted(1);
            self.shared.delivered.fetch_add(env.meta.weight, Relaxed);
            self.shared.metrics.leave(env.meta.weight as i64);
            return Some((env.meta.id, env.value));
        }
    }
}

impl<T> Outputs<T> {
    /// Ends the run: if outputs remain unread, cancels it first; joins every thread and
    /// reports.
    ///
    /// # Errors
    /// As [`Run::wait`].
    pub fn finish(mut self) -> Result<Report> {
        self.close();
        report(&self.shared)
    }

    fn close(&mut self) {
        if self.joined {
            return;
        }
        if let Some(rx) = self.rx.take()
            && !matches!(
                rx.try_recv(),
                Err(crossbeam_channel::TryRecvError::Disconnected)
            )
        {
            // Outputs left unread, or the input not finished: stop the producers.
            self.shared.cancel.cancel();
        }
        self.shared.join_all();
        self.joined = true;
    }

    /// Cancels the run.
    pub fn cancel(&self) {
        self.shared.cancel.cancel();
    }

    /// The run's live metrics.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics.clone()
    }

    /// The most source items this configuration can hold in flight.
    pub fn in_flight_bound(&self) -> u64 {
        self.bound
    }
}

impl<T> Drop for Outputs<T> {
    fn drop(&mut self) {
        if !self.joined {
            self.shared.cancel.cancel();
            self.close();
        }
    }
}

impl<T> std::fmt::Debug for Outputs<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs")
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

/// Everything a pipeline produced, and its report.
#[derive(Debug)]
#[non_exhaustive]
pub struct Collected<T> {
    /// `(id, item)` in arrival order.
    pub items: Vec<(u64, T)>,
    /// How the run ended.
    pub report: Report,
}

impl<T: Clone> Collected<T> {
    /// The items without their ids.
    pub fn values(&self) -> Vec<T> {
        self.items.iter().map(|(_, v)| v.clone()).collect()
    }
}
