//! Fault injection at every call of a scale-down episode, through the
//! production `AwsPort` (real SDK clients and HTTP admin calls) against the
//! emulator: an error at each call, a timeout after each call took effect,
//! and a crash after each call followed by the reconcile schedule. Each time
//! the end state is checked: completed or rolled back, never half-done
//! ("nothing half-done"), desired within limits ("within bounds"; both in
//! docs/invariants.md).
//!
//! The table is the clean episode's own call log, so a new step (a new call)
//! is covered without editing this file; and every phase of the episode
//! marker must have been the crash point of at least one case.

mod emulated;

use emulated::faults::Fault;
use emulated::World;
use scale_down::handle;
use scaling::episode::{EpisodeState, Phase};
use scaling::report::Outcome;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// Tasks and in-flight requests of every case's service (the victim, with
/// fewest in flight, is the middle one and still has one request to finish).
const IN_FLIGHT: [u64; 3] = [3, 1, 2];

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(120)
}

/// The calls a clean episode makes, as (operation, occurrence) in order.
async fn clean_calls(name: &str) -> Vec<(String, usize)> {
    let w = World::new(name, &IN_FLIGHT).await;
    let r = handle(w.alarm(1), &w.aws, &w.settings, deadline())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    w.check_settled().await.unwrap();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    w.calls
        .log()
        .into_iter()
        .map(|op| {
            let n = seen.entry(op.clone()).or_default();
            *n += 1;
            (op, *n - 1)
        })
        .collect()
}

/// Runs the reconcile schedule until the episode is gone (at most 3 times);
/// then the world must be settled.
async fn reconcile(w: &World, case: &str) -> Vec<Outcome> {
    w.calls.clear_plan();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let r = handle(w.schedule(), &w.aws, &w.settings, deadline())
            .await
            .unwrap_or_else(|e| panic!("{case}: reconcile: {e}"));
        outcomes.push(r.outcome);
        if matches!(
            r.outcome,
            Outcome::Skipped | Outcome::Completed | Outcome::RolledBack
        ) {
            break;
        }
    }
    if let Err(e) = w.check_settled().await {
        panic!(
            "{case}: half-done after {outcomes:?}: {e}\ncalls: {:?}",
            w.calls.log()
        );
    }
    outcomes
}

/// One case: a fresh world, the planned fault, the alarm, then the schedule
/// for whatever the alarm's invocation left.
async fn fault_case(op: &str, nth: usize, fault: Fault, i: usize) -> Outcome {
    let case = format!("{fault:?} at {op}#{nth}");
    let w = World::new(&format!("f{i}{}", fault_tag(fault)), &IN_FLIGHT).await;
    w.calls.fault_on(op, nth, fault);
    let first = match handle(w.alarm(1), &w.aws, &w.settings, deadline()).await {
        Ok(r) => r.outcome,
        // Only the first read may fail the invocation (nothing changed yet).
        Err(e) => {
            assert!(e.is_retryable(), "{case}: {e}");
            Outcome::Skipped
        }
    };
    reconcile(&w, &case).await;
    first
}

fn fault_tag(f: Fault) -> &'static str {
    match f {
        Fault::Error => "e",
        Fault::Hang => "h",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_at_any_call_ends_completed_or_rolled_back() {
    let calls = clean_calls("fclean").await;
    assert!(calls.len() > 15, "only {} calls? {calls:?}", calls.len());
    let mut rolled_back = 0;
    for (i, (op, nth)) in calls.iter().enumerate() {
        if fault_case(op, *nth, Fault::Error, i).await == Outcome::RolledBack {
            rolled_back += 1;
        }
    }
    assert!(rolled_back > 0, "no fault rolled back?");
    eprintln!(
        "{} calls, {rolled_back} rolled back: {calls:?}",
        calls.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_after_any_call_took_effect_ends_completed_or_rolled_back() {
    let calls = clean_calls("hclean").await;
    // Once per distinct call (each costs a client timeout).
    let first: Vec<&(String, usize)> = calls.iter().filter(|(_, n)| *n == 0).collect();
    let ops: BTreeSet<&str> = calls.iter().map(|(op, _)| op.as_str()).collect();
    assert_eq!(first.len(), ops.len());
    for (i, (op, nth)) in first.into_iter().enumerate() {
        fault_case(op, *nth, Fault::Hang, i).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_any_call_is_completed_or_rolled_back_by_the_next_invocation() {
    let n = clean_calls("cclean").await.len();
    let mut phases_hit = Vec::new();
    for k in 0..n {
        let case = format!("crash after call {k}");
        let w = World::new(&format!("c{k}"), &IN_FLIGHT).await;
        w.calls.crash_after(k);
        let crash = w.calls.crash.clone();
        let run = handle(w.alarm(1), &w.aws, &w.settings, deadline());
        let crashed = tokio::select! {
            r = run => { r.unwrap_or_else(|e| panic!("{case}: {e}")); false }
            _ = crash.notified() => true,
        };
        if crashed {
            // What the next invocation finds: the marker says where it was.
            let (_, tags) = w.service().await;
            if let Some(ep) = EpisodeState::from_tags(&tags).scale_in {
                phases_hit.push(ep.phase);
            }
        }
        reconcile(&w, &case).await;
    }
    for phase in Phase::ALL {
        // Deregistering is only read from markers of the earlier design.
        if !matches!(phase, Phase::RollingBack | Phase::Deregistering) {
            assert!(
                phases_hit.contains(&phase),
                "no crash left the episode at {phase}: {phases_hit:?}"
            );
        }
    }
}
