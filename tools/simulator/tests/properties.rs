//! The oracle is never beaten on task-hours without more overload, and the
//! same seed gives the same output.

use proptest::prelude::*;
use simulator::params::Params;
use simulator::run::{run_all, Compare};
use simulator::setup::{default_template, Setup};
use simulator::trace::{synthetic, Trace};

fn setup(p: &mut Params) -> Setup {
    Setup::load(&default_template(), &[], p).expect("template")
}

/// Piecewise-constant load: `levels` in tasks' worth, each held `hold` seconds.
fn trace(levels: &[f64], hold: usize, c: f64) -> Trace {
    Trace {
        name: "prop".into(),
        rps: levels
            .iter()
            .flat_map(|l| std::iter::repeat_n(l * c, hold))
            .collect(),
        bin_s: 1,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn no_policy_beats_the_oracle_without_more_overload(
        levels in proptest::collection::vec(0.0..8.0f64, 2..10),
        hold in 60usize..900,
        seed in any::<u64>(),
        start in 20.0..90.0f64,
    ) {
        let mut p = Params::default();
        let s = setup(&mut p);
        p.task_start_s = start;
        p.task_start_jitter_s = start / 4.0;
        let t = trace(&levels, hold, p.task_capacity_rps);
        let run = run_all(&t, 1.0, &s, &p, seed, Compare::All).unwrap();
        let oracle = run.scores.last().unwrap().clone();
        for sc in &run.scores[..run.scores.len() - 1] {
            // The oracle serves as much as max allows at every second.
            prop_assert!(sc.overloaded_requests >= oracle.overloaded_requests - 1e-6,
                "{} overloaded less than the oracle: {} < {}", sc.policy,
                sc.overloaded_requests, oracle.overloaded_requests);
            if sc.overloaded_requests <= oracle.overloaded_requests + 1e-6 {
                prop_assert!(sc.task_hours >= oracle.task_hours - 1e-9,
                    "{} used {} task-hours, the oracle {}", sc.policy, sc.task_hours, oracle.task_hours);
            }
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_output() {
    let mut p = Params::default();
    let s = setup(&mut p);
    let t = synthetic("ramp", p.task_capacity_rps).unwrap();
    let a = run_all(&t, 1.0, &s, &p, 42, Compare::All).unwrap();
    let b = run_all(&t, 1.0, &s, &p, 42, Compare::All).unwrap();
    assert_eq!(a.scores, b.scores);
    assert_eq!(a.project_log, b.project_log);
    assert_eq!(
        simulator::report::svg(&a),
        simulator::report::svg(&b),
        "the plot too"
    );
    // Another seed draws other start times (the model is not seed-blind).
    let c = run_all(&t, 1.0, &s, &p, 43, Compare::All).unwrap();
    assert_ne!(a.scores, c.scores);
}
