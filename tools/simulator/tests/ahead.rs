//! Capacity ahead of the load, on a trace whose every day repeats: the same step from 0.8 to 4
//! tasks' worth at 10:00 for an hour, three days. The reactive project is overloaded each day
//! until its alarms and a task start catch up; with `PREDICTIVE_MODE=on` the first day is the
//! same (no history yet), and on the next two the forecast raises desired before the step;
//! with a window over the busy hour, every day.

use simulator::ahead::{daily_reviews, daily_window, HISTORY_DAYS};
use simulator::params::Params;
use simulator::run::{run_with, Compare, Run, Variant};
use simulator::setup::{default_template, Setup};
use simulator::trace::Trace;

const DAY: usize = 86_400;

fn trace(days: usize, capacity: f64) -> Trace {
    let rps = (0..days * DAY)
        .map(|t| {
            let busy = (10 * 3600..11 * 3600).contains(&(t % DAY));
            capacity * if busy { 4.0 } else { 0.8 }
        })
        .collect();
    Trace {
        name: "repeating-days".into(),
        rps,
        bin_s: 1,
    }
}

fn setup(extra: &[(&str, &str)], p: &mut Params) -> Setup {
    let mut o = vec![("TASK_START_JITTER_S".to_string(), "0".to_string())];
    o.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Setup::load(&default_template(), &o, p).expect("template")
}

fn run(days: usize) -> Run {
    let mut p = Params::default();
    let base = setup(&[], &mut p);
    let t = trace(days, p.task_capacity_rps);
    let mut variants = vec![Variant {
        label: "predictive".into(),
        setup: setup(&[("PREDICTIVE_MODE", "on")], &mut p),
    }];
    if let Some(w) = daily_window(&t, 2100.0, 2, 6) {
        variants.push(Variant {
            label: "window".into(),
            setup: setup(&[("SCHEDULE_WINDOWS", &w)], &mut p),
        });
    }
    run_with(&t, 1.0, &base, &variants, &p, 1, Compare::Operator).unwrap()
}

#[test]
fn the_forecast_raises_capacity_before_a_repeating_step() {
    let r = run(3);
    let (reactive, predictive) = (&r.scores[0], &r.scores[1]);
    assert_eq!(
        (reactive.policy.as_str(), predictive.policy.as_str()),
        ("this project", "predictive")
    );
    let over = |s: &simulator::run::Score, d: usize| s.daily[d].0;
    // Day 1: no history, the same as reactive.
    assert_eq!(over(predictive, 0), over(reactive, 0));
    assert!(
        over(reactive, 1) > 0 && over(reactive, 2) > 0,
        "{:?}",
        reactive.daily
    );
    // Days 2 and 3: ready before the step.
    assert_eq!(
        (over(predictive, 1), over(predictive, 2)),
        (0, 0),
        "{:?}",
        predictive.daily
    );
    // Three days are not enough for the operator's window (history and a day after it).
    assert!(
        !r.scores.iter().any(|s| s.policy == "window"),
        "{:?}",
        r.scores.iter().map(|s| &s.policy).collect::<Vec<_>>()
    );
}

#[test]
fn a_window_over_the_busy_hour_is_ready_every_day_after_its_history() {
    let r = run(4);
    let window = r
        .scores
        .iter()
        .find(|s| s.policy == "window")
        .expect("a window");
    let reactive = &r.scores[0];
    assert!(reactive.daily[3].0 > 0);
    assert_eq!(window.daily[3].0, 0, "{:?}", window.daily);
}

#[test]
fn the_daily_review_of_repeating_days_finds_the_forecast_exact() {
    let mut p = Params::default();
    let base = setup(&[], &mut p);
    let t = trace(HISTORY_DAYS + 2, p.task_capacity_rps);
    let reviews = daily_reviews(&t, &base.config.predictive);
    // One review per day after the history: each compares the whole day, exactly.
    assert_eq!(reviews.len(), 2);
    for r in &reviews {
        assert_eq!((r.compared, r.steps), (288, 288), "{r:?}");
        assert!(r.wape.unwrap() < 1e-9, "{r:?}");
        assert_eq!((r.short_steps, r.extra_task_hours), (0, 0.0), "{r:?}");
    }
    // A busier last day: until the level ratio catches up, the review sees the forecast run
    // low.
    let mut busier = t.clone();
    let n = busier.rps.len();
    for v in &mut busier.rps[n - DAY..] {
        *v *= 1.5;
    }
    let last = daily_reviews(&busier, &base.config.predictive)
        .pop()
        .unwrap();
    assert!(last.bias.unwrap() < 0.0, "{last:?}");
    // Worst at the day's first step, before the level ratio has seen an hour of it.
    let worst = last.worst.unwrap();
    assert_eq!(worst.at, last.from);
    assert!(worst.forecast_rps < worst.actual_rps, "{last:?}");
}
