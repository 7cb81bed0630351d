//! proptest: random interleavings of scale-up and scale-down invocations (low
//! alarm, reconcile schedule), random AWS failures and crashes, and scale-ups
//! landing mid-episode. "Within bounds" (min <= desired <= max) must hold at
//! every UpdateService, and "nothing half-done" once the reconcile schedule has
//! run (the rules are in docs/invariants.md).

mod common;

use common::*;
use proptest::prelude::*;
use scale_down::handle;

#[derive(Debug, Clone)]
enum Op {
    /// The low alarm fires; `fail` per mille of calls fail; `crash` ends the invocation after that many calls;
    /// `up_at` runs a scale-up before that call.
    ScaleDown {
        fail: u32,
        crash: Option<usize>,
        up_at: Option<usize>,
    },
    /// A scale-up invocation between scale-downs.
    ScaleUp,
    /// The reconcile schedule, itself subject to failures.
    Schedule { fail: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u32..300, proptest::option::of(0usize..40), proptest::option::of(0usize..40))
            .prop_map(|(fail, crash, up_at)| Op::ScaleDown { fail, crash, up_at }),
        1 => Just(Op::ScaleUp),
        1 => (0u32..300).prop_map(|fail| Op::Schedule { fail }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn within_bounds_and_nothing_half_done(tasks in 1usize..6, ops in proptest::collection::vec(op(), 1..12), seed in any::<u64>()) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let (min, max) = (1, 6);
        let result: Result<(), String> = rt.block_on(async {
            let world = World::new(tasks, min, max);
            world.with(|s| s.rng = seed | 1);
            let st = settings(min, max);
            for (n, op) in ops.iter().enumerate() {
                let base = world.calls();
                world.with(|s| {
                    s.fail_per_mille = 0;
                    s.crash_at = None;
                    s.scale_up_at = None;
                });
                let event = match op {
                    Op::ScaleUp => {
                        world.with(|s| s.scale_up());
                        continue;
                    }
                    Op::ScaleDown { fail, crash, up_at } => {
                        world.with(|s| {
                            s.fail_per_mille = *fail;
                            s.crash_at = crash.map(|c| base + c);
                            s.scale_up_at = up_at.map(|c| base + c);
                        });
                        alarm("ALARM", n as u32)
                    }
                    Op::Schedule { fail } => {
                        world.with(|s| s.fail_per_mille = *fail);
                        schedule()
                    }
                };
                // Errors are allowed (Lambda retries them); the rules are not.
                let _ = handle(event, &world, &st, deadline()).await;
                let violations = world.with(|s| s.violations.clone());
                if !violations.is_empty() {
                    return Err(format!("after op {n} {op:?}: {violations:?}"));
                }
            }
            world.with(|s| {
                s.fail_per_mille = 0;
                s.crash_at = None;
                s.scale_up_at = None;
            });
            for _ in 0..3 {
                handle(schedule(), &world, &st, deadline()).await.map_err(|e| e.to_string())?;
            }
            world.check_settled()
        });
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}
