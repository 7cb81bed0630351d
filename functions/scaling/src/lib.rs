//! Shared library for the autoscaler functions: trigger events, the pure scaling
//! policy, AWS adapters, episode state, reports and config.

pub mod report;
