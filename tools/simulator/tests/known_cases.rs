//! Known cases, reproduced exactly: a step, a ramp, a spike shorter than the
//! CPU alarm's window, and a sustained overload beyond max. The expected
//! seconds follow from the template's alarms and the model's timing (task
//! starts without jitter here), worked out in each test's comment.

use simulator::params::Params;
use simulator::project::Invocation;
use simulator::run::{run_all, Compare, Run};
use simulator::setup::{default_template, Setup};
use simulator::trace::synthetic;

fn run(shape: &str) -> (Run, Params) {
    let mut p = Params::default();
    let setup = Setup::load(
        &default_template(),
        &[("TASK_START_JITTER_S".into(), "0".into())],
        &mut p,
    )
    .expect("template");
    let t = synthetic(shape, p.task_capacity_rps).unwrap();
    (run_all(&t, 1.0, &setup, &p, 7, Compare::All).unwrap(), p)
}

fn acted(log: &[Invocation]) -> Vec<(i64, &str, i32)> {
    log.iter()
        .filter(|i| i.action == "scale_to" || i.action == "completed")
        .map(|i| (i.t, i.function.as_str(), i.desired))
        .collect()
}

fn score<'a>(r: &'a Run, name: &str) -> &'a simulator::run::Score {
    r.scores
        .iter()
        .find(|s| s.policy.starts_with(name))
        .unwrap_or_else(|| panic!("{name} in {:?}", r.scores))
}

/// A 90 s burst to five tasks' worth on two tasks (from 1800 s). The 10 s
/// in-flight and p95 alarms see periods [1800,1810)..[1820,1830) breach, count
/// the last one a second after it ends, 15 s later (EMF delay): ALARM at
/// 1846; the functions run 2 s later. In-flight scales out 2 -> 3, the p95
/// alarm's invocation finds the 60 s scale-out cooldown. The task serves at
/// 1848 + 55 s, after the burst: all 90 s are overloaded, as for every policy
/// but the oracle; the 60 s CPU alarms never fire (5 of 5 and 3 of 3 minutes).
#[test]
fn spike_shorter_than_the_cpu_window() {
    let (r, p) = run("spike");
    let log = &r.project_log;
    let ups: Vec<_> = log.iter().filter(|i| i.function == "scale-up").collect();
    assert_eq!(ups.len(), 2, "{ups:#?}");
    assert_eq!(
        (ups[0].t, ups[0].action.as_str(), ups[0].desired),
        (1848, "scale_to", 3)
    );
    assert_eq!((ups[1].t, ups[1].action.as_str()), (1848, "skip"));
    assert!(ups[1].reason.contains("cooldown"), "{}", ups[1].reason);
    let c = p.task_capacity_rps;
    for s in &r.scores[..r.scores.len() - 1] {
        assert_eq!(s.overloaded_s, 90, "{}", s.policy);
        assert!(
            (s.overloaded_requests - 90.0 * 3.0 * c).abs() < 1e-3,
            "{}",
            s.policy
        );
    }
    assert_eq!(score(&r, "oracle").overloaded_s, 0);
    assert_eq!(score(&r, "target tracking (60 s)").actions, 0);
    assert_eq!(score(&r, "original design").actions, 0);
}

/// 0.8 task's worth, then four from 1200 s to 4800 s, on two tasks. In-flight
/// fires at 1246 (as in the spike): 2 -> 3 at 1248. The CPU alarm needs 5
/// breaching minutes [1200,1500), counted at 1501 plus the 60 s ECS delay:
/// 3 -> 4 at 1563. Four tasks carry four tasks' worth at 90 % CPU, so both
/// alarms stay in ALARM and CloudWatch invokes nothing more: the service stays
/// at 4 (the 70 % target would need 6). The overload ends when the 4th task
/// serves at 1563 + 55 = 1618: 418 s. After 4800 (18 % CPU on four tasks) the
/// low alarm needs 5 minutes below 30 % ([4800,5100), at 5101 + 60 = 5161).
/// The reconcile schedule's run at 5160 (every 120 s, 2 s invoke) reads it in
/// ALARM at 5162 and removes a task (4 -> 3); the alarm's own action at 5163
/// finds the scale-in cooldown. Still below 30 % on three tasks: the schedule
/// removes one more after the 300 s cooldown, at 5520 + 2: 3 -> 2 (the min).
#[test]
fn step_load() {
    let (r, _) = run("step");
    assert_eq!(
        acted(&r.project_log),
        vec![
            (1248, "scale-up", 3),
            (1563, "scale-up", 4),
            (5162, "scale-down", 3),
            (5522, "scale-down", 2),
        ]
    );
    let me = score(&r, "this project");
    assert_eq!(me.overloaded_s, 1618 - 1200);
    assert_eq!(me.worst_to_capacity_s, 418);
    assert_eq!(score(&r, "oracle").overloaded_s, 0);
}

/// A ramp from 0.8 task's worth to five over 40 min: the in-flight alarm fires
/// before any overload each time a step is needed (in flight passes 50 per task
/// at about 77 % CPU), so the project follows the ramp without overload.
#[test]
fn ramp() {
    let (r, _) = run("ramp");
    let me = score(&r, "this project");
    assert_eq!(me.overloaded_s, 0);
    let ups = acted(&r.project_log)
        .into_iter()
        .filter(|a| a.1 == "scale-up")
        .count();
    assert_eq!(ups, 4, "2 -> 6 in four steps: {:#?}", r.project_log);
    assert!(score(&r, "target tracking (60 s)").overloaded_s > 0);
}

/// Eight tasks' worth for 40 min on two tasks, max six. Every policy overloads
/// for the whole 40 min (max serves six); the oracle reaches six at once.
/// The project adds one task per alarm transition: in flight at 646 -> 3 at
/// 648, CPU at 600 + 300 + 1 + 60 -> 4 at 963, and then nothing while both
/// alarms stay in ALARM: it never reaches max (CloudWatch acts on transitions
/// only). Target tracking re-evaluates every minute and reaches six.
#[test]
fn sustained_overload_beyond_max() {
    let (r, _) = run("sustained");
    for s in &r.scores {
        assert_eq!(s.overloaded_s, 2400, "{}", s.policy);
    }
    let ups: Vec<_> = acted(&r.project_log)
        .into_iter()
        .filter(|a| a.1 == "scale-up")
        .collect();
    assert_eq!(ups, vec![(648, "scale-up", 3), (963, "scale-up", 4)]);
    let oracle = score(&r, "oracle");
    assert!(score(&r, "this project").overloaded_requests > oracle.overloaded_requests);
    let tt = score(&r, "target tracking (60 s)");
    assert!(tt.worst_to_capacity_s < score(&r, "this project").worst_to_capacity_s);
}
