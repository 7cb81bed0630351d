//! The once-a-day forecast review (`scaling::review`): the template's schedule invokes
//! scale-up with the review input; this reads the last day's request counts, and the history
//! the forecaster had behind them, in one GetMetricData read, and returns a report that
//! carries the review. The OnSuccess destination takes it to notify, which emails it. It
//! changes nothing on the service.

use crate::{Deps, ScaleOut, ScaleUpError};
use chrono::{DateTime, Utc};
use scaling::aws::timed;
use scaling::predictive::PredictiveMode;
use scaling::report::{DecisionSummary, Outcome, Report, TriggerSummary};
use scaling::review::{self, percent, ForecastReview, DAY};

/// The review for the day that ends at the newest complete step before `scheduled_time`
/// (the load balancer publishes per minute: a minute's slack, as the re-evaluation has).
pub async fn run(
    deps: &Deps,
    scheduled_time: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Report, ScaleUpError> {
    let p = &deps.config.predictive;
    let id = format!(
        "forecast-review-{}",
        scheduled_time.format("%Y-%m-%dT%H:%MZ")
    );
    let trigger = TriggerSummary::Schedule {
        time: scheduled_time,
    };
    let mut ep = ScaleOut::new(deps, id, trigger, now);
    if p.mode == PredictiveMode::Off {
        // The template creates the schedule only when predictive scaling is not off; a
        // review delivered after it was switched off has nothing to review.
        let reason = "PREDICTIVE_MODE is off: nothing is forecast, nothing to review".to_string();
        return Ok(ep.report(decision(&reason), None, Outcome::Skipped, reason));
    }
    let end = p.last_published_step(scheduled_time);
    let from = end - chrono::Duration::seconds((p.history + DAY).as_secs() as i64);
    let (read, step) = timed(
        "request_count_history",
        deps.cloudwatch
            .request_counts(&p.load_balancer, &p.target_group, p.step, from, end),
    )
    .await;
    ep.steps.push(step);
    let series = match read {
        Ok(series) => series,
        Err(e) => {
            let reason = "could not read the request count history for the forecast review";
            return Err(ep.fail(e, decision(reason), Outcome::Failed, None));
        }
    };
    let r = review::review(p, &series, end);
    let reason = summary(&r);
    tracing::info!(%reason, compared = r.compared, "forecast review");
    let mut report = ep.report(decision(&reason), None, Outcome::Completed, reason);
    report.forecast_review = Some(r);
    Ok(report)
}

fn decision(reason: &str) -> DecisionSummary {
    DecisionSummary {
        action: "forecast_review".into(),
        target: None,
        reason: reason.to_string(),
    }
}

/// One line for the report and the log; the email has the whole review.
pub fn summary(r: &ForecastReview) -> String {
    match (r.wape, r.bias) {
        (Some(wape), Some(bias)) => format!(
            "forecast review {} to {}: off by {} (WAPE), {}{} on the whole, over {} of {} \
             steps; {} step(s) short of tasks",
            r.from.format("%Y-%m-%d %H:%M"),
            r.to.format("%Y-%m-%d %H:%M UTC"),
            percent(wape),
            if bias >= 0.0 { "+" } else { "" },
            percent(bias),
            r.compared,
            r.steps,
            r.short_steps
        ),
        _ => format!(
            "forecast review {} to {}: nothing compared ({})",
            r.from.format("%Y-%m-%d %H:%M"),
            r.to.format("%Y-%m-%d %H:%M UTC"),
            r.not_compared.as_deref().unwrap_or("no request at all")
        ),
    }
}
