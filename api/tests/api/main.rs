//! Integration tests of the visits API against a real PostgreSQL: one test binary (one shared
//! throwaway cluster, a fresh database per test), one module per area.

mod admin;
mod chaos;
mod drain;
mod faults;
mod fresh_reads;
mod helpers;
mod input;
mod outage;
mod partition;
mod process;
mod process_faults;
mod rotation;
mod slow_clients;
mod stress;
mod tls;
mod total;
mod visits;
