//! Turning a [`Notice`] into what SNS sends: subject, plain-text body, attributes.

use crate::notice::Notice;
use crate::subject::subject;
use std::collections::BTreeMap;

/// A rendered email.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub subject: String,
    pub body: String,
    /// SNS MessageAttributes (all `String`): `severity`, `service`, `kind`.
    pub attributes: BTreeMap<&'static str, String>,
}

/// Renders a notice.
pub fn render(n: &Notice) -> Message {
    let mut body = String::new();
    body.push_str(&n.summary);
    body.push('\n');
    for s in n.sections.iter().filter(|s| !s.lines.is_empty()) {
        body.push('\n');
        body.push_str(s.title);
        body.push('\n');
        for l in &s.lines {
            body.push_str("  ");
            body.push_str(l);
            body.push('\n');
        }
    }
    if !n.links.is_empty() {
        body.push_str("\nLinks\n");
        let width = n.links.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 1;
        for (label, url) in &n.links {
            body.push_str(&format!("  {:<width$} {url}\n", format!("{label}:")));
        }
    }
    body.push('\n');
    body.push_str(&n.footer);
    body.push('\n');
    body.push_str(&format!(
        "Severity: {}. Filter on the SNS message attribute 'severity' (info, warning, critical).\n",
        n.severity
    ));
    let attributes = BTreeMap::from([
        ("severity", n.severity.as_str().to_string()),
        ("service", n.service.clone()),
        ("kind", n.kind.to_string()),
    ]);
    Message {
        subject: subject(&n.service, &n.outcome, n.detail.as_deref()),
        body,
        attributes,
    }
}
