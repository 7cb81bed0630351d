//! Scale-up against the AWS emulator (moto server), through the real SDK
//! clients over HTTP. Tests share one emulator and use their own cluster each.

mod common;

use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricDatum, StandardUnit, StateValue, Statistic,
};
use chrono::{DateTime, Duration, Utc};
use scale_up::{handle_at, Deps};
use scaling::report::{Outcome, Report};
use serde_json::Value;
use test_support::emulated_ecs::EmulatedEcs;
use test_support::moto;

struct Stack {
    world: EmulatedEcs,
    asg: aws_sdk_autoscaling::Client,
    deps: Deps,
}

/// A cluster `cluster` with service `visits-api` at `desired` tasks.
async fn stack(cluster: &str, desired: i32, extra: &[(&str, &str)]) -> Stack {
    let world = EmulatedEcs::builder()
        .cluster(cluster)
        .tasks(desired)
        .task_size(512, 1024)
        // Every task is running (moto starts a service with them all pending).
        .all_running()
        .build()
        .await
        .expect("the emulated service");
    let asg = aws_sdk_autoscaling::Client::new(&world.sdk);
    let cw = aws_sdk_cloudwatch::Client::new(&world.sdk);
    let mut vars = vec![("CLUSTER_NAME", cluster)];
    vars.extend_from_slice(extra);
    let deps = common::deps(common::config(&vars), world.ecs.clone(), asg.clone(), cw);
    Stack { world, asg, deps }
}

impl Stack {
    /// The sample CPU-high ALARM event, for this stack's cluster, entering ALARM at `at`.
    fn alarm(&self, at: DateTime<Utc>) -> Value {
        let mut ev = common::event("scale-up-cpu-high-alarm");
        let data = &mut ev["alarmData"];
        data["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]["ClusterName"] =
            Value::String(self.world.cluster.clone());
        data["state"]["timestamp"] =
            Value::String(at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string());
        ev
    }

    /// What the database reports in CloudWatch: a `DatabaseConnections`
    /// datapoint of AWS/RDS for instance `db`, a minute ago (inside the five
    /// minutes scale-up reads).
    async fn database_connections(&self, db: &str, connections: f64) {
        let at = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        self.deps
            .cloudwatch
            .client()
            .put_metric_data()
            .namespace("AWS/RDS")
            .metric_data(
                MetricDatum::builder()
                    .metric_name("DatabaseConnections")
                    .dimensions(
                        Dimension::builder()
                            .name("DBInstanceIdentifier")
                            .value(db)
                            .build(),
                    )
                    .timestamp(at.into())
                    .value(connections)
                    .unit(StandardUnit::Count)
                    .build(),
            )
            .send()
            .await
            .expect("PutMetricData DatabaseConnections");
    }

    /// The service's metric dimensions, as the API and the functions publish them.
    fn service_dimensions(&self) -> Vec<Dimension> {
        [
            ("ClusterName", self.world.cluster.as_str()),
            ("ServiceName", "visits-api"),
        ]
        .map(|(name, value)| Dimension::builder().name(name).value(value).build())
        .to_vec()
    }

    /// The sum of this service's `ScaleOutTasks` episode metric in the last
    /// ten minutes (None: no datapoint).
    async fn scale_out_tasks_metric(&self) -> Option<f64> {
        let now = std::time::SystemTime::now();
        let out = self
            .deps
            .cloudwatch
            .client()
            .get_metric_statistics()
            .namespace("VisitsApi")
            .metric_name("ScaleOutTasks")
            .set_dimensions(Some(self.service_dimensions()))
            .start_time((now - std::time::Duration::from_secs(600)).into())
            .end_time((now + std::time::Duration::from_secs(60)).into())
            .period(3600)
            .statistics(Statistic::Sum)
            .send()
            .await
            .expect("GetMetricStatistics ScaleOutTasks");
        out.datapoints()
            .iter()
            .filter_map(|d| d.sum())
            .reduce(|a, b| a + b)
    }

    async fn desired(&self) -> i32 {
        self.world.desired().await.unwrap()
    }
}

fn t0() -> DateTime<Utc> {
    // Whole milliseconds: the alarm timestamp round-trips through the event text.
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

#[tokio::test]
async fn one_task_becomes_two() {
    let s = stack("up-one-to-two", 1, &[]).await;
    let now = t0();
    let report = handle_at(s.alarm(now), &s.deps, now).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    assert_eq!(
        (
            report.before.unwrap().desired,
            report.after.unwrap().desired
        ),
        (1, 2)
    );
    assert_eq!(s.desired().await, 2);
    // The episode state landed in the service's tags.
    let tags = s
        .deps
        .ecs
        .describe_service(&s.world.cluster, "visits-api")
        .await
        .unwrap()
        .tags;
    assert_eq!(
        tags["autoscaler:last-scale-out"],
        now.timestamp().to_string()
    );
    assert!(
        tags["autoscaler:scale-out-keys"].ends_with("-2"),
        "{tags:?}"
    );
    // The episode metric went to CloudWatch (through the SDK's CBOR on moto).
    let put = step(&report, "put_metric_data");
    assert!(put.ok, "{put:?}");
    assert_eq!(s.scale_out_tasks_metric().await, Some(1.0));
}

/// The report's step called `name`.
fn step<'a>(report: &'a Report, name: &str) -> &'a scaling::report::Step {
    report
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} step in {:#?}", report.steps))
}

/// The database cap (docs/configuration.md): 100 connections, 10 per task's pool, read from
/// instance `db`; a step of 3 and room for 10 tasks otherwise.
fn db_cap(db: &str) -> [(&str, &str); 6] {
    [
        ("DB_MAX_CONNECTIONS", "100"),
        ("DB_POOL_PER_TASK", "10"),
        ("DB_INSTANCE_ID", db),
        ("SCALE_OUT_STEP", "3"),
        ("MAX_TASKS", "10"),
        ("SCALE_OUT_COOLDOWN_S", "0"),
    ]
}

#[tokio::test]
async fn the_database_cap_shortens_the_step_to_the_connection_headroom() {
    let s = stack("up-dbcap", 2, &db_cap("up-dbcap-db")).await;
    // 75 of 100 used: 25 left is 2 tasks' pools, so 2 -> 4, not 2 -> 5.
    s.database_connections("up-dbcap-db", 75.0).await;
    let now = t0();
    let report = handle_at(s.alarm(now), &s.deps, now).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    assert!(step(&report, "database_connections").ok, "{report:#?}");
    assert_eq!(report.after.unwrap().desired, 4, "{report:#?}");
    assert_eq!(s.desired().await, 4);
    assert!(
        report
            .decision
            .reason
            .contains("capped by database connections: 75 of 100 used, 10 per task"),
        "the report says the cap stopped it: {}",
        report.decision.reason
    );

    // Now the database is full: no headroom, so the next alarm change is skipped.
    s.database_connections("up-dbcap-db", 100.0).await;
    let later = now + Duration::seconds(1);
    let report = handle_at(s.alarm(later), &s.deps, later).await.unwrap();
    assert_eq!(report.outcome, Outcome::Skipped, "{report:#?}");
    assert!(
        report
            .outcome_reason
            .contains("capped at 4 tasks by database connections: 100 of 100 used"),
        "{}",
        report.outcome_reason
    );
    assert_eq!(s.desired().await, 4);
}

#[tokio::test]
async fn the_database_cap_lets_the_whole_step_through_with_headroom() {
    let s = stack("up-dbcap-room", 2, &db_cap("up-dbcap-room-db")).await;
    // 20 of 100 used: 8 more tasks' pools fit, the step of 3 is not cut.
    s.database_connections("up-dbcap-room-db", 20.0).await;
    let now = t0();
    let report = handle_at(s.alarm(now), &s.deps, now).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    assert!(step(&report, "database_connections").ok, "{report:#?}");
    assert_eq!(report.after.unwrap().desired, 5, "{report:#?}");
    assert_eq!(s.desired().await, 5);
    assert!(
        !report.decision.reason.contains("capped"),
        "{}",
        report.decision.reason
    );
}

#[tokio::test]
async fn cooldown_blocks_a_second_action() {
    let s = stack("up-cooldown", 1, &[("SCALE_OUT_COOLDOWN_S", "60")]).await;
    let now = t0();
    handle_at(s.alarm(now), &s.deps, now).await.unwrap();
    // A new alarm change 10 s later: inside the cooldown.
    let later = now + Duration::seconds(10);
    let report = handle_at(s.alarm(later), &s.deps, later).await.unwrap();
    assert_skipped(&report, "cooldown");
    assert_eq!(s.desired().await, 2);
    // After the cooldown the next change acts.
    let after = now + Duration::seconds(61);
    let report = handle_at(s.alarm(after), &s.deps, after).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(s.desired().await, 3);
}

#[tokio::test]
async fn the_same_event_twice_acts_once() {
    let s = stack("up-duplicate", 1, &[("SCALE_OUT_COOLDOWN_S", "0")]).await;
    let now = t0();
    let ev = s.alarm(now);
    let first = handle_at(ev.clone(), &s.deps, now).await.unwrap();
    assert_eq!(first.outcome, Outcome::Completed);
    // Redelivered a minute later (no cooldown configured: only the key stops it).
    let again = handle_at(ev, &s.deps, now + Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Skipped);
    assert!(
        again.outcome_reason.contains("duplicate"),
        "{}",
        again.outcome_reason
    );
    assert_eq!(
        again.episode_id, first.episode_id,
        "one episode per alarm change"
    );
    assert_eq!(s.desired().await, 2);
}

#[tokio::test]
async fn an_interrupted_scale_out_is_finished_by_the_redelivery() {
    let s = stack("up-resume", 1, &[]).await;
    let now = t0();
    let ev = s.alarm(now);
    // The intent was recorded, then the function died before UpdateService.
    let arn = s
        .deps
        .ecs
        .describe_service(&s.world.cluster, "visits-api")
        .await
        .unwrap()
        .arn;
    let key = scaling::episode::alarm_key("visits-api-cpu-high", now);
    let state = scaling::episode::EpisodeState::default();
    s.deps
        .ecs
        .tag(&arn, &state.record_scale_out(&key, 2, now))
        .await
        .unwrap();
    let report = handle_at(ev, &s.deps, now + Duration::seconds(5))
        .await
        .unwrap();
    assert_eq!(report.decision.action, "resume", "{report:#?}");
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(s.desired().await, 2);
}

#[tokio::test]
async fn the_max_is_respected() {
    let s = stack(
        "up-max",
        1,
        &[
            ("MAX_TASKS", "2"),
            ("SCALE_OUT_STEP", "5"),
            ("SCALE_OUT_COOLDOWN_S", "0"),
        ],
    )
    .await;
    let now = t0();
    let report = handle_at(s.alarm(now), &s.deps, now).await.unwrap();
    assert_eq!(
        report.after.unwrap().desired,
        2,
        "step of 5 capped at max 2"
    );
    let later = now + Duration::seconds(1);
    let report = handle_at(s.alarm(later), &s.deps, later).await.unwrap();
    assert_skipped(&report, "maximum of 2");
    assert_eq!(s.desired().await, 2);
}

#[tokio::test]
async fn ec2_mode_raises_the_asg() {
    let s = stack("up-ec2", 1, &[("CAPACITY_ASG_NAME", "up-ec2-capacity")]).await;
    s.asg
        .create_launch_configuration()
        .launch_configuration_name("up-ec2-lc")
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .unwrap();
    s.asg
        .create_auto_scaling_group()
        .auto_scaling_group_name("up-ec2-capacity")
        .launch_configuration_name("up-ec2-lc")
        .min_size(0)
        .max_size(3)
        .desired_capacity(1)
        .availability_zones("us-east-1a")
        .send()
        .await
        .unwrap();
    let now = t0();
    // The cluster has no container instance with room: the new task can't be placed.
    let report = handle_at(s.alarm(now), &s.deps, now).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    assert_eq!(report.before.unwrap().asg_desired, Some(1));
    assert_eq!(report.after.unwrap().asg_desired, Some(2));
    assert!(
        report.outcome_reason.contains("raised 1 -> 2"),
        "{}",
        report.outcome_reason
    );
    let groups = s
        .asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("up-ec2-capacity")
        .send()
        .await
        .unwrap();
    assert_eq!(groups.auto_scaling_groups()[0].desired_capacity(), Some(2));
    assert_eq!(s.desired().await, 2);
}

// --- The re-evaluation schedule (CloudWatch invokes the alarm action only on a
// state change; the schedule re-reads the scale-out alarms) ------------------

impl Stack {
    /// This stack's in-flight alarm: `<cluster>-inflight-high`, InFlight > 50
    /// (Average, 10 s), as the template's, in `state`.
    fn inflight_alarm(&self) -> String {
        format!("{}-inflight-high", self.world.cluster)
    }

    async fn put_inflight_alarm(&self, state: &str) {
        let cw = self.deps.cloudwatch.client();
        let name = self.inflight_alarm();
        cw.put_metric_alarm()
            .alarm_name(&name)
            .namespace("VisitsApi")
            .metric_name("InFlight")
            .set_dimensions(Some(self.service_dimensions()))
            .statistic(Statistic::Average)
            .period(10)
            .evaluation_periods(3)
            .threshold(50.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .send()
            .await
            .expect("PutMetricAlarm");
        cw.set_alarm_state()
            .alarm_name(&name)
            .state_value(StateValue::from(state))
            .state_reason("test")
            .send()
            .await
            .expect("SetAlarmState");
    }

    /// Each task's in-flight count, published a few seconds ago (EMF).
    async fn inflight(&self, per_task: &[f64]) {
        let at = std::time::SystemTime::now() - std::time::Duration::from_secs(3);
        let data = per_task
            .iter()
            .map(|v| {
                MetricDatum::builder()
                    .metric_name("InFlight")
                    .set_dimensions(Some(self.service_dimensions()))
                    .timestamp(at.into())
                    .value(*v)
                    .unit(StandardUnit::Count)
                    .build()
            })
            .collect();
        self.deps
            .cloudwatch
            .client()
            .put_metric_data()
            .namespace("VisitsApi")
            .set_metric_data(Some(data))
            .send()
            .await
            .expect("PutMetricData InFlight");
    }

    /// Tasks the scheduler reports running and pending.
    fn counts(&self, running: usize, pending: usize) {
        moto::shared()
            .set_service_counts(&self.world.cluster, "visits-api", running, pending)
            .unwrap();
    }

    async fn pause(&self) {
        let arn = self
            .deps
            .ecs
            .describe_service(&self.world.cluster, "visits-api")
            .await
            .unwrap()
            .arn;
        self.deps
            .ecs
            .tag(
                &arn,
                &[("autoscaler:paused".to_string(), "true".to_string())],
            )
            .await
            .unwrap();
    }
}

/// The sample schedule event (`events/scale-up-reevaluate-schedule.json`) at `at`.
fn schedule(at: DateTime<Utc>) -> Value {
    let mut ev = common::event("scale-up-reevaluate-schedule");
    ev["time"] = Value::String(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    ev
}

/// A stack whose re-evaluation reads its own in-flight alarm, proportional, 60 s cooldown.
async fn reevaluating(cluster: &str, desired: i32, extra: &[(&str, &str)]) -> Stack {
    let alarms = format!("{cluster}-inflight-high");
    let mut vars = vec![
        ("MAX_TASKS", "10"),
        ("SCALE_OUT_MODE", "proportional"),
        ("SCALE_OUT_COOLDOWN_S", "60"),
        ("SCALE_OUT_ALARMS", alarms.as_str()),
    ];
    vars.extend_from_slice(extra);
    stack(cluster, desired, &vars).await
}

#[tokio::test]
async fn still_in_alarm_after_the_cooldown_scales_out_once() {
    let s = reevaluating("up-reeval-step", 2, &[]).await;
    s.put_inflight_alarm("ALARM").await;
    // The alarm action scaled 2 -> 3 a minute ago; the load stays: 3 tasks at 80 in flight.
    let first = t0() - Duration::seconds(61);
    let arn = s
        .deps
        .ecs
        .describe_service(&s.world.cluster, "visits-api")
        .await
        .unwrap()
        .arn;
    let intent = scaling::episode::EpisodeState::default().record_scale_out("k", 3, first);
    s.deps.ecs.tag(&arn, &intent).await.unwrap();
    s.deps
        .ecs
        .update_desired(&s.world.cluster, "visits-api", 3)
        .await
        .unwrap();
    s.counts(3, 0);
    s.inflight(&[80.0, 80.0, 80.0]).await;
    let now = t0();
    let report = handle_at(schedule(now), &s.deps, now).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    // 3 running × 80 / 50 = 4.8: 5 tasks in one step.
    assert_eq!(s.desired().await, 5);
    assert_eq!(report.decision.target, Some(5));
    let scaling::report::TriggerSummary::Alarm {
        alarm_name,
        reason,
        value,
        ..
    } = &report.trigger
    else {
        panic!("the report names the alarm: {:?}", report.trigger)
    };
    assert_eq!(alarm_name, &s.inflight_alarm());
    assert!(
        reason.starts_with("re-evaluation by the schedule"),
        "{reason}"
    );
    assert_eq!(*value, Some(80.0));
    for name in [
        "describe_service",
        "describe_alarms",
        "get_metric_statistics",
        "update_service",
    ] {
        assert!(step(&report, name).ok, "{name}");
    }
    // The same schedule event again: one step per run.
    let again = handle_at(schedule(now), &s.deps, now + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Skipped, "{again:#?}");
    // The next tick, inside the new cooldown: nothing, quietly.
    let next = now + Duration::seconds(30);
    let report = handle_at(schedule(next), &s.deps, next).await.unwrap();
    assert_skipped(&report, "cooldown");
    assert_eq!(s.desired().await, 5);
}

#[tokio::test]
async fn an_alarm_back_to_ok_adds_nothing() {
    let s = reevaluating("up-reeval-ok", 2, &[]).await;
    s.put_inflight_alarm("OK").await;
    s.inflight(&[80.0, 80.0]).await;
    let now = t0();
    let report = handle_at(schedule(now), &s.deps, now).await.unwrap();
    assert_eq!(report.outcome, Outcome::Skipped, "{report:#?}");
    assert!(
        report
            .outcome_reason
            .contains("no scale-out alarm in ALARM"),
        "{}",
        report.outcome_reason
    );
    assert_eq!(s.desired().await, 2);
}

#[tokio::test]
async fn a_paused_service_is_left_alone() {
    let s = reevaluating("up-reeval-paused", 1, &[("MIN_TASKS", "2")]).await;
    s.put_inflight_alarm("ALARM").await;
    s.inflight(&[90.0]).await;
    s.pause().await;
    let now = t0();
    let report = handle_at(schedule(now), &s.deps, now).await.unwrap();
    assert_skipped(&report, "paused");
    assert_eq!(
        s.desired().await,
        1,
        "neither the floor nor the alarm acts while paused"
    );
}

#[tokio::test]
async fn pending_tasks_already_cover_the_overload() {
    let s = reevaluating("up-reeval-pending", 4, &[]).await;
    s.put_inflight_alarm("ALARM").await;
    // 2 running at 90 need ceil(3.6) = 4: the 2 pending ones cover it.
    s.counts(2, 2);
    s.inflight(&[90.0, 90.0]).await;
    let now = t0();
    let report = handle_at(schedule(now), &s.deps, now).await.unwrap();
    assert_skipped(&report, "covered");
    assert_eq!(s.desired().await, 4);
}

#[tokio::test]
async fn desired_below_min_is_raised_to_min() {
    // A release or a person left desired at 1; MIN_TASKS is 3. No alarm is in ALARM.
    let s = reevaluating("up-reeval-floor", 1, &[("MIN_TASKS", "3")]).await;
    s.put_inflight_alarm("OK").await;
    let now = t0();
    let report = handle_at(schedule(now), &s.deps, now).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    assert_eq!(s.desired().await, 3);
    assert!(
        report.decision.reason.contains("MIN_TASKS 3"),
        "{}",
        report.decision.reason
    );
    assert!(matches!(
        report.trigger,
        scaling::report::TriggerSummary::Schedule { .. }
    ));
    // Once at min, the next run has nothing to do.
    let next = now + Duration::seconds(60);
    let report = handle_at(schedule(next), &s.deps, next).await.unwrap();
    assert_eq!(report.outcome, Outcome::Skipped, "{report:#?}");
}

#[tokio::test]
async fn an_unknown_alarm_name_is_a_configuration_error() {
    let s = stack(
        "up-reeval-typo",
        2,
        &[("SCALE_OUT_ALARMS", "up-reeval-typo-no-such-alarm")],
    )
    .await;
    let now = t0();
    let err = handle_at(schedule(now), &s.deps, now).await.unwrap_err();
    assert!(err.to_string().contains("no-such-alarm"), "{err}");
    assert!(!scaling::error::Classify::retryable(&err));
    assert_eq!(s.desired().await, 2);
}

#[tokio::test]
async fn the_schedule_waits_for_a_cooldown_ending_within_its_period() {
    let s = reevaluating("up-reeval-wait", 2, &[]).await;
    s.put_inflight_alarm("ALARM").await;
    s.inflight(&[70.0, 70.0]).await;
    // The alarm action scaled out 58 s ago: 2 s of the 60 s cooldown are left,
    // inside the schedule's 60 s period, so the run waits for them.
    let arn = s
        .deps
        .ecs
        .describe_service(&s.world.cluster, "visits-api")
        .await
        .unwrap()
        .arn;
    let last = Utc::now() - Duration::seconds(58);
    let intent = scaling::episode::EpisodeState::default().record_scale_out("k", 2, last);
    s.deps.ecs.tag(&arn, &intent).await.unwrap();
    let started = std::time::Instant::now();
    let report = scale_up::handle(schedule(t0()), &s.deps).await.unwrap();
    let took = started.elapsed();
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    assert_eq!(report.steps[0].name, "wait_cooldown");
    // 2 running × 70 / 50 = 2.8: 3 tasks.
    assert_eq!(s.desired().await, 3);
    assert!(
        took >= std::time::Duration::from_millis(1000),
        "waited {took:?}"
    );
    assert!(took < std::time::Duration::from_secs(30), "waited {took:?}");
}

/// A stack with predictive scaling in `mode` reading its own load balancer's RequestCount
/// (the names are the cluster's, so tests do not see each other's history).
async fn forecasting(cluster: &str, desired: i32, mode: &str, extra: &[(&str, &str)]) -> Stack {
    let lb = format!("app/{cluster}/1");
    let tg = format!("targetgroup/{cluster}/1");
    let mut vars = vec![
        ("PREDICTIVE_MODE", mode),
        ("PREDICTIVE_LOAD_BALANCER", lb.as_str()),
        ("PREDICTIVE_TARGET_GROUP", tg.as_str()),
        ("PREDICTIVE_HISTORY_DAYS", "2"),
    ];
    vars.extend_from_slice(extra);
    let s = reevaluating(cluster, desired, &vars).await;
    s.put_inflight_alarm("OK").await;
    s
}

impl Stack {
    /// RequestCount sums, one datapoint inside each 5-minute step of `[from, from + n steps)`,
    /// `rps(i)` requests per second in step `i` (the load balancer's metric, as CloudWatch
    /// holds it).
    async fn request_counts(&self, from: DateTime<Utc>, n: usize, rps: impl Fn(usize) -> f64) {
        let rps: Vec<f64> = (0..n).map(rps).collect();
        test_support::cloudwatch::put_request_counts(
            self.deps.cloudwatch.client(),
            &format!("app/{}/1", self.world.cluster),
            &format!("targetgroup/{}/1", self.world.cluster),
            from.timestamp(),
            300,
            &rps,
        )
        .await
        .expect("PutMetricData RequestCount");
    }

    /// 25 hours of 300 req/s ending at the last whole step before `now` minus a minute, with
    /// 10,000 req/s one day before the step that follows (what the forecast repeats).
    async fn a_day_with_a_peak_next(&self, now: DateTime<Utc>) {
        let end = (now.timestamp() - 60).div_euclid(300) * 300;
        let from = DateTime::from_timestamp(end - 25 * 3600, 0).unwrap();
        // Step 12 of the history is one day before the step after its end.
        self.request_counts(from, 300, |i| if i == 12 { 10_000.0 } else { 300.0 })
            .await;
    }
}

#[tokio::test]
async fn predictive_on_raises_desired_ahead_of_the_forecast() {
    let s = forecasting("up-forecast-on", 2, "on", &[]).await;
    let now = t0();
    s.a_day_with_a_peak_next(now).await;
    let report = handle_at(schedule(now), &s.deps, now).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    // 10,000 req/s / 2,100 per task -> 5 tasks.
    assert_eq!(s.desired().await, 5);
    assert!(
        report
            .decision
            .reason
            .contains("ahead of the forecast: desired 2 -> 5"),
        "{}",
        report.decision.reason
    );
    let f = step(&report, "forecast");
    assert!(f.ok && f.detail.contains("peak 10000 req/s"), "{f:?}");
    // Never lowered on a forecast: the next run (the peak behind it) leaves 5.
    let later = now + Duration::seconds(600);
    let report = handle_at(schedule(later), &s.deps, later).await.unwrap();
    assert_eq!(report.outcome, Outcome::Skipped, "{report:#?}");
    assert_eq!(s.desired().await, 5);
}

#[tokio::test]
async fn the_database_cap_holds_the_forecast_raise() {
    let s = forecasting("up-forecast-cap", 2, "on", &db_cap("up-forecast-cap-db")).await;
    // 75 of 100 connections used: room for 2 more tasks' pools, so 2 -> 4, not the 5 the
    // forecast asks for.
    s.database_connections("up-forecast-cap-db", 75.0).await;
    let now = t0();
    s.a_day_with_a_peak_next(now).await;
    let report = handle_at(schedule(now), &s.deps, now).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    assert_eq!(s.desired().await, 4);
    assert!(
        report.decision.reason.contains(
            "ahead of the forecast: desired 2 -> 4 (capped by database connections: 75 of 100 used"
        ),
        "{}",
        report.decision.reason
    );
}

#[tokio::test]
async fn forecast_only_reports_what_it_would_do_and_changes_nothing() {
    let s = forecasting("up-forecast-only", 2, "forecast-only", &[]).await;
    let now = t0();
    s.a_day_with_a_peak_next(now).await;
    let report = handle_at(schedule(now), &s.deps, now).await.unwrap();
    assert_eq!(report.outcome, Outcome::Skipped, "{report:#?}");
    assert_eq!(s.desired().await, 2);
    let f = step(&report, "forecast");
    assert!(
        f.detail
            .starts_with("forecast-only: would raise desired 2 -> 5; forecast: peak 10000 req/s"),
        "{f:?}"
    );
}

#[tokio::test]
async fn under_a_day_of_history_the_forecast_says_so_and_does_nothing() {
    let s = forecasting("up-forecast-short", 2, "on", &[]).await;
    let now = t0();
    let end = (now.timestamp() - 60).div_euclid(300) * 300;
    // Ten hours of history only.
    s.request_counts(
        DateTime::from_timestamp(end - 10 * 3600, 0).unwrap(),
        120,
        |_| 9_000.0,
    )
    .await;
    let report = handle_at(schedule(now), &s.deps, now).await.unwrap();
    assert_eq!(report.outcome, Outcome::Skipped, "{report:#?}");
    assert_eq!(s.desired().await, 2);
    let f = step(&report, "forecast");
    assert!(f.detail.contains("not enough history"), "{f:?}");
}

/// The run skipped, for a reason that says `why`.
fn assert_skipped(report: &scaling::report::Report, why: &str) {
    assert_eq!(report.outcome, Outcome::Skipped, "{report:#?}");
    assert!(
        report.outcome_reason.contains(why),
        "{}",
        report.outcome_reason
    );
}
