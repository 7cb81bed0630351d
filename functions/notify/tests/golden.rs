//! Golden tests: every `events/notify-*.json` renders to the checked-in text in
//! `tests/golden/<case>.txt` (subject, attributes, body; or why it is dropped).
//! `UPDATE_GOLDEN=1 cargo test -p notify --test golden` rewrites them; review the diff.

mod common;

use notify::classify::Verdict;
use notify::render::render;
use notify::subject::SUBJECT_MAX;
use std::path::PathBuf;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn rendered(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Notify(n) => {
            let m = render(n);
            assert!(
                m.subject.len() <= SUBJECT_MAX,
                "subject too long: {}",
                m.subject
            );
            assert!(
                m.subject.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "subject not one line of printable ASCII: {:?}",
                m.subject
            );
            let attrs: Vec<String> = m
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!(
                "subject: {}\nattributes: {}\ndedup key: {}\nflap check: {}\n----\n{}",
                m.subject,
                attrs.join(" "),
                n.dedup_key.as_deref().unwrap_or("(none)"),
                n.alarm
                    .as_ref()
                    .map(|a| a.name.as_str())
                    .unwrap_or("(none)"),
                m.body
            )
        }
        Verdict::Drop { reason } => format!("dropped: {reason}\n"),
        Verdict::Ignore { reason } => format!("ignored: {reason}\n"),
    }
}

#[test]
fn every_notify_event_matches_its_golden_file() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let settings = common::settings();
    let mut failures = Vec::new();
    let events = common::notify_events();
    for (stem, json) in &events {
        let verdict = notify::prepare(json.clone(), &settings)
            .unwrap_or_else(|e| panic!("events/notify-{stem}.json: {e}"));
        assert!(
            !matches!(verdict, Verdict::Ignore { .. }),
            "events/notify-{stem}.json is a shape notify accepts, yet it was ignored: {verdict:?}"
        );
        let actual = rendered(&verdict);
        let path = golden_dir().join(format!("{stem}.txt"));
        if update {
            std::fs::write(&path, &actual).expect("write golden");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{stem}: rendered output differs from {}\n--- expected\n{expected}\n--- actual\n{actual}",
                path.display()
            )),
            Err(_) => failures.push(format!(
                "{stem}: no golden file {} (run with UPDATE_GOLDEN=1)",
                path.display()
            )),
        }
    }
    // A golden file without its event is stale.
    for entry in std::fs::read_dir(golden_dir()).expect("golden dir") {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let stem = name.trim_end_matches(".txt");
        if !events.iter().any(|(s, _)| s == stem) {
            failures.push(format!(
                "stale golden file {name}: no events/notify-{stem}.json"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
