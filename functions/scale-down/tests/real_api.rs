//! scale-down against the REAL visits-api binary on loopback: the victim is a
//! real API process with a slow request in flight. `/admin/drain` is called
//! for real, desired is lowered only after that request completed, and the
//! wait ends as soon as in-flight reaches 0 (well before the target group's
//! 30 s deregistration delay); the task then exits gracefully on SIGTERM.

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
    assert_eq!(drain.in_flight_at_stop, Some(0), "{drain:?}");
    assert!(!drain.deadline_hit, "{drain:?}");
    assert_eq!(e.slow_status, 200, "the slow request completed");
    assert!(
        e.drain_posted < e.slow_done,
        "drained while the request was in flight"
    );
    assert!(
        e.slow_done <= e.lowered,
        "desired was lowered while the slow request was in flight"
    );
    // Adaptive: it did not sit out the 30 s deregistration delay.
    assert!(
        e.lowered - e.started < Duration::from_secs(20),
        "lowered {:?} after the start; {:?}",
        e.lowered - e.started,
        r.steps.iter().find(|s| s.name == "wait_drained")
    );
    assert!(
        e.exit.is_some_and(|(s, _)| s.success()),
        "graceful exit on SIGTERM: {:?}",
        e.exit
    );
    assert!(!e.world.registered().await.contains(&e.victim_ip));
    assert_eq!(e.world.service().await.0, 2);
}
