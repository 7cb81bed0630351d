//! Integration tests of the visits API against a real PostgreSQL: one test binary (one shared
//! throwaway cluster, a fresh database per test), one module per area.

mod admin;
mod fresh_reads;
mod helpers;
mod outage;
mod process;
mod stress;
mod tls;
mod total;
mod visits;
