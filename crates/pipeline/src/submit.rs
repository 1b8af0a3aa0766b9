//! [`Submitter`]: items handed to a running pipeline from any thread, through a bounded
//! intake queue that answers [`SubmitError::Full`] instead of waiting without limit.

use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};

use crate::Input;

/// Why an item was not taken. Either way the item comes back, its deadline and id intact,
/// for the caller to retry, shed (an HTTP 503, a gRPC `RESOURCE_EXHAUSTED`) or report.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SubmitError<T> {
    /// The intake queue is full (for [`Submitter::submit_timeout`] and
    /// [`Submitter::submit_deadline`]: still full when the wait ran out).
    Full(T),
    /// The pipeline takes no more items: it was cancelled, failed or finished.
    Closed(T),
}

impl<T> SubmitError<T> {
    /// The item that was not taken.
    pub fn into_inner(self) -> T {
        match self {
            SubmitError::Full(t) | SubmitError::Closed(t) => t,
        }
    }

    /// Whether the queue was full (the pipeline still runs).
    pub fn is_full(&self) -> bool {
        matches!(self, SubmitError::Full(_))
    }

    /// Whether the pipeline takes no more items.
    pub fn is_closed(&self) -> bool {
        matches!(self, SubmitError::Closed(_))
    }
}

// Like crossbeam's errors: no `T: Debug` needed, the item is not printed.
impl<T> std::fmt::Debug for SubmitError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SubmitError::Full(_) => "Full(..)",
            SubmitError::Closed(_) => "Closed(..)",
        })
    }
}

impl<T> std::fmt::Display for SubmitError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SubmitError::Full(_) => "the pipeline's intake queue is full",
            SubmitError::Closed(_) => "the pipeline takes no more items",
        })
    }
}

impl<T> std::error::Error for SubmitError<T> {}

/// Hands items to a pipeline started with [`Builder::submitter`](crate::Builder::submitter),
/// from any number of threads (it is `Clone`). The intake queue holds at most the
/// pipeline's capacity; every way of submitting says what happens when it is full, and none
/// waits without a way out: a cancelled or failed run closes the queue, which wakes every
/// waiting `submit` with [`SubmitError::Closed`].
///
/// The input ends when the last clone is dropped: the stages then drain what was taken and
/// the output side ends cleanly.
///
/// ```
/// use std::time::Duration;
/// use inferkit_pipeline::{Input, Pipeline, StageOptions, SubmitError};
///
/// let (submitter, flow) = Pipeline::builder().with_capacity(2).submitter::<u32>();
/// let outputs = flow
///     .map("double", StageOptions::new().with_workers(1), |x: u32| x * 2)
///     .outputs();
/// for x in 0..3 {
///     // a full queue is an answer, with the item handed back
///     match submitter.submit_timeout(Input::new(x), Duration::from_secs(5)) {
///         Ok(()) => {}
///         Err(SubmitError::Full(item)) => panic!("still full: {:?}", item.value()),
///         Err(SubmitError::Closed(_)) => panic!("the run stopped"),
///     }
/// }
/// drop(submitter); // the end of input
/// let mut got: Vec<u32> = outputs.map(|(_, v)| v).collect();
/// got.sort();
/// assert_eq!(got, vec![0, 2, 4]);
/// ```
pub struct Submitter<T> {
    tx: Sender<Input<T>>,
}

impl<T> Clone for Submitter<T> {
    fn clone(&self) -> Self {
        Submitter {
            tx: self.tx.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Submitter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitter")
            .field("queued", &self.tx.len())
            .field("capacity", &self.tx.capacity())
            .finish()
    }
}

impl<T> Submitter<T> {
    pub(crate) fn new(tx: Sender<Input<T>>) -> Self {
        Submitter { tx }
    }

    /// Takes the item if the queue has room now.
    ///
    /// # Errors
    /// [`SubmitError::Full`] when it has none, [`SubmitError::Closed`] when the pipeline
    /// takes no more items; the item comes back in both.
    pub fn try_submit(&self, item: Input<T>) -> Result<(), SubmitError<Input<T>>> {
        self.tx.try_send(item).map_err(|e| match e {
            TrySendError::Full(t) => SubmitError::Full(t),
            TrySendError::Disconnected(t) => SubmitError::Closed(t),
        })
    }

    /// Takes the item, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`try_submit`](Self::try_submit), `Full` once the wait ran out.
    pub fn submit_timeout(
        &self,
        item: Input<T>,
        timeout: Duration,
    ) -> Result<(), SubmitError<Input<T>>> {
        self.tx.send_timeout(item, timeout).map_err(from_timeout)
    }

    /// Takes the item, waiting for room until `deadline` (a request's own deadline, say).
    ///
    /// # Errors
    /// As [`try_submit`](Self::try_submit), `Full` once the deadline passed.
    pub fn submit_deadline(
        &self,
        item: Input<T>,
        deadline: Instant,
    ) -> Result<(), SubmitError<Input<T>>> {
        self.tx.send_deadline(item, deadline).map_err(from_timeout)
    }

    /// Takes the item, waiting for room as long as the pipeline runs.
    ///
    /// # Errors
    /// [`SubmitError::Closed`] when the pipeline takes no more items (never `Full`).
    pub fn submit(&self, item: Input<T>) -> Result<(), SubmitError<Input<T>>> {
        self.tx
            .send(item)
            .map_err(|e| SubmitError::Closed(e.into_inner()))
    }

    /// Items waiting in the intake queue.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// The intake queue's bound.
    pub fn capacity(&self) -> usize {
        self.tx.capacity().unwrap_or(usize::MAX)
    }
}

fn from_timeout<T>(e: SendTimeoutError<T>) -> SubmitError<T> {
    match e {
        SendTimeoutError::Timeout(t) => SubmitError::Full(t),
        SendTimeoutError::Disconnected(t) => SubmitError::Closed(t),
    }
}
