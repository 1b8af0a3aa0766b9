//! When threads start: not while a pipeline is being built, only once it is ended (a sink,
//! `outputs()` or `collect()`); a pipeline dropped unended starts nothing and drops its
//! source and stage closures at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::time::Duration;

use inferkit_pipeline::{BatchOptions, Input, Pipeline, StageOptions, SubmitError};

type Never = std::convert::Infallible;

/// A source that records how often it was pulled, tells `first_pull` about the first pull,
/// and records being dropped.
struct Watched {
    left: u32,
    pulls: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
    first_pull: Option<mpsc::Sender<()>>,
}

impl Iterator for Watched {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        self.pulls.fetch_add(1, SeqCst);
        if let Some(tx) = self.first_pull.take() {
            let _ = tx.send(());
        }
        (self.left > 0).then(|| {
            self.left -= 1;
            self.left
        })
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.dropped.store(true, SeqCst);
    }
}

fn watched(
    n: u32,
) -> (
    Watched,
    Arc<AtomicUsize>,
    Arc<AtomicBool>,
    mpsc::Receiver<()>,
) {
    let pulls = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let w = Watched {
        left: n,
        pulls: Arc::clone(&pulls),
        dropped: Arc::clone(&dropped),
        first_pull: Some(tx),
    };
    (w, pulls, dropped, rx)
}

/// Counts how many of a stage's closures are alive.
struct Alive(Arc<AtomicUsize>);
impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

#[test]
fn a_dropped_unended_pipeline_never_reads_its_source_and_drops_everything_at_once() {
    let (source, pulls, dropped, _first) = watched(1000);
    let alive = Arc::new(AtomicUsize::new(1));
    let guard = Alive(Arc::clone(&alive));
    let flow = Pipeline::builder()
        .source(source)
        .stage(
            "double",
            StageOptions::new().with_workers(3).with_rayon_threads(2),
            move |x: u32| {
                let _ = &guard;
                Ok::<_, Never>(x * 2)
            },
        )
        .batch("batch", BatchOptions::new(4, Duration::from_millis(1)))
        .unbatch::<u32>("unbatch");
    assert_eq!(
        pulls.load(SeqCst),
        0,
        "the source was read before the pipeline was ended"
    );
    drop(flow);
    // Synchronous: nothing ran, so nothing owns the source or the closure but the flow.
    assert!(
        dropped.load(SeqCst),
        "the source outlived its unended pipeline"
    );
    assert_eq!(
        alive.load(SeqCst),
        0,
        "the stage closure outlived its unended pipeline"
    );
    assert_eq!(pulls.load(SeqCst), 0);
}

#[test]
fn the_source_is_read_only_once_the_pipeline_is_ended() {
    let (source, pulls, dropped, first) = watched(10);
    let flow = Pipeline::builder().source(source).map(
        "inc",
        StageOptions::new().with_workers(2).with_ordered(true),
        |x: u32| x + 1,
    );
    // Waiting here only gives a thread started too early the chance to show itself.
    assert_eq!(
        first.recv_timeout(Duration::from_millis(200)),
        Err(mpsc::RecvTimeoutError::Timeout),
        "the source was read before the pipeline was ended"
    );
    assert_eq!(pulls.load(SeqCst), 0);
    let out = flow.collect().expect("run");
    assert_eq!(out.values(), (1..=10).rev().collect::<Vec<u32>>());
    assert_eq!(out.report.items, 10);
    assert!(dropped.load(SeqCst));
    assert!(first.try_recv().is_ok());
}

#[test]
fn submitted_items_wait_for_the_start_and_an_unended_flow_closes_the_queue() {
    let (submitter, flow) = Pipeline::builder().with_capacity(3).submitter::<u32>();
    let flow = flow.map("neg", StageOptions::new().with_workers(1), |x: u32| 100 - x);
    for x in 0..3 {
        submitter
            .try_submit(Input::new(x))
            .expect("room in the intake queue");
    }
    // Nothing drains the queue before the start: the fourth is refused, handed back.
    match submitter.try_submit(Input::new(3)) {
        Err(SubmitError::Full(item)) => assert_eq!(*item.value(), 3),
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(submitter.queued(), 3);
    let sink_got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let got = Arc::clone(&sink_got);
    let run = flow.sink(move |v: u32| {
        got.lock().unwrap().push(v);
        Ok::<_, Never>(())
    });
    submitter
        .submit_timeout(Input::new(3), Duration::from_secs(10))
        .expect("the started pipeline drains the queue");
    drop(submitter);
    let report = run.wait().expect("run");
    assert_eq!(report.delivered, 4);
    let mut v = sink_got.lock().unwrap().clone();
    v.sort_unstable();
    assert_eq!(v, vec![97, 98, 99, 100]);

    let (submitter, flow) = Pipeline::builder().submitter::<u32>();
    drop(flow);
    match submitter.try_submit(Input::new(7)) {
        Err(SubmitError::Closed(item)) => assert_eq!(*item.value(), 7),
        other => panic!("expected Closed, got {other:?}"),
    }
}
