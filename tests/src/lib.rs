//! Local stack harness: the load generator ([`loadgen`]) used by `make demo`
//! and the end-to-end tests. Process, database and emulator helpers live in
//! the `test-support` crate (tests/support).

pub mod loadgen;
