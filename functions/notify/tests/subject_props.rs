//! Subject rules, for any input: under 100 characters, one line, printable ASCII,
//! service and outcome first; ASCII input that fits is kept as is.

use notify::subject::{subject, SERVICE_MAX, SUBJECT_MAX};
use proptest::prelude::*;

fn printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_input_gives_a_valid_subject(service in "\\PC{0,150}", outcome in "(.|\n|\r){0,150}",
                                       detail in proptest::option::of("(.|\n|\t|→|ü|中){0,300}")) {
        let s = subject(&service, &outcome, detail.as_deref());
        prop_assert!(s.len() <= SUBJECT_MAX, "{} chars: {s}", s.len());
        prop_assert!(printable_ascii(&s), "{s:?}");
        prop_assert!(!s.contains('\n') && !s.contains('\r'));
        prop_assert!(s.starts_with('['));
    }

    #[test]
    fn short_ascii_is_kept_and_the_outcome_survives_long_details(
        service in "[a-z][a-z0-9-]{0,30}", outcome in "[a-z][a-z0-9>-]{0,30}",
        detail in "[a-zA-Z0-9 %.]{1,400}") {
        let s = subject(&service, &outcome, Some(&detail));
        let head = format!("[{service}] {outcome}");
        prop_assert!(s.starts_with(&head), "{s}");
        prop_assert!(s.len() <= SUBJECT_MAX);
        let trimmed = detail.split_whitespace().collect::<Vec<_>>().join(" ");
        if head.len() + trimmed.len() + 3 <= SUBJECT_MAX && !trimmed.is_empty() {
            prop_assert_eq!(s, format!("{head} ({trimmed})"));
        }
    }

    #[test]
    fn a_long_service_name_is_cut_and_the_outcome_kept(service in "[a-z]{41,200}") {
        let s = subject(&service, "task crashed: OOM", Some("exit 137"));
        prop_assert!(s.len() <= SUBJECT_MAX);
        prop_assert!(s.contains("task crashed: OOM"), "{s}");
        let prefix = s.split(']').next().unwrap();
        prop_assert!(prefix.len() <= SERVICE_MAX + 1, "{s}");
        prop_assert!(prefix.ends_with("..."), "{s}");
    }
}

#[test]
fn non_ascii_never_breaks_the_limit() {
    let s = subject("visits-прод", &"→".repeat(200), Some(&"中".repeat(500)));
    assert!(s.len() <= SUBJECT_MAX);
    assert!(printable_ascii(&s));
}
