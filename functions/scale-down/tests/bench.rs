//! `make bench-scale-down`: how long a scale-down episode takes beyond the
//! actual drain, against the emulator with the real visits-api binary as the
//! victim (a slow request in flight). Prints measured next to target.
//! Ignored by `cargo test`: run with `-- --ignored --nocapture`.

mod emulated;

use scaling::report::Outcome;
use std::time::Duration;

/// Episodes measured (the median is reported).
const RUNS: usize = 3;
/// The slow request the victim is finishing when it is told to drain.
const SLOW_S: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: make bench-scale-down"]
async fn bench_episode_overhead_beyond_the_drain() {
    let mut rows = Vec::new();
    for i in 0..RUNS {
        let e = emulated::api::slow_request_episode(&format!("bench{i}"), SLOW_S).await;
        assert_eq!(e.report.outcome, Outcome::Completed, "{:#?}", e.report);
        let total = e.finished - e.started;
        // The task's own work: finishing its request after being told to
        // drain, and its graceful exit after SIGTERM.
        let drain = e.slow_done.saturating_duration_since(e.drain_posted);
        let stop = e
            .exit
            .map(|(_, at)| at.saturating_duration_since(e.sigterm))
            .unwrap_or_default();
        let overhead = total.saturating_sub(drain + stop);
        let lowered_after_drain = e.lowered.saturating_duration_since(e.slow_done);
        rows.push((total, drain, stop, overhead, lowered_after_drain));
    }
    rows.sort_by_key(|r| r.3);
    let (total, drain, stop, overhead, after) = rows[RUNS / 2];
    let s = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!();
    println!("scale-down episode, real visits-api victim with a {SLOW_S} s request in flight");
    println!("(emulator on loopback, debug build; median of {RUNS} episodes)");
    println!("{:<44} {:>10}   target", "", "measured");
    println!("{:<44} {:>10}", "episode, alarm to report", s(total));
    println!(
        "{:<44} {:>10}",
        "  actual drain (drain posted -> in-flight 0)",
        s(drain)
    );
    println!(
        "{:<44} {:>10}",
        "  task's graceful exit (SIGTERM -> exit)",
        s(stop)
    );
    println!(
        "{:<44} {:>10}   <= 2.00 s (fixed wait alternative: ALB default 300 s)",
        "overhead beyond the drain",
        s(overhead)
    );
    println!("{:<44} {:>10}", "  in-flight 0 -> desired - 1", s(after));
    let verdict = if overhead <= Duration::from_secs(2) {
        "meets"
    } else {
        "MISSES"
    };
    println!("overhead {verdict} the 2 s target");
}
