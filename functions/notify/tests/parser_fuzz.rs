//! The event parser must never panic: arbitrary JSON, and every sample event with
//! one field replaced by arbitrary JSON, go through parse, classify and render.
//! Whatever comes out, an accepted event's subject still obeys SNS's rules.

mod common;

use notify::classify::Verdict;
use notify::render::render;
use notify::subject::SUBJECT_MAX;
use proptest::prelude::*;
use serde_json::{json, Value};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        // Strings that look like what the parser expects.
        prop_oneof![
            Just("ALARM"),
            Just("OK"),
            Just("INSUFFICIENT_DATA"),
            Just("STOPPED"),
            Just("Success"),
            Just("2026-11-23T14:02:11.985+0000"),
            Just("service:visits-api"),
            Just("CloudWatch Alarm State Change"),
            Just("ECS Task State Change"),
        ]
        .prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    ".{0,12}".boxed(),
                    prop_oneof![
                        Just("detail-type".to_string()),
                        Just("source".to_string()),
                        Just("detail".to_string()),
                        Just("requestContext".to_string()),
                        Just("responsePayload".to_string()),
                    ]
                    .boxed(),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer in `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        _ => {}
    }
}

fn check(event: Value) {
    let settings = common::settings();
    match notify::prepare(event, &settings) {
        Ok(Verdict::Notify(n)) => {
            let m = render(&n);
            assert!(m.subject.len() <= SUBJECT_MAX);
            assert!(m.subject.bytes().all(|b| (0x20..0x7f).contains(&b)));
        }
        Ok(_) => {}
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        check(v);
    }

    #[test]
    fn arbitrary_envelopes_never_panic(dt in prop_oneof![
            Just("CloudWatch Alarm State Change"), Just("ECS Task State Change"),
            Just("ECS Service Action"), Just("EC2 Instance Launch Unsuccessful"),
            Just("Lambda Function Invocation Result - Success"), Just("Something Else")],
        detail in json_value()) {
        check(json!({"version": "0", "id": "x", "detail-type": dt, "source": "aws.test",
                     "account": "123456789012", "time": "2026-11-23T14:00:00Z",
                     "region": "us-east-1", "resources": [], "detail": detail}));
    }

    #[test]
    fn mutated_samples_never_panic(which in any::<prop::sample::Index>(),
                                   at in any::<prop::sample::Index>(),
                                   replacement in json_value()) {
        let events = common::notify_events();
        let mut event = events[which.index(events.len())].1.clone();
        let mut ptrs = Vec::new();
        pointers(&event, String::new(), &mut ptrs);
        let p = &ptrs[at.index(ptrs.len())];
        if let Some(slot) = event.pointer_mut(p) {
            *slot = replacement;
        }
        check(event);
    }
}
