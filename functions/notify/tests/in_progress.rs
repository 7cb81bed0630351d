//! A drain that outlasts one invocation reports `in_progress` at every heartbeat:
//! notify stays quiet for those, and still emails the same drain's end.

mod common;

use notify::classify::Verdict;
use serde_json::Value;

fn sample() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/notify-destination-drain-instance-in-progress.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("sample event")).expect("json")
}

fn verdict(outcome: &str) -> Verdict {
    let mut e = sample();
    e["responsePayload"]["outcome"] = outcome.into();
    notify::prepare(e, &common::settings()).expect("a destination notify accepts")
}

#[test]
fn in_progress_is_dropped_with_the_reason() {
    match verdict("in_progress") {
        Verdict::Drop { reason } => {
            assert!(reason.contains("still in progress"), "{reason}");
            assert!(reason.contains("i-0a1b2c3d4e5f60718"), "{reason}");
        }
        other => panic!("expected a quiet drop, got {other:?}"),
    }
}

#[test]
fn the_same_drain_completed_or_failed_still_emails() {
    for outcome in ["completed", "failed"] {
        assert!(
            matches!(verdict(outcome), Verdict::Notify(_)),
            "{outcome} must reach the operators"
        );
    }
}
