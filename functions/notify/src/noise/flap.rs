//! Collapsing a flapping alarm: more than N transitions in W minutes send one
//! digest, then silence until the alarm settles. The count comes from
//! CloudWatch's alarm history (see `noise` for why), anchored at the event's own
//! state timestamp so that a redelivery is judged the same way.

use crate::classify::fmt::when as fmt_when;
use crate::notice::{Notice, Section, Severity};
use crate::settings::FlapPolicy;
use aws_sdk_cloudwatch::types::HistoryItemType;
use chrono::{DateTime, TimeDelta, Utc};

/// One earlier transition of the alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub at: DateTime<Utc>,
    /// CloudWatch's summary: "Alarm updated from OK to ALARM".
    pub summary: String,
}

/// What to do with this transition's email.
#[derive(Debug, Clone, PartialEq)]
pub enum FlapVerdict {
    /// At most N transitions in the window, this one included: email it.
    Normal,
    /// This is transition N+1: send the digest instead.
    Digest { earlier: Vec<Transition> },
    /// Beyond N+1: the digest went out already.
    Muted { count: usize },
}

/// History closer than this to the event's own timestamp is the event itself
/// (CloudWatch may or may not have written it yet, and rounds differently).
const SELF_TOLERANCE_MS: i64 = 1000;

/// Judges the transition at `at`, given the alarm's history around it.
pub fn judge(history: &[Transition], at: DateTime<Utc>, policy: FlapPolicy) -> FlapVerdict {
    let window = TimeDelta::from_std(policy.window).unwrap_or(TimeDelta::MAX);
    let mut earlier: Vec<Transition> = history
        .iter()
        .filter(|t| t.at < at - TimeDelta::milliseconds(SELF_TOLERANCE_MS))
        .filter(|t| t.at >= at - window)
        .cloned()
        .collect();
    earlier.sort_by_key(|t| t.at);
    let count = earlier.len() + 1;
    let n = policy.max_transitions as usize;
    if count <= n {
        FlapVerdict::Normal
    } else if count == n + 1 {
        FlapVerdict::Digest { earlier }
    } else {
        FlapVerdict::Muted { count }
    }
}

/// Reads the alarm's state transitions in `[at - window, at]` (paginated).
pub async fn history(
    cw: &aws_sdk_cloudwatch::Client,
    alarm: &str,
    at: DateTime<Utc>,
    window: std::time::Duration,
) -> Result<Vec<Transition>, aws_sdk_cloudwatch::Error> {
    let window = TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX);
    let to_smithy =
        |t: DateTime<Utc>| aws_smithy_types::DateTime::from_millis(t.timestamp_millis());
    let mut pages = cw
        .describe_alarm_history()
        .alarm_name(alarm)
        .history_item_type(HistoryItemType::StateUpdate)
        .start_date(to_smithy(at - window))
        .end_date(to_smithy(at + TimeDelta::seconds(1)))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(aws_sdk_cloudwatch::Error::from)?;
        for item in page.alarm_history_items() {
            let Some(ts) = item.timestamp() else { continue };
            let Some(at) = DateTime::<Utc>::from_timestamp_millis(ts.to_millis().unwrap_or(0))
            else {
                continue;
            };
            out.push(Transition {
                at,
                summary: item.history_summary().unwrap_or("state update").to_string(),
            });
        }
    }
    Ok(out)
}

/// The digest that replaces the (N+1)th email.
pub fn digest(n: Notice, earlier: &[Transition], policy: FlapPolicy, at: DateTime<Utc>) -> Notice {
    let minutes = policy.window.as_secs() / 60;
    let count = earlier.len() + 1;
    let alarm = n.alarm.as_ref().map(|a| a.name.clone()).unwrap_or_default();
    let mut lines: Vec<String> = earlier
        .iter()
        .map(|t| format!("{}  {}", fmt_when(&t.at), t.summary))
        .collect();
    lines.push(format!("{}  {} (this email)", fmt_when(&at), n.outcome));
    let mut sections = vec![Section::new("Transitions", lines)];
    sections.extend(n.sections);
    Notice {
        severity: n.severity.max(Severity::Warning),
        kind: n.kind,
        outcome: format!("alarm flapping: {alarm}"),
        detail: Some(format!("{count} changes in {minutes} min")),
        summary: format!(
            "The alarm {alarm} changed state {count} times within {minutes} minutes. This digest \
             replaces the individual emails: further changes stay silent until it settles \
             (at most {} changes in {minutes} minutes). The latest change: {}.",
            policy.max_transitions, n.summary
        ),
        sections,
        ..n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const POLICY: FlapPolicy = FlapPolicy {
        max_transitions: 3,
        window: Duration::from_secs(600),
    };

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn hist(secs: &[i64]) -> Vec<Transition> {
        secs.iter()
            .map(|s| Transition {
                at: t(*s),
                summary: "x".into(),
            })
            .collect()
    }

    #[test]
    fn counts_within_the_window_only() {
        // Three earlier, one of them outside the window, plus the event itself in history.
        let h = hist(&[-700, -300, -200, 0]);
        assert_eq!(judge(&h, t(0), POLICY), FlapVerdict::Normal);
        let h = hist(&[-400, -300, -200, 0]);
        assert!(
            matches!(judge(&h, t(0), POLICY), FlapVerdict::Digest { earlier } if earlier.len() == 3)
        );
        let h = hist(&[-500, -400, -300, -200]);
        assert_eq!(judge(&h, t(0), POLICY), FlapVerdict::Muted { count: 5 });
    }

    #[test]
    fn a_flapping_sequence_gives_one_digest() {
        let times: Vec<i64> = (0..10).map(|i| i * 30).collect();
        let verdicts: Vec<FlapVerdict> = times
            .iter()
            .map(|now| judge(&hist(&times), t(*now), POLICY))
            .collect();
        let digests = verdicts
            .iter()
            .filter(|v| matches!(v, FlapVerdict::Digest { .. }))
            .count();
        assert_eq!(digests, 1);
        assert_eq!(
            verdicts
                .iter()
                .filter(|v| **v == FlapVerdict::Normal)
                .count(),
            3
        );
    }
}
