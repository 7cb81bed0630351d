//! The CloudWatch side of the autoscaler, as a model: the alarm definitions of
//! `infra/scaling.yaml` ([`template`], read through [`cfn`]), the M-of-N
//! evaluation of an alarm over its metric ([`eval`]) and the payload a Lambda
//! alarm action receives ([`payload`]).
//!
//! Two users share it, so that no alarm rule exists twice: the local stack's
//! alarm driver (package `e2e`), which evaluates the tasks' real metrics and
//! invokes the real function binaries, and the scaling simulator (package
//! `simulator`), which replays request-rate traces.

pub mod cfn;
pub mod eval;
pub mod payload;
pub mod template;
