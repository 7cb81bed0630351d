//! Test infrastructure shared by every crate's tests: a private throwaway
//! PostgreSQL cluster ([`pg`]) and the AWS emulator in server mode ([`moto`]),
//! both started as child processes that cannot outlive the test binary
//! ([`guard`]), and an ECS service provisioned in that emulator
//! ([`emulated_ecs`]).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let db_url = test_support::pg::shared().fresh_database("visits")?;
//! let moto = test_support::moto::Moto::start()?;
//! let ecs = aws_sdk_ecs::Client::new(&moto.sdk_config().await);
//! # let _ = (db_url, ecs); Ok(()) }
//! ```

pub mod capacity;
pub mod cloudwatch;
pub mod emulated_ecs;
pub mod guard;
pub mod http;
pub mod moto;
pub mod paths;
pub mod pg;

/// A free TCP port on 127.0.0.1 (bound then released: a tiny race with other
/// processes is possible, which callers absorb by retrying their start once).
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// A fresh, unique scratch directory under the system temp dir. The caller owns
/// its removal (the guards in [`pg`] and [`moto`] remove theirs).
pub fn scratch_dir(prefix: &str) -> std::io::Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
