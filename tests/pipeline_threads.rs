//! No thread outlives a run: the process's thread count is the same before and after 1,000
//! runs that end every way (end of input, cancellation, dropped handle, fail-fast error,
//! panic, rayon-pool stage). Its own test binary, so no other test's threads interfere.

use std::time::Duration;

use inferkit::pipeline::{BatchOptions, ErrorPolicy, Pipeline, StageOptions};

type Never = std::convert::Infallible;

/// Threads of this process, from /proc (Linux).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn no_thread_outlives_a_run_after_1000_runs() {
    let before = threads();
    assert!(before > 0, "cannot count threads here");
    for i in 0..1000_u64 {
        match i % 6 {
            0 => {
                let r = Pipeline::builder()
                    .source(0..50_u64)
                    .map(
                        "a",
                        StageOptions::new().with_workers(2).with_ordered(true),
                        |x: u64| x + 1,
                    )
                    .batch("b", BatchOptions::new(8, Duration::from_millis(1)))
                    .unbatch::<u64>("u")
                    .sink(|_x: u64| Ok::<(), Never>(()))
                    .wait()
                    .unwrap();
                assert_eq!(r.delivered, 50);
            }
            1 => {
                let run = Pipeline::builder()
                    .source(0_u64..)
                    .map("a", StageOptions::new().with_workers(2), |x: u64| x)
                    .sink(|_x: u64| Ok::<(), Never>(()));
                run.cancel();
                run.wait().unwrap();
            }
            2 => {
                let run = Pipeline::builder()
                    .source(0_u64..)
                    .map("a", StageOptions::new().with_workers(3), |x: u64| x)
                    .sink(|_x: u64| Ok::<(), Never>(()));
                drop(run);
            }
            3 => {
                let r = Pipeline::builder()
                    .source(0..100_u64)
                    .stage("a", StageOptions::new().with_workers(2), |x: u64| {
                        if x == 10 { Err("no") } else { Ok(x) }
                    })
                    .sink(|_x: u64| Ok::<(), Never>(()))
                    .wait();
                assert!(r.is_err());
            }
            4 => {
                let mut out = Pipeline::builder()
                    .with_policy(ErrorPolicy::Skip)
                    .source(0..100_u64)
                    .map("a", StageOptions::new().with_workers(2), |x: u64| {
                        assert!(x != 5, "boom");
                        x
                    })
                    .outputs();
                // read a few, then walk away
                let _ = out.next();
                drop(out);
            }
            _ => {
                let r = Pipeline::builder()
                    .source(0..4_u64)
                    .map(
                        "par",
                        StageOptions::new().with_workers(1).with_rayon_threads(2),
                        |x: u64| x,
                    )
                    .collect()
                    .unwrap();
                assert_eq!(r.items.len(), 4);
            }
        }
    }
    // Every run joined its threads before returning, but a joined thread can still be
    // listed in /proc for a moment: pthread_join returns when the kernel clears the thread's
    // id, a step of its exit that comes before the task is removed. So the count is read
    // until it settles, a bounded number of times; a thread that really outlives its run
    // stays and fails the test.
    let mut after = threads();
    for _ in 0..100 {
        if after == before {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        after = threads();
    }
    assert_eq!(after, before, "threads leaked");
}
