//! The oracle: the least capacity that serves the trace, knowing the future,
//! with the same task start (its fastest draw) and the same drain and stop.
//!
//! Tasks needed at `t`: `ceil(demand / TASK_CAPACITY_RPS)` within [min, max].
//! Task k (k = 1..max) serves exactly while at least k are needed; a gap no
//! longer than a start plus a stop is bridged (restarting would cost more
//! task-time than keeping it). Each launch is billed from `TASK_START` before it
//! serves, each stop for `DRAIN_S + STOP_S` after. Every policy pays at least
//! this for the same service, so no policy has fewer task-hours without more
//! overload.

use crate::params::Params;
use crate::trace::Trace;

/// Per-second task counts of a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub serving: Vec<i32>,
    pub billed: Vec<i32>,
    pub actions: u32,
}

/// Tasks needed to serve `rps` within the bounds.
pub fn needed(rps: f64, p: &Params, min: i32, max: i32) -> i32 {
    ((rps / p.task_capacity_rps - 1e-9).ceil() as i32).clamp(min, max)
}

/// The oracle's schedule for `trace`, starting with `initial` tasks serving.
pub fn schedule(trace: &Trace, p: &Params, min: i32, max: i32, initial: i32) -> Schedule {
    let n = trace.len_s();
    let need: Vec<i32> = trace.rps.iter().map(|&r| needed(r, p, min, max)).collect();
    let start = p.fastest_start_s();
    let tail = p.stop_tail_s();
    let bridge = start + tail;
    let mut serving = vec![0i32; n];
    let mut billed_diff = vec![0i64; n + 1];
    let mut desired_diff = vec![0i64; n + 1];
    let clamp = |t: i64| t.clamp(0, n as i64) as usize;
    for k in 1..=max {
        // Intervals where at least k tasks are needed; task k runs from time 0
        // when it is one of the initial tasks.
        let mut runs: Vec<(i64, i64)> = Vec::new();
        let mut open: Option<i64> = (k <= initial).then_some(0);
        for (t, &need_t) in need.iter().enumerate() {
            let t = t as i64;
            match (open, need_t >= k) {
                (None, true) => open = Some(t),
                (Some(a), false) => {
                    runs.push((a, t));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(a) = open {
            runs.push((a, n as i64));
        }
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for r in runs {
            match merged.last_mut() {
                Some(last) if r.0 - last.1 <= bridge => last.1 = r.1,
                _ => merged.push(r),
            }
        }
        for (a, b) in merged {
            for s in &mut serving[clamp(a)..clamp(b)] {
                *s += 1;
            }
            let initial_task = a == 0 && k <= initial;
            let from = if initial_task { 0 } else { a - start };
            let until = if b >= n as i64 { b } else { b + tail };
            billed_diff[clamp(from)] += 1;
            billed_diff[clamp(until)] -= 1;
            // Desired counts the task from its launch to its stop.
            desired_diff[clamp(from)] += 1;
            desired_diff[clamp(b)] -= 1;
        }
    }
    let mut billed = Vec::with_capacity(n);
    let mut desired = Vec::with_capacity(n);
    let (mut b, mut d) = (0i64, 0i64);
    for t in 0..n {
        b += billed_diff[t];
        d += desired_diff[t];
        billed.push(b as i32);
        desired.push(d as i32);
    }
    let actions = desired.windows(2).filter(|w| w[0] != w[1]).count() as u32;
    Schedule {
        serving,
        billed,
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launches_ahead_and_bridges_short_gaps() {
        let p = Params {
            task_start_s: 50.0,
            task_start_jitter_s: 10.0,
            drain_s: 0.0,
            stop_s: 20.0,
            ..Params::default()
        };
        let c = p.task_capacity_rps;
        // 1 task's load, 2 tasks' for 100 s from 200, a 30 s dip, 2 again for 100 s.
        let mut rps = vec![c; 600];
        for r in &mut rps[200..300] {
            *r = 2.0 * c;
        }
        for r in &mut rps[330..430] {
            *r = 2.0 * c;
        }
        let t = Trace {
            name: "x".into(),
            rps,
            bin_s: 1,
        };
        let s = schedule(&t, &p, 1, 4, 1);
        assert_eq!(s.serving[199], 1);
        assert_eq!(s.serving[200], 2);
        assert_eq!(
            s.serving[310], 2,
            "a 30 s gap is shorter than start + stop: kept"
        );
        assert_eq!(s.serving[430], 1);
        // Billed from 40 s before 200 (fastest start) to 20 s after 430.
        assert_eq!((s.billed[159], s.billed[160]), (1, 2));
        assert_eq!((s.billed[449], s.billed[450]), (2, 1));
        assert_eq!(s.actions, 2);
    }
}
