//! Timestamps as AWS writes them in these events.
//!
//! EventBridge envelopes use RFC 3339 (`2026-11-23T14:02:11Z`), but CloudWatch alarm
//! states use `2026-11-23T14:02:11.985+0000` (no colon in the offset), which
//! RFC 3339 parsers reject.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Deserializer};

/// Parses either form; `None` when it is neither.
pub fn parse_aws_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::<FixedOffset>::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// serde helper for a required timestamp in either form.
pub fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    parse_aws_time(&s).ok_or_else(|| serde::de::Error::custom(format!("bad timestamp {s:?}")))
}

/// serde helper for an optional timestamp in either form.
pub fn de_opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    match s {
        None => Ok(None),
        Some(s) => parse_aws_time(&s)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("bad timestamp {s:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse() {
        let a = parse_aws_time("2026-11-23T14:02:11.985+0000").unwrap();
        let b = parse_aws_time("2026-11-23T14:02:11.985Z").unwrap();
        assert_eq!(a, b);
        assert!(parse_aws_time("yesterday").is_none());
    }
}
