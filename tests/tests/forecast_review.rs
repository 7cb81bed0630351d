//! The once-a-day forecast review, from the template to the email: the schedule in
//! `infra/scaling.yaml` (when it exists, which function it invokes, with what input), the real
//! scale-up handler invoked with that input against the AWS emulator's CloudWatch history, and
//! its report through notify's real classifier and renderer, as the OnSuccess destination
//! delivers it.

use chrono::{DateTime, Utc};
use e2e::template::{infra as template, referenced_id};
use scale_up::{handle_at, Deps};
use scaling::config::Config;
use scaling::forecast::Series;
use scaling::report::{Outcome, Report};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use test_support::moto;

const STEP: i64 = 300;
const PER_DAY: usize = 288;

/// The schedule's input, due at `due`, as Scheduler fills it in.
fn review_input(due: &str) -> Value {
    let t = template("scaling.yaml");
    let input = t["Resources"]["ForecastReviewSchedule"]["Properties"]["Target"]["Input"]
        .as_str()
        .expect("a literal input");
    serde_json::from_str(&input.replace("<aws.scheduler.scheduled-time>", due)).unwrap()
}

#[test]
fn the_review_schedule_invokes_scale_up_once_a_day_with_the_input_it_parses() {
    let t = template("scaling.yaml");
    let r = &t["Resources"]["ForecastReviewSchedule"];
    assert_eq!(r["Type"], "AWS::Scheduler::Schedule");
    // No review while predictive scaling is off: there is no forecast to review.
    assert_eq!(r["Condition"], "ForecastReviews");
    assert_eq!(
        t["Conditions"]["ForecastReviews"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "PredictiveMode"}, "off"]}]})
    );
    let p = &r["Properties"];
    assert_eq!(
        referenced_id(&p["Target"]["Arn"]).as_deref(),
        Some("ScaleUpFunction")
    );
    assert_eq!(
        referenced_id(&p["ScheduleExpression"]).as_deref(),
        Some("ForecastReviewAt")
    );
    assert_eq!(
        referenced_id(&p["ScheduleExpressionTimezone"]).as_deref(),
        Some("ForecastReviewTimezone")
    );
    let due = scaling::review::parse_input(&review_input("2026-12-01T07:00:00Z"))
        .expect("a review input")
        .expect("well formed");
    assert_eq!(due.to_rfc3339(), "2026-12-01T07:00:00+00:00");
    // Its role may invoke scale-up and nothing else.
    assert_eq!(
        referenced_id(&p["Target"]["RoleArn"]).as_deref(),
        Some("ForecastReviewSchedulerRole")
    );
    let role = &t["Resources"]["ForecastReviewSchedulerRole"];
    assert_eq!(role["Condition"], "ForecastReviews");
    let statements = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["Action"], "lambda:InvokeFunction");
    assert_eq!(
        referenced_id(&statements[0]["Resource"]).as_deref(),
        Some("ScaleUpFunction")
    );
    // The root passes the time and zone down.
    let root = template("template.yaml");
    let passed = &root["Resources"]["ScalingStack"]["Properties"]["Parameters"];
    for param in ["ForecastReviewAt", "ForecastReviewTimezone"] {
        assert_eq!(
            referenced_id(&passed[param]).as_deref(),
            Some(param),
            "{param}"
        );
    }
}

/// 100 req/s at night, 400 at midday.
fn daily(i: usize) -> f64 {
    let t = (i % PER_DAY) as f64 / PER_DAY as f64;
    250.0 - 150.0 * (2.0 * std::f64::consts::PI * t).cos()
}

/// scale-up's deps with predictive scaling in `mode`, reading a load balancer named for
/// `name` (tests do not see each other's history).
async fn review_deps(name: &str, mode: &str) -> (Deps, aws_sdk_cloudwatch::Client) {
    let conf = moto::shared().sdk_config().await;
    let env: HashMap<String, String> = [
        ("CLUSTER_NAME", name.to_string()),
        ("SERVICE_NAME", "visits-api".into()),
        ("MIN_TASKS", "1".into()),
        ("MAX_TASKS", "6".into()),
        ("PREDICTIVE_MODE", mode.into()),
        ("PREDICTIVE_TASK_RPS", "100".into()),
        ("PREDICTIVE_HISTORY_DAYS", "2".into()),
        ("PREDICTIVE_LOAD_BALANCER", format!("app/{name}/1")),
        ("PREDICTIVE_TARGET_GROUP", format!("targetgroup/{name}/1")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = Config::from_map(&env).expect("config");
    (
        Deps::new(config, &conf),
        aws_sdk_cloudwatch::Client::new(&conf),
    )
}

/// The destination event Lambda sends notify after a successful asynchronous invocation.
fn on_success(request: &Value, report: &Report) -> Value {
    json!({
        "version": "1.0",
        "timestamp": "2026-12-01T07:00:04.120Z",
        "requestContext": {
            "requestId": "5f0c2a71-9d3e-4b8a-a6c4-2e7d1b9f0a33",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:visits-scale-up:$LATEST",
            "condition": "Success",
            "approximateInvokeCount": 1
        },
        "requestPayload": request,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
        "responsePayload": report
    })
}

fn notify_settings() -> notify::settings::Settings {
    let env = HashMap::from([
        ("CLUSTER_NAME", "review-day"),
        ("SERVICE_NAME", "visits-api"),
        ("TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:visits-ops"),
    ]);
    notify::settings::Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap()
}

#[tokio::test]
async fn a_day_of_history_becomes_the_review_email() {
    let (deps, cw) = review_deps("review-day", "forecast-only").await;
    // Due 2026-12-01 07:00 UTC: the day reviewed ends at 06:55, the newest complete step a
    // minute before. History: two days before it and the day itself, the daily curve, with
    // the reviewed day's last hour at twice the usual (a surge the forecast lags).
    let due: DateTime<Utc> = "2026-12-01T07:00:00Z".parse().unwrap();
    let end = (due.timestamp() - 60).div_euclid(STEP) * STEP;
    let n = 3 * PER_DAY;
    let rps: Vec<f64> = (0..n)
        .map(|i| daily(i) * if i >= n - 12 { 2.0 } else { 1.0 })
        .collect();
    let from = end - n as i64 * STEP;
    test_support::cloudwatch::put_request_counts(
        &cw,
        "app/review-day/1",
        "targetgroup/review-day/1",
        from,
        STEP,
        &rps,
    )
    .await
    .unwrap();

    let input = review_input("2026-12-01T07:00:00Z");
    let at = "2026-12-01T07:00:03Z".parse().unwrap();
    let report = handle_at(input.clone(), &deps, at).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    assert_eq!(report.decision.action, "forecast_review");
    let review = report.forecast_review.as_ref().expect("the review");
    // What the function read and computed is the pure review of the seeded history.
    let series = Series {
        step: Duration::from_secs(STEP as u64),
        values: rps.iter().map(|r| Some(r * STEP as f64)).collect(),
    };
    let end = DateTime::from_timestamp(end, 0).unwrap();
    assert_eq!(
        review,
        &scaling::review::review(&deps.config.predictive, &series, end)
    );
    assert_eq!((review.steps, review.compared), (288, 288));
    assert_eq!(review.from.to_rfc3339(), "2026-11-30T06:55:00+00:00");
    let worst = review.worst.unwrap();
    assert_eq!(
        worst.at.to_rfc3339(),
        "2026-12-01T05:55:00+00:00",
        "the surge's first step"
    );
    assert!(
        review.short_steps > 0 && review.bias.unwrap() < 0.0,
        "{review:?}"
    );

    // Through notify, as the OnSuccess destination delivers it: its own email, at info.
    let verdict = notify::prepare(on_success(&input, &report), &notify_settings()).unwrap();
    let notify::classify::Verdict::Notify(notice) = verdict else {
        panic!("not emailed: {verdict:?}")
    };
    let mail = notify::render::render(&notice);
    assert!(
        mail.subject.contains("forecast review: off by"),
        "{}",
        mail.subject
    );
    assert_eq!(mail.attributes["kind"], "forecast-review");
    assert_eq!(mail.attributes["severity"], "info");
    for line in [
        "steps compared: 288 of 288",
        "largest miss:  05:55 forecast",
        "Hour by hour (req/s, UTC)",
        "mode forecast-only: desired never changed on the forecast",
    ] {
        assert!(mail.body.contains(line), "{line:?} not in:\n{}", mail.body);
    }
    // 24 hour rows; the last hour, the surge, forecast 28 % low.
    let rows: Vec<&str> = mail
        .body
        .lines()
        .skip_while(|l| !l.starts_with("Hour by hour"))
        .skip(2)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len(), 24, "{}", mail.body);
    assert!(
        rows[23].trim_start().starts_with("05:55") && rows[23].ends_with("-28 %"),
        "{rows:?}"
    );
}

#[tokio::test]
async fn no_review_while_predictive_scaling_is_off_and_a_bad_input_reads_nothing() {
    let (deps, _) = review_deps("review-off", "off").await;
    let at = "2026-12-01T07:00:03Z".parse().unwrap();
    let report = handle_at(review_input("2026-12-01T07:00:00Z"), &deps, at)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Skipped, "{report:#?}");
    assert!(report.outcome_reason.contains("PREDICTIVE_MODE is off"));
    assert!(report.steps.is_empty(), "no AWS call: {:?}", report.steps);

    let (deps, _) = review_deps("review-bad", "forecast-only").await;
    let bad = json!({"source": "visits-autoscaler.forecast-review", "scheduled_time": "yesterday"});
    let e = handle_at(bad, &deps, at).await.unwrap_err();
    assert!(
        e.to_string().contains("malformed forecast review input"),
        "{e}"
    );
}
