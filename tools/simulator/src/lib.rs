//! A deterministic, discrete-time simulator of the autoscaler: it replays a
//! request-rate trace, one second at a time, against a model of the service
//! and of AWS's timing, and runs the project's own decision code on it (see
//! [`project`]). The same trace also runs through ECS target tracking (60 s and
//! 20 s metrics), step scaling, the original 70/30 % design ([`baselines`]) and
//! an oracle that knows the future ([`oracle`]).
//!
//! Used by `make bench-scaling` (every trace of `../shared/traces/` and the
//! synthetic shapes) and by the operators' `simulate` command (`main.rs`).

pub mod ahead;
pub mod baselines;
pub mod metrics;
pub mod oracle;
pub mod params;
pub mod port;
pub mod project;
pub mod report;
pub mod rng;
pub mod run;
pub mod service;
pub mod setup;
pub mod trace;
