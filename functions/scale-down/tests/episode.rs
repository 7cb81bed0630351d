//! The step machine against the in-memory world: the happy path, a fault at
//! every call, a crash after every call (replayed by the next invocation), a
//! scale-out at every point of the episode, and the skip rules.

mod common;

use common::*;
use scale_down::{handle, FnError};
use scaling::report::{Outcome, Report};

async fn run(world: &World, event: serde_json::Value) -> Result<Report, FnError> {
    handle(event, world, &settings(1, 10), deadline()).await
}

/// Runs the reconcile schedule until no episode is left (at most 3 times).
async fn reconcile(world: &World) -> Vec<Outcome> {
    world.with(|s| {
        s.fail_at = None;
        s.crash_at = None;
        s.scale_up_at = None;
    });
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let r = run(world, schedule()).await.expect("reconcile runs");
        outcomes.push(r.outcome);
        if r.outcome == Outcome::Skipped {
            break;
        }
    }
    outcomes
}

/// A drain longer than one invocation is reported in progress (no email), keeps
/// its marker and protections, and the next invocation finishes it.
#[tokio::test(start_paused = true)]
async fn a_drain_outlasting_the_invocation_is_in_progress_then_resumed() {
    let world = World::new(3, 1, 10);
    world.with(|s| s.tasks.iter_mut().for_each(|t| t.in_flight = 40));
    let short = tokio::time::Instant::now() + std::time::Duration::from_secs(7);
    let r = handle(alarm("ALARM", 1), &world, &settings(1, 10), short)
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::InProgress, "{r:#?}");
    assert!(
        r.outcome_reason.contains("next invocation resumes"),
        "{}",
        r.outcome_reason
    );
    world.with(|s| {
        assert_eq!(
            s.desired, 2,
            "desired is lowered; ECS drains and stops the victim"
        );
        assert!(
            s.tags.contains_key("autoscaler:episode"),
            "marker kept: {:?}",
            s.tags
        );
        assert!(
            s.tasks.iter().any(|t| t.running && t.stopping),
            "still draining"
        );
    });
    assert_eq!(reconcile(&world).await.first(), Some(&Outcome::Completed));
    world.with(|s| assert_eq!(s.desired, 2));
    world.check_settled().unwrap();
}

/// ECS takes the victim out of the target group, not the function: by default
/// no DeregisterTargets call at all, so nothing depends on a registration that
/// ECS owns.
#[tokio::test(start_paused = true)]
async fn the_function_never_deregisters_by_default() {
    let world = World::new(3, 1, 10);
    let r = run(&world, alarm("ALARM", 1)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    world.with(|s| {
        assert!(
            !s.log.iter().any(|l| l.ends_with("DeregisterTargets")),
            "{:?}",
            s.log
        )
    });
    world.check_settled().unwrap();
}

/// EARLY_DEREGISTER is a head start only: with ECS registering the target
/// again at once (as users report it does) the episode still completes, and a
/// rollback before the lowering re-registers what it took out.
#[tokio::test(start_paused = true)]
async fn an_early_deregistration_is_never_relied_upon() {
    for reregisters in [false, true] {
        let world = World::new(3, 1, 10);
        world.with(|s| s.ecs_reregisters = reregisters);
        let mut st = settings(1, 10);
        st.early_deregister = true;
        let r = handle(alarm("ALARM", 1), &world, &st, deadline())
            .await
            .unwrap();
        assert_eq!(
            r.outcome,
            Outcome::Completed,
            "re-registers {reregisters}: {r:#?}"
        );
        assert!(r.steps.iter().any(|s| s.name == "deregister_target"));
        world.check_settled().unwrap();
        assert_eq!(
            world.with(|s| s.reregistered) > 0,
            reregisters,
            "ECS re-registered the victim"
        );
        // A fault at the call right after the early deregistration (found in a clean
        // run's log): rolled back, the target back in.
        let world = World::new(3, 1, 10);
        world.with(|s| s.ecs_reregisters = reregisters);
        let clean = World::new(3, 1, 10);
        handle(alarm("ALARM", 1), &clean, &st, deadline())
            .await
            .unwrap();
        let at = clean.with(|s| {
            s.log
                .iter()
                .position(|l| l.ends_with("DeregisterTargets"))
                .unwrap()
                + 1
        });
        world.with(|s| s.fail_at = Some(at));
        let r = handle(alarm("ALARM", 1), &world, &st, deadline())
            .await
            .unwrap();
        assert_eq!(r.outcome, Outcome::RolledBack, "{r:#?}");
        world.check_settled().unwrap();
        assert_eq!(world.with(|s| s.desired), 3);
    }
}

/// The victim's drain mode is renewed while the episode waits, so its expiry
/// only ends a drain that nobody looks after any more.
#[tokio::test(start_paused = true)]
async fn drain_mode_is_renewed_while_waiting() {
    let world = World::new(3, 1, 10);
    world.with(|s| s.tasks.iter_mut().for_each(|t| t.in_flight = 30));
    let mut st = settings(1, 10);
    st.drain_ttl = std::time::Duration::from_secs(3);
    let r = handle(alarm("ALARM", 1), &world, &st, deadline())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    let posts = world.with(|s| {
        s.log
            .iter()
            .filter(|l| l.ends_with("POST /admin/drain"))
            .count()
    });
    assert!(posts >= 3, "drain posted {posts} times over a ~6 s stop");
    world.check_settled().unwrap();
}

/// How many port calls a clean episode on 3 tasks makes.
async fn clean_calls() -> usize {
    let world = World::new(3, 1, 10);
    run(&world, alarm("ALARM", 1)).await.unwrap();
    world.calls()
}

#[tokio::test(start_paused = true)]
async fn removes_the_task_with_fewest_in_flight_after_it_drains() {
    let world = World::new(3, 1, 10);
    world.with(|s| {
        s.tasks[0].in_flight = 5;
        s.tasks[1].in_flight = 2;
        s.tasks[2].in_flight = 7;
    });
    let r = run(&world, alarm("ALARM", 1)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    let drain = r.drain.as_ref().unwrap();
    assert!(drain.victim_task.ends_with("/t2"), "{drain:?}");
    assert_eq!(drain.strategy, "fewest-in-flight");
    assert_eq!(drain.in_flight_at_stop, Some(0));
    assert!(!drain.deadline_hit);
    world.with(|s| {
        assert_eq!(s.desired, 2);
        assert!(!s.tasks[1].running, "the victim stopped");
        assert!(s.tasks[0].running && s.tasks[2].running);
    });
    world.check_settled().unwrap();
    let names: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "protect_tasks",
        "post_admin_drain",
        "update_service",
        "wait_stopped",
        "release_protection",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(!names.contains(&"deregister_target"), "{names:?}");
    assert_eq!(r.after.unwrap().desired, 2);
}

#[tokio::test(start_paused = true)]
async fn a_fault_at_any_call_ends_completed_or_rolled_back() {
    let n = clean_calls().await;
    assert!(n > 15, "only {n} calls?");
    for k in 0..n {
        let world = World::new(3, 1, 10);
        world.with(|s| s.tasks[1].in_flight = 2);
        world.with(|s| s.fail_at = Some(k));
        let first = run(&world, alarm("ALARM", 1)).await;
        let log = world.with(|s| s.log.get(k).cloned().unwrap_or_default());
        match &first {
            Ok(r) => {
                assert!(
                    matches!(
                        r.outcome,
                        Outcome::Completed | Outcome::RolledBack | Outcome::Failed
                    ),
                    "fault at {log}: {:?}",
                    r.outcome
                );
                if r.outcome == Outcome::RolledBack {
                    // A rollback in the same invocation leaves nothing to reconcile.
                    world
                        .check_settled()
                        .unwrap_or_else(|e| panic!("fault at {log}: {e}"));
                    assert_eq!(world.with(|s| s.desired), 3, "fault at {log}");
                }
            }
            Err(e) => assert!(e.is_retryable(), "fault at {log}: {e}"),
        }
        reconcile(&world).await;
        world
            .check_settled()
            .unwrap_or_else(|e| panic!("fault at {log}: {e}"));
    }
}

#[tokio::test(start_paused = true)]
async fn an_episode_interrupted_after_any_call_is_finished_by_the_next_invocation() {
    let n = clean_calls().await;
    let mut completed_by_replay = 0;
    for k in 0..n {
        let world = World::new(3, 1, 10);
        world.with(|s| s.crash_at = Some(k));
        let _ = run(&world, alarm("ALARM", 1)).await;
        let log = world.with(|s| s.log.get(k).cloned().unwrap_or_default());
        let outcomes = reconcile(&world).await;
        world
            .check_settled()
            .unwrap_or_else(|e| panic!("crash at {log}: {e}"));
        let first = outcomes[0];
        assert!(
            matches!(
                first,
                Outcome::Completed | Outcome::RolledBack | Outcome::Skipped
            ),
            "crash at {log}: replay ended {first:?}"
        );
        let desired = world.with(|s| s.desired);
        match first {
            Outcome::Completed => {
                completed_by_replay += 1;
                assert_eq!(desired, 2, "crash at {log}");
            }
            Outcome::RolledBack => assert_eq!(desired, 3, "crash at {log}"),
            // Nothing to resume: the crash came before the marker or after the end.
            Outcome::Skipped => assert!((2..=3).contains(&desired), "crash at {log}"),
            _ => unreachable!(),
        }
    }
    assert!(
        completed_by_replay > 0,
        "no replay ever completed an episode"
    );
}

#[tokio::test(start_paused = true)]
async fn a_scale_out_during_the_drain_cancels_it_and_keeps_the_task() {
    let n = clean_calls().await;
    let mut cancelled = 0;
    for k in 0..n {
        let world = World::new(3, 1, 10);
        world.with(|s| s.scale_up_at = Some(k));
        let r = run(&world, alarm("ALARM", 1)).await.unwrap();
        let log = world.with(|s| s.log.get(k).cloned().unwrap_or_default());
        if r.outcome == Outcome::Cancelled {
            cancelled += 1;
            // A cancel is no fault: the scale-out's cooldown governs, not a back-off.
            assert!(
                !world.with(|s| s
                    .tags
                    .contains_key(scaling::episode::LAST_SCALE_IN_ROLLBACK)),
                "scale-up at {log}: a cancel started the rollback back-off"
            );
            // Desired is never lowered: 3, or 4 when the scale-up added a task first.
            assert!(
                world.with(|s| s.desired) >= 3,
                "scale-up at {log}: the task is kept"
            );
            assert_eq!(world.with(|s| s.kept()), world.with(|s| s.desired as usize));
            assert!(r.rollback.is_some());
        }
        reconcile(&world).await;
        world
            .check_settled()
            .unwrap_or_else(|e| panic!("scale-up at {log}: {e}"));
    }
    assert!(cancelled >= 5, "only {cancelled} cancellations");
}

#[tokio::test(start_paused = true)]
async fn deployment_blocked_protection_rolls_back() {
    let world = World::new(3, 1, 10);
    world.with(|s| s.deployment_blocked = true);
    let r = run(&world, alarm("ALARM", 1)).await.unwrap();
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert!(
        r.outcome_reason.contains("DEPLOYMENT_BLOCKED"),
        "{}",
        r.outcome_reason
    );
    world.check_settled().unwrap();
    assert_eq!(world.with(|s| s.desired), 3);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_task_makes_selection_fall_back_and_says_so() {
    let world = World::new(3, 1, 10);
    world.with(|s| s.tasks[0].reachable = false);
    let r = run(&world, alarm("ALARM", 1)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Completed);
    let d = r.drain.unwrap();
    assert_eq!(d.strategy, "az-balanced");
    assert!(d.fallback.unwrap().contains("t1"));
    world.check_settled().unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_victim_is_still_removed_by_ecs() {
    let world = World::new(2, 1, 10);
    world.with(|s| s.tasks.iter_mut().for_each(|t| t.reachable = false));
    let r = run(&world, alarm("ALARM", 1)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(r.drain.unwrap().in_flight_at_stop, None);
    world.check_settled().unwrap();
}

#[tokio::test(start_paused = true)]
async fn skips_say_why_and_change_nothing() {
    // At the minimum.
    let world = World::new(1, 1, 10);
    let r = run(&world, alarm("ALARM", 1)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Skipped);
    assert!(r.outcome_reason.contains("minimum"), "{}", r.outcome_reason);
    // Paused.
    let world = World::new(3, 1, 10);
    world.with(|s| s.tags.insert("autoscaler:paused".into(), "true".into()));
    let r = run(&world, alarm("ALARM", 1)).await.unwrap();
    assert!(r.outcome_reason.contains("paused"));
    // In cooldown.
    let world = World::new(3, 1, 10);
    let now = 1_763_900_000i64;
    world.with(|s| {
        s.tags
            .insert("autoscaler:last-scale-in".into(), now.to_string())
    });
    let mut st = settings(1, 10);
    st.scale_in_cooldown = std::time::Duration::from_secs(300);
    let r = handle(alarm("ALARM", 1), &world, &st, deadline())
        .await
        .unwrap();
    assert!(
        r.outcome_reason.contains("cooldown"),
        "{}",
        r.outcome_reason
    );
    // The alarm went back to OK; the schedule with nothing to finish.
    let world = World::new(3, 1, 10);
    assert_eq!(
        run(&world, alarm("OK", 1)).await.unwrap().outcome,
        Outcome::Skipped
    );
    assert_eq!(
        run(&world, schedule()).await.unwrap().outcome,
        Outcome::Skipped
    );
    assert_eq!(world.with(|s| s.desired), 3);
    assert_eq!(world.with(|s| s.tags.len()), 0);
}

#[tokio::test(start_paused = true)]
async fn a_redelivered_alarm_acts_once() {
    let world = World::new(4, 1, 10);
    assert_eq!(
        run(&world, alarm("ALARM", 7)).await.unwrap().outcome,
        Outcome::Completed
    );
    let again = run(&world, alarm("ALARM", 7)).await.unwrap();
    assert_eq!(again.outcome, Outcome::Skipped);
    assert!(again.outcome_reason.contains("duplicate"));
    assert_eq!(world.with(|s| s.desired), 3);
    assert_eq!(
        run(&world, alarm("ALARM", 8)).await.unwrap().outcome,
        Outcome::Completed
    );
}

#[tokio::test(start_paused = true)]
async fn another_episode_in_progress_is_resumed_not_doubled() {
    let world = World::new(4, 1, 10);
    world.with(|s| s.crash_at = Some(12));
    let _ = run(&world, alarm("ALARM", 1)).await;
    world.with(|s| s.crash_at = None);
    let r = run(&world, alarm("ALARM", 2)).await.unwrap();
    assert_ne!(
        r.decision.action, "scale_to",
        "a second episode started: {r:#?}"
    );
    world.check_settled().unwrap();
    assert!(world.with(|s| s.desired) >= 3);
}

#[tokio::test(start_paused = true)]
async fn bad_or_foreign_events_are_refused_without_a_call() {
    let world = World::new(3, 1, 10);
    let err = run(&world, serde_json::json!({"hello": 1}))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "NonRetryable.BadEvent");
    let mut foreign = alarm("ALARM", 1);
    foreign["alarmData"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]
        ["ServiceName"] = "other".into();
    let err = run(&world, foreign).await.unwrap_err();
    assert_eq!(err.error_type(), "NonRetryable.NotOurs");
    assert!(!err.is_retryable());
    assert_eq!(world.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn every_sample_event_parses() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !(name.starts_with("scale-down-") && name.ends_with(".json")) {
            continue;
        }
        let event: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        scale_down::trigger::parse(&event, "visits", "visits-api")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        seen += 1;
    }
    assert!(
        seen >= 3,
        "expected the ALARM, OK and schedule samples, saw {seen}"
    );
}
