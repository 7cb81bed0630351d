use super::*;
use jiff::civil::DateTime;
use proptest::prelude::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn now() -> chrono::DateTime<chrono::Utc> {
    utc(ts("2026-12-01T00:00:00Z"))
}

fn utc(t: Timestamp) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.as_second(), 0).unwrap()
}

fn business_hours(extra: &str) -> String {
    format!(
        r#"[{{"name":"business-hours","start":"cron(0 8 ? * MON-FRI *)",
             "end":"cron(0 18 ? * MON-FRI *)","timezone":"Europe/Madrid","min":4,"max":12}}{extra}]"#
    )
}

#[test]
fn business_hours_in_madrid() {
    let w = Windows::parse(&business_hours(""), 1, 6, now()).unwrap();
    let at = |s: &str| w.bounds_at(ts(s));
    // Tuesday 2026-12-01, CET = UTC+1.
    assert_eq!(at("2026-12-01T06:59:59Z"), Bounds::plain(1, 6));
    let open = Bounds {
        min: 4,
        max: 12,
        window: Some("business-hours".into()),
    };
    assert_eq!(at("2026-12-01T07:00:00Z"), open);
    assert_eq!(at("2026-12-01T16:59:59Z"), open);
    assert_eq!(at("2026-12-01T17:00:00Z"), Bounds::plain(1, 6));
    // Saturday: closed all day.
    assert_eq!(at("2026-12-05T10:00:00Z"), Bounds::plain(1, 6));
    assert_eq!(open.describe(), "min 4, max 12 (window business-hours)");
}

#[test]
fn unused_slots_are_skipped_and_strings_are_numbers() {
    let text = r#"[{"name":"w1","start":"cron(0 8 * * ? *)","end":"cron(0 9 * * ? *)","min":"3","max":""},
                   {"name":"w2","start":"","end":"","timezone":"UTC","min":"","max":""}]"#;
    let w = Windows::parse(text, 1, 6, now()).unwrap();
    assert_eq!(w.windows.len(), 1);
    assert_eq!(w.windows[0].floor, Some(3));
    assert_eq!(w.windows[0].ceiling, None);
    assert_eq!(w.bounds_at(ts("2026-12-01T08:30:00Z")).max, 6, "plain max");
}

#[test]
fn refused_with_a_reason() {
    let one = |body: &str| format!("[{body}]");
    for (text, says) in [
        (
            business_hours(
                r#",{"name":"lunch","start":"cron(0 12 ? * MON-FRI *)","end":"cron(0 14 ? * MON-FRI *)","timezone":"Europe/Madrid","min":6}"#,
            ),
            "overlap",
        ),
        // 08:00-18:00 Madrid and 16:00-20:00 UTC overlap in winter (17:00 UTC = 18:00 CET).
        (
            business_hours(
                r#",{"name":"evening","start":"cron(0 16 ? * MON-FRI *)","end":"cron(0 20 ? * MON-FRI *)","timezone":"UTC","max":3}"#,
            ),
            "overlap",
        ),
        (
            one(r#"{"name":"w","start":"cron(0 8 * * ? *)","end":"cron(0 9 * * ? *)","min":7}"#),
            "floor 7 is above",
        ),
        (
            one(
                r#"{"name":"w","start":"cron(0 8 * * ? *)","end":"cron(0 9 * * ? *)","min":5,"max":4}"#,
            ),
            "floor 5 is above",
        ),
        (
            one(r#"{"name":"w","start":"cron(0 8 * * ? *)","end":"cron(0 9 * * ? *)","max":0}"#),
            "floor 1 is above",
        ),
        (
            one(r#"{"name":"w","start":"cron(0 8 * * ? *)","end":"cron(0 9 * * ? *)"}"#),
            "neither",
        ),
        (
            one(r#"{"name":"w","start":"rate(1 hour)","end":"cron(0 9 * * ? *)","min":2}"#),
            "no time of day",
        ),
        (
            one(
                r#"{"name":"w","start":"cron(0 8 * * ? *)","end":"cron(0 9 * * ? *)","timezone":"Europe/Madird","min":2}"#,
            ),
            "unknown time zone",
        ),
        (
            one(r#"{"name":"w","start":"cron(0 8 * * ? *)","end":"cron(0 9 * * ? *)","min":-1}"#),
            "whole number",
        ),
        (
            one(r#"{"name":"w w","start":"cron(0 8 * * ? *)","end":"cron(0 9 * * ? *)","min":2}"#),
            "window name",
        ),
        (
            one(r#"{"name":"w","start":"cron(* * * * ? *)","end":"cron(0 9 * * ? *)","min":2}"#),
            "times a year",
        ),
        (
            one(r#"{"name":"w","begin":"cron(0 8 * * ? *)","min":2}"#),
            "unknown field",
        ),
        (r#"{"name":"w"}"#.to_string(), "JSON array"),
        (
            format!(
                "[{0},{0}]",
                r#"{"name":"w","start":"cron(0 8 * * ? *)","end":"cron(0 9 * * ? *)","min":2}"#
            ),
            "two windows are named",
        ),
    ] {
        let err = Windows::parse(&text, 1, 6, now()).unwrap_err();
        assert!(err.contains(says), "{text}\n -> {err}");
    }
}

#[test]
fn adjacent_windows_do_not_overlap() {
    let text = r#"[{"name":"morning","start":"cron(0 8 * * ? *)","end":"cron(0 12 * * ? *)","timezone":"Europe/Madrid","min":3},
                   {"name":"afternoon","start":"cron(0 12 * * ? *)","end":"cron(0 18 * * ? *)","timezone":"Europe/Madrid","min":5}]"#;
    let w = Windows::parse(text, 1, 6, now()).unwrap();
    assert_eq!(w.bounds_at(ts("2026-12-01T10:59:00Z")).min, 3);
    assert_eq!(w.bounds_at(ts("2026-12-01T11:00:00Z")).min, 5);
}

#[test]
fn a_one_time_window() {
    let text = r#"[{"name":"sale","start":"at(2026-12-24T08:00:00)","end":"at(2026-12-26T00:00:00)","timezone":"Europe/Madrid","min":8,"max":20}]"#;
    let w = Windows::parse(text, 1, 6, now()).unwrap();
    assert_eq!(w.bounds_at(ts("2026-12-24T06:59:00Z")).min, 1);
    assert_eq!(w.bounds_at(ts("2026-12-25T12:00:00Z")).max, 20);
    assert_eq!(w.bounds_at(ts("2026-12-26T00:00:00Z")).max, 6);
}

/// Zones with and without daylight saving time, north and south, whole and
/// half-hour offsets.
const ZONES: [&str; 6] = [
    "Europe/Madrid",
    "America/New_York",
    "Australia/Sydney",
    "America/St_Johns",
    "Asia/Kolkata",
    "UTC",
];

/// Local dates where the clocks change in those zones in 2026, and one ordinary day.
const DST_DAYS: [&str; 7] = [
    "2026-03-29", // Europe spring forward
    "2026-10-25", // Europe fall back
    "2026-03-08", // North America spring forward
    "2026-11-01", // North America fall back
    "2026-04-05", // Sydney fall back
    "2026-10-04", // Sydney spring forward
    "2026-06-15",
];

/// The oracle: walk every minute of the last 100 hours in UTC, and fire where the
/// local wall clock shows the cron's time for the first time (what Scheduler does:
/// a skipped local time never fires, a repeated one fires once).
fn oracle_last_fire(
    tz: &TimeZone,
    t: Timestamp,
    h: i8,
    m: i8,
    weekdays: bool,
) -> Option<Timestamp> {
    let t_min = t.as_second() - t.as_second().rem_euclid(60);
    (0..100 * 60)
        .map(|i| Timestamp::from_second(t_min - i * 60).unwrap())
        .find(|u| {
            let local = u.to_zoned_datetime(tz.clone()).datetime();
            let day_ok = !weekdays || (2..=6).contains(&local.weekday().to_sunday_one_offset());
            day_ok
                && local.hour() == h
                && local.minute() == m
                && tz.to_ambiguous_timestamp(local).earlier().ok() == Some(*u)
        })
}

fn arb_case() -> impl Strategy<Value = (usize, i8, i8, i8, i8, bool, Timestamp)> {
    (
        0..ZONES.len(),
        0..24i8,
        prop::sample::select(vec![0i8, 15, 30, 45]),
        0..24i8,
        prop::sample::select(vec![0i8, 15, 30, 45]),
        any::<bool>(),
        0..DST_DAYS.len(),
        -2 * 86_400..3 * 86_400i64,
    )
        .prop_map(|(z, h1, m1, h2, m2, weekdays, day, offset)| {
            let base: DateTime = format!("{}T00:00:00", DST_DAYS[day]).parse().unwrap();
            let t = base
                .to_zoned_datetime(TimeZone::UTC)
                .unwrap()
                .timestamp()
                .checked_add(SignedDuration::from_secs(offset))
                .unwrap();
            (z, h1, m1, h2, m2, weekdays, t)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// In force exactly when the oracle's latest start is later than its latest end,
    /// across daylight-saving changes in several zones.
    #[test]
    fn in_force_matches_a_minute_by_minute_oracle((z, h1, m1, h2, m2, weekdays, t) in arb_case()) {
        let tz = TimeZone::get(ZONES[z]).unwrap();
        let days = if weekdays { "MON-FRI" } else { "*" };
        let cron = |h: i8, m: i8| format!("cron({m} {h} ? * {days} *)");
        let text = format!(
            r#"[{{"name":"w","start":"{}","end":"{}","timezone":"{}","min":2}}]"#,
            cron(h1, m1), cron(h2, m2), ZONES[z]
        );
        let w = Windows::parse(&text, 1, 6, utc(t)).unwrap();
        let start = oracle_last_fire(&tz, t, h1, m1, weekdays);
        let end = oracle_last_fire(&tz, t, h2, m2, weekdays);
        prop_assert_eq!(w.windows[0].start.last_at_or_before(&tz, t), start);
        let expected = match (start, end) {
            (Some(s), Some(e)) => s > e,
            (Some(_), None) => true,
            (None, _) => false,
        };
        prop_assert_eq!(w.windows[0].in_force(t), expected, "t={} local={}", t, t.to_zoned_datetime(tz.clone()));
        let b = w.bounds_at(t);
        prop_assert!(b.min <= b.max);
        prop_assert_eq!(b.min, if expected { 2 } else { 1 });
    }

    /// Two windows accepted together are never in force at the same sampled instant.
    #[test]
    fn accepted_windows_never_overlap(
        (z, h1, m1, h2, m2, _wd, t) in arb_case(),
        h3 in 0..24i8, h4 in 0..24i8, z2 in 0..ZONES.len(),
    ) {
        let text = format!(
            r#"[{{"name":"a","start":"cron({m1} {h1} * * ? *)","end":"cron({m2} {h2} * * ? *)","timezone":"{}","min":2}},
                {{"name":"b","start":"cron(0 {h3} * * ? *)","end":"cron(0 {h4} * * ? *)","timezone":"{}","max":3}}]"#,
            ZONES[z], ZONES[z2]
        );
        let from = t.checked_sub(SignedDuration::from_hours(24 * 3)).unwrap();
        if let Ok(w) = Windows::parse(&text, 1, 6, utc(from)) {
            for i in 0..24 * 4 {
                let at = t.checked_add(SignedDuration::from_mins(15 * i)).unwrap();
                prop_assert!(!(w.windows[0].in_force(at) && w.windows[1].in_force(at)), "both at {}", at);
            }
        }
    }
}
