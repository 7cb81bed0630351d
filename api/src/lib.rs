//! The visits API: records page visits in PostgreSQL, and is the ECS service that the
//! autoscaler scales. `main.rs` only reads the config and calls [`Application`].

pub mod config;
pub mod db;
pub mod db_secret;
pub mod drain;
pub mod emf;
pub mod error;
pub mod healthcheck;
pub mod identity;
pub mod metrics;
pub mod middleware;
pub mod routes;
pub mod serve;
pub mod startup;
pub mod state;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod web;
pub mod write_health;

pub use config::Config;
pub use startup::Application;
