//! scale-down against the REAL visits-api binary on loopback: the victim is a
//! real API process with a slow request in flight. `/admin/drain` is called
//! for real and desired is lowered at once; ECS (played by the test as it
//! documents its behaviour) deregisters the target, waits for the drain and
//! sends SIGTERM only once the request completed; the episode ends as soon as
//! the task is STOPPED (well before the target group's 30 s deregistration
//! delay); the task exits gracefully.

mod emulated;

use scaling::report::Outcome;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_waits_for_the_slow_request_and_ends_as_soon_as_it_completes() {
    let e = emulated::api::slow_request_episode("realapi", 3).await;
    let r = &e.report;
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    let drain = r.drain.as_ref().unwrap();
    assert_eq!(drain.victim_task, e.victim_arn);
    // The last count the function read while polling (it may miss the last
    // change before the task exits): what matters is that SIGTERM came after it.
    assert!(drain.in_flight_at_stop.is_some(), "{drain:?}");
    assert!(!drain.deadline_hit, "{drain:?}");
    assert_eq!(e.slow_status, 200, "the slow request completed");
    assert!(
        e.drain_posted < e.slow_done && e.lowered < e.slow_done,
        "desired is lowered at once, while the request is in flight"
    );
    assert!(
        e.slow_done <= e.sigterm,
        "SIGTERM reached the task while its request was in flight"
    );
    // Adaptive: it did not sit out the 30 s deregistration delay.
    assert!(
        e.finished - e.started < Duration::from_secs(20),
        "episode took {:?}; {:?}",
        e.finished - e.started,
        r.steps.iter().find(|s| s.name == "wait_stopped")
    );
    // The report's drain time covers the slow request (3 s), measured by the task.
    assert!(drain.drain_ms >= 1000, "{drain:?}");
    assert!(
        e.exit.is_some_and(|(s, _)| s.success()),
        "graceful exit on SIGTERM: {:?}",
        e.exit
    );
    assert!(!e.world.registered().await.contains(&e.victim_ip));
    assert_eq!(e.world.service().await.0, 2);
}
