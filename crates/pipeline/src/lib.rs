//! Bounded, backpressured, cancellable stage graphs with batching, metrics and tracing.
//!
//! A pipeline is a source, stages (each with N worker threads, ordered or not), batchers and
//! unbatchers, and a sink, joined by bounded crossbeam channels: however slow the consumer,
//! the items in flight never exceed the sum of the capacities plus the workers
//! ([`Flow::in_flight_bound`]). It is generic over item types and knows nothing of models.
//!
//! ```
//! use std::time::Duration;
//! use inferkit_pipeline::{BatchOptions, ErrorPolicy, Pipeline, StageOptions};
//!
//! let failed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
//! let dead = failed.clone();
//! let run = Pipeline::builder()
//!     .with_policy(ErrorPolicy::Skip)
//!     .with_dead_letter(move |d| dead.lock().unwrap().push(d.item))
//!     .with_capacity(16)
//!     .source(0..100_u64)
//!     .stage("parse", StageOptions::new().with_workers(2), |x: u64| {
//!         if x == 13 { Err("unlucky".to_string()) } else { Ok(x) }
//!     })
//!     .batch("batch", BatchOptions::new(8, Duration::from_millis(2)))
//!     .map("infer", StageOptions::new().with_workers(1), |b: Vec<u64>| b.into_iter().map(|x| x * 2).collect::<Vec<_>>())
//!     .unbatch::<u64>("unbatch")
//!     .sink(|_y: u64| Ok::<(), std::convert::Infallible>(()));
//! let report = run.wait()?;
//! assert_eq!((report.items, report.delivered, report.failed), (100, 99, 1));
//! assert_eq!(*failed.lock().unwrap(), vec![13]);
//! assert!(report.metrics.to_prometheus().contains("inferkit_pipeline_errors_total{stage=\"parse\"} 1"));
//! # Ok::<(), inferkit_pipeline::Error>(())
//! ```
//!
//! - Every item travels in an [`Envelope`]: its id, optional deadline ([`Input`]), the
//!   run's [`CancelToken`] and its `tracing` span (opened at the source; each stage enters a
//!   child span on its own thread). An item whose deadline passed is dropped, counted and
//!   reported by id ([`Report::expired`]).
//! - [`ErrorPolicy`]: fail fast (the first error cancels the run and comes back from
//!   [`Run::wait`] with the stage and item id) or skip (counted, handed to the dead-letter
//!   callback). A panic in a stage is caught and becomes [`Error::Panic`].
//! - Shutdown: the end of input drains and joins every thread; dropping a [`Run`] or
//!   [`Outputs`] cancels and joins. No thread outlives the run.
//! - Threads: workers default to [`available_cpus`]; a stage can pin its workers
//!   ([`StageOptions::with_pin_to_cores`]) and own a rayon pool ([`StageOptions::with_rayon_threads`]).
//! - [`Metrics`]: atomics per stage (received, emitted, errors, expired, cancelled, queue
//!   depth, busy time, latency histogram); [`Snapshot::to_prometheus`]; with the `metrics`
//!   feature, the same through the `metrics` facade.
//! - [`Redact`]: a log field formatter that hides tokens, prompts and passwords;
//!   [`Redact::json`] the same as a JSON-lines event formatter ([`RedactJson`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod builder;
mod cancel;
mod envelope;
mod error;
mod flow;
mod metrics;
mod options;
mod priority;
mod redact;
mod run;
mod shared;
mod submit;

pub use builder::{Builder, Pipeline};
pub use cancel::CancelToken;
pub use envelope::{Envelope, Input};
pub use error::{BoxError, DeadLetter, Error, Result};
pub use flow::Flow;
pub use metrics::{Collector, LATENCY_BUCKETS, Metrics, Snapshot, StageSnapshot};
pub use options::{BatchOptions, ErrorPolicy, StageOptions, available_cpus};
pub use priority::PrioritySubmitter;
/// The Prometheus client whose registry a [`Collector`] joins.
pub use prometheus_client;
pub use redact::{DEFAULT_REDACTED, Redact, RedactJson};
pub use run::{Collected, Outputs, Report, Run};
pub use submit::{SubmitError, Submitter};
