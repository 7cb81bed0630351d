//! Parsing what notify is invoked with into [`Incoming`].
//!
//! Two families arrive: Lambda destination records (the scaling functions' results)
//! and EventBridge events (alarms, ECS, Auto Scaling). A shape notify knows but
//! cannot decode, or a payload that is neither family, is a [`ParseError`]
//! (non-retryable: a retry gets the same bytes). A well-formed EventBridge event of
//! a detail-type notify has no rule for is [`Incoming::Unknown`], which the handler
//! ignores: it is misrouted, not malformed, and emailing or failing on it would
//! turn one over-broad rule into noise or a dead-letter queue full of valid events.

pub mod asg;
pub mod destination;
pub mod ecs;
pub mod time;

use asg::{AsgAction, AsgActivity};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use destination::{Destination, DestinationRecord, FunctionError};
use ecs::{ServiceAction, TaskChange};
use scaling::error::ScalingError;
use scaling::trigger::AlarmChange;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The EventBridge envelope fields the email uses.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// EventBridge's event id: the replay-dedup key.
    pub id: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub time: Option<DateTime<Utc>>,
    pub resources: Vec<String>,
}

/// One decoded event.
#[derive(Debug, Clone)]
pub enum Incoming {
    Destination(Destination),
    Alarm {
        envelope: Envelope,
        change: AlarmChange,
    },
    Task {
        envelope: Envelope,
        task: TaskChange,
    },
    ServiceAction {
        envelope: Envelope,
        action: ServiceAction,
    },
    Asg {
        envelope: Envelope,
        action: AsgAction,
        successful: bool,
        activity: AsgActivity,
    },
    /// Not a shape notify handles; `what` names it for the log.
    Unknown {
        what: String,
    },
}

/// A payload notify cannot decode: not an object, neither family, or a known shape
/// whose content does not fit it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("malformed {shape}: {why}")]
pub struct ParseError {
    /// Which shape it claimed to be.
    pub shape: &'static str,
    pub why: String,
}

fn decode<T: DeserializeOwned>(shape: &'static str, v: Value) -> Result<T, ParseError> {
    serde_json::from_value(v).map_err(|e| ParseError {
        shape,
        why: e.to_string(),
    })
}

/// Decodes an invocation payload. Never panics (fuzzed in `tests/parser_fuzz.rs`).
pub fn parse(event: Value) -> Result<Incoming, ParseError> {
    let Value::Object(map) = &event else {
        return Err(ParseError {
            shape: "event",
            why: format!("expected a JSON object, got {}", kind_of(&event)),
        });
    };
    if map.contains_key("requestContext") {
        return parse_destination(event).map(Incoming::Destination);
    }
    if !(map.contains_key("detail-type") && map.contains_key("source")) {
        return Err(ParseError {
            shape: "event",
            why: "neither an EventBridge event (detail-type, source) nor a Lambda destination \
                  record (requestContext)"
                .into(),
        });
    }
    // The alarm change is read by the scaling functions' own parser, from the whole event.
    let whole = event.clone();
    let ev: EventBridgeEvent<Value> = decode("EventBridge event", event)?;
    let envelope = Envelope {
        id: ev.id,
        account: ev.account,
        region: ev.region,
        time: ev.time,
        resources: ev.resources.unwrap_or_default(),
    };
    let asg = |action, successful, detail| -> Result<Incoming, ParseError> {
        Ok(Incoming::Asg {
            envelope: envelope.clone(),
            action,
            successful,
            activity: decode("Auto Scaling event detail", detail)?,
        })
    };
    match ev.detail_type.as_str() {
        "CloudWatch Alarm State Change" => Ok(Incoming::Alarm {
            change: alarm_change(&whole)?,
            envelope,
        }),
        "ECS Task State Change" => Ok(Incoming::Task {
            task: decode("ECS task state change detail", ev.detail)?,
            envelope,
        }),
        "ECS Service Action" => Ok(Incoming::ServiceAction {
            action: decode("ECS service action detail", ev.detail)?,
            envelope,
        }),
        "EC2 Instance Launch Successful" => asg(AsgAction::Launch, true, ev.detail),
        "EC2 Instance Launch Unsuccessful" => asg(AsgAction::Launch, false, ev.detail),
        "EC2 Instance Terminate Successful" => asg(AsgAction::Terminate, true, ev.detail),
        "EC2 Instance Terminate Unsuccessful" => asg(AsgAction::Terminate, false, ev.detail),
        "Lambda Function Invocation Result - Success"
        | "Lambda Function Invocation Result - Failure" => {
            parse_destination(ev.detail).map(Incoming::Destination)
        }
        other => Ok(Incoming::Unknown {
            what: format!("EventBridge detail-type {other:?} from {:?}", ev.source),
        }),
    }
}

fn alarm_change(event: &Value) -> Result<AlarmChange, ParseError> {
    scaling::trigger::parse_alarm(event).map_err(|e| ParseError {
        shape: "alarm state change",
        why: match e {
            ScalingError::BadEvent(why) => why,
            other => other.to_string(),
        },
    })
}

fn parse_destination(v: Value) -> Result<Destination, ParseError> {
    let rec: DestinationRecord = decode("Lambda destination record", v)?;
    if rec.request_context.condition == "Success" {
        let report = decode("episode report (responsePayload)", rec.response_payload)?;
        Ok(Destination::Success {
            context: rec.request_context,
            report: Box::new(report),
        })
    } else {
        // EventAgeExceeded carries no response; any other odd payload still
        // deserves an email, so fall back to an empty error rather than reject it.
        let error: FunctionError = serde_json::from_value(rec.response_payload).unwrap_or_default();
        Ok(Destination::Failure {
            context: rec.request_context,
            error,
            request: rec.request_payload,
        })
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
