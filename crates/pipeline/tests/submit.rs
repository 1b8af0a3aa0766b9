//! The `Submitter`: a full intake queue is an answer with the item handed back, waits are
//! bounded, and a cancelled run closes the queue. Every test asserts on counts and values,
//! never on time (the waits here only bound how long a broken queue could hang a test).

use std::time::{Duration, Instant};

use inferkit_pipeline::{Input, Metrics, Pipeline, StageOptions, SubmitError, Submitter};

type Never = std::convert::Infallible;

/// Whether nothing can move: the held stage's one worker has its item, the source thread has
/// one in hand it cannot send (the stage's queue is full), and the intake queue is full.
fn saturated(metrics: &Metrics, submitter: &Submitter<u32>) -> bool {
    let snap = metrics.snapshot();
    let (Some(source), Some(held)) = (snap.stage("source"), snap.stage("held")) else {
        return false;
    };
    held.received == 1
        && held.queue_depth == 1
        && source.received == source.emitted + 1
        && submitter.queued() == submitter.capacity()
}

/// Submits 0, 1, 2, … until the pipeline is saturated; returns the ids taken and the
/// refused item. Bounded: 100 items, 10 s.
fn fill(metrics: &Metrics, submitter: &Submitter<u32>) -> (Vec<u32>, SubmitError<Input<u32>>) {
    let start = Instant::now();
    let mut taken = Vec::new();
    let mut next = Input::new(0).with_id(1000);
    while start.elapsed() < Duration::from_secs(10) && taken.len() < 100 {
        match submitter.try_submit(next) {
            Ok(()) => {
                let i = taken.len() as u32;
                taken.push(i);
                next = Input::new(i + 1).with_id(1000 + u64::from(i + 1));
            }
            Err(e) if e.is_full() && saturated(metrics, submitter) => return (taken, e),
            Err(e) => {
                // full for now, but the source thread may still be moving an item
                next = e.into_inner();
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    panic!("not saturated after {} items", taken.len());
}

#[test]
fn a_full_intake_queue_answers_full_and_hands_the_item_back() {
    // One worker held at a gate, every channel of capacity 1: the queue fills after a few
    // items, and then a submit is an answer, not a wait.
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    let (submitter, flow) = Pipeline::builder().with_capacity(1).submitter::<u32>();
    let outputs = flow
        .map(
            "held",
            StageOptions::new().with_workers(1),
            move |x: u32| {
                // Err once the gate is dropped: then every item passes (the timeout only keeps a
                // failing test from hanging)
                let _ = gate_rx.recv_timeout(Duration::from_secs(10));
                x
            },
        )
        .outputs();
    let (taken, full) = fill(&outputs.metrics(), &submitter);
    assert!(full.is_full(), "{full:?}");
    let back = full.into_inner();
    assert_eq!(
        *back.value(),
        taken.len() as u32,
        "the item handed back is the one refused"
    );
    assert_eq!(submitter.queued(), submitter.capacity());
    // waiting a little does not make room while the worker is held
    let e = submitter
        .submit_timeout(back, Duration::from_millis(20))
        .unwrap_err();
    assert!(e.is_full());
    let e = submitter
        .submit_deadline(e.into_inner(), Instant::now() + Duration::from_millis(20))
        .unwrap_err();
    assert!(matches!(e, SubmitError::Full(ref i) if *i.value() == taken.len() as u32));
    // open the gate, end the input: everything taken comes out, and the outputs end
    drop(gate_tx);
    drop(submitter);
    let mut got: Vec<(u64, u32)> = outputs.collect();
    got.sort();
    let want: Vec<(u64, u32)> = taken.iter().map(|&i| (1000 + u64::from(i), i)).collect();
    assert_eq!(got, want);
}

#[test]
fn cancelling_closes_the_intake_queue_and_wakes_a_waiting_submit() {
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    let (submitter, flow) = Pipeline::builder().with_capacity(1).submitter::<u32>();
    let run = flow
        .map(
            "held",
            StageOptions::new().with_workers(1),
            move |x: u32| {
                let _ = gate_rx.recv_timeout(Duration::from_secs(10));
                x
            },
        )
        .sink(|_: u32| Ok::<(), Never>(()));
    let (_, full) = fill(&run.metrics(), &submitter);
    assert!(full.is_full());

    // a submit that waits for room, on another thread
    let s = submitter.clone();
    let waiting = std::thread::spawn(move || s.submit(Input::new(7)));
    std::thread::sleep(Duration::from_millis(20));
    run.cancel();
    drop(gate_tx);
    // the cancelled run closes the queue: the waiting submit returns with its item
    let e = waiting.join().unwrap().unwrap_err();
    assert!(e.is_closed(), "{e:?}");
    assert_eq!(e.into_inner().into_value(), 7);
    let report = run.wait().unwrap();
    assert!(report.cancelled);
    let e = submitter.try_submit(Input::new(8)).unwrap_err();
    assert!(e.is_closed(), "{e:?}");
}

#[test]
fn a_priority_queue_serves_the_lowest_value_first_and_arrivals_in_order_within_one() {
    let (submitter, flow) = Pipeline::builder()
        .with_capacity(1)
        .priority_submitter::<&str>(8);
    for (item, priority) in [
        ("b1", 2),
        ("c1", 3),
        ("a1", 1),
        ("b2", 2),
        ("a2", 1),
        ("c2", 3),
    ] {
        submitter.try_submit(Input::new(item), priority).unwrap();
    }
    assert_eq!(submitter.queued(), 6);
    // the input ends with the last submitter, after what is queued
    let clone = submitter.clone();
    drop(submitter);
    clone.try_submit(Input::new("a3"), 1).unwrap();
    drop(clone);
    let out = flow.collect().unwrap();
    assert_eq!(out.values(), vec!["a1", "a2", "a3", "b1", "b2", "c1", "c2"]);
}

#[test]
fn a_full_priority_queue_refuses_at_once_and_hands_the_item_back() {
    let (submitter, flow) = Pipeline::builder().priority_submitter::<u32>(2);
    submitter.try_submit(Input::new(1), 5).unwrap();
    submitter.try_submit(Input::new(2), 5).unwrap();
    // full, whatever the priority: the item comes back as it was sent
    let e = submitter
        .try_submit(Input::new(3).with_id(33), 0)
        .unwrap_err();
    assert!(e.is_full(), "{e:?}");
    let back = e.into_inner();
    assert_eq!(*back.value(), 3);
    // close: no more items; the queued ones are still served
    submitter.close();
    let e = submitter.try_submit(Input::new(4), 0).unwrap_err();
    assert!(e.is_closed(), "{e:?}");
    assert_eq!(flow.collect().unwrap().values(), vec![1, 2]);
}

#[test]
fn a_cancelled_run_closes_the_priority_queue_and_its_idle_source_stops() {
    let (submitter, flow) = Pipeline::builder().priority_submitter::<u32>(4);
    let run = flow.sink(|_: u32| Ok::<(), Never>(()));
    submitter.try_submit(Input::new(1), 0).unwrap();
    // the source waits on the empty queue; cancelling ends it (bounded: the join below)
    run.cancel();
    let report = run.wait().unwrap();
    assert!(report.cancelled);
    let e = submitter.try_submit(Input::new(2), 0).unwrap_err();
    assert!(e.is_closed(), "{e:?}");
}
