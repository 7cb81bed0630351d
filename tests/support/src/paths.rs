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
