//! Local stack harness: the emulated service with its task runner ([`stack`])
//! and the load generator ([`loadgen`]) used by `make demo` and the
//! end-to-end tests. Process, database and emulator helpers live in
//! the `test-support` crate (tests/support).

pub mod loadgen;
pub mod stack;
pub mod template;
