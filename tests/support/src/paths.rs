//! Where the project's tools live, found from this crate's location so tests
//! work from any working directory.

use std::path::PathBuf;

/// The repository root (two levels above `tests/support`).
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or(here)
}

/// The project venv's `bin/` directory, or an error that says to run `make setup`.
pub fn venv_bin() -> anyhow::Result<PathBuf> {
    let bin = repo_root().join(".venv/bin");
    if bin.join("python").exists() {
        Ok(bin)
    } else {
        anyhow::bail!(
            "the project venv is missing ({}): run `make setup` first",
            bin.display()
        )
    }
}

/// A command found on PATH or in one of `extra_dirs`, in that order.
pub fn find_tool(name: &str, extra_dirs: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().cloned())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A debug binary of this workspace (`target/debug/<bin>`, or under
/// `CARGO_TARGET_DIR`), built on first use.
///
/// Tests that run another package's binary (the API as a task, the functions
/// under the runtime API) must work from a clean clone with `cargo test -p X`:
/// cargo builds only the package under test, so the binary may be missing or
/// stale. Under cargo (`CARGO` is set for `cargo test` and `cargo run`) this
/// runs `cargo build -p <package> --bin <bin>` once per process and binary,
/// which is a no-op when it is fresh. Outside cargo (the demo started by
/// `make demo`, which builds everything first) the binary must exist.
pub fn workspace_binary(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static BUILT: OnceLock<Mutex<HashMap<String, Result<PathBuf, String>>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let result = built
        .entry(format!("{package}/{bin}"))
        .or_insert_with(|| build_binary(package, bin).map_err(|e| format!("{e:#}")));
    result.clone().map_err(anyhow::Error::msg)
}

fn build_binary(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = target.join("debug").join(bin);
    if let Some(cargo) = std::env::var_os("CARGO") {
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "-p", package, "--bin", bin])
            .current_dir(repo_root())
            .status()
            .map_err(|e| anyhow::anyhow!("run `cargo build -p {package} --bin {bin}`: {e}"))?;
        anyhow::ensure!(
            status.success(),
            "`cargo build -p {package} --bin {bin}` failed ({status})"
        );
    }
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: run `cargo build -p {package} --bin {bin}` (make demo and make test do)",
        path.display()
    );
    Ok(path)
}
