//! scale-down: removes one task from the ECS service without failing a request.
//!
//! Protect every other task, deregister the victim from its target groups, let
//! it drain, lower desired by one (ECS stops the only unprotected task), wait
//! for STOPPED, release the protections, report. Each step is written ahead
//! into the service's tags (`marker`), so the next invocation, from any alarm
//! or the reconcile schedule, completes or rolls back an interrupted episode.

pub mod admin;
pub mod alarms;
pub mod aws_port;
pub mod capacity;
pub mod error;
pub mod machine;
pub mod marker;
pub mod port;
pub mod settings;
pub mod trigger;
pub mod victim;

pub use error::FnError;
pub use port::Port;
pub use settings::Settings;

use scaling::report::Report;
use tokio::time::Instant;

/// Handles one event: parses it (zero AWS calls when it is malformed or not
/// ours), then runs or resumes the episode. `deadline` is the Lambda's.
pub async fn handle<P: Port>(
    event: serde_json::Value,
    port: &P,
    settings: &Settings,
    deadline: Instant,
) -> Result<Report, FnError> {
    let trigger = trigger::parse_checked(&event, settings)?;
    let report = machine::run(port, settings, &trigger, deadline).await?;
    tracing::info!(
        episode = %report.episode_id,
        outcome = ?report.outcome,
        reason = %report.outcome_reason,
        "scale-down finished"
    );
    Ok(report)
}
