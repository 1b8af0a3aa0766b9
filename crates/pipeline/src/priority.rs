//! An intake queue served by priority: [`Builder::priority_submitter`](crate::Builder::priority_submitter)
//! and its [`PrioritySubmitter`].

use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::CancelToken;
use crate::envelope::Input;
use crate::submit::SubmitError;

/// How often an idle source looks at its run's cancel token while it waits for items.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// Hands items to a pipeline from any thread through a bounded intake queue served by
/// priority: the lowest `priority` value first, first come first served within a value.
/// A full queue refuses at once, handing the item back ([`SubmitError::Full`]) — for a
/// server, the 503 / `RESOURCE_EXHAUSTED` answer instead of an unbounded wait. The input
/// ends when every clone is dropped or [`close`](Self::close) is called; what is queued
/// then is still served.
///
/// ```
/// use inferkit_pipeline::{Input, Pipeline, SubmitError};
///
/// let (submitter, flow) = Pipeline::builder().priority_submitter::<&str>(2);
/// submitter.try_submit(Input::new("later"), 5).unwrap();
/// submitter.try_submit(Input::new("first"), 1).unwrap();
/// // full: the item comes back
/// let Err(SubmitError::Full(back)) = submitter.try_submit(Input::new("third"), 0) else {
///     panic!("the queue holds 2");
/// };
/// assert_eq!(*back.value(), "third");
/// drop(submitter); // the end of input
/// let out = flow.collect()?;
/// assert_eq!(out.values(), vec!["first", "later"]);
/// # Ok::<(), inferkit_pipeline::Error>(())
/// ```
pub struct PrioritySubmitter<T> {
    queue: Arc<Queue<T>>,
}

struct Queue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    capacity: usize,
}

struct State<T> {
    heap: BinaryHeap<Queued<T>>,
    seq: u64,
    closed: bool,
    submitters: usize,
}

struct Queued<T> {
    priority: u64,
    seq: u64,
    item: Input<T>,
}

impl<T> PartialEq for Queued<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.priority, self.seq) == (o.priority, o.seq)
    }
}
impl<T> Eq for Queued<T> {}
impl<T> PartialOrd for Queued<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Queued<T> {
    /// The max-heap's top is the lowest (priority, arrival).
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.priority, o.seq).cmp(&(self.priority, self.seq))
    }
}

impl<T> Queue<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// The next item by priority; waits while the queue is empty; None once it is closed and
    /// drained, or the run is cancelled.
    fn pop(&self, cancel: &CancelToken) -> Option<Input<T>> {
        let mut s = self.lock();
        loop {
            if cancel.is_cancelled() {
                return None;
            }
            if let Some(q) = s.heap.pop() {
                return Some(q.item);
            }
            if s.closed {
                return None;
            }
            s = self
                .ready
                .wait_timeout(s, CANCEL_POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Closes the queue when the pipeline's source is dropped (the run ended, failed or was
/// cancelled): submitters are refused from then on.
struct CloseOnDrop<T>(Arc<Queue<T>>);

impl<T> Drop for CloseOnDrop<T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl<T> PrioritySubmitter<T> {
    /// A queue of `capacity` items (at least 1) and the source function that drains it.
    #[allow(clippy::type_complexity)]
    pub(crate) fn new(
        capacity: usize,
    ) -> (
        Self,
        impl FnMut(&CancelToken) -> Result<Option<Input<T>>, String> + Send + 'static,
    )
    where
        T: Send + 'static,
    {
        let queue = Arc::new(Queue {
            state: Mutex::new(State {
                heap: BinaryHeap::new(),
                seq: 0,
                closed: false,
                submitters: 1,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        });
        let source = CloseOnDrop(Arc::clone(&queue));
        (PrioritySubmitter { queue }, move |cancel: &CancelToken| {
            Ok(source.0.pop(cancel))
        })
    }

    /// Queues the item at `priority` (lower values are served first) if the queue has room
    /// now.
    ///
    /// # Errors
    /// [`SubmitError::Full`] when it has none, [`SubmitError::Closed`] when the pipeline
    /// takes no more items; the item comes back in both.
    pub fn try_submit(&self, item: Input<T>, priority: u64) -> Result<(), SubmitError<Input<T>>> {
        let mut s = self.queue.lock();
        if s.closed {
            return Err(SubmitError::Closed(item));
        }
        if s.heap.len() >= self.queue.capacity {
            return Err(SubmitError::Full(item));
        }
        s.seq += 1;
        let seq = s.seq;
        s.heap.push(Queued {
            priority,
            seq,
            item,
        });
        drop(s);
        self.queue.ready.notify_one();
        Ok(())
    }

    /// Ends the input for every clone: no more items are taken; what is queued is served.
    pub fn close(&self) {
        self.queue.close();
    }

    /// Items waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.lock().heap.len()
    }

    /// The queue's bound.
    pub fn capacity(&self) -> usize {
        self.queue.capacity
    }
}

impl<T> Clone for PrioritySubmitter<T> {
    fn clone(&self) -> Self {
        self.queue.lock().submitters += 1;
        PrioritySubmitter {
            queue: Arc::clone(&self.queue),
        }
    }
}

impl<T> Drop for PrioritySubmitter<T> {
    fn drop(&mut self) {
        let mut s = self.queue.lock();
        s.submitters -= 1;
        if s.submitters == 0 {
            s.closed = true;
            drop(s);
            self.queue.ready.notify_all();
        }
    }
}

impl<T> std::fmt::Debug for PrioritySubmitter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrioritySubmitter")
            .field("queued", &self.queued())
            .field("capacity", &self.capacity())
            .finish()
    }
}
