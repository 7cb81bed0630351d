//! Scheduled windows in scale-down: the floor in force stops scale-in, a window's end
//! (its EventBridge Scheduler edge) lets the service come down one task at a time as
//! load allows, and desired above the ceiling in force comes down without an alarm.
//! The in-memory world plays ECS, the ALB and CloudWatch.

mod common;

use common::*;
use scale_down::port::AlarmView;
use scale_down::{handle, FnError, Settings};
use scaling::report::{Outcome, Report, TriggerSummary};
use scaling::window::{Bounds, Windows};
use serde_json::{json, Value};
use std::time::Duration;

const LOW: &str = "visits-api-cpu-low";

/// The world's clock starts at 2025-11-23T12:13:20Z; this window runs 12:00-13:00 UTC daily.
fn windows(min: &str, max: &str) -> Windows {
    let text = format!(
        r#"[{{"name":"midday","start":"cron(0 12 * * ? *)","end":"cron(0 13 * * ? *)",
              "timezone":"UTC","min":"{min}","max":"{max}"}}]"#
    );
    let at = chrono::DateTime::from_timestamp(1_763_900_000, 0).unwrap();
    Windows::parse(&text, 1, 10, at).unwrap()
}

fn with_window(min: &str, max: &str, alarm: bool) -> Settings {
    let mut s = settings(1, 10);
    s.windows = windows(min, max);
    s.scale_in_cooldown = Duration::from_secs(60);
    if alarm {
        s.scale_in_alarms = vec![LOW.to_string()];
    }
    s
}

fn low_alarm_in_alarm() -> AlarmView {
    AlarmView {
        name: LOW.into(),
        arn: None,
        state: "ALARM".into(),
        since: chrono::DateTime::from_timestamp(1_763_899_000, 0).unwrap(),
        threshold: Some(30.0),
        comparison: Some("LessThanThreshold".into()),
        latest: None,
    }
}

/// The input the end schedule sends (infra/schedule.yaml), due at `time`.
fn window_end(name: &str, time: &str) -> Value {
    json!({"source": "visits-autoscaler.window", "window": name, "edge": "end",
           "scheduled_time": time})
}

fn tick(minute: u32) -> Value {
    let mut e = schedule();
    e["time"] = json!(format!("2025-11-23T12:{minute:02}:00Z"));
    e
}

async fn run(world: &World, s: &Settings, event: Value) -> Result<Report, FnError> {
    handle(event, world, s, deadline()).await
}

fn bounds(min: i32, max: i32, window: Option<&str>) -> Option<Bounds> {
    Some(Bounds {
        min,
        max,
        window: window.map(str::to_string),
    })
}

#[tokio::test(start_paused = true)]
async fn the_floor_holds_scale_in_and_the_window_end_lets_it_come_down_one_at_a_time() {
    let world = World::new(4, 1, 10);
    world.with(|s| s.alarms = vec![low_alarm_in_alarm()]);
    let s = with_window("3", "", true);

    // In the window (floor 3): the low alarm removes one task, 4 -> 3.
    let r = run(&world, &s, tick(14)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(r.bounds, bounds(3, 10, Some("midday")));
    assert_eq!(world.with(|s| s.desired), 3);
    // At the floor: no more, however long the alarm stays.
    tokio::time::advance(Duration::from_secs(120)).await;
    let r = run(&world, &s, tick(17)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert!(
        r.outcome_reason.contains("minimum of 3"),
        "{}",
        r.outcome_reason
    );

    // 13:00: the window ends, the floor drops to MIN_TASKS (1); the end edge scales in
    // one task (load allows: the low alarm is in ALARM), not down to the floor at once.
    tokio::time::advance(Duration::from_secs(2800)).await;
    let r = run(&world, &s, window_end("midday", "2025-11-23T13:00:00Z"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(r.bounds, bounds(1, 10, None));
    assert_eq!(world.with(|s| s.desired), 2, "one task at a time");
    world.check_settled().unwrap();
    // Redelivery of the same edge: already acted on.
    let r = run(&world, &s, window_end("midday", "2025-11-23T13:00:00Z"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert_eq!(world.with(|s| s.desired), 2);
}

#[tokio::test(start_paused = true)]
async fn a_window_end_without_load_falling_keeps_the_tasks() {
    let world = World::new(4, 1, 10);
    world.with(|s| {
        s.alarms = vec![AlarmView {
            state: "OK".into(),
            ..low_alarm_in_alarm()
        }]
    });
    let s = with_window("4", "", true);
    tokio::time::advance(Duration::from_secs(3000)).await;
    let r = run(&world, &s, window_end("midday", "2025-11-23T13:00:00Z"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert!(
        matches!(r.trigger, TriggerSummary::Window { .. }),
        "{:?}",
        r.trigger
    );
    assert_eq!(world.with(|s| s.desired), 4, "never cut");
}

#[tokio::test(start_paused = true)]
async fn above_the_ceiling_in_force_comes_down_without_an_alarm() {
    let world = World::new(4, 1, 10);
    let s = with_window("", "2", false);
    let r = run(&world, &s, tick(14)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert!(r.decision.reason.contains("ceiling"), "{:?}", r.decision);
    assert_eq!(r.bounds, bounds(1, 2, Some("midday")));
    assert_eq!(world.with(|s| s.desired), 3);
    // The scale-in cooldown still spaces them out.
    let r = run(&world, &s, tick(15)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    tokio::time::advance(Duration::from_secs(61)).await;
    let r = run(&world, &s, tick(16)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(world.with(|s| s.desired), 2);
    // At the ceiling, with no alarm: nothing.
    tokio::time::advance(Duration::from_secs(61)).await;
    let r = run(&world, &s, tick(18)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert_eq!(world.with(|s| s.desired), 2);
}

#[tokio::test(start_paused = true)]
async fn an_undeclared_window_is_a_bad_event_with_no_call() {
    let world = World::new(2, 1, 10);
    let s = with_window("2", "", false);
    let err = run(&world, &s, window_end("nightly", "2025-11-23T13:00:00Z"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not declared"), "{err}");
    assert_eq!(world.with(|s| s.calls), 0);
}
