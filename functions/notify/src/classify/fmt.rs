//! Small text helpers shared by the classifiers.

use chrono::{DateTime, Utc};

/// `2026-11-23 14:02:11 UTC`: mail clients show it as is, and people read it.
pub fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `412 ms`, `3.2 s`, `2 min 5 s`.
pub fn duration_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// A metric value short enough for a subject: `91`, `0.42`, `1234`.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let s = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A value with `%` for the utilization metrics, plain otherwise.
pub fn metric_value(v: f64, metric_name: Option<&str>) -> String {
    match metric_name {
        Some(n) if n.contains("Utilization") => format!("{}%", number(v)),
        _ => number(v),
    }
}

/// The alarm name without the `<service>-` prefix: `visits-api-cpu-high` -> `cpu-high`.
pub fn short_alarm<'a>(alarm: &'a str, service: &str) -> &'a str {
    alarm
        .strip_prefix(service)
        .and_then(|s| s.strip_prefix('-'))
        .filter(|s| !s.is_empty())
        .unwrap_or(alarm)
}

/// The last segment of a task ARN.
pub fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(91.23), "91.2");
        assert_eq!(number(91.0), "91");
        assert_eq!(number(1234.5), "1234");
        assert_eq!(number(0.4), "0.4");
        assert_eq!(duration_ms(3200), "3.2 s");
        assert_eq!(duration_ms(125_000), "2 min 5 s");
        assert_eq!(short_alarm("visits-api-cpu-high", "visits-api"), "cpu-high");
        assert_eq!(short_alarm("other", "visits-api"), "other");
    }
}
