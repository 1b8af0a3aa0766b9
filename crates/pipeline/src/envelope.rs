//! What travels on every edge: an item with its id, deadline, cancellation and span.

use std::time::Instant;

use tracing::Span;

use crate::CancelToken;

/// An item with what travels beside it from stage to stage.
///
/// Stages' closures see only the value; the envelope is how the pipeline keeps the item's
/// identity (for errors, expiry and dead letters), deadline, the run's cancellation token,
/// and the item's `tracing` span (opened at the source, entered by every stage's child span,
/// on whatever thread runs it).
#[derive(Debug)]
pub struct Envelope<T> {
    pub(crate) meta: Meta,
    pub(crate) value: T,
}

#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) id: u64,
    pub(crate) deadline: Option<Instant>,
    /// When the source sent it (a batch: its oldest member's).
    pub(crate) created: Instant,
    pub(crate) cancel: CancelToken,
    pub(crate) span: Span,
    /// Source items this envelope stands for (1, or a batch's size).
    pub(crate) weight: u64,
    /// A batch's members (id, span), so the unbatcher restores them.
    pub(crate) members: Vec<(u64, Span)>,
}

impl<T> Envelope<T> {
    /// The item's id.
    pub fn id(&self) -> u64 {
        self.meta.id
    }

    /// The item's deadline, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.meta.deadline
    }

    /// When the source sent the item (for a batch, its oldest member).
    pub fn created(&self) -> Instant {
        self.meta.created
    }

    /// The run's cancellation token.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.meta.cancel
    }

    /// The item's span.
    pub fn span(&self) -> &Span {
        &self.meta.span
    }

    /// The value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value, consuming the envelope.
    pub fn into_value(self) -> T {
        self.value
    }

    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.meta.deadline.is_some_and(|d| now >= d)
    }
}

/// A source item with an optional deadline and id (by default ids count from 0 in source
/// order).
///
/// ```
/// use std::time::{Duration, Instant};
/// use inferkit_pipeline::Input;
/// let i = Input::new("request").with_deadline(Instant::now() + Duration::from_millis(50));
/// assert!(i.deadline().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct Input<T> {
    pub(crate) value: T,
    pub(crate) deadline: Option<Instant>,
    pub(crate) id: Option<u64>,
    pub(crate) parent: Option<tracing::Span>,
}

impl<T> Input<T> {
    /// An item without deadline, numbered by the source.
    pub fn new(value: T) -> Self {
        Input {
            value,
            deadline: None,
            id: None,
            parent: None,
        }
    }

    /// Sets the instant after which no stage processes the item (it is counted as expired
    /// and reported by id instead).
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the item's id (a request id, say) instead of its source position.
    #[must_use]
    pub fn with_id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self
    }

    /// Makes the item's `item` span (and so the spans of the stages that process it alone)
    /// a child of `span` — a request's span, say — instead of a root: a trace then shows
    /// the item's way through the pipeline under the request. Batches are spans of their
    /// own that follow from their items' spans.
    #[must_use]
    pub fn with_parent(mut self, span: tracing::Span) -> Self {
        self.parent = Some(span);
        self
    }

    /// The deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value, without its deadline and id.
    pub fn into_value(self) -> T {
        self.value
    }
}
