//! The once-a-day forecast review: scale-up's report that carries `forecast_review`
//! (the last day's forecast against what happened) becomes its own email, at info level.
//! It tells operators, in figures, whether predictive scaling would have helped before they
//! switch it on.

use super::destination::{dedup_key, episode_links, place, report_footer};
use super::fmt::number;
use super::Verdict;
use crate::event::destination::RequestContext;
use crate::notice::{Notice, Section, Severity};
use crate::settings::Settings;
use scaling::report::Report;
use scaling::review::{percent, ForecastReview};

/// The email for a report with a review.
pub fn classify(context: &RequestContext, r: &Report, v: &ForecastReview, s: &Settings) -> Verdict {
    let place = place(context, Some(r), s);
    let service = &r.service.service;
    let day = format!(
        "{} to {}",
        hm(&v.from, "%Y-%m-%d %H:%M"),
        hm(&v.to, "%Y-%m-%d %H:%M UTC")
    );
    let (outcome, accuracy) = match (v.wape, v.bias) {
        (Some(wape), Some(bias)) => (
            format!("forecast review: off by {}", percent(wape)),
            format!(
                "The forecast was off by {} of the requests (WAPE), and {} on the whole.",
                percent(wape),
                if bias >= 0.0 {
                    format!("{} high", percent(bias))
                } else {
                    format!("{} low", percent(-bias))
                }
            ),
        ),
        _ => (
            "forecast review: nothing compared".to_string(),
            format!(
                "Nothing could be compared: {}.",
                v.not_compared.as_deref().unwrap_or("no request at all")
            ),
        ),
    };
    let summary = format!(
        "{service}'s request rate from {day}, each {}-minute step against its forecast made {} \
         min before it. {accuracy}",
        v.step_s / 60,
        v.horizon_s / 60
    );
    let mut sections = vec![Section::new("Accuracy", accuracy_lines(v))];
    sections.push(Section::new("Tasks", task_lines(v)));
    sections.push(Section::new("Hour by hour (req/s, UTC)", hour_lines(v)));
    let footer = report_footer("Review", "ran", context, r, &place);
    Verdict::Notify(Box::new(Notice {
        severity: Severity::Info,
        kind: "forecast-review",
        service: service.clone(),
        outcome,
        detail: Some(v.mode.clone()),
        summary,
        sections,
        links: episode_links(context, r, &place),
        footer,
        dedup_key: Some(dedup_key(context)),
        alarm: None,
    }))
}

fn hm(t: &chrono::DateTime<chrono::Utc>, f: &str) -> String {
    t.format(f).to_string()
}

fn accuracy_lines(v: &ForecastReview) -> Vec<String> {
    let mut lines = vec![format!("steps compared: {} of {}", v.compared, v.steps)];
    if let Some(why) = &v.not_compared {
        lines.push(format!("not compared: {why}"));
    }
    if let Some(p) = v.actual_peak {
        lines.push(format!(
            "actual peak:   {} req/s at {}",
            number(p.rps),
            hm(&p.at, "%H:%M")
        ));
    }
    if let Some(p) = v.forecast_peak {
        lines.push(format!(
            "forecast peak: {} req/s at {}",
            number(p.rps),
            hm(&p.at, "%H:%M")
        ));
    }
    if let Some(m) = v.worst {
        lines.push(format!(
            "largest miss:  {} forecast {} req/s, actual {} req/s",
            hm(&m.at, "%H:%M"),
            number(m.forecast_rps),
            number(m.actual_rps)
        ));
    }
    lines
}

fn task_lines(v: &ForecastReview) -> Vec<String> {
    let mut lines = vec![
        format!(
            "at {} req/s per task (PREDICTIVE_TASK_RPS), the forecast asked for:",
            number(v.task_rps)
        ),
        format!(
            "- too few tasks in {} step(s): {:.1} task-hours short, which the alarms must add",
            v.short_steps, v.short_task_hours
        ),
        format!(
            "- more tasks than the load needed: {:.1} task-hours",
            v.extra_task_hours
        ),
    ];
    lines.push(match v.mode.as_str() {
        "on" => {
            "mode on: desired was raised ahead of the forecast; scale-in stayed reactive.".into()
        }
        mode => format!(
            "mode {mode}: desired never changed on the forecast. PredictiveMode=on raises it \
             ahead of the forecast (docs/scheduled-predictive.md)."
        ),
    });
    lines
}

fn hour_lines(v: &ForecastReview) -> Vec<String> {
    let cell = |x: Option<f64>| x.map_or("-".to_string(), number);
    let mut lines = vec![format!(
        "{:<5}  {:>9}  {:>9}  {:>6}",
        "hour", "forecast", "actual", "error"
    )];
    lines.extend(v.hours.iter().map(|h| {
        let error = match (h.forecast_rps, h.actual_rps) {
            (Some(f), Some(a)) if a > 0.0 => format!("{:+.0} %", (f - a) / a * 100.0),
            _ => "-".into(),
        };
        format!(
            "{:<5}  {:>9}  {:>9}  {:>6}",
            hm(&h.start, "%H:%M"),
            cell(h.forecast_rps),
            cell(h.actual_rps),
            error
        )
    }));
    lines
}
