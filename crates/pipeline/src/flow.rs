//! A pipeline under construction: the output of the last stage added, and the stages that
//! can be appended to it.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::envelope::{Envelope, Meta};
use crate::error::{BoxError, Error};
use crate::metrics::StageCounters;
use crate::options::{BatchOptions, StageOptions};
use crate::shared::{Shared, lock, recv, send};

/// The output of the pipeline built so far, carrying items of type `T`.
///
/// Every method appends a part (a stage, a batcher, an unbatcher) and returns the new
/// output; [`sink`](Flow::sink), [`outputs`](Flow::outputs) and [`collect`](Flow::collect)
/// end the pipeline. No thread runs and the source is not read until the pipeline is ended:
/// then every part's threads start, source first. A `Flow` dropped unended starts nothing,
/// and drops its source (and the closures of its stages) at once.
#[must_use = "a Flow does nothing until it ends in a sink, outputs() or collect()"]
pub struct Flow<T> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) rx: Receiver<Envelope<T>>,
    pub(crate) default_capacity: usize,
    /// Source items the configuration so far can hold in flight.
    pub(crate) bound: u64,
    /// The most source items one envelope on `rx` stands for.
    pub(crate) per_envelope: u64,
}

impl<T> std::fmt::Debug for Flow<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("bound", &self.bound)
            .field("per_envelope", &self.per_envelope)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Flow<T> {
    /// The most source items that can be in flight in the pipeline built so far, plus what
    /// its end will hold: the sum of channel capacities and workers (and reorder windows and
    /// batches), each counted in source items. Holds when stages between a batcher and an
    /// unbatcher keep the number of items.
    pub fn in_flight_bound(&self) -> u64 {
        self.bound + self.per_envelope
    }

    fn channel<U>(&self, capacity: usize) -> (Sender<Envelope<U>>, Receiver<Envelope<U>>) {
        crossbeam_channel::bounded(capacity.max(1))
    }

    pub(crate) fn counters(
        &self,
        name: &str,
        kind: &'static str,
        workers: usize,
    ) -> Arc<StageCounters> {
        let depth_rx = self.rx.clone();
        self.shared.metrics.register(StageCounters::new(
            name,
            kind,
            workers,
            Box::new(move || depth_rx.len()),
        ))
    }

    /// Appends a stage: `workers` threads apply `f` to each item. An `Err` or a panic
    /// follows the pipeline's [`ErrorPolicy`](crate::ErrorPolicy); an item whose deadline
    /// passed is not processed (counted as expired, reported by id).
    pub fn stage<U, E, F>(self, name: &str, options: StageOptions, f: F) -> Flow<U>
    where
        U: Send + 'static,
        E: Into<BoxError>,
        F: Fn(T) -> Result<U, E> + Send + Sync + 'static,
    {
        let workers = options.worker_count();
        let capacity = options.capacity.unwrap_or(self.default_capacity);
        let (tx, rx) = self.channel::<U>(capacity);
        if workers == 0 {
            self.shared.fail_run(Error::Config {
                stage: name.to_string(),
                option: "workers",
                problem: "must be at least 1".into(),
            });
        }
        let counters = self.counters(name, "stage", workers);
        let reorder = (options.ordered && workers > 1).then(|| Arc::new(Reorder::new(workers)));
        let window = if reorder.is_some() {
            workers as u64 * self.per_envelope
        } else {
            0
        };
        let input = self.rx.clone();
        let stage = name.to_string();
        self.shared.defer(move |shared| {
            let pool = options
                .rayon_threads
                .and_then(|n| rayon_pool(shared, &stage, n));
            let f = Arc::new(f);
            for w in 0..workers {
                let ctx = Worker {
                    shared: Arc::clone(shared),
                    counters: Arc::clone(&counters),
                    rx: input.clone(),
                    tx: tx.clone(),
                    reorder: reorder.clone(),
                };
                let f = Arc::clone(&f);
                let pool = pool.clone();
                let core = options
                    .cores
                    .as_ref()
                    .and_then(|c| (!c.is_empty()).then(|| c[w % c.len()]));
                let name = stage.clone();
                shared.spawn(&stage, format!("ik-{stage}-{w}"), move || {
                    if let Some(id) = core
                        && !core_affinity::set_for_current(core_affinity::CoreId { id })
                    {
                        tracing::warn!(stage = %name, core = id, "could not pin worker to core");
                    }
                    ctx.run(|v| match &pool {
                        Some(p) => p.install(|| f(v).map_err(Into::into)),
                        None => f(v).map_err(Into::into),
                    });
                });
            }
        });
        let held = workers as u64 * self.per_envelope;
        Flow {
            shared: self.shared,
            rx,
            default_capacity: self.default_capacity,
            bound: self.bound + held + window + capacity as u64 * self.per_envelope,
            per_envelope: self.per_envelope,
        }
    }

    /// [`stage`](Self::stage) with an infallible closure.
    pub fn map<U, F>(self, name: &str, options: StageOptions, f: F) -> Flow<U>
    where
        U: Send + 'static,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        self.stage(name, options, move |v| {
            Ok::<U, std::convert::Infallible>(f(v))
        })
    }

    /// Appends a batcher: groups items into `Vec`s of up to `max_items`, sending a partial
    /// batch when its first item has waited `max_delay` and at the end of input. Items keep
    /// their ids and spans inside the batch (an [`unbatch`](Self::unbatch) restores them);
    /// the batch's deadline is its members' earliest.
    pub fn batch(self, name: &str, options: BatchOptions) -> Flow<Vec<T>> {
        let max_items = options.max_items.max(1);
        let capacity = options.capacity.unwrap_or(self.default_capacity);
        let (tx, rx) = self.channel::<Vec<T>>(capacity);
        let counters = self.counters(name, "batch", 1);
        let input = self.rx.clone();
        let max_delay = options.max_delay;
        let stage = name.to_string();
        self.shared.defer(move |shared| {
            let sh = Arc::clone(shared);
            shared.spawn(&stage, format!("ik-{stage}"), move || {
                batcher(&sh, &counters, &input, &tx, max_items, max_delay);
            });
        });
        let per_batch = max_items as u64 * self.per_envelope;
        Flow {
            shared: self.shared,
            rx,
            default_capacity: self.default_capacity,
            bound: self.bound + per_batch + capacity as u64 * per_batch,
            per_envelope: per_batch,
        }
    }

    /// Appends an unbatcher: sends each element of each (batch) item on as an item of its
    /// own, with the id and span it had before the batcher (by position).
    pub fn unbatch<U>(self, name: &str) -> Flow<U>
    where
        T: IntoIterator<Item = U>,
        U: Send + 'static,
    {
        let capacity = self.default_capacity;
        let (tx, rx) = self.channel::<U>(capacity);
        let counters = self.counters(name, "unbatch", 1);
        let input = self.rx.clone();
        let stage = name.to_string();
        self.shared.defer(move |shared| {
            let sh = Arc::clone(shared);
            shared.spawn(&stage, format!("ik-{stage}"), move || {
                unbatcher(&sh, &counters, &input, &tx);
            });
        });
        Flow {
            shared: self.shared,
            rx,
            default_capacity: self.default_capacity,
            bound: self.bound + self.per_envelope + capacity as u64,
            per_envelope: 1,
        }
    }
}

/// A stage's own rayon pool of `n` threads, named after it; `None` (and the run failed)
/// when it cannot be built.
fn rayon_pool(shared: &Shared, name: &str, n: usize) -> Option<Arc<rayon::ThreadPool>> {
    let threads = shared.pool_threads();
    let stage = name.to_string();
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(n.max(1))
        .spawn_handler(move |t| {
            let h = std::thread::Builder::new()
                .name(format!("ik-{stage}-rayon-{}", t.index()))
                .spawn(move || t.run())?;
            lock(&threads).push(h);
            Ok(())
        })
        .build();
    match built {
        Ok(p) => Some(Arc::new(p)),
        Err(e) => {
            shared.fail_run(Error::Spawn {
                stage: name.to_string(),
                source: std::io::Error::other(e.to_string()),
            });
            None
        }
    }
}

/// One worker thread of a stage.
struct Worker<T, U> {
    shared: Arc<Shared>,
    counters: Arc<StageCounters>,
    rx: Receiver<Envelope<T>>,
    tx: Sender<Envelope<U>>,
    reorder: Option<Arc<Reorder<U>>>,
}

impl<T, U> Worker<T, U> {
    fn run(self, f: impl Fn(T) -> Result<U, BoxError>) {
        let cancel = self.shared.cancel.clone();
        loop {
            let (env, seq) = match &self.reorder {
                Some(r) => {
                    // Receiving and numbering under one lock fixes the input order.
                    let mut next = lock(&r.recv_lock);
                    let Some(env) = recv(&self.rx, &cancel) else {
                        break;
                    };
                    let seq = *next;
                    *next += 1;
                    (env, seq)
                }
                None => match recv(&self.rx, &cancel) {
                    Some(env) => (env, 0),
                    None => break,
                },
            };
            self.counters.received(1);
            let Envelope { meta, value } = env;
            if cancel.is_cancelled() {
                self.shared.item_cancelled(&self.counters, &meta);
                break;
            }
            if meta.deadline.is_some_and(|d| Instant::now() >= d) {
                self.shared.item_expired(&self.counters, meta);
                if !self.deliver(seq, None) {
                    break;
                }
                continue;
            }
            let out = match Shared::process(&self.counters, &meta, || f(value)) {
                Ok(v) => Some(Envelope { meta, value: v }),
                Err(err) => {
                    self.shared.item_failed(&self.counters, meta, err);
                    None
                }
            };
            if !self.deliver(seq, out) {
                break;
            }
        }
    }

    /// Sends `out` on (in order when the stage is ordered; `None` is a hole left by a
    /// dropped item). `false` when the run is over for this worker.
    fn deliver(&self, seq: u64, out: Option<Envelope<U>>) -> bool {
        let cancel = &self.shared.cancel;
        let Some(r) = &self.reorder else {
            let Some(env) = out else { return true };
            return match send(&self.tx, env, cancel) {
                Ok(()) => {
                    self.counters.emitted(1);
                    true
                }
                Err(env) => {
                    self.shared.item_cancelled(&self.counters, &env.meta);
                    false
                }
            };
        };
        let mut st = lock(&r.state);
        while seq != st.next && st.pending.len() >= r.window {
            if cancel.is_cancelled() {
                if let Some(env) = &out {
                    self.shared.item_cancelled(&self.counters, &env.meta);
                }
                return false;
            }
            st = r
                .ready
                .wait_timeout(st, Duration::from_millis(20))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        st.pending.insert(seq, out);
        loop {
            let next = st.next;
            let Some(entry) = st.pending.remove(&next) else {
                break;
            };
            st.next += 1;
            if let Some(env) = entry {
                // Sending under the lock keeps the order; backpressure holds the others.
                match send(&self.tx, env, cancel) {
                    Ok(()) => self.counters.emitted(1),
                    Err(env) => {
                        self.shared.item_cancelled(&self.counters, &env.meta);
                        r.ready.notify_all();
                        return false;
                    }
                }
            }
        }
        r.ready.notify_all();
        true
    }
}

/// Reordering state of an ordered stage with several workers.
struct Reorder<U> {
    /// The next input sequence number; held while receiving.
    recv_lock: Mutex<u64>,
    state: Mutex<ReorderState<U>>,
    ready: Condvar,
    /// Most finished items waiting for an earlier one.
    window: usize,
}

struct ReorderState<U> {
    next: u64,
    pending: BTreeMap<u64, Option<Envelope<U>>>,
}

impl<U> Reorder<U> {
    fn new(window: usize) -> Self {
        Reorder {
            recv_lock: Mutex::new(0),
            state: Mutex::new(ReorderState {
                next: 0,
                pending: BTreeMap::new(),
            }),
            ready: Condvar::new(),
            window,
        }
    }
}

/// How long before a partial batch is due the batcher stops sleeping and polls instead: a
/// timed sleep wakes late by the kernel's timer slack (50 µs by default on Linux) plus the
/// scheduler's delay, which would add to the latency of every partial batch.
const BATCH_POLL_WINDOW: Duration = Duration::from_micros(200);

/// How much before `max_delay` a partial batch leaves: a tenth of the delay, at most 150 µs.
/// Handing a batch to a parked worker wakes it through the kernel (tens of µs here, ~100 µs
/// at p99), so a batch sent exactly at `max_delay` would reach its consumer after it; sent
/// this much earlier, it is in the consumer's hands by then. Batches leave at most this
/// much emptier, never later.
fn handoff_lead(max_delay: Duration) -> Duration {
    (max_delay / 10).min(Duration::from_micros(150))
}

enum Got<T> {
    Item(Envelope<T>),
    End,
    Due,
    Cancelled,
}

/// The batch being filled, and where it goes.
struct Batcher<'a, T> {
    shared: &'a Shared,
    counters: &'a StageCounters,
    tx: &'a Sender<Envelope<Vec<T>>>,
    max_items: usize,
    values: Vec<T>,
    members: Vec<(u64, tracing::Span)>,
    deadline: Option<Instant>,
    weight: u64,
    /// When the oldest member left the source.
    oldest: Option<Instant>,
}

impl<T> Batcher<'_, T> {
    fn add(&mut self, env: Envelope<T>) {
        let Envelope { meta, value } = env;
        self.oldest = Some(self.oldest.map_or(meta.created, |t| t.min(meta.created)));
        self.deadline = match (self.deadline, meta.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.weight += meta.weight;
        if meta.members.is_empty() {
            self.members.push((meta.id, meta.span));
        } else {
            self.members.extend(meta.members);
        }
        self.values.push(value);
    }

    /// Sends the batch on; `false` when the run is over for the batcher.
    fn flush(&mut self) -> bool {
        let Some(&(first, _)) = self.members.first() else {
            return true;
        };
        let span = tracing::info_span!("batch", size = self.values.len(), first);
        for (_, s) in &self.members {
            span.follows_from(s);
        }
        let meta = Meta {
            id: first,
            deadline: self.deadline.take(),
            created: self.oldest.take().unwrap_or_else(Instant::now),
            cancel: self.shared.cancel.clone(),
            span,
            weight: std::mem::take(&mut self.weight),
            members: std::mem::replace(&mut self.members, Vec::with_capacity(self.max_items)),
        };
        let value = std::mem::replace(&mut self.values, Vec::with_capacity(self.max_items));
        match send(self.tx, Envelope { meta, value }, &self.shared.cancel) {
            Ok(()) => {
                self.counters.emitted(1);
                true
            }
            Err(env) => {
                self.shared.item_cancelled(self.counters, &env.meta);
                false
            }
        }
    }
}

/// The next envelope, the end of input, cancellation, or `due` passing.
fn next_or_due<T>(
    input: &Receiver<Envelope<T>>,
    cancel: &crate::CancelToken,
    due: Instant,
) -> Got<T> {
    let now = Instant::now();
    if due > now + BATCH_POLL_WINDOW {
        let sleep = due - BATCH_POLL_WINDOW - now;
        crossbeam_channel::select! {
            recv(input) -> m => return m.map_or(Got::End, Got::Item),
            recv(cancel.receiver()) -> _ => return Got::Cancelled,
            default(sleep) => {}
        }
    }
    loop {
        match input.try_recv() {
            Ok(env) => return Got::Item(env),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return Got::End,
            Err(crossbeam_channel::TryRecvError::Empty) => {}
        }
        if cancel.is_cancelled() {
            return Got::Cancelled;
        }
        if Instant::now() >= due {
            return Got::Due;
        }
        std::thread::yield_now();
    }
}

fn batcher<T>(
    shared: &Shared,
    counters: &StageCounters,
    input: &Receiver<Envelope<T>>,
    tx: &Sender<Envelope<Vec<T>>>,
    max_items: usize,
    max_delay: Duration,
) {
    let cancel = shared.cancel.clone();
    let wait = max_delay - handoff_lead(max_delay);
    let mut b = Batcher {
        shared,
        counters,
        tx,
        max_items,
        values: Vec::with_capacity(max_items),
        members: Vec::with_capacity(max_items),
        deadline: None,
        weight: 0,
        oldest: None,
    };
    loop {
        let got = match b.oldest {
            Some(t) => next_or_due(input, &cancel, t + wait),
            None => crossbeam_channel::select! {
                recv(input) -> m => m.map_or(Got::End, Got::Item),
                recv(cancel.receiver()) -> _ => Got::Cancelled,
            },
        };
        let full = match got {
            Got::Item(env) => {
                counters.received(1);
                if env.expired(Instant::now()) {
                    shared.item_expired(counters, env.meta);
                    continue;
                }
                b.add(env);
                b.values.len() >= max_items
            }
            Got::Due => true,
            Got::End => {
                b.flush();
                break;
            }
            Got::Cancelled => {
                if b.weight > 0 {
                    counters.cancelled(b.weight);
                    shared.metrics.leave(b.weight as i64);
                }
                break;
            }
        };
        if full && !b.flush() {
            break;
        }
    }
}

fn unbatcher<C, U>(
    shared: &Shared,
    counters: &StageCounters,
    input: &Receiver<Envelope<C>>,
    tx: &Sender<Envelope<U>>,
) where
    C: IntoIterator<Item = U>,
{
    let cancel = shared.cancel.clone();
    while let Some(env) = recv(input, &cancel) {
        counters.received(1);
        if env.expired(Instant::now()) {
            shared.item_expired(counters, env.meta);
            continue;
        }
        let Envelope { meta, value } = env;
        let mut members = meta.members.into_iter();
        let mut sent = 0_u64;
        for v in value {
            let (id, span) = members
                .next()
                .unwrap_or_else(|| (meta.id, meta.span.clone()));
            if sent >= meta.weight {
                shared.metrics.enter(1);
            }
            let out = Envelope {
                meta: Meta {
                    id,
                    deadline: meta.deadline,
                    created: meta.created,
                    cancel: cancel.clone(),
                    span,
                    weight: 1,
                    members: Vec::new(),
                },
                value: v,
            };
            sent += 1;
            if let Err(env) = send(tx, out, &cancel) {
                shared.item_cancelled(counters, &env.meta);
                return;
            }
            counters.emitted(1);
        }
        if sent < meta.weight {
            shared.metrics.leave((meta.weight - sent) as i64);
        }
    }
}
