//! What notify decided to tell operators, before it is rendered to text.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The `severity` message attribute; subscribers filter on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something happened as designed (scaled, recovered): read when convenient.
    Info,
    /// Something degraded or was undone, and the system coped: look today.
    Warning,
    /// Something failed and may need a person now.
    Critical,
}

impl Severity {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?} (info, warning, critical)"
            )),
        }
    }
}

/// A titled block of the email body.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub title: &'static str,
    pub lines: Vec<String>,
}

/// An email to send: everything the renderer needs, nothing AWS-specific.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub severity: Severity,
    /// The `kind` attribute: `episode`, `forecast-review`, `function-error`, `alarm`, `task`,
    /// `service`, `capacity`.
    pub kind: &'static str,
    /// The service the email is about (subject prefix, `service` attribute).
    pub service: String,
    /// The outcome, first thing after the service in the subject ("scaled out 2->4").
    pub outcome: String,
    /// The short why, in parentheses after the outcome when it fits ("cpu-high 91%").
    pub detail: Option<String>,
    /// The body's first paragraph: one or two sentences.
    pub summary: String,
    pub sections: Vec<Section>,
    /// Console links: (label, URL).
    pub links: Vec<(&'static str, String)>,
    /// The closing line: account, region, ids.
    pub footer: String,
    /// Replay-dedup key: the EventBridge event id or the Lambda request id.
    pub dedup_key: Option<String>,
    /// Set for alarm emails, so that flapping can be collapsed.
    pub alarm: Option<AlarmKey>,
}

/// The alarm a notice is about and when it entered its state.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmKey {
    pub name: String,
    pub state_time: chrono::DateTime<chrono::Utc>,
}

impl Section {
    /// A section from its title and lines.
    pub fn new(title: &'static str, lines: Vec<String>) -> Self {
        Section { title, lines }
    }
}
