//! The email subject: SNS takes at most 99 characters of printable ASCII on one
//! line and rejects the whole publish otherwise, so every subject goes through here.

/// SNS rejects a Subject of 100 characters or more.
pub const SUBJECT_MAX: usize = 99;

/// The longest service name kept in the `[service]` prefix, so the outcome always shows.
pub const SERVICE_MAX: usize = 40;

/// `[service] outcome (detail)`, within [`SUBJECT_MAX`]. The detail is shortened
/// first, then dropped; the outcome is cut only if the prefix and outcome alone
/// do not fit.
pub fn subject(service: &str, outcome: &str, detail: Option<&str>) -> String {
    let service = truncate(&ascii_line(service), SERVICE_MAX);
    let head = format!("[{service}] {}", ascii_line(outcome));
    if head.len() >= SUBJECT_MAX {
        return truncate(&head, SUBJECT_MAX);
    }
    let Some(detail) = detail.map(ascii_line).filter(|d| !d.is_empty()) else {
        return head;
    };
    // " (" + ")" around the detail; below 8 characters of room it says nothing.
    let room = SUBJECT_MAX.saturating_sub(head.len() + 3);
    if room < 8 {
        return head;
    }
    format!("{head} ({})", truncate(&detail, room))
}

/// One line of printable ASCII: common typographic characters are spelled out
/// (`→` becomes `->`), anything else non-ASCII becomes `?`, and every run of
/// whitespace or control characters becomes one space.
pub fn ascii_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        let mapped: &str = match c {
            c if c.is_whitespace() || c.is_control() => {
                pending_space = true;
                continue;
            }
            '→' | '⟶' => "->",
            '←' => "<-",
            '–' | '—' | '−' | '‐' => "-",
            '‘' | '’' | '′' => "'",
            '“' | '”' | '″' => "\"",
            '…' => "...",
            '×' => "x",
            '≥' => ">=",
            '≤' => "<=",
            'µ' | 'μ' => "u",
            c if c.is_ascii() => {
                push_pending(&mut out, &mut pending_space);
                out.push(c);
                continue;
            }
            _ => "?",
        };
        push_pending(&mut out, &mut pending_space);
        out.push_str(mapped);
    }
    out
}

fn push_pending(out: &mut String, pending: &mut bool) {
    if *pending && !out.is_empty() {
        out.push(' ');
    }
    *pending = false;
}

/// Cuts ASCII text to at most `max` characters, at a word boundary when one is
/// near, and marks the cut with `...`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    if max <= 3 {
        return ".".repeat(max);
    }
    // Callers pass ASCII; the boundary walk keeps this safe for anything else.
    let mut cut = max - 3;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let hard = &s[..cut];
    let soft = match hard.rfind(' ') {
        Some(i) if i >= cut / 2 => &hard[..i],
        _ => hard,
    };
    let soft = soft.trim_end_matches([' ', ',', ';', ':', '(', '-']);
    format!("{soft}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_from_the_issue() {
        assert_eq!(
            subject("visits-prod", "scaled out 2→4", Some("cpu-high 91%")),
            "[visits-prod] scaled out 2->4 (cpu-high 91%)"
        );
        assert_eq!(
            subject("visits-prod", "task crashed: OOM", Some("exit 137")),
            "[visits-prod] task crashed: OOM (exit 137)"
        );
    }

    #[test]
    fn newlines_and_controls_become_spaces() {
        assert_eq!(ascii_line("a\r\n\tb\u{7}c  "), "a b c");
        assert_eq!(ascii_line("über→"), "?ber->");
    }

    #[test]
    fn long_detail_is_cut_at_a_word() {
        let s = subject("svc", "scaled in 3->2", Some(&"word ".repeat(40)));
        assert!(s.len() <= SUBJECT_MAX, "{s}");
        assert!(s.ends_with("...)"), "{s}");
        assert!(!s.contains("wor...)"), "{s}");
    }

    #[test]
    fn long_service_keeps_the_outcome() {
        let s = subject(&"x".repeat(300), "task crashed: OOM", Some("exit 137"));
        assert!(s.len() <= SUBJECT_MAX);
        assert!(s.contains("task crashed: OOM"), "{s}");
    }
}
