//! Per-stage counters (atomics only), snapshots, and Prometheus text rendering.

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets; a last one is `+Inf`.
pub const LATENCY_BUCKETS: [f64; 14] = [
    1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
];

/// Live counters of one stage, updated by its workers.
pub(crate) struct StageCounters {
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) workers: usize,
    received: AtomicU64,
    emitted: AtomicU64,
    errors: AtomicU64,
    expired: AtomicU64,
    cancelled: AtomicU64,
    busy_ns: AtomicU64,
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_ns: AtomicU64,
    depth: Box<dyn Fn() -> usize + Send + Sync>,
}

macro_rules! facade {
    ($kind:ident, $name:literal, $stage:expr, $v:expr) => {
        #[cfg(feature = "metrics")]
        metrics::$kind!($name, "stage" => $stage.to_string()).increment($v);
    };
}

impl StageCounters {
    pub(crate) fn new(
        name: &str,
        kind: &'static str,
        workers: usize,
        depth: Box<dyn Fn() -> usize + Send + Sync>,
    ) -> Self {
        StageCounters {
            name: name.to_string(),
            kind,
            workers,
            received: AtomicU64::new(0),
            emitted: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_ns: AtomicU64::new(0),
            depth,
        }
    }

    pub(crate) fn received(&self, n: u64) {
        self.received.fetch_add(n, Relaxed);
        facade!(counter, "inferkit_pipeline_received_total", self.name, n);
    }
    pub(crate) fn emitted(&self, n: u64) {
        self.emitted.fetch_add(n, Relaxed);
        facade!(counter, "inferkit_pipeline_emitted_total", self.name, n);
    }
    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
        facade!(counter, "inferkit_pipeline_errors_total", self.name, 1);
    }
    pub(crate) fn expired(&self, n: u64) {
        self.expired.fetch_add(n, Relaxed);
        facade!(counter, "inferkit_pipeline_expired_total", self.name, n);
    }
    pub(crate) fn cancelled(&self, n: u64) {
        self.cancelled.fetch_add(n, Relaxed);
        facade!(counter, "inferkit_pipeline_cancelled_total", self.name, n);
    }
    /// One call's processing time: busy time and the latency histogram.
    pub(crate) fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.busy_ns.fetch_add(ns, Relaxed);
        self.latency_sum_ns.fetch_add(ns, Relaxed);
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency[i].fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        metrics::histogram!("inferkit_pipeline_latency_seconds", "stage" => self.name.clone())
            .record(s);
    }

    fn snapshot(&self) -> StageSnapshot {
        StageSnapshot {
            name: self.name.clone(),
            kind: self.kind,
            workers: self.workers,
            received: self.received.load(Relaxed),
            emitted: self.emitted.load(Relaxed),
            errors: self.errors.load(Relaxed),
            expired: self.expired.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            queue_depth: (self.depth)(),
            busy: Duration::from_nanos(self.busy_ns.load(Relaxed)),
            latency_buckets: self.latency.iter().map(|c| c.load(Relaxed)).collect(),
            latency_sum: Duration::from_nanos(self.latency_sum_ns.load(Relaxed)),
        }
    }
}

/// The metrics of a run: every stage's counters and the items in flight.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<MetricsInner>,
}

#[derive(Default)]
struct MetricsInner {
    stages: Mutex<Vec<Arc<StageCounters>>>,
    in_flight: AtomicI64,
    peak_in_flight: AtomicI64,
}

impl Metrics {
    pub(crate) fn register(&self, c: StageCounters) -> Arc<StageCounters> {
        let c = Arc::new(c);
        self.inner
            .stages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&c));
        c
    }

    /// `n` more source items in flight (a source send, or an unbatcher's extra outputs).
    pub(crate) fn enter(&self, n: i64) {
        let now = self.inner.in_flight.fetch_add(n, Relaxed) + n;
        self.inner.peak_in_flight.fetch_max(now, Relaxed);
    }

    /// `n` source items done with (delivered, failed, expired or cancelled).
    pub(crate) fn leave(&self, n: i64) {
        self.inner.in_flight.fetch_sub(n, Relaxed);
    }

    /// A consistent-enough view of every counter (each is read atomically; the set is not
    /// one atomic read), for progress bars and exporters.
    pub fn snapshot(&self) -> Snapshot {
        let stages = self
            .inner
            .stages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|c| c.snapshot())
            .collect();
        Snapshot {
            stages,
            in_flight: self.inner.in_flight.load(Relaxed),
            peak_in_flight: self.inner.peak_in_flight.load(Relaxed),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// One stage's counters at one moment.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StageSnapshot {
    /// The stage's name.
    pub name: String,
    /// `source`, `stage`, `batch`, `unbatch` or `sink`.
    pub kind: &'static str,
    /// Its worker threads.
    pub workers: usize,
    /// Envelopes taken from its input.
    pub received: u64,
    /// Envelopes sent on (or, for a sink, consumed).
    pub emitted: u64,
    /// Items its closure failed or panicked on.
    pub errors: u64,
    /// Items dropped because their deadline had passed.
    pub expired: u64,
    /// Items dropped because the run was cancelled.
    pub cancelled: u64,
    /// Envelopes waiting in its input channel.
    pub queue_depth: usize,
    /// Time its workers spent in its closure, summed over workers.
    pub busy: Duration,
    /// Calls per latency bucket ([`LATENCY_BUCKETS`], then `+Inf`), not cumulative.
    pub latency_buckets: Vec<u64>,
    /// Total time of the calls in the histogram.
    pub latency_sum: Duration,
}

impl StageSnapshot {
    /// Calls in the latency histogram.
    pub fn calls(&self) -> u64 {
        self.latency_buckets.iter().sum()
    }

    /// An upper bound of the `q`-quantile (0..=1) of the per-call latency: the bucket bound
    /// it falls in (`None` when there were no calls or it is in the `+Inf` bucket).
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        let n = self.calls();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * n as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.latency_buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return LATENCY_BUCKETS.get(i).copied();
            }
        }
        None
    }
}

/// Every stage's counters at one moment, plus the items in flight.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Snapshot {
    /// Stages in pipeline order (the source first, the sink last).
    pub stages: Vec<StageSnapshot>,
    /// Source items sent and not yet delivered, failed, expired or cancelled.
    pub in_flight: i64,
    /// The most there ever were.
    pub peak_in_flight: i64,
}

impl Snapshot {
    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Option<&StageSnapshot> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Renders the snapshot in the Prometheus text exposition format (version 0.0.4): a
    /// `# HELP` and `# TYPE` line per metric family, one sample per stage labelled
    /// `stage="…"`, the latency as a histogram with cumulative `le` buckets. (A
    /// [`Collector`] renders several runs under labels of their own.)
    ///
    /// ```
    /// use inferkit_pipeline::Pipeline;
    /// let out = Pipeline::builder().source(0..10).map("double", Default::default(), |x: i32| x * 2).collect()?;
    /// let text = out.report.metrics.to_prometheus();
    /// assert!(text.contains("inferkit_pipeline_emitted_total{stage=\"double\"} 10"));
    /// # Ok::<(), inferkit_pipeline::Error>(())
    /// ```
    pub fn to_prometheus(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Collector::new().with_run(NO_LABELS, self.clone())));
        let mut out = String::new();
        // (writing to a String cannot fail)
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

const NO_LABELS: [(&str, &str); 0] = [];

/// The snapshots of several runs as one Prometheus collector (`prometheus-client`): each
/// metric family once, every run's samples under labels of its own (a server's `model` and
/// `version`, say) beside `stage`. Register it in a
/// [`prometheus_client::registry::Registry`] with the application's own metrics.
///
/// ```
/// use inferkit_pipeline::{Collector, Pipeline};
/// use inferkit_pipeline::prometheus_client::{encoding::prometheus_text::encode, registry::Registry};
/// let a = Pipeline::builder().source(0..3).map("double", Default::default(), |x: i32| x * 2).collect()?;
/// let b = Pipeline::builder().source(0..5).map("double", Default::default(), |x: i32| x * 2).collect()?;
/// let mut registry = Registry::default();
/// registry.register_collector(Box::new(
///     Collector::new()
///         .with_run([("model", "m"), ("version", "1")], a.report.metrics)
///         .with_run([("model", "m"), ("version", "2")], b.report.metrics),
/// ));
/// let mut text = String::new();
/// encode(&mut text, &registry).unwrap();
/// assert!(text.contains("inferkit_pipeline_emitted_total{model=\"m\",version=\"2\",stage=\"double\"} 5"));
/// assert_eq!(text.matches("# TYPE inferkit_pipeline_emitted_total counter").count(), 1);
/// # Ok::<(), inferkit_pipeline::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Collector {
    runs: Vec<(Vec<(String, String)>, Snapshot)>,
}

impl Collector {
    /// No runs yet.
    pub fn new() -> Self {
        Collector::default()
    }

    /// Adds a run's snapshot under `labels` (names other than `stage`).
    #[must_use]
    pub fn with_run<K: Into<String>, V: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (K, V)>,
        snapshot: Snapshot,
    ) -> Self {
        self.push(labels, snapshot);
        self
    }

    /// Adds a run's snapshot under `labels` (names other than `stage`).
    pub fn push<K: Into<String>, V: Into<String>>(
        &mut self,
        labels: impl IntoIterator<Item = (K, V)>,
        snapshot: Snapshot,
    ) {
        let labels = labels
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.runs.push((labels, snapshot));
    }

    /// Every stage of every run with its labels (the run's, then `stage`).
    fn stages(&self) -> impl Iterator<Item = (Vec<(&str, &str)>, &StageSnapshot)> {
        self.runs.iter().flat_map(|(labels, snap)| {
            snap.stages.iter().map(move |s| {
                let mut l: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                l.push(("stage", s.name.as_str()));
                (l, s)
            })
        })
    }

    /// Every run with its labels.
    fn runs(&self) -> impl Iterator<Item = (Vec<(&str, &str)>, &Snapshot)> {
        self.runs.iter().map(|(labels, snap)| {
            let l = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            (l, snap)
        })
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let counters: [CounterFamily; 5] = [
            ("received", "Envelopes taken from the stage's input.", |s| {
                s.received
            }),
            (
                "emitted",
                "Envelopes the stage sent on (a sink: consumed).",
                |s| s.emitted,
            ),
            (
                "errors",
                "Items the stage's closure failed or panicked on.",
                |s| s.errors,
            ),
            (
                "expired",
                "Items dropped by the stage because their deadline had passed.",
                |s| s.expired,
            ),
            (
                "cancelled",
                "Items dropped by the stage because the run was cancelled.",
                |s| s.cancelled,
            ),
        ];
        for (name, help, get) in counters {
            let name = format!("inferkit_pipeline_{name}");
            let mut family = encoder.encode_descriptor(&name, help, None, MetricType::Counter)?;
            for (labels, s) in self.stages() {
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&get(s), None)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "inferkit_pipeline_queue_depth",
            "Envelopes waiting in the stage's input channel.",
            None,
            MetricType::Gauge,
        )?;
        for (labels, s) in self.stages() {
            family
                .encode_family(&labels)?
                .encode_gauge(&(s.queue_depth as u64))?;
        }
        let mut family = encoder.encode_descriptor(
            "inferkit_pipeline_busy_seconds",
            "Time the stage's workers spent in its closure.",
            None,
            MetricType::Counter,
        )?;
        for (labels, s) in self.stages() {
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, f64>(&s.busy.as_secs_f64(), None)?;
        }
        let mut family = encoder.encode_descriptor(
            "inferkit_pipeline_latency_seconds",
            "Time of one call of the stage's closure.",
            None,
            MetricType::Histogram,
        )?;
        for (labels, s) in self.stages() {
            let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(s.latency_buckets.iter().copied())
                .collect();
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(
                    s.latency_sum.as_secs_f64(),
                    s.calls(),
                    &buckets,
                    None,
                )?;
        }
        let gauges: [RunFamily; 2] = [
            (
                "in_flight",
                "Source items sent and not yet delivered or dropped.",
                |r| r.in_flight,
            ),
            (
                "in_flight_peak",
                "The most source items ever in flight at once.",
                |r| r.peak_in_flight,
            ),
        ];
        for (name, help, get) in gauges {
            let name = format!("inferkit_pipeline_{name}");
            let mut family = encoder.encode_descriptor(&name, help, None, MetricType::Gauge)?;
            for (labels, run) in self.runs() {
                family.encode_family(&labels)?.encode_gauge(&get(run))?;
            }
        }
        Ok(())
    }
}

/// A counter family of stages: name (without `inferkit_pipeline_` and `_total`), help
/// text, and how to read it from a stage.
type CounterFamily = (&'static str, &'static str, fn(&StageSnapshot) -> u64);
/// A gauge family of runs: name (without `inferkit_pipeline_`), help, how to read it.
type RunFamily = (&'static str, &'static str, fn(&Snapshot) -> i64);
