//! The entry point: [`Pipeline::builder`] and the source.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::envelope::{Envelope, Input, Meta};
use crate::error::{DeadLetter, Error, panic_message};
use crate::flow::Flow;
use crate::metrics::StageCounters;
use crate::options::ErrorPolicy;
use crate::priority::PrioritySubmitter;
use crate::shared::{Shared, recv, send};
use crate::submit::Submitter;
use crossbeam_channel::Sender;

/// Builds pipelines: a source, stages, batchers and a sink joined by bounded channels.
///
/// ```
/// use std::time::Duration;
/// use inferkit_pipeline::{BatchOptions, Pipeline, StageOptions};
///
/// let out = Pipeline::builder()
///     .source(1..=10_u32)
///     .stage("square", StageOptions::new().with_workers(2).with_ordered(true), |x: u32| {
///         Ok::<_, std::convert::Infallible>(x * x)
///     })
///     .batch("batch", BatchOptions::new(4, Duration::from_millis(5)))
///     .map("sum", StageOptions::new().with_workers(1), |b: Vec<u32>| vec![b.iter().sum::<u32>()])
///     .unbatch::<u32>("unbatch")
///     .collect()?;
/// assert_eq!(out.values(), vec![1 + 4 + 9 + 16, 25 + 36 + 49 + 64, 81 + 100]);
/// # Ok::<(), inferkit_pipeline::Error>(())
/// ```
#[derive(Debug)]
pub struct Pipeline;

impl Pipeline {
    /// A builder with the defaults: fail fast, capacity 64 per channel.
    pub fn builder() -> Builder {
        Builder {
            policy: ErrorPolicy::FailFast,
            dead_letter: None,
            capacity: 64,
        }
    }
}

/// Configures a pipeline, then gives it a source; the pipeline runs once it is ended.
#[must_use]
pub struct Builder {
    policy: ErrorPolicy,
    dead_letter: Option<crate::shared::DeadLetterFn>,
    capacity: usize,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("policy", &self.policy)
            .field("dead_letter", &self.dead_letter.is_some())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Builder {
    /// The error policy (default [`ErrorPolicy::FailFast`]).
    pub fn with_policy(mut self, policy: ErrorPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Called with every item that fails under [`ErrorPolicy::Skip`], on the failing
    /// stage's thread.
    pub fn with_dead_letter(mut self, f: impl Fn(DeadLetter) + Send + Sync + 'static) -> Self {
        self.dead_letter = Some(Arc::new(f));
        self
    }

    /// The default bound of every channel (default 64; at least 1).
    pub fn with_capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }

    /// A pipeline whose source thread pulls `items` (once the pipeline is ended, see
    /// [`Flow`]); ids count from 0.
    pub fn source<I>(self, items: I) -> Flow<I::Item>
    where
        I: IntoIterator + Send + 'static,
        I::IntoIter: Send,
        I::Item: Send + 'static,
    {
        self.inputs(items.into_iter().map(Input::new))
    }

    /// A pipeline whose source yields items that may carry a deadline and an id.
    pub fn inputs<I, T>(self, items: I) -> Flow<T>
    where
        I: IntoIterator<Item = Input<T>> + Send + 'static,
        I::IntoIter: Send,
        T: Send + 'static,
    {
        let mut iter = items.into_iter();
        self.start(
            move |_| match catch_unwind(AssertUnwindSafe(|| iter.next())) {
                Ok(next) => Ok(next),
                Err(p) => Err(panic_message(&*p)),
            },
        )
    }

    /// A pipeline fed by a [`Submitter`]: items handed in from any thread through an
    /// intake queue of the pipeline's capacity ([`with_capacity`](Self::with_capacity)).
    /// Items submitted before the pipeline is ended wait in that queue until its threads
    /// start. The input ends when every clone of the submitter is dropped; a cancelled or
    /// failed run, or a `Flow` dropped unended, closes the queue.
    pub fn submitter<T: Send + 'static>(self) -> (Submitter<T>, Flow<T>) {
        let (tx, rx) = crossbeam_channel::bounded::<Input<T>>(self.capacity.max(1));
        let flow = self.start(move |cancel| Ok(recv(&rx, cancel)));
        (Submitter::new(tx), flow)
    }

    /// A pipeline fed by a [`PrioritySubmitter`]: an intake queue of `capacity` items (apart
    /// from the channels' capacity) served by priority, lowest value first and first come
    /// first served within a value; a full queue refuses at once, handing the item back. The
    /// input ends when every clone of the submitter is dropped or one calls `close`; a
    /// cancelled or failed run, or a `Flow` dropped unended, closes the queue.
    pub fn priority_submitter<T: Send + 'static>(
        self,
        capacity: usize,
    ) -> (PrioritySubmitter<T>, Flow<T>) {
        let (submitter, next) = PrioritySubmitter::new(capacity);
        (submitter, self.start(next))
    }

    fn start<T, F>(self, next: F) -> Flow<T>
    where
        T: Send + 'static,
        F: FnMut(&crate::CancelToken) -> Result<Option<Input<T>>, String> + Send + 'static,
    {
        let shared = Arc::new(Shared::new(self.policy, self.dead_letter));
        let (tx, rx) = crossbeam_channel::bounded::<Envelope<T>>(self.capacity);
        let depth_rx = rx.clone();
        let counters = shared.metrics.register(StageCounters::new(
            "source",
            "source",
            1,
            Box::new(move || depth_rx.len()),
        ));
        shared.defer(move |shared| {
            let sh = Arc::clone(shared);
            shared.spawn("source", "ik-source".into(), move || {
                source_loop(&sh, &counters, &tx, next)
            });
        });
        Flow {
            shared,
            rx,
            default_capacity: self.capacity,
            bound: 1 + self.capacity as u64,
            per_envelope: 1,
        }
    }
}

/// The source thread: pulls inputs until they end, the run is cancelled or the puller fails.
fn source_loop<T, F>(sh: &Shared, counters: &StageCounters, tx: &Sender<Envelope<T>>, mut next: F)
where
    F: FnMut(&crate::CancelToken) -> Result<Option<Input<T>>, String>,
{
    let cancel = sh.cancel.clone();
    let mut position = 0_u64;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let input = match next(&cancel) {
            Ok(Some(i)) => i,
            Ok(None) => break,
            Err(message) => {
                counters.error();
                sh.fail_run(Error::Panic {
                    stage: "source".into(),
                    item: position,
                    message,
                });
                break;
            }
        };
        let id = input.id.unwrap_or(position);
        position += 1;
        counters.received(1);
        let meta = Meta {
            id,
            deadline: input.deadline,
            created: std::time::Instant::now(),
            cancel: cancel.clone(),
            span: match &input.parent {
                Some(parent) => tracing::info_span!(parent: parent, "item", id),
                None => tracing::info_span!("item", id),
            },
            weight: 1,
            members: Vec::new(),
        };
        sh.items.fetch_add(1, Relaxed);
        sh.metrics.enter(1);
        match send(
            tx,
            Envelope {
                meta,
                value: input.value,
            },
            &cancel,
        ) {
            Ok(()) => counters.emitted(1),
            Err(env) => {
                sh.item_cancelled(counters, &env.meta);
                break;
            }
        }
    }
}
