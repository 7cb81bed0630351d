//! The shared traces (`../shared/traces` beside the repository, or
//! `SHARED_TRACES`) read without error, and their first six hours replay with
//! no policy beating the oracle. Where the folder is absent the test says so
//! and where the traces come from (docs/scaling-quality.md, "The traces").

use simulator::params::Params;
use simulator::run::{run_all, scale_factor, Compare};
use simulator::setup::{default_template, Setup};
use simulator::trace::{self, Trace};
use std::path::PathBuf;

fn dir() -> PathBuf {
    std::env::var_os("SHARED_TRACES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces"))
}

#[test]
fn every_shared_trace_reads_and_replays() {
    let dir = dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "SKIPPED: no shared traces at {} (set SHARED_TRACES). They are the public NASA-HTTP \
             1995 and World Cup 1998 logs (Internet Traffic Archive), the Azure LLM inference \
             trace 2023 (Azure/AzurePublicDataset) and the ArchiveTeam Twitter sample stream.",
            dir.display()
        );
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no CSV trace", dir.display());
    let mut p = Params::default();
    let setup = Setup::load(&default_template(), &[], &mut p).unwrap();
    for f in files {
        let t = trace::read(&f).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(t.len_s() >= 600 && t.total() > 0.0, "{}", f.display());
        let factor = scale_factor(&t, &p, setup.bounds()).unwrap();
        let scaled = t.scaled(factor);
        let head = Trace {
            rps: scaled.rps.iter().take(6 * 3600).copied().collect(),
            ..scaled
        };
        let run = run_all(&head, factor, &setup, &p, 1, Compare::All).unwrap();
        let oracle = run.scores.last().unwrap();
        for s in &run.scores {
            assert!(
                s.overloaded_requests >= oracle.overloaded_requests - 1e-6,
                "{}: {}",
                f.display(),
                s.policy
            );
        }
    }
}
