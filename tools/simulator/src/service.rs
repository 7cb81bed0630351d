//! The ECS service as the simulation sees it: tasks that start after a drawn
//! delay, serve, and on scale-in leave the target group at once and stay billed
//! through their drain and stop. Time is whole seconds from the trace's start.

use crate::params::Params;
use crate::rng::Rng;

/// One task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: u32,
    /// Desired was raised for it (billing starts).
    pub launched: i64,
    /// It serves from this second.
    pub ready: i64,
    /// It stopped serving (deregistered) at this second.
    pub left: Option<i64>,
    /// Billed until this second.
    pub stopped: Option<i64>,
}

impl Task {
    /// Serving at `t`.
    pub fn serving(&self, t: i64) -> bool {
        self.ready <= t && self.left.is_none_or(|l| t < l)
    }

    /// Started, not yet serving (ECS `pendingCount`).
    pub fn pending(&self, t: i64) -> bool {
        t < self.ready && self.left.is_none()
    }

    /// Billed at `t` (from launch to stop).
    pub fn billed(&self, t: i64) -> bool {
        self.launched <= t && self.stopped.is_none_or(|s| t < s)
    }

    /// Still counted in desired (not on its way out).
    pub fn live(&self) -> bool {
        self.left.is_none()
    }
}

/// The service: desired count and tasks.
#[derive(Debug, Clone)]
pub struct Service {
    pub desired: i32,
    pub tasks: Vec<Task>,
    next_id: u32,
    rng: Rng,
    start_s: f64,
    jitter_s: f64,
    stop_tail_s: i64,
    /// Desired changes so far (scaling actions).
    pub actions: u32,
}

impl Service {
    /// `initial` tasks already serving at time 0.
    pub fn new(initial: i32, p: &Params, seed: u64) -> Self {
        let mut s = Service {
            desired: initial,
            tasks: Vec::new(),
            next_id: 0,
            rng: Rng::new(seed),
            start_s: p.task_start_s,
            jitter_s: p.task_start_jitter_s,
            stop_tail_s: p.stop_tail_s(),
            actions: 0,
        };
        for _ in 0..initial {
            s.push_task(i64::MIN / 4, i64::MIN / 4);
        }
        s
    }

    fn push_task(&mut self, launched: i64, ready: i64) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.tasks.push(Task {
            id,
            launched,
            ready,
            left: None,
            stopped: None,
        });
        id
    }

    /// Tasks serving at `t`.
    pub fn serving(&self, t: i64) -> i32 {
        self.tasks.iter().filter(|k| k.serving(t)).count() as i32
    }

    /// Tasks started but not serving yet at `t`.
    pub fn pending(&self, t: i64) -> i32 {
        self.tasks.iter().filter(|k| k.pending(t)).count() as i32
    }

    /// Tasks billed at `t`.
    pub fn billed(&self, t: i64) -> i32 {
        self.tasks.iter().filter(|k| k.billed(t)).count() as i32
    }

    /// Sets desired at `t`, as ECS does: more tasks start (each after a drawn
    /// start time); fewer stop, the not-yet-serving ones first, then the newest.
    pub fn set_desired(&mut self, target: i32, t: i64) {
        if target == self.desired {
            return;
        }
        self.actions += 1;
        self.desired = target;
        let live = self.tasks.iter().filter(|k| k.live()).count() as i32;
        for _ in live..target {
            let start = self.start_s + self.jitter_s * (2.0 * self.rng.next_f64() - 1.0);
            self.push_task(t, t + start.round().max(0.0) as i64);
        }
        for _ in target..live {
            let victim = self
                .tasks
                .iter()
                .enumerate()
                .filter(|(_, k)| k.live())
                .max_by_key(|(_, k)| (k.pending(t), k.ready, k.id))
                .map(|(i, _)| i);
            if let Some(i) = victim {
                self.stop(i, t);
            }
        }
    }

    /// Removes the task `id` (the scale-in's victim) and lowers desired by one.
    pub fn remove(&mut self, id: u32, t: i64) -> bool {
        let Some(i) = self.tasks.iter().position(|k| k.id == id && k.live()) else {
            return false;
        };
        self.actions += 1;
        self.desired -= 1;
        self.stop(i, t);
        true
    }

    fn stop(&mut self, i: usize, t: i64) {
        let k = &mut self.tasks[i];
        k.left = Some(t);
        // A task that never served stops at once; a serving one drains and stops.
        k.stopped = Some(if t < k.ready { t } else { t + self.stop_tail_s });
    }

    /// Drops tasks stopped before `t` (keeps the list short on long traces).
    pub fn forget_stopped(&mut self, t: i64) {
        self.tasks.retain(|k| k.stopped.is_none_or(|s| s > t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_serve_and_stop() {
        let p = Params {
            task_start_jitter_s: 0.0,
            ..Params::default()
        };
        let mut s = Service::new(2, &p, 1);
        assert_eq!((s.serving(0), s.billed(0)), (2, 2));
        s.set_desired(3, 100);
        assert_eq!((s.serving(100), s.pending(100), s.billed(100)), (2, 1, 3));
        assert_eq!(s.serving(155), 3, "after TASK_START_S");
        s.set_desired(2, 200);
        // The newest serving task leaves at once and stays billed for drain + stop.
        assert_eq!((s.serving(200), s.billed(200)), (2, 3));
        assert_eq!(s.billed(200 + p.stop_tail_s()), 2);
        // A pending task is removed before a serving one, and stops at once.
        s.set_desired(3, 300);
        s.set_desired(2, 310);
        assert_eq!((s.serving(310), s.billed(310), s.pending(310)), (2, 2, 0));
        assert_eq!(s.actions, 4);
    }
}
