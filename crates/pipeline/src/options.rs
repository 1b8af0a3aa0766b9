//! The options of a pipeline's parts: what a stage and a batcher are given, and what a run
//! does on an error. Used by the builder and the flow, which depend on this, not on each
//! other.

use std::time::Duration;

/// What a run does when a stage fails on an item (returns an error or panics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorPolicy {
    /// The first error cancels the run; `wait` returns it with the stage name and item id.
    #[default]
    FailFast,
    /// The item is counted, handed to the dead-letter callback with its id and error, and
    /// the run goes on.
    Skip,
}

/// Options of one stage: [`StageOptions::new`] and the `with_*` methods.
///
/// ```
/// use inferkit_pipeline::StageOptions;
/// let o = StageOptions::new().with_workers(4).with_capacity(32).with_ordered(true);
/// assert_eq!(o.worker_count(), 4);
/// ```
#[derive(Debug, Clone, Default)]
pub struct StageOptions {
    pub(crate) workers: Option<usize>,
    pub(crate) capacity: Option<usize>,
    pub(crate) ordered: bool,
    pub(crate) cores: Option<Vec<usize>>,
    pub(crate) rayon_threads: Option<usize>,
}

impl StageOptions {
    /// Defaults: one worker per CPU this process may use, the pipeline's default capacity,
    /// unordered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Worker threads (default: [`available_cpus`], which honours affinity masks and cgroup
    /// CPU quotas).
    #[must_use]
    pub fn with_workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Bound of the channel this stage writes into (default: the pipeline's, see
    /// [`Builder::with_capacity`](crate::Builder::with_capacity)).
    #[must_use]
    pub fn with_capacity(mut self, n: usize) -> Self {
        self.capacity = Some(n);
        self
    }

    /// Emit results in the order the stage received its inputs (default: as they finish).
    #[must_use]
    pub fn with_ordered(mut self, yes: bool) -> Self {
        self.ordered = yes;
        self
    }

    /// Pins worker `i` to core `cores[i % cores.len()]` (best effort; a failure is logged).
    #[must_use]
    pub fn with_pin_to_cores(mut self, cores: Vec<usize>) -> Self {
        self.cores = Some(cores);
        self
    }

    /// Runs the stage's closure inside a rayon pool of `n` threads owned by this stage, so
    /// that rayon work inside it uses those threads, not the global pool: choose
    /// `workers × n` ≤ the cores to keep stages from oversubscribing the machine.
    #[must_use]
    pub fn with_rayon_threads(mut self, n: usize) -> Self {
        self.rayon_threads = Some(n);
        self
    }

    /// The worker count this stage will get.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(available_cpus)
    }
}

/// Options of a batcher: [`BatchOptions::new`] and the `with_*` methods
/// (`#[non_exhaustive]`: a field added later is not a breaking change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchOptions {
    /// A batch is sent when it holds this many items.
    pub max_items: usize,
    /// … or when its oldest item has been in the pipeline this long (counted from when the
    /// source sent it, as Triton's `max_queue_delay` counts from enqueue); a partial batch
    /// is also sent at the end of input. A partial batch leaves a little before this
    /// (a tenth of it, at most 150 µs) so that it is in the next stage's hands by then:
    /// waking a parked consumer takes tens of µs.
    pub max_delay: Duration,
    /// Bound of the channel the batcher writes into (batches), `None`: the pipeline's.
    pub capacity: Option<usize>,
}

impl BatchOptions {
    /// Batches of up to `max_items`, sent after at most `max_delay`.
    pub fn new(max_items: usize, max_delay: Duration) -> Self {
        BatchOptions {
            max_items,
            max_delay,
            capacity: None,
        }
    }

    /// Sets [`capacity`](Self::capacity): the bound of the channel the batcher writes into.
    #[must_use]
    pub fn with_capacity(mut self, batches: usize) -> Self {
        self.capacity = Some(batches);
        self
    }
}

/// The CPUs this process may run on: `std::thread::available_parallelism`, which honours
/// the affinity mask and cgroup CPU quotas (1 if it cannot tell).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
