//! Shared library for the autoscaler functions: trigger events, the pure scaling
//! policy, AWS adapters, episode state, reports and config.

pub mod aws;
pub mod config;
pub mod deadline;
pub mod episode;
pub mod error;
pub mod forecast;
pub mod headroom;
pub mod policy;
pub mod predictive;
pub mod report;
pub mod review;
pub mod trigger;
pub mod window;
